"""Plain-torch Langevin update: the reference the Triton kernel is tested against.

One step of Eq. 2.3 with the optional recovery term of Eq. 5.3:

    x <- x + s^2/2 * (grad - p * (x - a)) + w * s * eps,    eps ~ N(0, I)

then, in this order: clamp the drift s^2/2 * (grad - p * (x - a)) to [-c, c] (before it is added),
clamp x to [lo, hi], project x <- m * obs + (1 - m) * x. The same maths as the loop body of
ebmkit.langevin, in the same order of operations.
"""

import torch

Tensor = torch.Tensor


def per_sample(v: float | Tensor, x: Tensor) -> float | Tensor:
    """A scalar stays a scalar; a (B,) tensor becomes (B, 1, ..., 1) to broadcast against x."""
    if isinstance(v, Tensor):
        if v.dim() == 0:
            return v.to(x)
        return v.to(x).reshape(-1, *([1] * (x.dim() - 1)))
    return float(v)


def langevin_update(
    x: Tensor,
    grad: Tensor,
    *,
    step_size: float | Tensor,
    noise_weight: float,
    anchor: Tensor | None = None,
    precision: float | Tensor = 0.0,
    drift_clamp: float | None = None,
    clamp: tuple[float | None, float | None] | None = None,
    mask: Tensor | None = None,
    observed: Tensor | None = None,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One step from x (any shape, batch first) with grad = grad_x f(x) (like x); returns the new x.

    step_size and precision: float or (B,) tensor. mask (0/1, broadcastable to x) and observed (like x)
    go together. noise: eps (like x); drawn with torch.randn(generator=generator) when None.
    """
    s = per_sample(step_size, x)
    half_s2 = 0.5 * s * s
    drift = half_s2 * grad
    if anchor is not None:
        drift = drift - half_s2 * per_sample(precision, x) * (x - anchor)  # recovery term of Eq. 5.3
    if drift_clamp is not None:
        drift = drift.clamp(-drift_clamp, drift_clamp)
    x = x + drift
    if noise_weight != 0.0:
        if noise is None:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = x + noise_weight * s * noise
    if clamp is not None:
        x = x.clamp(*clamp)
    if mask is not None:
        mask = mask.to(x.dtype)  # a bool mask works too
        x = mask * observed + (1 - mask) * x
    return x
