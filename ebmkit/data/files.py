"""Images from a path a user gives on the command line: a folder, one image file, or a .npz array."""

from pathlib import Path

import numpy as np
import torch

from ebmkit.data import from_model_space
from ebmkit.errors import EbmkitError


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

