"""Volume rendering (Eq. 3.1) against closed forms: a homogeneous sphere, a Gaussian blob, an opaque sphere."""

import math

import pytest
import torch
from scipy.integrate import quad
from scipy.special import erf

from ebmkit.nerf.camera import FAR, NEAR, pose_rays
from ebmkit.nerf.render import composite, ray_subset, render_rays, sample_depths

N = 2048                  # samples per ray: bin width h = (FAR - NEAR) / N ~ 2.4e-3
H = (FAR - NEAR) / N
RADIUS, SIGMA0 = 1.5, 0.8


def camera_rays(size=16):
    """Rays of one float64 S x S image seen from (elevation 0.3, azimuth 1.0): origins (1, S*S, 3),
    unit directions (1, S*S, 3)."""
    el, az = torch.tensor([0.3], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)
    origin, d = pose_rays(el, az, size)
    return origin[:, None], d.reshape(1, size * size, 3)


def closest_approach(o, d):
    """Depth t_c of the point of each ray closest to the origin, and its distance to the origin: (...), (...)."""
    t_c = -(o * d).sum(-1)
    return t_c, (o + t_c[..., None] * d).norm(dim=-1)


def sphere_field(sigma0, colour):
    def field(points, dirs):
        inside = (points.norm(dim=-1) < RADIUS).to(points.dtype)
        return sigma0 * inside, colour.expand(*points.shape[:-1], 3)
    return field


def test_homogeneous_sphere_matches_the_closed_form():
    """Opacity of a ray through a sphere of constant density sigma0 is 1 - exp(-sigma0 L), L its chord.
    With bin centres, sample i stands for [t_i, t_i + h): the samples inside the sphere cover an interval
    of length L +- h, so the optical depth is off by at most sigma0 h and the opacity (1-Lipschitz in the
    optical depth) too; the colour c opacity + bg (1 - opacity) by |c - bg| sigma0 h."""
    o, d = camera_rays()
    colour = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    out = render_rays(sphere_field(SIGMA0, colour), o, d, N, background=1.0)
    _, dist = closest_approach(o, d)
    chord = 2 * (RADIUS**2 - dist**2).clamp(min=0).sqrt()                                  # (1, R)
    opacity = 1 - torch.exp(-SIGMA0 * chord)
    assert 0.2 < (chord > 0).double().mean() < 0.9                                        # hits and misses
    assert (out.opacity - opacity).abs().max() <= SIGMA0 * H
    expected = colour * opacity[..., None] + (1 - opacity[..., None])
    assert (out.rgb - expected).abs().max() <= (colour - 1).abs().max() * SIGMA0 * H


def blob_optical_depth(t_c, dist, s, sigma0, t):
    """Closed-form integral of sigma0 exp(-|x|^2 / (2 s^2)) along a ray from NEAR to depth t (floats)."""
    scale = sigma0 * math.exp(-dist**2 / (2 * s**2)) * s * math.sqrt(math.pi / 2)
    return scale * (erf((t - t_c) / (s * math.sqrt(2))) - erf((NEAR - t_c) / (s * math.sqrt(2))))


def test_gaussian_blob_opacity_and_expected_depth_match_the_closed_form():
    """A smooth density that vanishes (below 1e-8) at NEAR and FAR: the bin-centre sum of sigma delta is the
    midpoint rule, exact to ~1e-10 here, so the opacity must agree to 1e-9. The expected depth with the
    background at FAR equals NEAR + int_NEAR^FAR T(t) dt (integration by parts), computed by quad; summed
    by parts, the discrete depth is the trapezoid rule for that integral, whose error is at most
    (FAR - NEAR) h^2 / 12 max|T''| < 5 * 5e-7 * 14 ~ 3.5e-5 (|T''| = |sigma^2 - sigma'| T < 9 + 4.6): 1e-4."""
    s, sigma0 = 0.4, 3.0
    o, d = camera_rays(8)

    def field(points, dirs):
        return sigma0 * torch.exp(-(points**2).sum(-1) / (2 * s**2)), torch.ones_like(points)

    out = render_rays(field, o, d, N)
    t_c, dist = (x.flatten().tolist() for x in closest_approach(o, d))
    for r in range(len(t_c)):
        tau = blob_optical_depth(t_c[r], dist[r], s, sigma0, FAR)
        assert abs(out.opacity[0, r].item() - (1 - math.exp(-tau))) < 1e-9
        free_path = quad(lambda t: math.exp(-blob_optical_depth(t_c[r], dist[r], s, sigma0, t)), NEAR, FAR,
                         points=[t_c[r]], epsabs=1e-12)[0]
        assert abs(out.depth[0, r].item() - (NEAR + free_path)) < 1e-4


def test_opaque_sphere_depth_is_the_distance_to_its_surface():
    """With sigma h = 50 the first sample inside absorbs all but e^-50 of the light: the depth is that
    sample's, within h of the entry point t_c - sqrt(r^2 - dist^2); rays that miss see FAR."""
    o, d = camera_rays()
    out = render_rays(sphere_field(50 / H, torch.ones(3, dtype=torch.float64)), o, d, N)
    t_c, dist = closest_approach(o, d)
    hit = dist < RADIUS - 0.01                                                            # clear of grazing rays
    entry = t_c - (RADIUS**2 - dist**2).clamp(min=0).sqrt()
    assert hit.any() and (~hit).any()
    assert torch.allclose(out.opacity[hit], torch.ones_like(entry[hit]), atol=1e-15)
    assert ((out.depth - entry)[hit] >= 0).all() and ((out.depth - entry)[hit] <= H).all()
    miss = dist > RADIUS
    assert torch.allclose(out.depth[miss], torch.full_like(entry[miss], FAR))


