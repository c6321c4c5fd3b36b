"""The procedural 3-D scenes (determinism, layout, geometry, views, masks, sizes) and the readers of the
Carla and SRN ShapeNet-cars layouts on tiny fake folders."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ebmkit.data.scene_files import cameras_to_poses, read_carla, read_srn_cars
from ebmkit.data.scenes import (APPEARANCE_PARAMS, DISTINCT_ENDS_RANGES, ELEVATION_DEG, HEAD_LAMP, SHAPE_PARAMS,
                                SHAPE_RANGES, TAIL_LAMP, load_scenes, render)
from ebmkit.data import load_dataset
from ebmkit.data import scenes as scenes_module
from ebmkit.errors import EbmkitError
from ebmkit.metrics.fid import resolve_reference
from ebmkit.metrics.novel_view import novel_view_psnr
from ebmkit.nerf.camera import FOV_DEG, RADIUS, camera_position, look_at, pose_rays
from ebmkit.presets import load_preset
from ebmkit.presets.nerf_lebm import SceneData

OBJECTS, VIEWS = 12, 6


@pytest.fixture(scope="module")
def scenes():
    return load_scenes("test", 32, views=VIEWS, num_objects=OBJECTS)


def _foreground(x: torch.Tensor) -> torch.Tensor:
    """bool (N, H, W): pixels the object covers (the background is white, the object at most 230)."""
    return x.amin(1) < 245


def test_layout_dtypes_and_ranges(scenes):
    n = OBJECTS * VIEWS
    assert scenes.images.shape == (n, 3, 32, 32) and scenes.images.dtype == torch.uint8
    assert torch.equal(scenes.objects, torch.arange(OBJECTS).repeat_interleave(VIEWS)) and scenes.num_objects == OBJECTS
    assert scenes.poses.shape == (n, 2) and scenes.poses.dtype == torch.float32
    assert scenes.shape_params.shape == (OBJECTS, len(SHAPE_PARAMS))
    assert scenes.appearance_params.shape == (OBJECTS, len(APPEARANCE_PARAMS))
    assert scenes.masks is None and scenes.complete is None
    assert (scenes.fov_deg, scenes.radius) == (FOV_DEG, RADIUS)
    elevation, azimuth = scenes.poses.T
    low, high = (math.radians(a) for a in ELEVATION_DEG)
    assert elevation.min() >= low and elevation.max() <= high
    assert azimuth.min() >= 0 and azimuth.max() < 2 * math.pi
    low, high = torch.tensor(list(SHAPE_RANGES.values())).T
    assert (scenes.shape_params[:, :-1] >= low[:-1]).all() and (scenes.shape_params[:, :-1] <= high[:-1]).all()
    assert (scenes.appearance_params >= 0).all() and (scenes.appearance_params[:, :6] <= 0.9).all()
    corners = scenes.images[..., [0, 0, -1, -1], [0, -1, 0, -1]]
    assert corners.eq(255).all() and scenes.images.max() == 255 and scenes.images.min() < 60  # white background
    data = scenes.to_dataset()
    assert (data.name, data.kind, data.shape) == ("scenes", "images", (3, 32, 32))
    assert torch.equal(data.poses, scenes.poses) and torch.equal(data.objects, scenes.objects)
    hue = torch.tensor([[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.1, 1.0]])  # red, green, blue sextants
    assert (scenes_module._hue(hue) * 6).long().tolist() == [0, 2, 4]
    assert len(data.class_names) == 12 and data.labels.max() < 12
    assert all(len(set(data.labels[data.objects == o].tolist())) == 1 for o in range(4))  # one label per object
    assert data.x is scenes.images
    train = load_scenes(num_objects=3)
    assert len(train) == 3 and torch.equal(train.objects, torch.arange(3))  # train: one view per object


def test_deterministic_by_seed_with_consistent_prefixes(scenes):
    torch.manual_seed(123)  # the global RNG plays no part
    again = load_scenes("test", 32, views=VIEWS, num_objects=OBJECTS)
    for field in ("images", "objects", "poses", "shape_params", "appearance_params"):
        assert torch.equal(getattr(scenes, field), getattr(again, field))
    fewer = load_scenes("test", 32, views=2, num_objects=4)  # the first objects and their first views
    assert torch.equal(fewer.shape_params, scenes.shape_params[:4])
    assert torch.equal(fewer.images, scenes.images.view(OBJECTS, VIEWS, 3, 32, 32)[:4, :2].flatten(0, 1))


def test_train_and_test_objects_differ(scenes):
    train = load_scenes("train", 32, views=VIEWS, num_objects=OBJECTS)
    distance = torch.cdist(train.shape_params, scenes.shape_params)
    assert distance.min() > 0.05 and not torch.equal(train.images, scenes.images)


def test_objects_fit_in_the_ball_of_radius_2_1():
    """Pixels whose centre ray passes further than 2.1 + a pixel from the origin are pure background,
    for the smallest and largest shapes and random ones, from any pose."""
    low, high = torch.tensor(list(SHAPE_RANGES.values())).T
    shapes = torch.cat([low[None], high[None], load_scenes(num_objects=6).shape_params])
    appearance = load_scenes(num_objects=8).appearance_params
    g = torch.Generator().manual_seed(0)
    poses = torch.stack([(torch.rand(8, generator=g) - 0.5) * math.pi, torch.rand(8, generator=g) * 2 * math.pi], -1)
    x = render(shapes, appearance, poses, 32)
    distinct = load_scenes(num_objects=8, distinct_ends=True)
    x = torch.cat([x, render(distinct.shape_params, distinct.appearance_params, poses, 32, distinct_ends=True)])
    poses = poses.repeat(2, 1)
    origin, d = pose_rays(poses[:, 0], poses[:, 1], 32)
    miss = torch.linalg.cross(origin[:, None, None].expand_as(d), d, dim=-1).norm(dim=-1)  # ray to origin
    far = miss > 2.1 + 2 * RADIUS * math.tan(math.radians(FOV_DEG) / 2) / 32
    assert far.float().mean() > 0.3 and (x.permute(0, 2, 3, 1)[far] == 1).all()
    assert (x.permute(0, 2, 3, 1)[~far] < 1).any()


def test_objects_are_centred(scenes):
    fg = _foreground(scenes.images).float()                                    # (N, S, S)
    centre = torch.arange(32) + 0.5
    mass = fg.sum((1, 2))
    cy, cx = (fg.sum(2) * centre).sum(1) / mass, (fg.sum(1) * centre).sum(1) / mass
    offset = ((cy - 16) ** 2 + (cx - 16) ** 2).sqrt()                          # pixels
    assert (mass > 0.05 * 32**2).all()
    assert offset.max() < 2.5 and offset.mean() < 1.25  # resting on the ground instead: mean about 2


def test_views_differ_while_appearance_stays(scenes):
    x = scenes.images.float()
    per_object = x.view(OBJECTS, VIEWS, 3, 32, 32)
    assert (per_object[:, 0] - per_object[:, 1]).abs().mean((1, 2, 3)).min() > 3
    fg = _foreground(scenes.images).float()[:, None]
    mean = (x * fg).sum((2, 3)) / fg.sum((2, 3))                               # (N, 3) mean object colour
    chroma = (mean / mean.sum(1, keepdim=True)).view(OBJECTS, VIEWS, 3)
    centres = chroma.mean(1)
    within = (chroma - centres[:, None]).norm(dim=-1).mean()
    between = torch.pdist(centres).mean()
    assert within < between / 5


def test_masks_follow_the_observed_is_one_convention(scenes):
    masked = load_scenes("test", 32, views=VIEWS, num_objects=OBJECTS, masked=True)
    m = masked.masks
    assert m.shape == (len(scenes), 1, 32, 32) and m.dtype == torch.float32
    assert ((m == 0) | (m == 1)).all()
    coverage = m.mean((1, 2, 3))
    assert coverage.min() >= 0.74 and coverage.max() <= 0.95
    assert torch.equal(masked.complete, scenes.images) and torch.equal(masked.poses, scenes.poses)
    observed = m.bool().expand_as(scenes.images)
    assert torch.equal(masked.images[observed], scenes.images[observed])
    assert (masked.images[~observed].float() - scenes.images[~observed].float()).abs().mean() > 20  # noise
    for hole in ~m[:, 0].bool():  # one rectangle per image
        rows, cols = hole.any(1).nonzero()[:, 0], hole.any(0).nonzero()[:, 0]
        assert hole[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
    again = load_scenes("test", 32, views=VIEWS, num_objects=OBJECTS, masked=True)
    assert torch.equal(masked.images, again.images) and torch.equal(masked.masks, again.masks)


def test_sizes_show_the_same_scene(scenes):
    big = load_scenes("test", 64, views=2, num_objects=4)
    small = scenes.images.view(OBJECTS, VIEWS, 3, 32, 32)[:4, :2].flatten(0, 1)
    assert big.images.shape == (8, 3, 64, 64)
    assert torch.equal(big.poses, scenes.poses.view(OBJECTS, VIEWS, 2)[:4, :2].flatten(0, 1))
    assert (F.avg_pool2d(big.images.float(), 2) - small.float()).abs().mean() < 2.5


def _views(scenes, azimuth_deg: float, size: int = 64) -> torch.Tensor:
    """Each object of `scenes` rendered from one azimuth at elevation 25 degrees, float (N, 3, S, S)."""
    n = scenes.num_objects
    poses = torch.tensor([[math.radians(25), math.radians(azimuth_deg)]]).expand(n, 2)
    return render(scenes.shape_params, scenes.appearance_params, poses, size, scenes.distinct_ends)


def test_distinct_ends_give_lamps_and_a_front_unlike_the_back():
    """distinct_ends: shapes from DISTINCT_ENDS_RANGES (every car has a spoiler), head lamps seen from the
    front (azimuth 0: the camera on +x, where the car points), tail lamps from the back, and a view from
    the other end that differs from the view itself far more than for the plain cars."""
    plain, distinct = load_scenes("test", 32, num_objects=8), load_scenes("test", 32, num_objects=8, distinct_ends=True)
    assert distinct.distinct_ends and not plain.distinct_ends
    assert torch.equal(plain.appearance_params, distinct.appearance_params)
    for name, (low, high) in {**SHAPE_RANGES, **DISTINCT_ENDS_RANGES}.items():
        values = distinct.shape_params[:, SHAPE_PARAMS.index(name)]
        assert (values >= low).all() and (values <= high).all(), name

    def lamp_pixels(x, colour):  # pixels whose 2 x 2 rays all hit a lamp (lamps are unshaded)
        return ((x - torch.tensor(colour)[:, None, None]).abs().amax(1) < 1e-4).sum().item()

    front, back = _views(distinct, 0), _views(distinct, 180)
    assert lamp_pixels(front, HEAD_LAMP) > 8 * 10 and lamp_pixels(front, TAIL_LAMP) == 0
    assert lamp_pixels(back, TAIL_LAMP) > 8 * 10 and lamp_pixels(back, HEAD_LAMP) == 0
    assert lamp_pixels(_views(plain, 0), HEAD_LAMP) == lamp_pixels(_views(plain, 180), TAIL_LAMP) == 0

    def other_end(scenes):  # mean squared difference between azimuths a and a + 180, over a in 30..150
        return sum((_views(scenes, a, 32) - _views(scenes, a + 180, 32)).pow(2).mean() for a in (30, 90, 150)) / 3

    assert other_end(distinct) > 2 * other_end(plain)


def test_distinct_ends_reach_the_dataset_from_a_preset_and_only_for_scenes():
    from ebmkit.data import from_config

    cfg = SceneData(name="scenes", image_size=32, views=2, num_objects=3, distinct_ends=True)
    data = from_config(cfg)
    again = load_scenes("train", 32, views=2, num_objects=3, distinct_ends=True)
    assert torch.equal(data.x, again.images)
    with pytest.raises(ValueError, match="distinct_ends"):
        SceneData(name="carla", path="/tmp", distinct_ends=True)


def test_bad_arguments():
    with pytest.raises(EbmkitError, match="split"):
        load_scenes("valid")
    with pytest.raises(EbmkitError, match="32, 64, 128"):
        load_scenes(image_size=48)
    with pytest.raises(EbmkitError, match="at least one"):
        load_scenes(views=0)


# --- real layouts -----------------------------------------------------------------------------------


def _to_srn(poses: torch.Tensor, radius: float, axes=(1, 2, 0)) -> torch.Tensor:
    """(N, 2) camera.py poses -> SRN camera-to-world (N, 4, 4): OpenCV cameras in a world whose x, y, z
    are camera.py's axes `axes` (by default y, z, x: a y-up world)."""
    el, az = poses.double().T
    position = radius * torch.stack([el.cos() * az.cos(), el.cos() * az.sin(), el.sin()], -1)
    rotation = look_at(position) * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)  # right, down, forward
    c2w = torch.eye(4, dtype=torch.float64).repeat(len(poses), 1, 1)
    c2w[:, :3, :3], c2w[:, :3, 3] = rotation[:, list(axes)], position[:, list(axes)]
    return c2w


