"""NeRF-LEBM's real data on disk (thesis sec. 3.5.1), never downloaded: GRAF's Carla cars (a folder of PNG
images, with the camera extrinsics when they are there) and SRN's ShapeNet cars (<car>/rgb/*.png,
pose/*.txt camera-to-world, intrinsics.txt); camera matrices become (elevation, azimuth), a distance and a
field of view. Both read into the SceneSet of the procedural scenes (scenes.py)."""

import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ebmkit.data import check_split
from ebmkit.data.scenes import SceneSet
from ebmkit.errors import EbmkitError
from ebmkit.nerf.camera import look_at

CARLA_EXPECTED = ("GRAF's Carla images (carla/*.png from carla.zip) and, for known poses, "
                  "carla_poses/*_extrinsics.npy")
SRN_EXPECTED = ("SRN's ShapeNet cars: cars_train/ (and cars_val/, cars_test/), each holding one folder per car "
                "with rgb/*.png, pose/*.txt (4x4 camera-to-world) and intrinsics.txt")


def _read_png(path: Path, size: int | None) -> np.ndarray:
    """(S, S, 3) uint8 of a square image composited on white, resized (bicubic) to `size` if given."""
    try:
        with Image.open(path) as im:
            rgba = im.convert("RGBA")
    except (OSError, ValueError) as e:
        raise EbmkitError(f"cannot read image {path}: {e}") from None
    if rgba.width != rgba.height:
        raise EbmkitError(f"{path} is {rgba.width}x{rgba.height}: scene images must be square")
    rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    if size is not None and size != rgb.width:
        rgb = rgb.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(rgb)


def _read_pngs(files: list[Path], size: int | None) -> torch.Tensor:
    """uint8 (N, 3, S, S) from PNG files (decoded in threads); all must share one size."""
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        arrays = list(pool.map(lambda f: _read_png(f, size), files))
    sizes = {a.shape for a in arrays}
    if len(sizes) > 1:
        raise EbmkitError(f"images under {files[0].parent} differ in size ({sorted(sizes)}): set image_size")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def read_carla(root: str | Path, split: str = "train", image_size: int | None = None, views: int | None = None,
               num_objects: int | None = None) -> SceneSet:
    """GRAF's Carla cars, one split of one view per car: one image per car (sorted by name) in root/imgs,
    root/carla or root, and, when a poses folder (root/poses, root/carla_poses or a carla_poses beside the
    images) exists, each image's 3x4 OpenGL camera-to-world matrix NAME_extrinsics.npy, converted to
    (elevation, azimuth); else the poses are unknown."""
    check_split("carla", split, ("train",))
    if views not in (None, 1):
        raise EbmkitError(f"Carla has one view per car, not {views}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise EbmkitError(f"Carla folder {root} not found: put {CARLA_EXPECTED} there")
    folder = next(f for f in (root / "imgs", root / "carla", root) if f.is_dir())
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() == ".png")[:num_objects]
    if not files:
        raise EbmkitError(f"no PNG images in {folder}: put {CARLA_EXPECTED} there")
    images = _read_pngs(files, image_size)
    pose_dir = next((d for d in (root / "poses", root / "carla_poses", folder.parent / "carla_poses") if d.is_dir()), None)
    if pose_dir is None:
        return SceneSet("carla", images, torch.arange(len(images)), None)
    poses, radius = cameras_to_poses(torch.stack([_carla_pose(pose_dir / f"{f.stem}_extrinsics.npy") for f in files]),
                                     opencv=False)
    return SceneSet("carla", images, torch.arange(len(images)), poses, radius=radius)


def _carla_pose(path: Path) -> torch.Tensor:
    """(4, 4) float64 camera-to-world matrix from GRAF's 3x4 (or 4x4) extrinsics .npy."""
    if not path.is_file():
        raise EbmkitError(f"{path} is missing: each Carla image NAME.png needs NAME_extrinsics.npy beside the others")
    try:
        m = np.load(path)
    except (OSError, ValueError) as e:
        raise EbmkitError(f"cannot read {path}: {e}") from None
    if m.shape not in ((3, 4), (4, 4)):
        raise EbmkitError(f"{path} holds an array of shape {m.shape}: expected a 3x4 camera-to-world matrix")
    return torch.cat([torch.from_numpy(m[:3]).double(), torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)])


def _srn_split(root: Path, split: str) -> Path:
    """The folder holding one folder per car: root/cars_<split>, or root itself."""
    if not root.is_dir():
        raise EbmkitError(f"SRN cars folder {root} not found: put {SRN_EXPECTED} there")
    for folder in (root / f"cars_{split}", root):
        if any((d / "rgb").is_dir() for d in folder.glob("*")):
            return folder
    raise EbmkitError(f"no SRN cars under {root} (no cars_{split}/<car>/rgb/): put {SRN_EXPECTED} there")


def _srn_intrinsics(car: Path) -> float:
    """Field of view in degrees from <car>/intrinsics.txt (first line 'f cx cy 0', last line 'H W')."""
    path = car / "intrinsics.txt"
    if not path.is_file():
        raise EbmkitError(f"{path} is missing: each SRN car folder needs intrinsics.txt ('f cx cy 0' ... 'H W')")
    try:
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
        focal, width = float(lines[0][0]), float(lines[-1][-1])
    except (IndexError, ValueError):
        raise EbmkitError(f"{path} is malformed: expected 'f cx cy 0' first and 'H W' last") from None
    return math.degrees(2 * math.atan(width / 2 / focal))


