"""2-D toy distributions (FFJORD-style), all lying roughly within [-4, 4]^2."""

import math

import torch

from ebmkit.errors import EbmkitError


def _checkerboard(n: int, g: torch.Generator) -> torch.Tensor:
    # 4x4 grid of 2x2 cells over [-4, 4]^2; cell (i, j) is filled when i + j is even.
    i = torch.randint(0, 4, (n,), generator=g)
    j = 2 * torch.randint(0, 2, (n,), generator=g) + i % 2
    cell = torch.stack([i, j], 1).float() - 2  # (n, 2) lower-left corner / 2
    return 2 * (cell + torch.rand(n, 2, generator=g))


def _spiral(n: int, g: torch.Generator) -> torch.Tensor:
    # Two arms, each 1.5 turns long.
    t = torch.sqrt(torch.rand(n, generator=g)) * 3 * math.pi
    arm = torch.stack([-torch.cos(t) * t, torch.sin(t) * t], 1) + 0.5 * torch.rand(n, 2, generator=g)
    sign = 1 - 2 * torch.randint(0, 2, (n, 1), generator=g)
    return sign * arm / 3 + 0.1 * torch.randn(n, 2, generator=g)


def _8gaussians(n: int, g: torch.Generator) -> torch.Tensor:
    # 8 modes on a circle of radius 2*sqrt(2), std 0.2.
    angle = torch.randint(0, 8, (n,), generator=g) * (math.pi / 4)
    centers = 2 * math.sqrt(2) * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    return centers + 0.2 * torch.randn(n, 2, generator=g)


def _rings(n: int, g: torch.Generator) -> torch.Tensor:
    # 4 concentric circles of radius 0.75, 1.5, 2.25, 3, equally weighted.
    radius = 0.75 * torch.randint(1, 5, (n,), generator=g)
    angle = 2 * math.pi * torch.rand(n, generator=g)
    circle = radius[:, None] * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    return circle + 0.08 * torch.randn(n, 2, generator=g)


def _pinwheel(n: int, g: torch.Generator) -> torch.Tensor:
    # 5 arms; radial std 0.3, tangential std 0.1, twisted by exp(radius).
    arm = torch.randint(0, 5, (n,), generator=g)
    feat = torch.randn(n, 2, generator=g) * torch.tensor([0.3, 0.1]) + torch.tensor([1.0, 0.0])
    angle = arm * (2 * math.pi / 5) + 0.25 * torch.exp(feat[:, 0])
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([c, -s], 1), torch.stack([s, c], 1)], 1)  # (n, 2, 2)
    return 1.75 * (rot @ feat[:, :, None]).squeeze(2)


_SAMPLERS = {
    "checkerboard": _checkerboard,
    "spiral": _spiral,
    "8gaussians": _8gaussians,
    "rings": _rings,
    "pinwheel": _pinwheel,
}


def sample_toy(name: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 2) float32 samples of the named toy set."""
    if name not in _SAMPLERS:
        raise EbmkitError(f"unknown 2-D data set {name!r}; choose one of {', '.join(_SAMPLERS)}")
    return _SAMPLERS[name](n, generator).float()


def on_checkerboard(points: torch.Tensor) -> torch.Tensor:
    """(n,) bool: True where a point lies in one of the 8 filled cells (cell indices summing to even)."""
    inside = (points.abs() <= 4).all(1)
    cell = torch.floor(points / 2).clamp(-2, 1).long()  # (n, 2), x = 4 belongs to the last cell
    return inside & (cell.sum(1) % 2 == 0)
