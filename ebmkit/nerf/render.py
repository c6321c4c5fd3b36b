"""Volume rendering of NeRF-LEBM (thesis sec. 3.3.1, Eq. 3.1), for any radiance field.

Conventions
- A ray is x(t) = o + t d with a unit direction d, so depth t is the distance from the camera centre and
  delta_i = t_{i+1} - t_i = ||x_{i+1} - x_i|| as in Eq. 3.1.
- Depths are linear in depth between `near` and `far` (7.5 and 12.5 for the cameras of camera.py). The
  interval is cut into N equal bins; training draws one uniform depth per bin (stratified sampling, as
  NeRF does), evaluation takes the bin centres.
- Last interval: delta_N = far - t_N, so sample i stands for the slab [t_i, t_{i+1}) and the last one for
  [t_N, far]: the sum in Eq. 3.1 is a quadrature of the volume-rendering integral over [t_1, far], and
  light that is not absorbed before `far` shows the background. (NeRF's delta_N = 1e10 would make any
  positive density at the last sample opaque and hide the background behind a softplus density.)
- Background: a colour (a float, 0 black and 1 white, or a tensor broadcastable to (..., 3)) seen with
  probability 1 - opacity; the expected depth also puts that probability at `far`, so it is finite for
  empty rays and its inverse gives an inverse-depth (disparity) map.
- Colours are in [0, 1] (thesis ch. 3 renders in [0, 1]); densities are >= 0.

quadrature = "nerf" is the authors' code's (nerf-pytorch's) rule instead, for converted models: N depths
t_i = linspace(near, far, N) with both ends included (stratified: one uniform draw in [m_{i-1}, m_i] between
the midpoints m, the first and last intervals halved); the direction d is not normalised, points are o + t d
and delta_i = (t_{i+1} - t_i) |d|, delta_N = 1e10 |d| (the last sample is opaque: no background shows unless the
density there is 0); the field sees d / |d|. With the camera's unnormalised directions (one unit along the
optical axis) t is the depth along that axis, as in the authors' get_rays.

Hierarchical sampling (NeRF's, in the authors' amortized Carla code; not in the thesis): `render_fine` renders a
second (fine) field at the coarse depths together with `num` more, drawn by inverse transform sampling from the
coarse render's weights (`importance_depths`).
"""

from typing import Callable, Literal, NamedTuple

import torch

from ebmkit.nerf.camera import FAR, NEAR

# field(points (..., 3), unit view directions (..., 3)) -> (sigma (...) >= 0, rgb (..., 3) in [0, 1])
Field = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Quadrature = Literal["bins", "nerf"]
NERF_LAST_DELTA = 1e10  # nerf-pytorch's delta_N


class Rendered(NamedTuple):
    rgb: torch.Tensor      # (..., 3) pixel colours C(r) of Eq. 3.1, background added
    opacity: torch.Tensor  # (...) accumulated opacity 1 - T_{N+1} = sum_i w_i
    depth: torch.Tensor    # (...) expected termination depth, background at `far`
    weights: torch.Tensor  # (..., N) w_i = T_i (1 - exp(-sigma_i delta_i))
    t: torch.Tensor        # (..., N) the sample depths


def sample_depths(shape: tuple[int, ...], num_samples: int, near: float = NEAR, far: float = FAR,
                  stratified: bool = False, generator: torch.Generator | None = None,
                  dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
                  quadrature: Quadrature = "bins") -> torch.Tensor:
    """Depths (*shape, N), increasing along the last axis, one per bin of [near, far] cut into N equal bins:
    a uniform draw in each bin if `stratified` (training), the bin centres otherwise (evaluation).
    quadrature "nerf": linspace(near, far, N), stratified between the midpoints (module docstring)."""
    if quadrature == "nerf":
        t = torch.linspace(0.0, 1.0, num_samples, dtype=dtype, device=device)
        t = (near * (1.0 - t) + far * t).expand(*shape, num_samples)                      # (*shape, N)
        if not stratified:
            return t
        mids = 0.5 * (t[..., 1:] + t[..., :-1])
        upper, lower = torch.cat([mids, t[..., -1:]], -1), torch.cat([t[..., :1], mids], -1)
        return lower + (upper - lower) * torch.rand(*shape, num_samples, generator=generator, dtype=dtype,
                                                    device=device)
    width = (far - near) / num_samples
    lower = near + width * torch.arange(num_samples, dtype=dtype, device=device)          # (N,) bin starts
    if stratified:
        offset = torch.rand(*shape, num_samples, generator=generator, dtype=dtype, device=device)
    else:
        offset = torch.full((*shape, num_samples), 0.5, dtype=dtype, device=device)
    return lower + width * offset                                                         # (*shape, N)


