"""Inpainting masks. A mask PNG is white where pixels are to be filled and black where they are kept
(the convention of common inpainting tools). Inside ebmkit a mask M is 1 on observed pixels."""

from pathlib import Path

import torch
import torch.nn.functional as F

from ebmkit.errors import EbmkitError


def keep_observed(obs: torch.Tensor, mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Inpainting projection (sec. 5.4.7): observed pixels (mask 1) from `obs`, the rest from x."""
    return torch.where(mask.bool(), obs, x)


def read_mask(path: str | Path, size: tuple[int, int]) -> torch.Tensor:
    """(1, 1, H, W) observed-pixel mask from a PNG (white = fill), resized (nearest) to `size`."""
    from ebmkit.data.files import read_images

    img = read_images(path)
    if len(img) != 1:
        raise EbmkitError(f"--mask {path}: expected one mask image, found {len(img)}")
    fill = img.float().mean(1, keepdim=True) > 127.5                     # (1, 1, h, w)
    fill = F.interpolate(fill.float(), size=size, mode="nearest") > 0.5
    return (~fill).float()


def box_mask(spec: str, size: tuple[int, int]) -> torch.Tensor:
    """'x,y,w,h' (pixels, origin top left) -> (1, 1, H, W) mask that is 0 inside the box."""
    try:
        x, y, w, h = (int(v) for v in spec.split(","))
    except ValueError:
        raise EbmkitError(f"--box {spec!r}: expected x,y,w,h in pixels, e.g. 4,4,8,8") from None
    height, width = size
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise EbmkitError(f"--box {spec}: the box must lie inside the {width}x{height} image")
    mask = torch.ones(1, 1, height, width)
    mask[..., y:y + h, x:x + w] = 0
    return mask


def irregular_mask(num: int, size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """(num, 1, H, W) free-form masks: 2-4 thick random strokes each (the irregular masks of Fig. 5.7),
    deterministic given the generator."""
    height, width = size
    ys, xs = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    masks = torch.ones(num, 1, height, width)
    radius = max(1.0, min(size) / 10)
    for i in range(num):
        for _ in range(int(torch.randint(2, 5, (), generator=generator))):
            a = torch.rand(2, generator=generator) * torch.tensor([width, height])
            b = torch.rand(2, generator=generator) * torch.tensor([width, height])
            d = b - a
            # distance of every pixel to the segment a-b
            t = (((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / d.pow(2).sum().clamp(min=1e-6)).clamp(0, 1)
            dist = ((xs - a[0] - t * d[0]) ** 2 + (ys - a[1] - t * d[1]) ** 2).sqrt()
            masks[i, 0][dist <= radius] = 0
    return masks
