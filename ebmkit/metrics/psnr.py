"""Peak signal-to-noise ratio of image pairs (novel-view synthesis, reconstruction, inpainting)."""

import torch

from ebmkit.errors import EbmkitError


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 255.0) -> torch.Tensor:
    """(N,) PSNR in dB of image pairs (N, C, H, W) of one value range (peak 255 for uint8, 1 for [0, 1]):
    10 log10(peak^2 / MSE), computed in float64; identical images give +inf."""
    if a.shape != b.shape:
        raise EbmkitError(f"image shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(peak**2 / mse)