def composite(sigma: torch.Tensor, rgb: torch.Tensor, t: torch.Tensor, far: float = FAR,
              background: float | torch.Tensor = 0.0, scale: torch.Tensor | None = None,
              quadrature: Quadrature = "bins") -> Rendered:
    """Eq. 3.1: C(r) = sum_i T_i (1 - exp(-sigma_i delta_i)) c_i, T_i = exp(-sum_{j<i} sigma_j delta_j).
    sigma (..., N) >= 0, rgb (..., N, 3), t (..., N) increasing with t_N <= far. scale (..., 1): the ray's
    |d| multiplying the deltas; quadrature "nerf": delta_N = 1e10 (module docstring)."""
    last = torch.full_like(t[..., -1:], NERF_LAST_DELTA) if quadrature == "nerf" else far - t[..., -1:]
    delta = torch.cat([t[..., 1:] - t[..., :-1], last], -1)                                # (..., N)
    if scale is not None:
        delta = delta * scale
    tau = sigma * delta                                                                   # (..., N) optical depths
    # T_i = exp(-sum_{j<i} tau_j), an exclusive cumulative sum (no cumprod of 1 - alpha: exact at large tau)
    before = torch.cat([torch.zeros_like(tau[..., :1]), tau[..., :-1]], -1).cumsum(-1)     # (..., N)
    weights = torch.exp(-before) * -torch.expm1(-tau)                                     # (..., N)
    opacity = -torch.expm1(-tau.sum(-1))                                                  # (...) 1 - T_{N+1}
    colour = (weights[..., None] * rgb).sum(-2) + (1 - opacity[..., None]) * background   # (..., 3)
    depth = (weights * t).sum(-1) + (1 - opacity) * far                                   # (...)
    return Rendered(colour, opacity, depth, weights, t)


def render_rays(field: Field, origins: torch.Tensor, directions: torch.Tensor, num_samples: int,
                near: float = NEAR, far: float = FAR, stratified: bool = False,
                generator: torch.Generator | None = None, chunk: int | None = None,
                background: float | torch.Tensor = 0.0, quadrature: Quadrature = "bins") -> Rendered:
    """Render rays x(t) = o + t d: origins (..., 3) broadcast against unit directions (..., R, 3) (any
    directions with quadrature "nerf": see the module docstring).

    The field sees points (..., r, N, 3) and directions (..., r, N, 3) with the leading axes kept, so a
    closure can broadcast per-image latents (B, 1, 1, D) over them. `chunk` splits the ray axis R (dim -2
    of `directions`) into pieces of at most `chunk` rays to bound memory; depths are drawn once for all
    rays, so the result does not depend on `chunk`."""
    origins, directions = torch.broadcast_tensors(origins, directions)                   # (..., R, 3)
    t = sample_depths(directions.shape[:-1], num_samples, near, far, stratified, generator,
                      directions.dtype, directions.device, quadrature)                    # (..., R, N)
    return _render_at(field, origins, directions, t, far, background, quadrature, chunk)


