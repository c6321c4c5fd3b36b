"""Data sets: 2-D toys, point files, sklearn digits and local image sets, plus uint8 <-> model-space conversion."""

from dataclasses import dataclass
from pathlib import Path

import torch

from ebmkit.data.points import read_points
from ebmkit.data.toy2d import sample_toy
from ebmkit.errors import EbmkitError
from ebmkit.inputs import BUILTIN, POINT_SETS, TOY_2D  # noqa: F401 (the names of the built-in sets live there)

LOCAL: tuple[str, ...] = ("folder", "cifar10", "svhn", "celeba", "imagenet32", "carla", "srn_cars")  # read from data.path


def to_model_space(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return x.float() / 127.5 - 1


def from_model_space(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], clamped and rounded."""
    return ((x.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


@dataclass
class Dataset:
    """A finite data set held in memory: points (float32 (N, D)) or images (uint8 (N, C, H, W))."""

    name: str
    kind: str
    x: torch.Tensor
    labels: torch.Tensor | None = None
    attributes: torch.Tensor | None = None
    attribute_names: list[str] | None = None
    attribute_values: list[list[str]] | None = None  # value names per attribute; attributes[:, j] indexes them
    class_names: list[str] | None = None
    poses: torch.Tensor | None = None      # (N, 2) camera (elevation, azimuth) in radians (3-D scenes)
    objects: torch.Tensor | None = None    # (N,) the object each image shows (3-D scenes)
    masks: torch.Tensor | None = None      # (N, 1, H, W) 1 where a pixel is observed (incomplete images)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def model_space(self, idx: torch.Tensor) -> torch.Tensor:
        """float32 batch of the examples at `idx`; images go to [-1, 1]."""
        batch = self.x[idx]
        return to_model_space(batch) if self.kind == "images" else batch.float()


def check_split(name: str, split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise EbmkitError(f"{name} has no split {split!r}; choose one of {', '.join(allowed)}")


def load_dataset(
    name: str,
    path: str | None = None,
    split: str = "train",
    image_size: int | None = None,
    num_points: int = 50_000,
    seed: int = 0,
    scale: float = 1.0,
    views: int | None = None,
    num_objects: int | None = None,
    masked: bool = False,
    distinct_ends: bool = False,
) -> Dataset:
    """Load a data set by name; local sets (LOCAL) read from `path` and never download. views,
    num_objects and masked are for 3-D scenes (their defaults: the split's), distinct_ends for the
    procedural ones."""
    if name in TOY_2D:
        check_split(name, split, ("train", "test"))
        g = torch.Generator().manual_seed(seed + (split == "test"))
        return Dataset(name, "points", scale * sample_toy(name, num_points, g))
    if name == "points":
        if path is None:
            raise EbmkitError("data set 'points' is read from a file: set data.path (or give --data FILE)")
        if split != "train":
            raise EbmkitError("a point file has one split, the training data; give held-out points as a file "
                              "(e.g. `ebmkit eval mmd --ref held_out.npy`)")
        return Dataset(Path(path).name, "points", read_points(path))
    if name == "digits":
        from ebmkit.data.digits import load_digits

        return load_digits(split, image_size)
    if name == "shapes":
        from ebmkit.data.shapes import load_shapes

        return load_shapes(split, image_size)
    if name == "scenes":
        from ebmkit.data.scenes import load_scenes

        return load_scenes(split, image_size or 32, views, num_objects, masked, distinct_ends).to_dataset()
    if name not in LOCAL:
        raise EbmkitError(f"unknown data set {name!r}; choose one of {', '.join(BUILTIN + LOCAL + ('points',))}")

    from ebmkit.data import images, scene_files

    expected = (images.EXPECTED | scene_files.EXPECTED)[name]
    if path is None:
        raise EbmkitError(f"{name} is read from disk: set data.path to a directory with {expected}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise EbmkitError(f"data.path {root} is not a directory: it should hold {expected}")
    if name in scene_files.LOADERS:  # NeRF-LEBM's real data (sec. 3.5.1)
        scenes = scene_files.LOADERS[name](root, split, image_size, views, num_objects)
        return (scenes.with_masks(seed) if masked else scenes).to_dataset()
    return images.LOADERS[name](root, split, image_size)


def from_config(cfg, split: str = "train", seed: int = 0) -> Dataset:
    """The data set a preset's `data` section describes."""
    scene = {k: getattr(cfg, k) for k in ("views", "num_objects", "masked", "distinct_ends") if hasattr(cfg, k)}
    if split != "train":  # held-out objects keep their split's own numbers of objects and views
        scene.pop("views", None), scene.pop("num_objects", None)
    data = load_dataset(cfg.name, cfg.path, split, cfg.image_size, cfg.num_points, seed, cfg.toy_scale, **scene)
    if hasattr(cfg, "views") and data.objects is None:  # an image set read as scenes (CelebA, Fig. 3.10): each image
        data.objects = torch.arange(len(data.x))    # is one object, seen once, pose unknown
    return data
