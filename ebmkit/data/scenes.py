"""Scenes: procedural 3-D cars rendered from cameras on a sphere, the offline stand-in for the Carla and
ShapeNet-cars data sets of NeRF-LEBM (thesis sec. 3.5.1).

Objects. Each object is a car made of convex parts: a body (a box with its hood, trunk, lower and upper
side edges cut off by slanted planes), a cabin (a prism with a raked windshield, rear window and sloping
sides), an optional spoiler (a thin block on the trunk) and four wheels (cylinders along y with a light hub
on their outer faces). Its SHAPE latent (SHAPE_PARAMS, 19 numbers: lengths, heights, offsets and cuts, each
drawn uniformly from its range in SHAPE_RANGES) and its APPEARANCE latent (APPEARANCE_PARAMS, 9 numbers:
a base and a secondary RGB colour drawn uniformly in HSV, the half-width of a racing stripe over the hood,
roof and trunk, the height of a two-tone lower band, and how much the base colour tints the windows) are
drawn independently, like z_s and z_a of the thesis. The car points along +x with z up, and is shifted down
by half its height so that its bounding box is centred on the origin; every part lies inside the ball of
radius 2.1 (the camera sees about +-2.7 at the origin).

Rendering. Rays come from `ebmkit.nerf.camera.pose_rays` (radius 10, field of view 30 degrees) and meet
the parts analytically: a convex part is entered at the largest entering distance over its planes (or its
cylinder and the wheel's two faces) and left at the smallest leaving one; the nearest part wins. Shading is
Lambertian under one light fixed in the world (from LIGHT) plus ambient AMBIENT, so a scene is a static
radiance field: the lit side changes with the azimuth, the colours do not. Background is white, as in the
renderings of Carla and ShapeNet cars and NeRF compositing on white. Each pixel is the mean of
SUPERSAMPLE x SUPERSAMPLE rays (anti-aliasing); object pixels never exceed 230 in any channel (the lamps
of distinct ends do, but never in all three).

Distinct ends (`distinct_ends=True`, for learning without poses). The plain cars look nearly alike from
either end (a view and the view from the other end differ by less than views 10 degrees apart:
docs/diagnostics/scenes_ends.py), so no model can read a view's end from them. These cars take the shape ranges
of DISTINCT_ENDS_RANGES (a long hood, a short trunk, the cabin set back, a spoiler on every car) and
glowing lamps: HEAD_LAMP on the body's forward faces, TAIL_LAMP on the backward ones, each wrapping
LAMP_WRAP round the sides. The other end then differs about 2.7 times as much.

Cameras. Elevation uniform in ELEVATION_DEG = [10, 40] degrees, azimuth uniform in [0, 2 pi), as
(elevation, azimuth) in radians under camera.py's convention, returned with every image.

Splits. Train and test hold different objects (their own seeds): train 2000 objects x 1 view (Carla
style), test 100 objects x 8 views (held-out objects for novel view synthesis); `views` and `num_objects`
change either, e.g. 200 x 10 for a ShapeNet-style train set. Every object, its views and its masks come
from their own seeded generators, so a set is identical on every call, `num_objects=k` gives the first k
objects of the larger set, and 32, 64 and 128 pixels show the same scenes.

Incomplete images (sec. 3.5.7). `masked=True` removes one random rectangle per image (each side 25-50%
of the image, centred in the middle 40%) and fills it with Gaussian noise, as in the thesis; `masks` holds
M = 1 on observed pixels and `complete` the images before masking, to score recovery.

The real data sets these stand in for are read by scene_files.py.
"""

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ebmkit.data import Dataset, check_split
from ebmkit.errors import EbmkitError
from ebmkit.nerf.camera import FOV_DEG, RADIUS, pose_rays