def _write_png(path, rgba: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba, "RGBA").save(path)


@pytest.fixture
def srn_root(tmp_path):
    """cars_train/ with 2 cars x 2 views of 16x16 RGBA images: a red square on a transparent background."""
    poses = torch.tensor([[0.3, 0.5], [0.6, 4.0], [0.2, 2.5], [1.0, 6.0]])
    c2w = _to_srn(poses, 1.3)
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[4:12, 4:12] = (255, 0, 0, 255)
    for i in range(4):
        car = tmp_path / "cars_train" / f"car{i // 2}"
        _write_png(car / "rgb" / f"{i % 2:06d}.png", rgba)
        (car / "pose").mkdir(exist_ok=True)
        (car / "pose" / f"{i % 2:06d}.txt").write_text(" ".join(f"{v:.8f}" for v in c2w[i].flatten().tolist()))
        (car / "intrinsics.txt").write_text("131.25 8. 8. 0.\n0. 0. 0.\n1.\n16 16\n")
    return tmp_path, poses


def test_srn_reader_on_a_tiny_layout(srn_root):
    root, poses = srn_root
    cars = read_srn_cars(root)
    assert cars.name == "srn-cars" and cars.images.shape == (4, 3, 16, 16) and cars.images.dtype == torch.uint8
    assert torch.equal(cars.objects, torch.tensor([0, 0, 1, 1]))
    assert torch.allclose(cars.poses, poses, atol=1e-5)
    assert cars.radius == pytest.approx(1.3) and cars.fov_deg == pytest.approx(2 * math.degrees(math.atan(8 / 131.25)))
    assert cars.images[0, :, 0, 0].tolist() == [255, 255, 255] and cars.images[0, :, 8, 8].tolist() == [255, 0, 0]
    small = read_srn_cars(root / "cars_train", image_size=8, views=1, num_objects=1)
    assert small.images.shape == (1, 3, 8, 8) and torch.allclose(small.poses, poses[:1], atol=1e-5)
    assert small.to_dataset().kind == "images"


