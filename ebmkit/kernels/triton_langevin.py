"""Fused Triton Langevin update: drift, recovery term, noise, clamps and projection in one pass.

One step of Eq. 2.3 with the optional recovery term of Eq. 5.3:

    x <- x + s^2/2 * (grad - p * (x - a)) + w * s * eps,    eps ~ N(0, I)

then clamp the drift s^2/2 * (grad - p * (x - a)) to [-c, c] (before it is added), clamp x to [lo, hi],
project x <- m * obs + (1 - m) * x; the order of ebmkit.kernels.torch_ref. Computed in float32 for
float32, float16 and bfloat16 inputs.

eps is read from a tensor, or drawn in the kernel with Philox: eps[i] = randn(seed, step * numel + i),
a counter that differs across elements and across steps, so successive steps get independent noise.
The seed is read from a one-element device tensor, so a chain captured in a CUDA graph draws a fresh
seed from its generator at every replay, exactly as the eager chain does.
Channels-last 4-D inputs are updated in their own memory order (no copies), with i the element's
logical (B, C, H, W) index wherever the layout matters (Philox counter, shared masks): the same seed
gives the same result in either layout.

The kernel runs on CPU tensors in Triton's interpreter when TRITON_INTERPRET=1 was set before triton (and
so this module) was imported: triton.jit picks interpreted or compiled when a function is defined.
"""

import torch
import triton
import triton.language as tl

Tensor = torch.Tensor
BLOCK_SIZE = 1024


@triton.jit(do_not_specialize=["counter_base"])
def _langevin_kernel(
    x_ptr, grad_ptr, out_ptr,             # flat (numel,)
    numel, per_sample,                    # per_sample = numel // B elements in each sample
    channels, spatial,                    # C and H * W, used only by CHANNELS_LAST
    s_val, s_ptr, s_stride,               # step size: s_val, or s_ptr[b * s_stride] (stride 0: one value)
    anchor_ptr, p_val, p_ptr, p_stride,   # anchor (numel,); precision given like the step size
    noise_weight, noise_ptr, seed_ptr, counter_base,  # eps: noise_ptr (numel,), or Philox(*seed_ptr, counter_base + i)
    drift_clamp, lo, hi,
    mask_ptr, obs_ptr, mask_inner,        # mask (numel,), or (B, mask_inner) shared by channels; obs (numel,)
    S_TENSOR: tl.constexpr, ANCHOR: tl.constexpr, P_TENSOR: tl.constexpr, NOISE: tl.constexpr,
    PHILOX: tl.constexpr, DRIFT_CLAMP: tl.constexpr, CLAMP: tl.constexpr, MASK: tl.constexpr,
    MASK_BCAST: tl.constexpr, CHANNELS_LAST: tl.constexpr, BLOCK_SIZE: tl.constexpr,
):
    i = tl.program_id(0).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)  # int64: numel may pass 2^31
    inb = i < numel
    b = i // per_sample  # sample index
    if CHANNELS_LAST:  # storage (B, H, W, C): the logical (B, C, H, W) index of element i
        r = i % per_sample
        logical = b * per_sample + (r % channels) * spatial + r // channels
    else:
        logical = i
    x = tl.load(x_ptr + i, mask=inb).to(tl.float32)
    if S_TENSOR:
        s = tl.load(s_ptr + b * s_stride, mask=inb).to(tl.float32)
    else:
        s = s_val
    half_s2 = 0.5 * s * s
    drift = half_s2 * tl.load(grad_ptr + i, mask=inb).to(tl.float32)
    if ANCHOR:
        if P_TENSOR:
            p = tl.load(p_ptr + b * p_stride, mask=inb).to(tl.float32)
        else:
            p = p_val
        drift = drift - half_s2 * p * (x - tl.load(anchor_ptr + i, mask=inb).to(tl.float32))  # Eq. 5.3
    if DRIFT_CLAMP:
        drift = tl.clamp(drift, -drift_clamp, drift_clamp)
    x = x + drift
    if NOISE:
        if PHILOX:
            eps = tl.randn(tl.load(seed_ptr), counter_base + logical)
        else:
            eps = tl.load(noise_ptr + i, mask=inb).to(tl.float32)
        x = x + noise_weight * s * eps
    if CLAMP:
        x = tl.clamp(x, lo, hi)
    if MASK:
        if MASK_BCAST:
            m = tl.load(mask_ptr + b * mask_inner + logical % mask_inner, mask=inb).to(tl.float32)
        else:
            m = tl.load(mask_ptr + i, mask=inb).to(tl.float32)
        x = m * tl.load(obs_ptr + i, mask=inb).to(tl.float32) + (1 - m) * x
    tl.store(out_ptr + i, x.to(out_ptr.dtype.element_ty), mask=inb)


