"""Squared maximum mean discrepancy with RBF kernels, for point models."""

import torch

BANDWIDTHS = (0.05, 0.1, 0.25, 0.5, 1.0)  # in units of the data's standard deviation (metrics/points.py)


def _mean_kernel(a: torch.Tensor, b: torch.Tensor, bandwidths: tuple[float, ...], block: int = 512) -> torch.Tensor:
    """(len(bandwidths),) float64 mean of k(a_i, b_j) = exp(-|a_i - b_j|^2 / (2 h^2)) over all pairs.

    In float32 blocks of rows of a (distances from direct differences, free of the |a|^2 + |b|^2 - 2 a.b
    cancellation; each row summed in float32, the rows in float64): within 1e-5 of float64 on the MMD^2
    of 5,000-point sets. Exponents are floored at -80 (kernel values below 2e-35 count as that), as exp
    is slow on its way to underflow. Both together make the MMD^2 of 5,000 points 8 times faster."""
    coef = [-0.5 / (h * h) for h in bandwidths]
    b = b.float()
    total = torch.zeros(len(bandwidths), dtype=torch.float64)
    for rows in a.float().split(block):
        d2 = torch.cdist(rows, b, compute_mode="donot_use_mm_for_euclid_dist").square_()  # (block, len(b))
        k = torch.empty_like(d2)
        for i, c in enumerate(coef):
            total[i] += torch.mul(d2, c, out=k).clamp_(min=-80.0).exp_().sum(1).sum(dtype=torch.float64)
    return total / (len(a) * len(b))


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
