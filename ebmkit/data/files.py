"""Images a user names on the command line: a folder, one image file, a .npz array or a built-in set
(`digits`, `shapes:test`), and their conversion to a model's input shape."""

import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ebmkit.data import BUILTIN, TOY_2D, from_model_space, load_dataset, to_model_space
from ebmkit.errors import EbmkitError

IMAGE_SETS = tuple(n for n in BUILTIN if n not in TOY_2D)   # built-in image sets: digits, shapes
NPZ_KEYS = ("images", "samples")


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


def model_inputs(spec: str | Path, shape: tuple[int, ...], limit: int | None = None) -> torch.Tensor:
    """The first `limit` images of `spec` (all without it) fitted to a model's examples (C, H, W), in model
    space [-1, 1]."""
    if len(shape) == 1:
        raise EbmkitError(f"the model draws {shape[0]}-D points; this command needs an image model")
    images = load_images(spec)
    return to_model_space(fit(images[:limit] if limit else images, shape))


def input_names(spec: str | Path, count: int) -> list[str]:
    """A name for each of the `count` images of `spec`, in the order load_images reads them: a folder's file
    paths relative to it, an image file's name, else SPEC#INDEX (a .npz or a built-in set)."""
    from ebmkit.data.images import IMAGE_EXTS, image_files

    path = Path(spec).expanduser()
    if builtin_spec(str(spec)) is None and path.is_dir():
        return [str(p.relative_to(path)) for p in image_files(path)][:count]
    if path.is_file() and path.suffix.lower() in IMAGE_EXTS:
        return [path.name]
    return [f"{spec}#{i}" for i in range(count)]


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
    """uint8 (N, C, H, W) from a folder, an image file or a .npz (see read_npz)."""
    from ebmkit.data.images import IMAGE_EXTS, decode, load_folder

    path = Path(path).expanduser()
    if path.is_dir():
        return load_folder(path, "all", image_size).x
    if not path.is_file():
        raise EbmkitError(f"{path} not found (give a folder of images, an image file or a .npz)")
    if path.suffix.lower() in IMAGE_EXTS:
        return decode([path], image_size)
    if path.suffix.lower() != ".npz":
        raise EbmkitError(f"{path}: expected a folder, an image ({', '.join(IMAGE_EXTS)}) or a .npz file")
    return read_npz(path)


def read_npz(path: Path) -> torch.Tensor:
    """uint8 (N, C, H, W) from the array `images`, `samples` or the only one in a .npz, laid out NHWC or
    NCHW with 1 or 3 channels. Integers must be pixels 0..255; floats are model space [-1, 1] (what
    `ebmkit sample --out x.npz` writes), clamped, as samples overshoot a little, but they must be finite
    and not more than 1% of them beyond +-1.5 (0..255 floats are refused: store them as uint8).
    Anything else is an EbmkitError naming the file; nothing is unpickled."""
    if not zipfile.is_zipfile(path):
        raise EbmkitError(f"{path} is not a .npz file (not a zip archive)")
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            keys, named = list(z.keys()), [k for k in NPZ_KEYS if k in z]
            if not keys:
                raise EbmkitError(f"{path} holds no arrays")
            if len(keys) > 1 and not named:
                raise EbmkitError(f"{path} holds arrays {keys}: name the images 'images' or 'samples'")
            key = (named or keys)[0]
            a = z[key]
    except (OSError, ValueError, EOFError, RuntimeError, zipfile.BadZipFile, zlib.error) as e:
        why = "holds Python objects, which ebmkit never unpickles" if "allow_pickle" in str(e) else \
            f"is not a readable .npz file ({type(e).__name__}: {e})"
        raise EbmkitError(f"{path} {why}") from None
    what = f"{path}: array {key!r}"
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "uif":
        kind = getattr(a, "dtype", "raw bytes")
        raise EbmkitError(f"{what} holds {kind}; expected uint8 pixels or floats in [-1, 1]")
    shape = a.shape
    if a.ndim != 4:
        hint = " (one image or grey images: add the missing axes)" if a.ndim in (2, 3) else ""
        raise EbmkitError(f"{what} has shape {shape}; expected images (N, H, W, C) or (N, C, H, W){hint}")
    if a.shape[-1] in (1, 3) and a.shape[1] not in (1, 3):
        a = a.transpose(0, 3, 1, 2)  # NHWC -> NCHW
    if a.shape[1] not in (1, 3):
        raise EbmkitError(f"{what} has shape {shape}; expected 1 (grey) or 3 (RGB) channels, first or last")
    if not a.size:
        raise EbmkitError(f"{what} holds no images (shape {shape})")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise EbmkitError(f"{what} holds {int((~np.isfinite(a)).sum())} NaN or inf values")
        if (np.abs(a) > 1.5).mean() > 0.01:
            raise EbmkitError(f"{what} holds floats from {a.min():g} to {a.max():g}, not model space [-1, 1]; "
                              "store 0..255 pixels as uint8")
        return from_model_space(torch.from_numpy(a.astype(np.float32)))
    if a.dtype != np.uint8:
        if a.min() < 0 or a.max() > 255:
            raise EbmkitError(f"{what} holds integers from {a.min()} to {a.max()}; pixels must be 0..255")
        a = a.astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(a))