def test_srn_errors_name_the_missing_file(srn_root, tmp_path):
    root, _ = srn_root
    with pytest.raises(EbmkitError, match="cars_train/"):
        read_srn_cars(tmp_path / "nowhere")
    with pytest.raises(EbmkitError, match="cars_test"):
        read_srn_cars(root, split="test")
    (root / "cars_train" / "car1" / "pose" / "000001.txt").unlink()
    with pytest.raises(EbmkitError, match=r"car1/pose/000001.txt is missing: each rgb/NAME.png needs pose/NAME.txt"):
        read_srn_cars(root)
    (root / "cars_train" / "car0" / "intrinsics.txt").unlink()
    with pytest.raises(EbmkitError, match=r"car0/intrinsics.txt is missing"):
        read_srn_cars(root)


def test_camera_poses_in_a_z_up_world_and_refusals():
    poses = torch.tensor([[0.3, 0.5], [0.6, 4.0]])
    converted, radius = cameras_to_poses(_to_srn(poses, 2.0, axes=(0, 1, 2)))
    assert torch.allclose(converted, poses, atol=1e-6) and radius == pytest.approx(2.0)
    c2w = _to_srn(poses, 1.3)
    roll = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)  # 90 degrees
    rolled = c2w.clone()
    rolled[:, :3, :3] = c2w[:, :3, :3] @ roll
    with pytest.raises(EbmkitError, match="roll"):
        cameras_to_poses(rolled)
    farther = c2w.clone()
    farther[1, :3, 3] *= 1.5
    with pytest.raises(EbmkitError, match="one sphere"):
        cameras_to_poses(farther)


