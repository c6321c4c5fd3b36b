"""Peak signal-to-noise ratio of image pairs (novel-view synthesis, reconstruction, inpainting)."""

from pathlib import Path

import torch

from ebmkit.errors import EbmkitError


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 255.0) -> torch.Tensor:
    """(N,) PSNR in dB of image pairs (N, C, H, W) of one value range (peak 255 for uint8, 1 for [0, 1]):
    10 log10(peak^2 / MSE), computed in float64; identical images give +inf."""
    if a.shape != b.shape:
        raise EbmkitError(f"image shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(peak**2 / mse)


def psnr_of_files(a: str | Path, b: str | Path) -> list[float]:
    """PSNR (peak 255) of the image pairs of two folders, image files or .npz arrays, in order."""
    from ebmkit.data.files import read_images

    x, y = read_images(a), read_images(b)
    if len(x) != len(y):
        raise EbmkitError(f"{a} holds {len(x)} images but {b} holds {len(y)}")
    if x.shape[1] != y.shape[1]:  # a grey set saved as PNG reads back as RGB
        x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
    return psnr(x, y).tolist()