# Shape latent: name -> (low, high) of its uniform distribution. Lengths in world units, the rest relative.
SHAPE_RANGES = {
    "length": (1.3, 1.75),          # body half-length along x
    "width": (0.6, 0.85),           # body half-width along y
    "height": (0.3, 0.55),          # body height
    "wheel_radius": (0.24, 0.36),
    "clearance": (0.5, 0.8),        # body bottom above the ground / wheel radius
    "wheel_inset": (0.1, 0.3),      # gap between a wheel and the body's end
    "wheel_width": (0.09, 0.15),    # wheel half-width
    "hood_length": (0.1, 0.35),     # cut of the top front edge: along x / length,
    "hood_drop": (0.2, 0.7),        #   and along z / height
    "trunk_length": (0.05, 0.3),    # the same at the top back edge
    "trunk_drop": (0.1, 0.6),
    "roundness": (0.04, 0.15),      # cut of the top side edges
    "cabin_length": (0.3, 0.5),     # cabin half-length / length
    "cabin_offset": (-0.2, 0.1),    # cabin centre along x / length
    "cabin_width": (0.75, 0.92),    # cabin half-width / width
    "cabin_height": (0.25, 0.45),
    "windshield": (0.25, 0.6),      # how far the roof's front edge sits back / cabin half-length
    "rear_window": (0.1, 0.6),      # the same at the back
    "spoiler": (-0.2, 0.22),        # spoiler height above the trunk, clamped at 0 (about half have none)
}
SHAPE_PARAMS = list(SHAPE_RANGES)
# Cars with ends a view can tell apart (`distinct_ends`): a long hood and a short trunk, the cabin set back with
# a raked windshield and an upright rear window, a spoiler on every car; these ranges replace SHAPE_RANGES'.
# Lamps: yellow on the body's forward faces, dark red on its backward ones, wrapping LAMP_WRAP round the sides.
DISTINCT_ENDS_RANGES = {
    "hood_length": (0.3, 0.45), "hood_drop": (0.25, 0.45),
    "trunk_length": (0.02, 0.1), "trunk_drop": (0.05, 0.2),
    "cabin_offset": (-0.3, -0.15), "windshield": (0.5, 0.8), "rear_window": (0.05, 0.2),
    "spoiler": (0.08, 0.22),
}
HEAD_LAMP, TAIL_LAMP, LAMP_WRAP = (1.0, 0.8, 0.1), (0.6, 0.04, 0.04), 0.3  # unshaded (lamps glow under any light)
# Appearance latent: base colour, secondary colour (stripe, lower band, spoiler), stripe half-width
# (clamped at 0: about a third have none), lower band height / body height, window tint by the base colour.
APPEARANCE_PARAMS = ["base_r", "base_g", "base_b", "second_r", "second_g", "second_b", "stripe", "band", "tint"]
HSV_RANGES = ((0.0, 1.0), (0.25, 0.9), (0.45, 0.9))  # hue, saturation, value of both colours
STRIPE_RANGE, BAND_RANGE, TINT_RANGE = (-0.15, 0.3), (0.0, 0.6), (0.0, 0.5)

HUES = ("red", "yellow", "green", "cyan", "blue", "magenta")  # sextants of the base colour's hue (labels)
ELEVATION_DEG = (10.0, 40.0)
LIGHT = (0.35, 0.5, 1.0)  # direction towards the light, world frame
AMBIENT = 0.4
GLASS, TYRE, HUB = (0.1, 0.12, 0.15), (0.08, 0.08, 0.08), (0.55, 0.55, 0.55)
SUPERSAMPLE = 2
IMAGE_SIZES = (32, 64, 128)
SPLITS = {"train": (2000, 1, 1), "test": (100, 8, 2)}  # split -> (objects, views per object, seed)
MASK_SIDE = (0.25, 0.5)  # side of the removed rectangle / image side
CHUNK_RAYS = 2**16  # rays traced at once, to bound memory


