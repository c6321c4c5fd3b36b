"""Images a user names on the command line: a folder, one image file, a .npz array or a built-in set
(`digits`, `shapes:test`), and their conversion to a model's input shape."""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ebmkit.data import BUILTIN, TOY_2D, from_model_space, load_dataset
from ebmkit.errors import EbmkitError

IMAGE_SETS = tuple(n for n in BUILTIN if n not in TOY_2D)   # built-in image sets: digits, shapes


def builtin_spec(spec: str) -> tuple[str, str] | None:
    """'digits' -> ('digits', 'train'), 'shapes:test' -> ('shapes', 'test'); None if not a built-in set
    (a file or folder of that name wins)."""
    name, _, split = str(spec).partition(":")
    return (name, split or "train") if name in IMAGE_SETS and not Path(spec).exists() else None


def load_images(spec: str | Path, image_size: int | None = None) -> torch.Tensor:
    """uint8 (N, C, H, W) from a built-in set NAME[:SPLIT] or a path (see read_images)."""
    builtin = builtin_spec(str(spec))
    if builtin:
        return load_dataset(builtin[0], split=builtin[1], image_size=image_size).x
    return read_images(spec, image_size)


def fit(images: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """uint8 images -> a model's (C, H, W): grey <-> RGB (channel mean or repeat), bicubic resize."""
    channels, size = shape[0], shape[-2:]
    if images.shape[1] != channels:
        if channels == 1:
            images = images.float().mean(1, keepdim=True).round().to(torch.uint8)
        elif images.shape[1] == 1:
            images = images.expand(-1, channels, -1, -1)
        else:
            raise EbmkitError(f"cannot turn {images.shape[1]}-channel images into {channels}-channel ones")
    if tuple(images.shape[-2:]) != tuple(size):
        images = F.interpolate(images.float(), size=size, mode="bicubic", antialias=True).round().clamp(0, 255)
        images = images.to(torch.uint8)
    return images.contiguous()


def read_images(path: str | Path, image_size: int | None = None) -> torch.Tensor:
    """uint8 (N, C, H, W). A .npz holds `images`, `samples` or a single array: uint8 in NHWC or NCHW,
    or floats in model space [-1, 1] NCHW (what `ebmkit sample --out x.npz` writes)."""
    from ebmkit.data.images import IMAGE_EXTS, decode, load_folder

    path = Path(path).expanduser()
    if path.is_dir():
        return load_folder(path, "all", image_size).x
    if not path.is_file():
        raise EbmkitError(f"{path} not found (give a folder of images, an image file or a .npz)")
    if path.suffix.lower() in IMAGE_EXTS:
        return decode([path], image_size)
    if path.suffix != ".npz":
        raise EbmkitError(f"{path}: expected a folder, an image ({', '.join(IMAGE_EXTS)}) or a .npz file")
    with np.load(path) as z:
        keys = [k for k in ("images", "samples") if k in z] or list(z.keys())
        if len(keys) != 1 and not {"images", "samples"} & set(z.keys()):
            raise EbmkitError(f"{path} holds arrays {list(z.keys())}: name the images 'images' or 'samples'")
        x = torch.from_numpy(z[keys[0]])
    if x.dim() != 4:
        raise EbmkitError(f"{path}: expected a 4-D image array, got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.permute(0, 3, 1, 2).contiguous() if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3) else x
    return from_model_space(x)

