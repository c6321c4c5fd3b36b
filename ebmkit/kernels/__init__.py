"""One Langevin update, on a fused Triton kernel or in plain torch.

One step of Eq. 2.3 with the optional recovery term of Eq. 5.3:

    x <- x + s^2/2 * (grad - p * (x - a)) + w * s * eps,    eps ~ N(0, I)

then clamp the drift (before it is added), clamp x, project x <- m * obs + (1 - m) * x.

The backend: EBMKIT_KERNELS=torch or =triton forces one; unset (or "auto"), Triton for float32 / float16 /
bfloat16 CUDA tensors when triton imports, torch otherwise. Forcing Triton on CPU tensors runs Triton's
interpreter; it needs TRITON_INTERPRET=1 in the environment before triton is first imported (torch may
import it), since triton.jit picks interpreted or compiled when each jit function is defined. The kernel
module is imported lazily, on the first Triton update.
"""

import functools
import os

import torch

from ebmkit.errors import EbmkitError
from ebmkit.kernels import torch_ref

Tensor = torch.Tensor
_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_CHOICES = ("auto", "torch", "triton")


@functools.cache
def _triton_imports() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def backend(x: Tensor | None = None) -> str:
    """"triton" or "torch": the backend langevin_update uses for x (None: a float32 tensor on CUDA)."""
    choice = os.environ.get("EBMKIT_KERNELS", "").strip().lower() or "auto"
    if choice not in _CHOICES:
        raise EbmkitError(f"EBMKIT_KERNELS={os.environ['EBMKIT_KERNELS']!r}: expected one of {', '.join(_CHOICES)}")
    on_cuda = x is None or x.is_cuda
    dtype_ok = x is None or x.dtype in _TRITON_DTYPES
    if choice == "triton":
        if not _triton_imports():
            raise EbmkitError("EBMKIT_KERNELS=triton but triton does not import (install it, or use torch)")
        if not (on_cuda or os.environ.get("TRITON_INTERPRET") == "1"):
            raise EbmkitError("EBMKIT_KERNELS=triton needs CUDA tensors (or TRITON_INTERPRET=1 on CPU)")
        if not dtype_ok:
            raise EbmkitError(f"EBMKIT_KERNELS=triton supports float32, float16 and bfloat16, not {x.dtype}")
        return "triton"
    return "triton" if choice == "auto" and on_cuda and dtype_ok and _triton_imports() else "torch"


def philox_seed(generator: torch.Generator | None, device: torch.device) -> Tensor:
    """A Philox seed for the Triton update, drawn with `generator` (default: torch's for `device`) as a
    one-element int64 tensor on `device`: on CUDA it never visits the host, so drawing it neither waits
    for the device nor freezes one value into a captured CUDA graph."""
    where = generator.device if generator is not None else device
    return torch.randint(2**62, (1,), generator=generator, device=where).to(device)


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
    seed: int | Tensor | None = None,
    step: int = 0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One Langevin step from x (B, ...) with grad = grad_x f(x) (like x); returns the new x.

    step_size, precision: float or (B,) tensor; anchor like x (precision unused without it); drift_clamp
    c; clamp (lo, hi), either may be None; mask (0/1, broadcastable to x, e.g. (B, 1, H, W)) and
    observed (like x) go together. Noise eps, when noise_weight != 0: `noise` if given; else a function
    of (seed, step) (Philox in Triton, a seeded torch generator in torch; the two differ), seed an int or
    a one-element int64 tensor; with no seed, Triton draws one with `philox_seed`, torch draws eps with
    `generator`.
    """
    if (mask is None) != (observed is None):
        raise EbmkitError("langevin_update: mask and observed go together")
    kw = dict(step_size=step_size, noise_weight=noise_weight, anchor=anchor, precision=precision,
              drift_clamp=drift_clamp, clamp=clamp, mask=mask, observed=observed, noise=noise)
    if backend(x) == "triton":
        from ebmkit.kernels import triton_langevin

        if seed is None and noise is None and noise_weight != 0.0:
            seed = philox_seed(generator, x.device)
        return triton_langevin.langevin_update(x, grad, **kw, seed=0 if seed is None else seed, step=step)
    if seed is not None and noise is None:
        generator = torch.Generator(x.device).manual_seed(hash((int(seed), step)) & (2**63 - 1))
    return torch_ref.langevin_update(x, grad, **kw, generator=generator)