def _srn_pose(path: Path) -> torch.Tensor:
    """(4, 4) float64 camera-to-world matrix from a pose file of 16 numbers."""
    if not path.is_file():
        raise EbmkitError(f"{path} is missing: each rgb/NAME.png needs pose/NAME.txt (4x4 camera-to-world)")
    try:
        values = [float(v) for v in path.read_text().split()]
    except ValueError:
        values = []
    if len(values) != 16:
        raise EbmkitError(f"{path} is malformed: expected 16 numbers (a 4x4 camera-to-world matrix)")
    return torch.tensor(values, dtype=torch.float64).view(4, 4)


def _up_frame(axis: int, sign: int) -> torch.Tensor:
    """(3, 3) rotation taking world coordinates whose up is sign * e_axis to camera.py's frame (z up)."""
    up, x = sign * torch.eye(3, dtype=torch.float64)[axis], torch.eye(3, dtype=torch.float64)[(axis + 1) % 3]
    return torch.stack([x, torch.linalg.cross(up, x), up])


def cameras_to_poses(cam2world: torch.Tensor, opencv: bool = True, tol: float = 1e-2) -> tuple[torch.Tensor, float]:
    """Camera-to-world matrices (N, 4, 4) -> poses float32 (N, 2) (elevation, azimuth) under camera.py's
    convention, and the mean camera distance. Cameras are OpenCV's (x right, y down, z forward; SRN) or,
    with opencv=False, OpenGL's (x right, y up, z back; GRAF's Carla). The world's up axis is whichever
    signed coordinate axis makes every camera a camera.py look-at camera (pointing at the origin, no roll);
    it becomes camera.py's z and the next axis in cyclic order (x after z, y after x, z after y) its x.
    Raises EbmkitError when no axis fits or the distances differ."""
    position = cam2world[:, :3, 3]                                         # (N, 3)
    flip = [1.0, -1.0, -1.0] if opencv else [1.0, 1.0, 1.0]
    gl = cam2world[:, :3, :3] * torch.tensor(flip, dtype=cam2world.dtype)  # columns right, up, back
    frames = [_up_frame(axis, sign) for axis in (2, 1, 0) for sign in (1, -1)]
    errors = [(look_at(position @ f.T) - f @ gl).abs().amax().item() for f in frames]
    error = min(errors)
    p = position @ frames[errors.index(error)].T                           # (N, 3) in camera.py's frame
    distance = p.norm(dim=-1)
    if error > tol:
        raise EbmkitError(f"the cameras are not look-at cameras without roll (off by {error:.3g}): "
                          "they cannot be written as (elevation, azimuth)")
    if (distance.max() - distance.min()) > 0.05 * distance.mean():
        raise EbmkitError(f"the cameras lie at distances {distance.min():.3g} to {distance.max():.3g}, not on one "
                          "sphere: they cannot be written as (elevation, azimuth)")
    poses = torch.stack([torch.asin(p[:, 2] / distance), torch.atan2(p[:, 1], p[:, 0]) % (2 * math.pi)], -1)
    return poses.float(), distance.mean().item()


def read_srn_cars(root: str | Path, split: str = "train", image_size: int | None = None,
                  views: int | None = None, num_objects: int | None = None) -> SceneSet:
    """SRN ShapeNet cars of one split: the first `views` images (sorted by name; default all) of the first
    `num_objects` cars (sorted by folder name; default all), with poses converted by cameras_to_poses."""
    check_split("srn-cars", split, ("train", "val", "test"))
    folder = _srn_split(Path(root).expanduser(), split)
    cars = sorted(d for d in folder.iterdir() if (d / "rgb").is_dir())[:num_objects]
    files, matrices, objects, fovs = [], [], [], []
    for i, car in enumerate(cars):
        rgb = sorted(f for f in (car / "rgb").iterdir() if f.suffix.lower() == ".png")[:views]
        if not rgb:
            raise EbmkitError(f"no PNG images in {car / 'rgb'}: put the car's views there")
        files += rgb
        matrices += [_srn_pose(car / "pose" / f"{f.stem}.txt") for f in rgb]
        objects += [i] * len(rgb)
        fovs.append(_srn_intrinsics(car))
    if max(fovs) - min(fovs) > 1e-3:
        raise EbmkitError(f"SRN cars under {folder} have different fields of view ({min(fovs):.4g} to {max(fovs):.4g})")
    poses, radius = cameras_to_poses(torch.stack(matrices))
    return SceneSet("srn-cars", _read_pngs(files, image_size), torch.tensor(objects), poses,
                    fov_deg=fovs[0], radius=radius)


# The loaders of data/__init__.py's load_dataset: (root, split, image_size, views, num_objects) -> SceneSet.
LOADERS = {"carla": read_carla, "srn_cars": read_srn_cars}
EXPECTED = {"carla": CARLA_EXPECTED, "srn_cars": SRN_EXPECTED}