@dataclass
class SceneSet:
    """Images of objects with their cameras; the procedural set also knows each object's latents."""

    name: str
    images: torch.Tensor                           # uint8 (N, 3, S, S), what is observed
    objects: torch.Tensor                          # int64 (N,), the object each image shows
    poses: torch.Tensor | None                     # float32 (N, 2) (elevation, azimuth) radians; None if unknown
    masks: torch.Tensor | None = None              # float32 (N, 1, S, S), M = 1 on observed pixels
    complete: torch.Tensor | None = None           # uint8 (N, 3, S, S), the images before masking
    shape_params: torch.Tensor | None = None       # float32 (num_objects, len(SHAPE_PARAMS))
    appearance_params: torch.Tensor | None = None  # float32 (num_objects, len(APPEARANCE_PARAMS))
    fov_deg: float = FOV_DEG                       # the cameras' field of view
    radius: float = RADIUS                         # the cameras' distance to the origin
    distinct_ends: bool = False                    # procedural cars rendered with distinct ends (load_scenes)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_objects(self) -> int:
        return int(self.objects.max()) + 1 if len(self.objects) else 0

    def to_dataset(self) -> Dataset:
        """The images as an ebmkit Dataset (kind "images") with their poses, objects and masks. Procedural
        sets are labelled by HUES x (spoiler or not) of their object, so that a domain classifier (and its
        domain-FID) can be trained on them."""
        labels = names = None
        if self.shape_params is not None:
            hue = _hue(self.appearance_params[:, :3])                                     # (objects,) in [0, 1)
            spoiler = self.shape_params[:, SHAPE_PARAMS.index("spoiler")] > 0
            labels = ((hue * len(HUES)).long().clamp(max=len(HUES) - 1) * 2 + spoiler.long())[self.objects]
            names = [f"{h}{' spoiler' if sp else ''}" for h in HUES for sp in (False, True)]
        return Dataset(self.name, "images", self.images, labels, class_names=names, poses=self.poses,
                       objects=self.objects, masks=self.masks)

    def with_masks(self, seed: int) -> "SceneSet":
        """Each image with one random rectangle replaced by Gaussian noise (sec. 3.5.7); image i's
        rectangle and noise come from a generator seeded by (seed, i)."""
        images, masks = self.images.clone(), torch.ones(len(self.images), 1, *self.images.shape[-2:])
        for i in range(len(images)):
            g = torch.Generator().manual_seed(seed * 10**8 + i)
            top, left, h, w = _rectangle(images.shape[-1], g)
            noise = 127.5 + 64 * torch.randn(3, h, w, generator=g)
            images[i, :, top:top + h, left:left + w] = noise.round().clamp(0, 255).to(torch.uint8)
            masks[i, :, top:top + h, left:left + w] = 0
        return replace(self, images=images, masks=masks, complete=self.images)


def _hue(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3) colours in [0, 1] -> (N,) hue in [0, 1)."""
    mx, arg = rgb.max(1)
    delta = (mx - rgb.min(1).values).clamp(min=1e-8)
    r, g, b = rgb.unbind(1)
    h = torch.stack([((g - b) / delta) % 6, (b - r) / delta + 2, (r - g) / delta + 4], 1).gather(1, arg[:, None])[:, 0]
    return (h / 6) % 1.0


def _rectangle(size: int, g: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) in pixels of a rectangle inside a size x size image."""
    low, high = MASK_SIDE
    h, w = ((low + (high - low) * torch.rand(2, generator=g)) * size).round().int().tolist()
    cy, cx = ((0.3 + 0.4 * torch.rand(2, generator=g)) * size).tolist()
    top = min(max(round(cy - h / 2), 0), size - h)
    left = min(max(round(cx - w / 2), 0), size - w)
    return top, left, h, w


# --- latents and poses ------------------------------------------------------------------------------


def _uniform(ranges, g: torch.Generator) -> torch.Tensor:
    """(len(ranges),) values, each uniform in its (low, high)."""
    low, high = torch.tensor(ranges, dtype=torch.float32).T
    return low + (high - low) * torch.rand(len(low), generator=g)


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """(..., 3) hue, saturation, value in [0, 1] -> (..., 3) RGB."""
    h, s, v = hsv.unbind(-1)
    k = (torch.tensor([5.0, 3.0, 1.0]) + 6 * h[..., None]) % 6
    return v[..., None] * (1 - s[..., None] * (torch.minimum(k, 4 - k).clamp(0, 1)))


def sample_shape(g: torch.Generator, distinct_ends: bool = False) -> torch.Tensor:
    """(len(SHAPE_PARAMS),) one object's shape latent; with distinct_ends, DISTINCT_ENDS_RANGES override."""
    ranges = {**SHAPE_RANGES, **DISTINCT_ENDS_RANGES} if distinct_ends else SHAPE_RANGES
    shape = _uniform(list(ranges.values()), g)
    shape[-1] = shape[-1].clamp(min=0)  # spoiler
    return shape


