"""sklearn's bundled 8x8 handwritten digits (1797 images, no download)."""

import torch
from sklearn.datasets import load_digits as _sklearn_digits

from ebmkit.data import Dataset, check_split
from ebmkit.errors import EbmkitError

NUM_TRAIN = 1500


def load_digits(split: str = "train", image_size: int | None = None) -> Dataset:
    """uint8 (N, 1, 8, 8) digits; a fixed seed-0 permutation gives 1500 train / 297 test."""
    check_split("digits", split, ("train", "test", "all"))
    if image_size not in (None, 8):
        raise EbmkitError(f"digits are 8x8 images: image_size must be 8 or unset, got {image_size}")
    raw = _sklearn_digits()
    x = torch.from_numpy(raw.images).mul(255 / 16).round().to(torch.uint8)[:, None]  # (1797, 1, 8, 8)
    labels = torch.from_numpy(raw.target).long()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    idx = {"train": perm[:NUM_TRAIN], "test": perm[NUM_TRAIN:], "all": torch.arange(len(x))}[split]
    return Dataset("digits", "images", x[idx], labels[idx], class_names=[str(d) for d in range(10)])
