"""Local image sets (folder, CIFAR-10, SVHN, CelebA, ImageNet 32x32), read from disk into uint8 NCHW."""

import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ebmkit.data import Dataset, check_split
from ebmkit.errors import EbmkitError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
MAX_PIXELS = 64_000_000  # larger images are refused: a decompression bomb, or no image a model here can use
_BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)  # PIL's own (higher) pixel limits
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
IMAGENET32_FILES = [f"train_data_batch_{i}.npz" for i in range(1, 11)] + ["val_data.npz"]

# What data.path must hold, per data set (used in error messages).
EXPECTED = {
    "folder": f"images ({', '.join(IMAGE_EXTS)}), optionally in one subfolder per class",
    "cifar10": "cifar-10-batches-bin/ (the binary version) or cifar-10-batches-py/",
    "svhn": "train_32x32.mat and test_32x32.mat",
    "celeba": "img_align_celeba/ and list_attr_celeba.txt (plus list_eval_partition.txt for splits)",
    "imagenet32": "train_data_batch_1.npz .. train_data_batch_10.npz and val_data.npz (downsampled ImageNet)",
}


def _too_large(p: Path, size: str) -> EbmkitError:
    return EbmkitError(f"image {p} is {size}, above the limit of {MAX_PIXELS // 10**6} megapixels")


def _missing(name: str, root: Path) -> EbmkitError:
    return EbmkitError(f"{name} not found under {root}: put {EXPECTED[name]} there")


def _resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """uint8 (N, C, H, W) square images -> uint8 (N, C, size, size), bicubic with antialiasing."""
    if size is None or size == x.shape[-1]:
        return x
    chunks = [
        F.interpolate(c.float(), size=(size, size), mode="bicubic", antialias=True).round().clamp(0, 255)
        for c in x.split(4096)
    ]
    return torch.cat(chunks).to(torch.uint8)


def _mixed_sizes(files: list[Path]) -> EbmkitError:
    """The error for images of different sizes: how many sizes, two examples and what to do."""
    sizes: dict[tuple[int, int], Path] = {}
    for f in files:  # headers only; an unreadable file is left out of the count
        with suppress(OSError, ValueError, *_BOMB), Image.open(f) as im:
            sizes.setdefault(im.size, f)
    folder = Path(os.path.commonpath(files))
    (a, fa), (b, fb) = list(sizes.items())[:2]
    return EbmkitError(
        f"the {len(files)} images in {folder} have {len(sizes)} different sizes ({fa.relative_to(folder)} is "
        f"{a[0]}x{a[1]}, {fb.relative_to(folder)} is {b[0]}x{b[1]}): resize them to one size "
        "(training: set data.image_size)"
    )


def _decode(files: list[Path], prepare: Callable[[Image.Image], Image.Image]) -> torch.Tensor:
    """Decode images in parallel threads, in order, into uint8 (N, 3, H, W); all must share one size.
    An unreadable file or one above MAX_PIXELS is an EbmkitError naming it."""

    def load(p: Path) -> np.ndarray:
        try:
            with Image.open(p) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise _too_large(p, f"{im.width} x {im.height} pixels")
                return np.array(prepare(im.convert("RGB")))  # (H, W, 3)
        except _BOMB:
            raise _too_large(p, f"over {Image.MAX_IMAGE_PIXELS // 10**6} megapixels") from None
        except (OSError, ValueError, EOFError, SyntaxError) as e:
            raise EbmkitError(f"cannot read image {p}: {e}") from None

    if not files:
        raise EbmkitError("no image files given")
    pool = ThreadPoolExecutor(min(8, os.cpu_count() or 1))
    with warnings.catch_warnings():  # PIL warns of (and then decodes) images past its own limit: refuse them
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            arrays = pool.map(load, files)
            if len(files) > 5000:
                from rich.progress import track

                arrays = track(arrays, total=len(files), description=f"decoding {len(files)} images")
            x = None
            for i, a in enumerate(arrays):
                if x is None:
                    x = torch.empty((len(files), 3, *a.shape[:2]), dtype=torch.uint8)
                elif a.shape[:2] != x.shape[2:]:
                    raise _mixed_sizes(files)
                x[i] = torch.from_numpy(a).permute(2, 0, 1)
            return x
        finally:
            pool.shutdown(cancel_futures=True)


