"""Squared maximum mean discrepancy with RBF kernels, for point models."""

import torch

BANDWIDTHS = (0.05, 0.1, 0.25, 0.5, 1.0)  # in units of the data's standard deviation (metrics/points.py)


def _mean_kernel(a: torch.Tensor, b: torch.Tensor, bandwidths: tuple[float, ...]) -> torch.Tensor:
    """(len(bandwidths),) mean of k(a_i, b_j) = exp(-|a_i - b_j|^2 / (2 h^2)) over all pairs."""
    d2 = torch.cdist(a.double(), b.double()).pow(2)
    h2 = torch.tensor(bandwidths, dtype=torch.float64)[:, None, None] ** 2
    return torch.exp(-d2[None] / (2 * h2)).mean(dim=(1, 2))


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths: tuple[float, ...] = BANDWIDTHS) -> dict[float, float]:
    """Biased (V-statistic) squared MMD between samples x (n, d) and y (m, d), one per bandwidth.

    The biased estimate is positive even for two draws of one distribution (about 2/n times the
    kernel's mean variance), which makes "MMD to data / MMD of a second data draw" a fair ratio.
    """
    v = _mean_kernel(x, x, bandwidths) + _mean_kernel(y, y, bandwidths) - 2 * _mean_kernel(x, y, bandwidths)
    return {h: float(m) for h, m in zip(bandwidths, v)}