def naive_eq_3_1(sigma, rgb, t):
    """Eq. 3.1 written literally, one sample at a time: T_i as a product of exp(-sigma_j delta_j), j < i."""
    delta = torch.cat([t[..., 1:] - t[..., :-1], FAR - t[..., -1:]], -1)
    transmittance, weights = torch.ones_like(t[..., 0]), []
    for i in range(t.shape[-1]):
        weights.append(transmittance * (1 - torch.exp(-sigma[..., i] * delta[..., i])))
        transmittance = transmittance * torch.exp(-sigma[..., i] * delta[..., i])
    weights = torch.stack(weights, -1)
    return weights, (weights[..., None] * rgb).sum(-2)


def test_weights_follow_eq_3_1_sum_to_the_opacity_and_lie_in_unit_interval():
    g = torch.Generator().manual_seed(0)
    t = sample_depths((64,), 32, stratified=True, generator=g, dtype=torch.float64)
    sigma = torch.rand(64, 32, generator=g, dtype=torch.float64) * 10 ** (torch.randint(-3, 3, (64, 32), generator=g))
    sigma[:8] = 0                                                                         # empty rays
    sigma[8:16, 5] = 1e8                                                                  # a wall inside the ray
    rgb = torch.rand(64, 32, 3, generator=g, dtype=torch.float64)
    out = composite(sigma, rgb, t, background=torch.tensor([0.3, 0.6, 1.0], dtype=torch.float64))
    weights, colour = naive_eq_3_1(sigma, rgb, t)
    assert torch.allclose(out.weights, weights, rtol=1e-12, atol=1e-15)
    assert ((out.weights >= 0) & (out.weights <= 1)).all()
    assert torch.allclose(out.weights.sum(-1), out.opacity, rtol=0, atol=1e-14)
    assert (out.opacity[:8] == 0).all() and torch.allclose(out.opacity[8:16], torch.ones(8, dtype=torch.float64))
    assert torch.allclose(out.weights[8:16, 6:], torch.zeros(8, 26, dtype=torch.float64))  # nothing behind the wall
    background = (1 - out.opacity[:, None]) * torch.tensor([0.3, 0.6, 1.0], dtype=torch.float64)
    assert torch.allclose(out.rgb, colour + background, rtol=1e-12, atol=1e-15)
    assert ((out.rgb >= 0) & (out.rgb <= 1)).all()
    assert ((out.depth >= t[:, 0]) & (out.depth <= FAR)).all()


def test_stratified_depths_lie_in_their_bins_and_are_reproducible():
    n = 64
    edges = torch.linspace(NEAR, FAR, n + 1, dtype=torch.float64)
    t = sample_depths((500,), n, stratified=True, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert t.shape == (500, n)
    assert ((t >= edges[:-1]) & (t < edges[1:])).all()
    again = sample_depths((500,), n, stratified=True, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    other = sample_depths((500,), n, stratified=True, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert torch.equal(t, again) and not torch.equal(t, other)
    # one uniform draw per bin: 32000 offsets of mean 1/2 and standard deviation 1/sqrt(12); 5 sigma
    offset = (t - edges[:-1]) / (edges[1] - edges[0])
    assert abs(offset.mean().item() - 0.5) < 5 / math.sqrt(12 * offset.numel())
    centres = sample_depths((3,), n, dtype=torch.float64)
    assert torch.allclose(centres, ((edges[:-1] + edges[1:]) / 2).expand(3, n), rtol=0, atol=1e-12)


def test_render_rays_keeps_leading_axes_for_latent_closures_and_chunks_do_not_matter():
    """A closure over per-image latents z (B, 1, 1, 1) sees points (B, r, N, 3); chunking the ray axis
    gives the same images, stratified depths included (drawn once for all rays)."""
    o, d = camera_rays(6)
    o, d = o.expand(2, 1, 3), d.expand(2, 36, 3)
    z = torch.tensor([0.5, 2.0], dtype=torch.float64)[:, None, None, None]
    shapes = []

    def field(points, dirs):
        shapes.append(points.shape)
        assert torch.allclose(dirs.norm(dim=-1), torch.ones_like(dirs[..., 0]))
        sigma = z[..., 0] * torch.exp(-(points**2).sum(-1))
        return sigma, torch.sigmoid(points + dirs)

    full = render_rays(field, o, d, 16, stratified=True, generator=torch.Generator().manual_seed(3))
    chunked = render_rays(field, o, d, 16, stratified=True, generator=torch.Generator().manual_seed(3), chunk=10)
    assert shapes[0] == (2, 36, 16, 3) and shapes[1:] == [(2, 10, 16, 3)] * 3 + [(2, 6, 16, 3)]
    for a, b in zip(full, chunked):
        assert torch.equal(a, b)
    assert full.rgb.shape == (2, 36, 3) and full.weights.shape == (2, 36, 16)
    assert (full.opacity[1] > full.opacity[0]).all()                                      # denser latent


def test_ray_subset_picks_distinct_pixels_reproducibly():
    idx = ray_subset(4, 64, 20, torch.Generator().manual_seed(0))
    assert idx.shape == (4, 20) and idx.min() >= 0 and idx.max() < 64
    assert all(len(set(row.tolist())) == 20 for row in idx)
    assert torch.equal(idx, ray_subset(4, 64, 20, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError):
        ray_subset(4, 64, 65)