def decode(files: list[Path], image_size: int | None = None) -> torch.Tensor:
    """uint8 (N, 3, H, W) images; with `image_size`, the shorter side is resized to it and the centre cropped."""

    def prepare(im: Image.Image) -> Image.Image:
        if image_size is None:
            return im
        w, h = im.size
        s = image_size / min(w, h)
        w, h = max(image_size, round(w * s)), max(image_size, round(h * s))
        im = im.resize((w, h), Image.Resampling.BICUBIC)
        left, top = (w - image_size) // 2, (h - image_size) // 2
        return im.crop((left, top, left + image_size, top + image_size))

    return _decode(files, prepare)


def image_files(root: Path) -> list[Path]:
    """The image files under `root`, recursive, sorted: the order every folder of images is read in."""
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not files:
        raise EbmkitError(f"no images found in {root} (looked for {', '.join(IMAGE_EXTS)})")
    return files


def load_folder(root: Path, split: str, image_size: int | None) -> Dataset:
    """All images under `root` (recursive, sorted); the split is ignored. Class subfolders -> labels."""
    check_split("folder", split, ("train", "test", "all"))
    files = image_files(root)

    x = decode(files, image_size)
    labels = class_names = None
    tops = [p.relative_to(root).parts for p in files]
    if all(len(parts) > 1 for parts in tops):
        class_names = sorted({parts[0] for parts in tops})
        index = {c: i for i, c in enumerate(class_names)}
        labels = torch.tensor([index[parts[0]] for parts in tops], dtype=torch.long)
    return Dataset("folder", "images", x, labels, class_names=class_names)


