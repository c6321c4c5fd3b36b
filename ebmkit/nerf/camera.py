"""Cameras of NeRF-LEBM (sec. 3.4.4, 3.5; implementation notes): a pinhole camera on a sphere of radius 10
around the object, looking at its centre, field of view 30 degrees, rays sampled between depths 7.5 and 12.5.

World frame: z points up. A pose is (elevation, azimuth) in radians: the camera sits at
radius * (cos(el) cos(az), cos(el) sin(az), sin(el)). The camera-to-world rotation has columns right, up
and back (the camera looks along -back), as in OpenGL and GRAF. Pixel (i, j) of an S x S image, row i from
the top and column j from the left, looks through the centre of its square on the image plane.
"""

import math

import torch

FOV_DEG = 30.0
RADIUS = 10.0
NEAR, FAR = 7.5, 12.5
WORLD_UP = (0.0, 0.0, 1.0)


def camera_position(elevation: torch.Tensor, azimuth: torch.Tensor, radius: float = RADIUS) -> torch.Tensor:
    """(B,), (B,) angles in radians -> (B, 3) camera centres on the sphere."""
    return radius * torch.stack([elevation.cos() * azimuth.cos(), elevation.cos() * azimuth.sin(), elevation.sin()], -1)


def canonical_pose(elevation: torch.Tensor, azimuth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same cameras with elevation in [-pi/2, pi/2] and azimuth in [0, 2 pi). Angles past a pole name a
    camera twice: (pi - el, az + pi) sits where (el, az) does and, looking at the origin with the world's z
    up, sees the same image. A model that infers angles (sec. 3.4.4) may use either name."""
    behind = elevation.cos() < 0
    return torch.asin(elevation.sin()), torch.remainder(azimuth + math.pi * behind, 2 * math.pi)


def look_at(position: torch.Tensor) -> torch.Tensor:
    """(B, 3) camera centres -> (B, 3, 3) camera-to-world rotations (columns right, up, back) looking at 0.
    Straight above or below the object (elevation +-90 degrees) the azimuth still fixes `right`."""
    back = position / position.norm(dim=-1, keepdim=True)
    up = torch.tensor(WORLD_UP, dtype=position.dtype, device=position.device).expand_as(back)
    right = torch.linalg.cross(up, back, dim=-1)
    degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
    if degenerate.any():  # at the poles: right is perpendicular to the azimuth direction in the xy-plane
        xy = torch.stack([-position[:, 1], position[:, 0], torch.zeros_like(position[:, 0])], -1)
        fallback = torch.tensor([0.0, 1.0, 0.0], dtype=position.dtype, device=position.device).expand_as(xy)
        xy = torch.where(xy.norm(dim=-1, keepdim=True) < 1e-6, fallback, xy)
        right = torch.where(degenerate, xy, right)
    right = right / right.norm(dim=-1, keepdim=True)
    cam_up = torch.linalg.cross(back, right, dim=-1)
    return torch.stack([right, cam_up, back], -1)


def pose_rays(elevation: torch.Tensor, azimuth: torch.Tensor, size: int, fov_deg: float = FOV_DEG,
              radius: float = RADIUS, unit: bool = True, centres: bool = True,
              up: str = "world") -> tuple[torch.Tensor, torch.Tensor]:
    """Rays of S x S images from poses (B,): origins (B, 3) and unit directions (B, S, S, 3); with unit=False
    the directions have one unit along the optical axis (the authors' get_rays; render quadrature "nerf");
    with centres=False the rays pass through the pixels' top-left corners (the authors' get_rays).
    up "orbit": the camera's up is d position / d elevation, so past a pole (cos el < 0) the camera is upside
    down where look_at keeps the world's z up (the authors' pose matrices, built by rotations of the angles)."""
    origin = camera_position(elevation, azimuth, radius)
    rot = look_at(origin)                                                             # (B, 3, 3)
    if up == "orbit":
        flip = torch.where(elevation.cos() < 0, -1.0, 1.0).to(rot.dtype)[:, None, None]
        rot = torch.cat([rot[..., :2] * flip, rot[..., 2:]], -1)                      # right, up turned half round
    half = math.tan(math.radians(fov_deg) / 2)
    offset = 0.5 if centres else 0.0
    t = (2 * (torch.arange(size, dtype=origin.dtype, device=origin.device) + offset) / size - 1) * half  # (S,)
    u, v = t[None, :].expand(size, size), -t[:, None].expand(size, size)             # right, up on the plane
    d_cam = torch.stack([u, v, -torch.ones_like(u)], -1)                              # (S, S, 3)
    d = torch.einsum("bij,hwj->bhwi", rot, d_cam)
    return origin, d / d.norm(dim=-1, keepdim=True) if unit else d
