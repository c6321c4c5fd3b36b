"""Cameras of NeRF-LEBM: on the sphere, looking at the object, with the field of view of the notes."""

import math

import torch

from ebmkit.nerf.camera import FOV_DEG, RADIUS, camera_position, canonical_pose, look_at, pose_rays


def poses(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    el = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * math.pi
    az = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    return el, az


def test_cameras_sit_on_the_sphere_and_rotations_are_proper():
    el, az = poses()
    pos = camera_position(el, az)
    assert torch.allclose(pos.norm(dim=-1), torch.full_like(el, RADIUS))
    rot = look_at(pos)
    eye = torch.eye(3, dtype=rot.dtype).expand_as(rot)
    assert torch.allclose(rot.transpose(1, 2) @ rot, eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(rot), torch.ones_like(el))
    assert (rot[:, 2, 1] >= -1e-12).all()  # the image's up has a non-negative world-z component


def test_centre_rays_hit_the_origin_and_corner_rays_span_the_field_of_view():
    el, az = poses(4)
    origin, d = pose_rays(el, az, size=2)
    centre = d.mean(dim=(1, 2))
    centre = centre / centre.norm(dim=-1, keepdim=True)
    assert torch.allclose(centre, -origin / RADIUS, atol=1e-12)
    # The four pixel centres of a 2x2 image sit at +-tan(fov/2)/2 along both image axes.
    half = math.tan(math.radians(FOV_DEG) / 2) / 2
    cos = (d * centre[:, None, None]).sum(-1)
    assert torch.allclose(cos, torch.full_like(cos, 1 / math.sqrt(1 + 2 * half**2)))


def test_image_orientation_top_row_looks_up_left_column_looks_left():
    el, az = torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)  # camera on +x, looking at -x
    _, d = pose_rays(el, az, size=4)
    assert d[0, 0, :, 2].mean() > 0 > d[0, -1, :, 2].mean()       # top row up (+z), bottom row down
    assert d[0, :, 0, 1].mean() < 0 < d[0, :, -1, 1].mean()       # from +x looking at -x, left is -y


def test_poles_have_a_well_defined_frame():
    el = torch.tensor([math.pi / 2, -math.pi / 2], dtype=torch.float64)
    rot = look_at(camera_position(el, torch.tensor([0.3, 1.0], dtype=torch.float64)))
    assert torch.isfinite(rot).all()
    assert torch.allclose(torch.linalg.det(rot), torch.ones(2, dtype=torch.float64))


def test_angles_past_the_pole_name_the_same_camera_and_canonical_pose_renames_them():
    el, az = poses(8)
    past = (math.pi - el, az + math.pi)             # beyond the pole: the camera of (el, az)
    for a, b in zip(pose_rays(el, az, size=3), pose_rays(*past, size=3)):
        assert torch.allclose(a, b, atol=1e-12)
    c_el, c_az = canonical_pose(*past)
    assert torch.allclose(c_el, el, atol=1e-12)
    assert torch.allclose(c_az, torch.remainder(az, 2 * math.pi), atol=1e-9)
    assert torch.allclose(torch.stack(canonical_pose(el, az)), torch.stack((el, torch.remainder(az, 2 * math.pi))), atol=1e-12)