def _cifar10_bin(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    train = [f"data_batch_{i}.bin" for i in range(1, 6)]
    xs, ys = [], []
    for fname in {"train": train, "test": ["test_batch.bin"], "all": train + ["test_batch.bin"]}[split]:
        f = folder / fname
        if not f.is_file():
            raise EbmkitError(f"CIFAR-10 file missing: put {fname} into {folder}")
        raw = np.fromfile(f, dtype=np.uint8)
        if raw.size % 3073:
            raise EbmkitError(f"{f} is not a CIFAR-10 binary batch (size not a multiple of 3073 bytes)")
        records = torch.from_numpy(raw).view(-1, 3073)  # 1 label byte + 3x32x32 pixels, CHW
        ys.append(records[:, 0].long())
        xs.append(records[:, 1:].reshape(-1, 3, 32, 32))
    meta = folder / "batches.meta.txt"
    classes = meta.read_text().split() if meta.is_file() else CIFAR10_CLASSES
    return torch.cat(xs), torch.cat(ys), classes


def _cifar10_py(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    from torchvision.datasets import CIFAR10

    xs, ys = [], []
    for train in {"train": [True], "test": [False], "all": [True, False]}[split]:
        try:
            ds = CIFAR10(str(folder.parent), train=train, download=False)
        except RuntimeError:  # torchvision's checksum failed
            raise EbmkitError(
                f"CIFAR-10 python batches in {folder} are missing or corrupted: re-extract cifar-10-python.tar.gz"
            ) from None
        xs.append(torch.from_numpy(ds.data).permute(0, 3, 1, 2))  # (N, 32, 32, 3) -> (N, 3, 32, 32)
        ys.append(torch.tensor(ds.targets, dtype=torch.long))
    return torch.cat(xs), torch.cat(ys), list(ds.classes)


def load_cifar10(root: Path, split: str, image_size: int | None) -> Dataset:
    """CIFAR-10 from the binary version (preferred) or the python version; split train/test/all."""
    check_split("cifar10", split, ("train", "test", "all"))
    for sub, reader in (("cifar-10-batches-bin", _cifar10_bin), ("cifar-10-batches-py", _cifar10_py)):
        folder = root if root.name == sub else root / sub
        if folder.is_dir():
            x, labels, classes = reader(folder, split)
            return Dataset("cifar10", "images", _resize(x, image_size), labels, class_names=classes)
    raise EbmkitError(f"CIFAR-10 not found under {root}: put {EXPECTED['cifar10']} there")


def load_svhn(root: Path, split: str, image_size: int | None) -> Dataset:
    """SVHN cropped digits (train_32x32.mat / test_32x32.mat); label 10 means digit 0."""
    from scipy.io import loadmat

    check_split("svhn", split, ("train", "test", "all"))
    xs, ys = [], []
    for part in ("train", "test") if split == "all" else (split,):
        f = root / f"{part}_32x32.mat"
        if not f.is_file():
            raise _missing("svhn", root)
        try:
            mat = loadmat(f)
        except (OSError, ValueError) as e:
            raise EbmkitError(f"cannot read {f}: {e}") from None
        xs.append(torch.from_numpy(mat["X"]).permute(3, 2, 0, 1).contiguous())  # (32, 32, 3, N) -> (N, 3, 32, 32)
        ys.append(torch.from_numpy(mat["y"].reshape(-1).astype(np.int64)) % 10)
    x = _resize(torch.cat(xs), image_size)
    return Dataset("svhn", "images", x, torch.cat(ys), class_names=[str(d) for d in range(10)])


def load_celeba(root: Path, split: str, image_size: int | None) -> Dataset:
    """Aligned CelebA: 140x140 center crop, resized to image_size (default 64), with 40 attributes."""
    check_split("celeba", split, ("train", "valid", "test", "all"))
    img_dir, attr_file = root / "img_align_celeba", root / "list_attr_celeba.txt"
    if not (img_dir.is_dir() and attr_file.is_file()):
        raise _missing("celeba", root)
    if (img_dir / "img_align_celeba").is_dir():  # the Kaggle archive nests the folder
        img_dir = img_dir / "img_align_celeba"

    # list_attr_celeba.txt: count, attribute names, then "name v1 v2 ..." with values 1 / -1.
    lines = attr_file.read_text().splitlines()
    attribute_names = lines[1].split() if len(lines) > 1 else []
    rows = [line.split() for line in lines[2:] if line.strip()]
    if not attribute_names or any(len(r) != len(attribute_names) + 1 for r in rows):
        raise EbmkitError(f"{attr_file} is malformed: expected a count, attribute names, then 'file v1 v2 ...' rows")
    names = [r[0] for r in rows]
    attributes = torch.tensor([[v == "1" for v in r[1:]] for r in rows], dtype=torch.bool)

    if split != "all":
        part_file = root / "list_eval_partition.txt"
        if not part_file.is_file():
            raise EbmkitError(f"celeba split {split!r} needs list_eval_partition.txt in {root}")
        pairs = [line.split() for line in part_file.read_text().splitlines() if line.strip()]
        if any(len(p) != 2 for p in pairs):
            raise EbmkitError(f"{part_file} is malformed: expected 'file partition' rows")
        part = dict(pairs)
        code = {"train": "0", "valid": "1", "test": "2"}[split]
        keep = [i for i, n in enumerate(names) if part.get(n) == code]
        names, attributes = [names[i] for i in keep], attributes[keep]

    size = image_size or 64

    def prepare(im: Image.Image) -> Image.Image:
        w, h = im.size
        c = min(140, w, h)
        left, top = (w - c) // 2, (h - c) // 2
        return im.crop((left, top, left + c, top + c)).resize((size, size), Image.Resampling.BICUBIC)

    files = [img_dir / n for n in names]
    for f in files:
        if not f.is_file():
            raise EbmkitError(f"{f} is listed in {attr_file.name} but missing: put it into {img_dir}")
    x = _decode(files, prepare)
    return Dataset("celeba", "images", x, attributes=attributes, attribute_names=attribute_names)


def load_imagenet32(root: Path, split: str, image_size: int | None) -> Dataset:
    """Downsampled ImageNet 32x32 npz batches; "test" is val_data.npz. Labels 1..1000 -> 0..999."""
    check_split("imagenet32", split, ("train", "test", "all"))
    files = {"train": IMAGENET32_FILES[:10], "test": IMAGENET32_FILES[10:], "all": IMAGENET32_FILES}[split]
    if any(not (root / f).is_file() for f in files):
        raise _missing("imagenet32", root)
    xs, ys = [], []
    for fname in files:
        try:
            with np.load(root / fname) as npz:
                data, labels = npz["data"], npz["labels"]
        except (OSError, ValueError, KeyError) as e:
            raise EbmkitError(f"cannot read {root / fname} (needs arrays data and labels): {e}") from None
        if data.ndim != 2 or data.shape[1] != 3072:
            raise EbmkitError(f"{root / fname}: data must be (N, 3072) uint8, got {data.shape}")
        xs.append(torch.from_numpy(data.astype(np.uint8, copy=False)).view(-1, 3, 32, 32))
        ys.append(torch.from_numpy(np.asarray(labels, dtype=np.int64).reshape(-1)) - 1)
    return Dataset("imagenet32", "images", _resize(torch.cat(xs), image_size), torch.cat(ys))


LOADERS = {
    "folder": load_folder,
    "cifar10": load_cifar10,
    "svhn": load_svhn,
    "celeba": load_celeba,
    "imagenet32": load_imagenet32,
}
