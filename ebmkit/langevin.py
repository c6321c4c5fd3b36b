"""The Langevin engine shared by every method (CDRL, CoopFlow, NeRF-LEBM).

One step, Eq. 2.3 with the optional recovery term of Eq. 5.3:

    x <- x + s^2/2 * (grad_x f(x) - p * (x - a)) + w * s * eps,    eps ~ N(0, I)

f is the log density (negative energy, higher = more likely), s the step size (a scalar or one per
sample), a the anchor with precision p = 1/sigma^2 of the recovery likelihood (Eq. 5.1), w the
noise weight (0 disables noise). Optional extras, in this order: clamp the drift, clamp x, reset
observed pixels (inpainting), any other projection, record the trajectory.

`differentiable=True` keeps the graph through every step (second-order autograd, plain-torch update),
so a loss on the result can be differentiated with respect to x0: the Langevin flow read as a
generator's residual network (CoopFlow reconstruction, sec. 4.4.3).

The update itself is ebmkit.kernels.langevin_update: a fused Triton kernel on CUDA, plain torch
elsewhere (EBMKIT_KERNELS=torch forces it). The loop has no Python loop over samples and no
host-device synchronisation, so a whole chain can be captured in a CUDA graph (ebmkit.graphs): the
Triton kernel's Philox seed is drawn with `generator` as a device tensor, so a replayed chain draws a
fresh seed and matches the eager chain of the same generator state.
`autocast` (e.g. torch.bfloat16) evaluates the log density under autocast; x, the gradient and the
update stay in x's dtype.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ebmkit.kernels import backend, langevin_update, philox_seed, torch_ref

Tensor = torch.Tensor


@dataclass
class LangevinResult:
    x: Tensor                        # final sample, detached unless the run was differentiable
    trajectory: Tensor | None = None  # (steps + 1, *x.shape) when recorded, starting with x0


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
    observed: tuple[Tensor, Tensor] | None = None,
    project: Callable[[Tensor, int], Tensor] | None = None,
    record: bool = False,
    generator: torch.Generator | None = None,
    differentiable: bool = False,
    autocast: torch.dtype | None = None,
) -> LangevinResult:
    """Run `steps` Langevin steps from x0 on the log density f (`log_density(x) -> (B,)`).

    `observed` = (obs, mask) resets x to obs where mask is 1 after every step, inside the fused update
    (inpainting); `project(x, k)`, any other projection, is called after step k (0-based).
    """
    obs, mask = observed if observed is not None else (None, None)
    seed = None
    if noise_weight != 0.0 and not differentiable and backend(x0) == "triton":
        seed = philox_seed(generator, x0.device)  # one per chain, a device tensor (graph-safe)
    kw = dict(step_size=step_size, noise_weight=noise_weight, anchor=anchor, precision=anchor_precision,
              drift_clamp=drift_clamp, clamp=clamp, mask=mask, observed=obs, generator=generator)
    x = x0 if differentiable and x0.requires_grad else x0.detach()
    trajectory = [x] if record else None
    for k in range(steps):
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.requires_grad_(True)
            with torch.autocast(x.device.type, dtype=autocast, enabled=autocast is not None):
                f = log_density(x).sum()
            (grad,) = torch.autograd.grad(f, x, create_graph=differentiable)
            if differentiable:
                x = torch_ref.langevin_update(x, grad, **kw)
        if not differentiable:
            x = langevin_update(x.detach(), grad, **kw, seed=seed, step=k)
        if project is not None:
            x = project(x, k)
        if record:
            trajectory.append(x)
    return LangevinResult(x=x, trajectory=torch.stack(trajectory) if record else None)
