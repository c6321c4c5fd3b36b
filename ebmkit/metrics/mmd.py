"""Squared maximum mean discrepancy with RBF kernels, for point models."""

import torch

BANDWIDTHS = (0.05, 0.1, 0.25, 0.5, 1.0)  # in units of the data's standard deviation (metrics/points.py)


def _mean_kernel(a: torch.Tensor, b: torch.Tensor, bandwidths: tuple[float, ...]) -> torch.Tensor:
    """(len(bandwidths),) mean of k(a_i, b_j) = exp(-|a_i - b_j|^2 / (2 h^2)) over all pairs."""
    d2 = torch.cdist(a.double(), b.double()).pow(2)
    return torch.stack([torch.exp(d2 * (-0.5 / (h * h))).mean() for h in bandwidths])


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths: tuple[float, ...] = BANDWIDTHS) -> dict[float, float]:
    """Biased (V-statistic) squared MMD between samples x (n, d) and y (m, d), one per bandwidth.

    The biased estimate is positive even for two draws of one distribution (about 2/n times the
    kernel's mean variance), which makes "MMD to data / MMD of a second data draw" a fair ratio.
    """
    return mmd2_each([x], y, bandwidths)[0]


def mmd2_each(xs: list[torch.Tensor], y: torch.Tensor, bandwidths: tuple[float, ...] = BANDWIDTHS) -> list[dict[float, float]]:
    """mmd2(x, y) for every x in xs, with y's own kernel mean computed once."""
    kyy = _mean_kernel(y, y, bandwidths)
    return [{h: float(m) for h, m in zip(bandwidths, _mean_kernel(x, x, bandwidths) + kyy - 2 * _mean_kernel(x, y, bandwidths))}
            for x in xs]