def sample_appearance(g: torch.Generator) -> torch.Tensor:
    """(len(APPEARANCE_PARAMS),) one object's appearance latent."""
    colours = _hsv_to_rgb(torch.stack([_uniform(HSV_RANGES, g), _uniform(HSV_RANGES, g)]))  # (2, 3)
    stripe, band, tint = _uniform([STRIPE_RANGE, BAND_RANGE, TINT_RANGE], g)
    return torch.cat([colours.flatten(), stripe.clamp(min=0)[None], band[None], tint[None]])


def sample_poses(n: int, g: torch.Generator) -> torch.Tensor:
    """(n, 2) (elevation, azimuth) in radians, elevation uniform in ELEVATION_DEG, azimuth in [0, 2 pi)."""
    low, high = (math.radians(a) for a in ELEVATION_DEG)
    u = torch.stack([torch.rand(2, generator=g) for _ in range(n)]) if n else torch.zeros(0, 2)
    return torch.stack([low + (high - low) * u[:, 0], 2 * math.pi * u[:, 1]], -1)


def _object_generator(seed: int, index: int, stream: int) -> torch.Generator:
    """The generator of one object's latents (stream 0) or views (stream 1)."""
    return torch.Generator().manual_seed((seed * 10**8 + index) * 2 + stream)


# --- geometry ---------------------------------------------------------------------------------------

X, Y, Z = torch.eye(3).unbind()
NO_PLANE = torch.tensor([0.0, 0.0, 0.0, 1.0])  # 0 . x <= 1 holds everywhere: pads a part's plane list


