"""Shapes: small procedural RGB images of one coloured shape on black, with known attributes.

Each image shows one shape (circle, square, triangle, cross) in one colour (red, green, blue,
yellow) at one size (small, large), with its centre jittered by up to 2 pixels, a rotation of up to
15 degrees, and a brightness between 80% and 100%. All three attributes are drawn uniformly and
independently, so every combination appears about equally often; labels are the shape index. The
set is generated on the fly from fixed seeds (train 10000 images, test 2000), so it is identical on
every machine and needs no download; the same split at 16 and 32 pixels shows the same scenes.
Edges are anti-aliased: each pixel is the shape's coverage of a 4x4 grid of sub-pixel samples.
"""

import math

import torch
import torch.nn.functional as F

from ebmkit.data import Dataset, check_split
from ebmkit.errors import EbmkitError

SHAPES = ["circle", "square", "triangle", "cross"]
COLORS = ["red", "green", "blue", "yellow"]
SIZES = ["small", "large"]
RGB = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])  # (4, 3), rows follow COLORS
RADIUS = torch.tensor([3.0, 5.5])  # per size, in pixels of a 16x16 image; every shape fits in this circle
JITTER = 2.0  # largest shift of the centre from the middle, in pixels of a 16x16 image
MAX_ANGLE = math.radians(15)
SUPERSAMPLE = 4  # sub-pixel samples per pixel along each axis
IMAGE_SIZES = (16, 32)
SPLITS = {"train": (10_000, 1), "test": (2_000, 2)}  # split -> (number of images, generator seed)
CHUNK = 500  # images rendered at once, to bound memory


def _inside(shape: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Whether points (u, v), in the shape's own frame scaled to radius 1 (v points down), lie inside."""
    if shape == 0:  # circle
        return u**2 + v**2 <= 1
    if shape == 1:  # square of half-side 0.8
        return torch.maximum(u.abs(), v.abs()) <= 0.8
    if shape == 2:  # equilateral triangle with its apex up: three edges at distance 0.5 from the centre
        return (v <= 0.5) & (math.sqrt(3) / 2 * u.abs() - v / 2 <= 0.5)
    return ((u.abs() <= 0.35) & (v.abs() <= 0.9)) | ((v.abs() <= 0.35) & (u.abs() <= 0.9))  # cross


def _render(attrs: torch.Tensor, centre: torch.Tensor, angle: torch.Tensor, size: int) -> torch.Tensor:
    """Coverage (n, 1, size, size) in [0, 1] of shapes with attributes (n, 3), centre (n, 2) and angle (n,)."""
    # Sub-pixel sample positions in units of a 16x16 image: (size * SUPERSAMPLE,)
    t = (torch.arange(size * SUPERSAMPLE) + 0.5) / SUPERSAMPLE * (16 / size)
    dx = t[None, None, :] - centre[:, 0, None, None]  # (n, 1, W)
    dy = t[None, :, None] - centre[:, 1, None, None]  # (n, H, 1)
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    r = RADIUS[attrs[:, 2]][:, None, None]
    u, v = (cos * dx + sin * dy) / r, (cos * dy - sin * dx) / r  # (n, H, W), rotated and scaled
    mask = torch.zeros(u.shape, dtype=torch.bool)
    for shape in range(len(SHAPES)):
        sel = attrs[:, 0] == shape
        mask[sel] = _inside(shape, u[sel], v[sel])
    return F.avg_pool2d(mask.float()[:, None], SUPERSAMPLE)


def _generate(n: int, seed: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n images uint8 (n, 3, size, size) and their attributes int64 (n, 3), from a private generator."""
    g = torch.Generator().manual_seed(seed)
    attrs = torch.stack([torch.randint(len(v), (n,), generator=g) for v in (SHAPES, COLORS, SIZES)], 1)
    centre = 8 + JITTER * (2 * torch.rand(n, 2, generator=g) - 1)  # (n, 2) as (x, y)
    angle = MAX_ANGLE * (2 * torch.rand(n, generator=g) - 1)  # (n,)
    brightness = 0.8 + 0.2 * torch.rand(n, generator=g)  # (n,)
    color = RGB[attrs[:, 1]] * brightness[:, None]  # (n, 3)
    chunks = zip(attrs.split(CHUNK), centre.split(CHUNK), angle.split(CHUNK))
    coverage = torch.cat([_render(a, c, t, size) for a, c, t in chunks])  # (n, 1, size, size)
    x = (coverage * color[:, :, None, None] * 255).round().to(torch.uint8)  # (n, 3, size, size)
    return x, attrs


def load_shapes(split: str = "train", image_size: int | None = None) -> Dataset:
    """uint8 (N, 3, S, S) shape images (S = 16 by default, or 32) with shape labels and attributes."""
    check_split("shapes", split, ("train", "test", "all"))
    size = 16 if image_size is None else image_size
    if size not in IMAGE_SIZES:
        raise EbmkitError(f"shapes are rendered at 16 or 32 pixels: image_size must be 16, 32 or unset, got {size}")
    parts = [_generate(*SPLITS[s], size) for s in (("train", "test") if split == "all" else (split,))]
    x, attrs = (torch.cat(t) for t in zip(*parts))
    return Dataset(
        "shapes",
        "images",
        x,
        attrs[:, 0].clone(),
        attributes=attrs,
        attribute_names=["shape", "color", "size"],
        attribute_values=[list(SHAPES), list(COLORS), list(SIZES)],
        class_names=list(SHAPES),
    )
