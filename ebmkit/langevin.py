"""The Langevin engine shared by every method (CDRL, CoopFlow, NeRF-LEBM).

One step, Eq. 2.3 with the optional recovery term of Eq. 5.3:

    x <- x + s^2/2 * (grad_x f(x) - p * (x - a)) + w * s * eps,    eps ~ N(0, I)

f is the log density (negative energy, higher = more likely), s the step size (a scalar or one per
sample), a the anchor with precision p = 1/sigma^2 of the recovery likelihood (Eq. 5.1), w the
noise weight (0 disables noise). Optional extras, in this order after the update: clamp the drift,
clamp x, project x (inpainting resets observed pixels), record the trajectory.

The loop has no Python loop over samples and no host-device synchronisation.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

Tensor = torch.Tensor


@dataclass
class LangevinResult:
    x: Tensor                        # final sample, detached
    trajectory: Tensor | None = None  # (steps + 1, *x.shape) when recorded, starting with x0


def _per_sample(v: float | Tensor, x: Tensor) -> float | Tensor:
    """A scalar stays a scalar; a (B,) tensor becomes (B, 1, ..., 1) to broadcast against x."""
    if isinstance(v, Tensor):
        if v.dim() == 0:
            return v.to(x)
        return v.to(x).reshape(-1, *([1] * (x.dim() - 1)))
    return float(v)


def langevin(
    log_density: Callable[[Tensor], Tensor],
    x0: Tensor,
    *,
    step_size: float | Tensor,
    steps: int,
    noise_weight: float = 1.0,
    anchor: Tensor | None = None,
    anchor_precision: float | Tensor = 0.0,
    drift_clamp: float | None = None,
    clamp: tuple[float, float] | None = None,
    project: Callable[[Tensor, int], Tensor] | None = None,
    record: bool = False,
    generator: torch.Generator | None = None,
) -> LangevinResult:
    """Run `steps` Langevin steps from x0 on the log density f (`log_density(x) -> (B,)`).

    `project(x, k)` is called after step k (0-based) and returns the projected sample.
    """
    s = _per_sample(step_size, x0)
    half_s2 = 0.5 * s * s
    noise_scale = noise_weight * s
    use_noise = noise_weight != 0.0
    precision = _per_sample(anchor_precision, x0)
    x = x0.detach()
    trajectory = [x] if record else None
    for k in range(steps):
        with torch.enable_grad():
            x = x.requires_grad_(True)
            (grad,) = torch.autograd.grad(log_density(x).sum(), x)
        x = x.detach()
        drift = half_s2 * grad
        if anchor is not None:
            drift = drift - half_s2 * precision * (x - anchor)  # recovery term of Eq. 5.3
        if drift_clamp is not None:
            drift = drift.clamp(-drift_clamp, drift_clamp)
        x = x + drift
        if use_noise:
            x = x + noise_scale * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        if clamp is not None:
            x = x.clamp(*clamp)
        if project is not None:
            x = project(x, k)
        if record:
            trajectory.append(x)
    return LangevinResult(x=x, trajectory=torch.stack(trajectory) if record else None)