def _by_value_or_sample(v: float | Tensor, x: Tensor) -> tuple[float, Tensor, int, bool]:
    """(value, tensor, stride, is_tensor): a float travels by value (no device copy, no sync), a tensor
    of B values or one value by pointer with stride 1 or 0; x stands in for the unused pointer."""
    if isinstance(v, Tensor):
        t = v.to(x.device).reshape(-1).expand(x.shape[0])  # (B,)
        return 0.0, t, t.stride(0), True
    return float(v), x, 0, False


def _memory_format(x: Tensor) -> torch.memory_format:
    """channels_last for a 4-D tensor stored that way (and not also plainly contiguous), else contiguous."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _flat_mask(mask: Tensor, x: Tensor, fmt: torch.memory_format) -> tuple[Tensor, int]:
    """(mask, inner): a (B, 1, *rest) mask is kept (B, rest) and shared by the channels, inner = numel of
    rest; any other mask broadcastable to x is expanded to x's shape and layout, inner = 0."""
    if mask.dim() == x.dim() >= 2 and mask.shape[:2] == (x.shape[0], 1) and mask.shape[2:] == x.shape[2:]:
        return mask.contiguous(), x[0, 0].numel()
    return torch.broadcast_to(mask, x.shape).contiguous(memory_format=fmt), 0


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
    seed: int | Tensor = 0,
    step: int = 0,
) -> Tensor:
    """One step from x (B, ...) with grad = grad_x f(x) (like x); returns the new x (a new tensor).

    step_size, precision: float or (B,) tensor. mask (0/1, broadcastable to x) and observed (like x) go
    together. noise: eps like x; when None, Philox noise from (seed, step), seed an int or a one-element
    int64 tensor on x's device (a tensor needs no host-to-device copy, so it can be drawn inside a graph).
    """
    fmt = _memory_format(x)
    x = x.contiguous(memory_format=fmt)
    out = torch.empty_like(x)  # in x's layout

    def flat(t: Tensor) -> Tensor:  # like x, in x's layout
        return torch.broadcast_to(t, x.shape).contiguous(memory_format=fmt)

    numel = x.numel()
    channels, spatial = (x.shape[1], x[0, 0].numel()) if fmt == torch.channels_last else (1, 1)
    s_val, s_t, s_stride, s_tensor = _by_value_or_sample(step_size, x)
    p_val, p_t, p_stride, p_tensor = _by_value_or_sample(precision, x)
    lo, hi = clamp if clamp is not None else (None, None)
    lo, hi = float("-inf") if lo is None else float(lo), float("inf") if hi is None else float(hi)
    mask_t, inner = _flat_mask(mask, x, fmt) if mask is not None else (x, 0)
    philox = noise_weight != 0.0 and noise is None
    if philox and not isinstance(seed, Tensor):
        seed = torch.tensor([seed], dtype=torch.int64, device=x.device)
    _langevin_kernel[(triton.cdiv(numel, BLOCK_SIZE),)](
        x, flat(grad), out,
        numel, numel // x.shape[0], channels, spatial,
        s_val, s_t, s_stride,
        x if anchor is None else flat(anchor), p_val, p_t, p_stride,
        float(noise_weight), x if noise is None else flat(noise), seed if philox else x, step * numel,
        0.0 if drift_clamp is None else float(drift_clamp), lo, hi,
        mask_t, x if observed is None else flat(observed), inner,
        S_TENSOR=s_tensor, ANCHOR=anchor is not None, P_TENSOR=p_tensor and anchor is not None,
        NOISE=noise_weight != 0.0, PHILOX=philox, DRIFT_CLAMP=drift_clamp is not None,
        CLAMP=clamp is not None, MASK=mask is not None, MASK_BCAST=inner > 0,
        CHANNELS_LAST=fmt == torch.channels_last, BLOCK_SIZE=BLOCK_SIZE,
    )
    return out