def test_carla_reader(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[2:6, 2:6] = (0, 0, 255, 255)
    for name in ("b.png", "a.png", "c.png"):
        _write_png(tmp_path / "carla" / name, rgba)
    cars = read_carla(tmp_path, image_size=8)
    assert cars.name == "carla" and cars.images.shape == (3, 3, 8, 8) and cars.poses is None
    assert torch.equal(cars.objects, torch.arange(3)) and cars.images[0, :, -1, -1].tolist() == [255, 255, 255]
    assert len(read_carla(tmp_path / "carla", num_objects=2)) == 2
    with pytest.raises(EbmkitError, match=r"carla/\*.png from carla.zip"):
        read_carla(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EbmkitError, match="no PNG images"):
        read_carla(tmp_path / "empty")


def test_carla_reader_with_graf_extrinsics(tmp_path):
    """GRAF's layout (carla/*.png beside carla_poses/NAME_extrinsics.npy, 3x4 OpenGL camera-to-world)."""
    poses = torch.tensor([[0.2, 0.4], [0.9, 3.0], [0.5, 5.5]], dtype=torch.float64)
    position = camera_position(poses[:, 0], poses[:, 1], 10.0)
    rgba = np.zeros((16, 16, 4), np.uint8)
    (tmp_path / "carla_poses").mkdir()
    for i, (rot, t) in enumerate(zip(look_at(position), position)):
        _write_png(tmp_path / "carla" / f"{i:06d}.png", rgba)
        np.save(tmp_path / "carla_poses" / f"{i:06d}_extrinsics.npy", torch.cat([rot, t[:, None]], 1).numpy())
    cars = read_carla(tmp_path)
    assert torch.allclose(cars.poses.double(), poses, atol=1e-5) and cars.radius == pytest.approx(10.0)
    (tmp_path / "carla_poses" / "000001_extrinsics.npy").unlink()
    with pytest.raises(EbmkitError, match=r"000001_extrinsics.npy is missing"):
        read_carla(tmp_path)


def test_fid_reference_of_masked_real_data_is_the_complete_images(tmp_path):
    """Table 3.6 scores generation from incomplete data against complete images, not masked ones."""
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[2:6, 2:6] = (0, 0, 255, 255)
    for name in ("a.png", "b.png"):
        _write_png(tmp_path / "carla" / name, rgba)
    cfg = SceneData(name="carla", path=str(tmp_path), image_size=8, masked=True)
    assert torch.equal(resolve_reference(None, cfg).images(), read_carla(tmp_path, image_size=8).images)
    assert not torch.equal(load_dataset("carla", str(tmp_path), image_size=8, masked=True).x,
                           read_carla(tmp_path, image_size=8).images)


def test_novel_views_from_masked_views_are_scored_against_complete_images():
    """The given views reach inference masked, with their masks; every rendering is scored against the complete image."""
    scenes = load_scenes("test", 32, num_objects=2, masked=True)
    seen = {}

    class Echo:  # a stand-in model (trained with known poses) that renders the complete views
        device = "cpu"
        preset = load_preset("nerf-lebm-scenes")

        def infer_objects(self, images, poses, masks, **kw):
            seen["images"], seen["masks"] = images, masks
            return torch.zeros(len(images), 2, 1)

        def render_images(self, z, poses):
            return scenes.complete.view(len(z), -1, 3, 32, 32).float() / 255, None

    r = novel_view_psnr(Echo(), scenes.to_dataset(), shots=2, num_objects=2, complete=scenes.complete)
    assert torch.equal(seen["images"], scenes.images.view(2, -1, 3, 32, 32)[:, :2].float() / 255)
    assert torch.equal(seen["masks"], scenes.masks.view(2, -1, 1, 32, 32)[:, :2]) and (seen["masks"] == 0).any()
    assert math.isinf(r["psnr"]) and math.isinf(r["psnr_given_views"])