def _face(axis: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """(B, 4) half-spaces axis . x <= offset (B,)."""
    return torch.cat([axis.expand(len(offset), 3), offset[:, None]], 1)


def _cut(u: torch.Tensor, v: torch.Tensor, qu, qv, a, b) -> torch.Tensor:
    """(B, 4) half-spaces cutting the edge where the faces u . x <= qu and v . x <= qv meet (u, v unit and
    orthogonal): the cut runs from a before the edge along u to b before it along v."""
    n = b[:, None] * u + a[:, None] * v                                     # (B, 3) outward normals
    norm = (a**2 + b**2).sqrt()
    return torch.cat([n / norm[:, None], ((b * qu + a * qv - a * b) / norm)[:, None]], 1)


def _parts(shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shape latents (B, P) -> convex parts in the ground frame (z = 0 on the ground): body, cabin and
    spoiler as half-spaces (B, 3, 12, 4), wheels as (B, 4, 5) (centre x, centre z, radius, y from, y to),
    and the height (B,) of the car's top."""
    p = dict(zip(SHAPE_PARAMS, shape.unbind(1)))
    length, width, height, r = p["length"], p["width"], p["height"], p["wheel_radius"]
    bottom = p["clearance"] * r
    top = bottom + height
    body = [
        _face(Z, top), _face(-Z, -bottom), _face(X, length), _face(-X, length), _face(Y, width), _face(-Y, width),
        _cut(X, Z, length, top, p["hood_length"] * length, p["hood_drop"] * height),
        _cut(-X, Z, length, top, p["trunk_length"] * length, p["trunk_drop"] * height),
        _cut(X, -Z, length, -bottom, 0.15 * length, 0.4 * height),
        _cut(-X, -Z, length, -bottom, 0.15 * length, 0.4 * height),
        _cut(Y, Z, width, top, p["roundness"], p["roundness"]),
        _cut(-Y, Z, width, top, p["roundness"], p["roundness"]),
    ]
    # The cabin reaches down into the body (to 30% of its height) so no cut of the body uncovers its base.
    cx, cl = p["cabin_offset"] * length, p["cabin_length"] * length
    cw, ch = p["cabin_width"] * width, p["cabin_height"]
    roof, floor = top + ch, bottom + 0.3 * height
    cabin = [
        _face(-Z, -floor), _face(Z, roof),  # the roof is plane 1 (painted; the other planes are windows)
        _face(X, cx + cl), _face(-X, cl - cx), _face(Y, cw), _face(-Y, cw),
        _cut(X, Z, cx + cl, roof, p["windshield"] * cl, ch), _cut(-X, Z, cl - cx, roof, p["rear_window"] * cl, ch),
        _cut(Y, Z, cw, roof, 0.12 * cw, ch), _cut(-Y, Z, cw, roof, 0.12 * cw, ch),
    ]
    # A spoiler of height 0 is empty: its floor lies above its top.
    has = p["spoiler"] > 0
    spoiler = [
        _face(Z, top + p["spoiler"]), _face(-Z, -torch.where(has, floor, top + 1)),
        _face(X, 0.17 - length), _face(-X, length - 0.03), _face(Y, 0.9 * width), _face(-Y, 0.9 * width),
    ]
    pad = NO_PLANE.expand(len(shape), 4)
    planes = torch.stack([torch.stack(part + [pad] * (12 - len(part)), 1) for part in (body, cabin, spoiler)], 1)
    x = length - r - p["wheel_inset"]
    outer = width + 0.03
    inner = outer - 2 * p["wheel_width"]
    wheels = []
    for sign in (1, -1):  # front and back; each has a left (y > 0) and a right wheel
        wheels += [torch.stack([sign * x, r, r, inner, outer], 1), torch.stack([sign * x, r, r, -outer, -inner], 1)]
    return planes, torch.stack(wheels, 1), torch.maximum(roof, top + p["spoiler"])


def _hit_polytopes(o: torch.Tensor, d: torch.Tensor, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays o (B, 3) + t d (B, R, 3) against convex parts planes (B, M, K, 4): entry distance (B, R, M),
    inf where missed, and the index (B, R, M) of the entry plane."""
    n, offset = planes[..., :3], planes[..., 3]
    room = offset - torch.einsum("bmkc,bc->bmk", n, o)                     # (B, M, K): >= 0 when o is inside
    speed = torch.einsum("brc,bmkc->brmk", d, n)                           # (B, R, M, K)
    t = room[:, None] / speed
    enter, plane = torch.where(speed < 0, t, -torch.inf).max(-1)           # (B, R, M)
    leave = torch.where(speed > 0, t, torch.inf).amin(-1)
    blocked = ((speed == 0) & (room[:, None] < 0)).any(-1)                 # parallel to a plane, outside it
    return torch.where((enter < leave) & (leave > 0) & ~blocked, enter, torch.inf), plane


def _hit_wheels(o: torch.Tensor, d: torch.Tensor, wheels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays o (B, 3) + t d (B, R, 3) against wheels (B, W, 5): entry distance (B, R, W), inf where missed,
    and whether the ray enters through a flat face (B, R, W)."""
    cx, cz, r, y0, y1 = (w[:, None] for w in wheels.unbind(-1))             # each (B, 1, W)
    ox, oy, oz = (c[:, None, None] for c in o.unbind(-1))                  # each (B, 1, 1)
    dx, dy, dz = (c[..., None] for c in d.unbind(-1))                      # each (B, R, 1)
    a = (dx**2 + dz**2).clamp(min=1e-12)
    b = (ox - cx) * dx + (oz - cz) * dz
    c = (ox - cx) ** 2 + (oz - cz) ** 2 - r**2
    disc = b**2 - a * c
    root = disc.clamp(min=0).sqrt()
    t0, t1 = (-b - root) / a, (-b + root) / a                              # the infinite cylinder
    dy = torch.where(dy.abs() < 1e-12, 1e-12, dy)
    s0, s1 = torch.minimum((y0 - oy) / dy, (y1 - oy) / dy), torch.maximum((y0 - oy) / dy, (y1 - oy) / dy)
    enter, leave = torch.maximum(t0, s0), torch.minimum(t1, s1)
    return torch.where((disc > 0) & (enter < leave) & (leave > 0), enter, torch.inf), s0 > t0


def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, M, C) indexed by index (B, R) -> (B, R, C)."""
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))


def _intersect(o: torch.Tensor, d: torch.Tensor, planes: torch.Tensor, wheels: torch.Tensor):
    """Rays o (B, 3) + t d (B, R, 3) against the parts of _parts -> distance t (B, R) (inf: background),
    hit points (B, R, 3), part (B, R) (0 body, 1 cabin, 2 spoiler, 3-6 wheels), entry plane of a polytope
    part (B, R), unit normal (B, R, 3) and whether the ray hits a wheel's hub (B, R)."""
    t_part, plane = _hit_polytopes(o, d, planes)                           # (B, R, 3)
    t_wheel, flat = _hit_wheels(o, d, wheels)                              # (B, R, 4)
    t, part = torch.cat([t_part, t_wheel], -1).min(-1)                     # (B, R)
    polytope, wheel = part.clamp(max=2), (part - 3).clamp(min=0)
    face = plane.gather(-1, polytope[..., None])[..., 0]                   # (B, R)
    n_plane = _gather(planes.flatten(1, 2), polytope * planes.shape[2] + face)[..., :3]
    p = o[:, None] + t[..., None].clamp(max=1e3) * d                       # (B, R, 3) hit points
    cx, cz, r = _gather(wheels, wheel)[..., :3].unbind(-1)                 # each (B, R)
    radial = torch.stack([p[..., 0] - cx, torch.zeros_like(t), p[..., 2] - cz], -1) / r[..., None]
    on_face = flat.gather(-1, wheel[..., None])                            # (B, R, 1)
    n_wheel = torch.where(on_face, -torch.sign(d[..., 1:2]) * Y, radial)
    normal = torch.where((part >= 3)[..., None], n_wheel, n_plane)
    hub = on_face[..., 0] & ((radial**2).sum(-1) < 0.55**2)
    return t, p, part, face, normal, hub


def _colour(shape: torch.Tensor, appearance: torch.Tensor, p: torch.Tensor, part: torch.Tensor, face: torch.Tensor,
            normal: torch.Tensor, hub: torch.Tensor) -> torch.Tensor:
    """Unshaded colours (B, R, 3) of hit points p (B, R, 3) in the ground frame, from _intersect's answers.
    Body: base colour, secondary on the lower band and on the stripe (|y| < stripe, off the sides); cabin:
    painted roof (with the stripe), windows of glass tinted by the base colour; spoiler: secondary."""
    s = dict(zip(SHAPE_PARAMS, shape[:, None].unbind(-1)))                 # each (B, 1)
    a = dict(zip(APPEARANCE_PARAMS, appearance[:, None].unbind(-1)))
    base, second = appearance[:, None, :3], appearance[:, None, 3:6]       # (B, 1, 3)
    in_band = p[..., 2] < s["clearance"] * s["wheel_radius"] + a["band"] * s["height"]
    in_stripe = (p[..., 1].abs() < a["stripe"]) & (normal[..., 1].abs() < 0.5)
    paint = torch.where((in_band | in_stripe)[..., None], second, base)
    roof = torch.where(in_stripe[..., None], second, base)
    glass = torch.tensor(GLASS) + a["tint"][..., None] * (base - torch.tensor(GLASS))
    cabin = torch.where((face == 1)[..., None], roof, glass)
    tyre = torch.where(hub[..., None], torch.tensor(HUB), torch.tensor(TYRE))
    part = part[..., None]
    return torch.where(part == 0, paint, torch.where(part == 1, cabin, torch.where(part == 2, second, tyre)))


def _trace(shape: torch.Tensor, appearance: torch.Tensor, o: torch.Tensor, d: torch.Tensor,
           distinct_ends: bool = False) -> torch.Tensor:
    """Colours (B, R, 3) in [0, 1] of rays o (B, 3) + t d (B, R, 3) through objects (B, P), (B, Q):
    Lambertian under LIGHT plus AMBIENT, white where a ray misses. With distinct_ends, the body's faces
    turned forward (normal x > 0.5: the nose) show HEAD_LAMP and those turned back TAIL_LAMP, unshaded."""
    planes, wheels, height = _parts(shape)
    o = o + height[:, None] / 2 * Z                                        # world -> ground frame
    t, p, part, face, normal, hub = _intersect(o, d, planes, wheels)
    light = torch.tensor(LIGHT) / torch.tensor(LIGHT).norm()
    shade = AMBIENT + (1 - AMBIENT) * (normal @ light).clamp(min=0)[..., None]
    colour = _colour(shape, appearance, p, part, face, normal, hub) * shade
    if distinct_ends:
        length = shape[:, None, SHAPE_PARAMS.index("length")]                               # (B, 1)
        corner = (p[..., 0].abs() > length - LAMP_WRAP) & (normal[..., 2].abs() < 0.5)     # lamps wrap round
        nose = ((part == 0) & ((normal[..., 0] > 0.5) | (corner & (p[..., 0] > 0))))[..., None]
        tail = ((part == 0) & ((normal[..., 0] < -0.5) | (corner & (p[..., 0] < 0))))[..., None]
        colour = torch.where(nose, torch.tensor(HEAD_LAMP), torch.where(tail, torch.tensor(TAIL_LAMP), colour))
    return torch.where(torch.isfinite(t)[..., None], colour, 1.0)


# --- rendering and the procedural set ---------------------------------------------------------------


def render(shape: torch.Tensor, appearance: torch.Tensor, poses: torch.Tensor, size: int,
           distinct_ends: bool = False) -> torch.Tensor:
    """Images float32 (N, 3, size, size) in [0, 1] of objects with latents (N, P), (N, Q) seen from poses
    (N, 2) (elevation, azimuth), each pixel the mean of SUPERSAMPLE x SUPERSAMPLE rays; distinct_ends
    lights the lamps (see _trace)."""
    fine = size * SUPERSAMPLE
    per_chunk = max(1, CHUNK_RAYS // fine**2)
    out = []
    shape, appearance, poses = shape.float(), appearance.float(), poses.float()
    for s, a, pose in zip(shape.split(per_chunk), appearance.split(per_chunk), poses.split(per_chunk)):
        o, d = pose_rays(pose[:, 0], pose[:, 1], fine)                     # (B, 3), (B, fine, fine, 3)
        rgb = _trace(s, a, o, d.flatten(1, 2), distinct_ends)              # (B, fine * fine, 3)
        out.append(F.avg_pool2d(rgb.unflatten(1, (fine, fine)).permute(0, 3, 1, 2), SUPERSAMPLE))
    return torch.cat(out) if out else torch.zeros(0, 3, size, size)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [0, 1] -> uint8 [0, 255]."""
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


def load_scenes(split: str = "train", image_size: int = 32, views: int | None = None,
                num_objects: int | None = None, masked: bool = False, distinct_ends: bool = False) -> SceneSet:
    """The procedural scenes of one split: `num_objects` objects (default: train 2000, test 100) with
    `views` images each (default: train 1, test 8), images uint8 (N, 3, S, S) grouped by object;
    distinct_ends gives the cars a front and back a view can tell apart (DISTINCT_ENDS_RANGES, lamps)."""
    check_split("scenes", split, tuple(SPLITS))
    if image_size not in IMAGE_SIZES:
        raise EbmkitError(f"scenes are rendered at {', '.join(map(str, IMAGE_SIZES))} pixels, not {image_size}")
    default_objects, default_views, seed = SPLITS[split]
    n = default_objects if num_objects is None else num_objects
    v = default_views if views is None else views
    if n < 1 or v < 1:
        raise EbmkitError(f"scenes need at least one object and one view, got {n} objects and {v} views")
    latents = [_object_generator(seed, i, 0) for i in range(n)]
    shape = torch.stack([sample_shape(g, distinct_ends) for g in latents])  # (n, P)
    appearance = torch.stack([sample_appearance(g) for g in latents])     # (n, Q)
    poses = torch.cat([sample_poses(v, _object_generator(seed, i, 1)) for i in range(n)])  # (n * v, 2)
    objects = torch.arange(n).repeat_interleave(v)                        # (n * v,)
    images = to_uint8(render(shape[objects], appearance[objects], poses, image_size, distinct_ends))
    scenes = SceneSet("scenes", images, objects, poses, shape_params=shape, appearance_params=appearance,
                      distinct_ends=distinct_ends)
    return scenes.with_masks(seed) if masked else scenes