def importance_depths(t: torch.Tensor, weights: torch.Tensor, num: int, stratified: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """(..., num) depths drawn from the coarse render's weights (..., N) at depths t (..., N) (NeRF's sample_pdf):
    a piecewise-constant density whose bins run between the midpoints of t, with the interior weights w_2 .. w_{N-1}
    (each plus 1e-5, nerf-pytorch's guard for empty rays) as masses, inverted at quantiles u: `num` evenly spaced
    in [0, 1] (evaluation) or uniform draws (`stratified`)."""
    edges = 0.5 * (t[..., 1:] + t[..., :-1])                                              # (..., N - 1)
    mass = weights[..., 1:-1] + 1e-5                                                      # (..., N - 2)
    cdf = torch.cat([torch.zeros_like(mass[..., :1]), (mass / mass.sum(-1, keepdim=True)).cumsum(-1)], -1)
    shape = (*t.shape[:-1], num)
    if stratified:
        u = torch.rand(shape, generator=generator, dtype=t.dtype, device=t.device)
    else:
        u = torch.linspace(0.0, 1.0, num, dtype=t.dtype, device=t.device).expand(shape).contiguous()
    above = torch.searchsorted(cdf, u, right=True)                                       # first cdf entry > u
    below, above = (above - 1).clamp(min=0), above.clamp(max=cdf.shape[-1] - 1)
    c0, c1 = cdf.gather(-1, below), cdf.gather(-1, above)
    span = torch.where(c1 - c0 < 1e-5, torch.ones_like(c0), c1 - c0)
    return edges.gather(-1, below) + (u - c0) / span * (edges.gather(-1, above) - edges.gather(-1, below))


def render_fine(field: Field, origins: torch.Tensor, directions: torch.Tensor, coarse: Rendered, num: int,
                far: float = FAR, stratified: bool = False, generator: torch.Generator | None = None,
                chunk: int | None = None, background: float | torch.Tensor = 0.0,
                quadrature: Quadrature = "bins") -> Rendered:
    """The fine pass of hierarchical sampling: `field` rendered at the sorted union of the coarse depths and `num`
    importance depths (`importance_depths`, no gradient through them); the rest as render_rays."""
    origins, directions = torch.broadcast_tensors(origins, directions)
    extra = importance_depths(coarse.t, coarse.weights.detach(), num, stratified, generator)
    t = torch.sort(torch.cat([coarse.t, extra], -1), -1).values                            # (..., R, N + num)
    return _render_at(field, origins, directions, t, far, background, quadrature, chunk)


def _render_at(field: Field, origins: torch.Tensor, directions: torch.Tensor, t: torch.Tensor, far: float,
               background: float | torch.Tensor, quadrature: Quadrature, chunk: int | None) -> Rendered:
    """Rays (..., R) rendered at depths t (..., R, N), `chunk` rays at a time."""
    step = chunk or directions.shape[-2]
    pieces = [_render_piece(field, origins[..., s:s + step, :], directions[..., s:s + step, :], t[..., s:s + step, :],
                            far, background, quadrature) for s in range(0, directions.shape[-2], step)]
    # rgb (..., r, 3), weights and t (..., r, N) join along dim -2, opacity and depth (..., r) along dim -1
    return Rendered(*(torch.cat(parts, dim) for parts, dim in zip(zip(*pieces), (-2, -1, -1, -2, -2))))


def _render_piece(field: Field, o: torch.Tensor, d: torch.Tensor, t: torch.Tensor, far: float,
                  background: float | torch.Tensor, quadrature: Quadrature = "bins") -> Rendered:
    """o, d (..., r, 3), t (..., r, N) -> Rendered of rays (..., r)."""
    points = o[..., None, :] + t[..., None] * d[..., None, :]                            # (..., r, N, 3)
    scale = None
    if quadrature == "nerf":  # d need not be a unit vector: the field sees d / |d|, the deltas grow by |d|
        scale = d.norm(dim=-1, keepdim=True)                                              # (..., r, 1)
        d = d / scale
    sigma, rgb = field(points, d[..., None, :].expand_as(points))                         # (..., r, N), (..., r, N, 3)
    return composite(sigma, rgb, t, far, background, scale, quadrature)


def ray_subset(batch: int, num_pixels: int, num_rays: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
    """Indices (B, K) of K distinct pixels per image, drawn uniformly (the authors' N_rand rays per image).
    Gather rays and targets of flattened images (B, P, C) with torch.take_along_dim(x, idx[..., None], 1)."""
    if not 0 < num_rays <= num_pixels:
        raise ValueError(f"num_rays must be in [1, {num_pixels}] (pixels per image), got {num_rays}")
    scores = torch.rand(batch, num_pixels, generator=generator, device=device)            # (B, P)
    return scores.argsort(dim=1)[:, :num_rays]                                            # (B, K)
