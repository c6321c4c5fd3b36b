"""The fused Langevin update (Eq. 2.3 / 5.3): Triton kernel against the torch reference, the reference
against a float64 hand computation, Philox noise statistics, and backend selection.

Without a GPU the Triton kernel runs in Triton's interpreter on CPU tensors: tests/conftest.py sets
TRITON_INTERPRET=1 before anything imports triton (triton.jit picks interpreted or compiled mode when
each function is defined, tl.randn included).
"""

import importlib.util

import pytest
import torch

from ebmkit.errors import EbmkitError
from ebmkit.kernels import backend, langevin_update, torch_ref
from ebmkit.langevin import langevin

needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SHAPES = {"points": (37, 2), "images": (2, 3, 17, 13)}  # images: 1326 elements, two blocks, the last partial


def tk():
    from ebmkit.kernels import triton_langevin

    return triton_langevin


def case(shape, seed=0):
    """x, grad, anchor, noise, observed (like x), a 0/1 mask of each kind, per-sample s and p (B,)."""
    g = torch.Generator().manual_seed(seed)
    x, grad, anchor, noise, observed = (torch.randn(shape, generator=g) for _ in range(5))
    full = (torch.rand(shape, generator=g) > 0.5).float()
    channel = (torch.rand(shape[0], 1, *shape[2:], generator=g) > 0.5).float()
    s = 0.05 + torch.rand(shape[0], generator=g)
    p = 4 * torch.rand(shape[0], generator=g)
    return dict(x=x, grad=grad, anchor=anchor, noise=noise, observed=observed, full=full, channel=channel, s=s, p=p)


@needs_triton
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("mask", [None, "full", "channel"])
@pytest.mark.parametrize("clamp", [None, (-1.0, 1.5)])
@pytest.mark.parametrize("drift_clamp", [None, 0.02])
@pytest.mark.parametrize("noise_weight", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("anchor", [None, "scalar", "per-sample"])
@pytest.mark.parametrize("per_sample_step", [False, True])
def test_triton_matches_torch_reference(shape, mask, clamp, drift_clamp, noise_weight, anchor, per_sample_step):
    c = {k: v.to(DEVICE) for k, v in case(shape).items()}
    kw = dict(step_size=c["s"] if per_sample_step else 0.3, noise_weight=noise_weight, drift_clamp=drift_clamp,
              clamp=clamp, noise=c["noise"])
    if anchor is not None:
        kw.update(anchor=c["anchor"], precision=c["p"] if anchor == "per-sample" else 2.5)
    if mask is not None:  # "channel": (B, 1, H, W) for images, (B, 1) for points
        kw.update(mask=c[mask], observed=c["observed"])
    out = tk().langevin_update(c["x"], c["grad"], **kw)
    ref = torch_ref.langevin_update(c["x"], c["grad"], **kw)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)


@needs_triton
def test_triton_odd_layouts_match_reference():
    """A bool mask, a 0-dim step size tensor, a strided per-sample precision, a one-sided clamp, a
    non-contiguous x."""
    c = {k: v.to(DEVICE) for k, v in case((8, 3, 5, 4), seed=1).items()}
    x = c["x"].transpose(2, 3).contiguous().transpose(2, 3)  # same values, not contiguous
    kw = dict(step_size=torch.tensor(0.2, device=DEVICE), noise_weight=0.7, anchor=c["anchor"],
              precision=torch.rand(16, device=DEVICE)[::2], clamp=(None, 0.8), noise=c["noise"],
              mask=c["channel"].bool(), observed=c["observed"])
    torch.testing.assert_close(tk().langevin_update(x, c["grad"], **kw),
                               torch_ref.langevin_update(x, c["grad"], **kw), rtol=1e-6, atol=1e-6)


@needs_triton
@pytest.mark.parametrize("mask", [None, "full", "channel"])
def test_triton_channels_last_matches_contiguous(mask):
    """A channels-last chain is updated in its own layout and gives the same values, Philox noise
    included (it is indexed by the logical position)."""
    c = {k: v.to(DEVICE) for k, v in case((2, 3, 17, 13), seed=2).items()}
    cl = {k: v.contiguous(memory_format=torch.channels_last) for k, v in c.items() if v.dim() == 4}
    kw = dict(step_size=c["s"], noise_weight=0.9, anchor=c["anchor"], precision=c["p"], seed=11, step=3)
    kw_cl = dict(kw, anchor=cl["anchor"])
    if mask is not None:
        kw.update(mask=c[mask], observed=c["observed"])
        kw_cl.update(mask=cl[mask], observed=cl["observed"])
    out = tk().langevin_update(cl["x"], cl["grad"], **kw_cl)
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    torch.testing.assert_close(out, tk().langevin_update(c["x"], c["grad"], **kw), rtol=0, atol=0)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_triton_half_precision_computes_in_float32(dtype):
    c = {k: v.to(DEVICE) for k, v in case((2, 3, 17, 13), seed=3).items()}
    kw = dict(step_size=c["s"], noise_weight=0.5, anchor=c["anchor"], precision=1.0, noise=c["noise"])
    out = tk().langevin_update(c["x"].to(dtype), c["grad"].to(dtype), **kw)
    half = {k: c[k].to(dtype).float() for k in ("x", "grad")}  # the rounded inputs, in float32
    ref = torch_ref.langevin_update(half["x"], half["grad"], **kw).to(dtype)
    assert out.dtype == dtype
    torch.testing.assert_close(out, ref)  # to within one rounding in dtype


def test_torch_reference_equals_hand_computation_in_float64():
    g = torch.Generator().manual_seed(4)
    x, grad, anchor, eps, obs = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(5))
    s = torch.tensor([0.1, 0.5, 0.9, 0.3], dtype=torch.float64)
    p = torch.tensor([4.0, 0.0, 1.0, 2.0], dtype=torch.float64)
    m = torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=torch.float64)
    out = torch_ref.langevin_update(x, grad, step_size=s, noise_weight=0.7, anchor=anchor, precision=p,
                                    drift_clamp=0.1, clamp=(-0.9, 0.9), mask=m, observed=obs, noise=eps)
    by_hand = torch.empty_like(x)
    for b in range(4):
        for j in range(3):
            drift = s[b] ** 2 / 2 * (grad[b, j] - p[b] * (x[b, j] - anchor[b, j]))  # Eq. 5.3
            new = x[b, j] + min(max(drift, -0.1), 0.1) + 0.7 * s[b] * eps[b, j]
            new = min(max(new, -0.9), 0.9)
            by_hand[b, j] = obs[b, j] if m[b, j] else new
    assert torch.allclose(out, by_hand, atol=1e-12, rtol=0)


def test_torch_reference_equals_one_engine_step():
    c = case((2, 3, 5, 4), seed=6)
    f = lambda x: -(x**4).sum((1, 2, 3))  # noqa: E731
    keep, obs = c["channel"], c["observed"]
    kw = dict(step_size=c["s"], noise_weight=0.8, anchor=c["anchor"], drift_clamp=0.3, clamp=(-2.0, 2.0))
    engine = langevin(f, c["x"], steps=1, anchor_precision=c["p"], project=lambda x, k: keep * obs + (1 - keep) * x,
                      generator=torch.Generator().manual_seed(3), **kw).x
    ref = torch_ref.langevin_update(c["x"], -4 * c["x"] ** 3, precision=c["p"], mask=keep, observed=obs,
                                    generator=torch.Generator().manual_seed(3), **kw)
    torch.testing.assert_close(ref, engine, rtol=1e-6, atol=1e-6)


def corr(a, b):
    return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()


@needs_triton
def test_philox_noise_is_standard_normal_and_fresh_each_step():
    """grad = 0, no anchor, x0 = 0, w * s = 1: the update returns eps itself."""
    x0 = torch.zeros(100, 1003, device=DEVICE)  # 100300 elements, not a multiple of the block
    kw = dict(step_size=1.0, noise_weight=1.0)
    z0 = tk().langevin_update(x0, x0, **kw, seed=7, step=0).double()
    z1 = tk().langevin_update(x0, x0, **kw, seed=7, step=1).double()
    assert abs(z0.mean().item()) < 0.02 and abs(z0.var().item() - 1) < 0.03
    assert abs((z0**4).mean().item() - 3) < 0.15  # Gaussian kurtosis
    assert abs(corr(z0.flatten()[:-1], z0.flatten()[1:])) < 0.02  # neighbouring elements
    assert abs(corr(z0, z1)) < 0.02  # successive steps
    assert torch.equal(tk().langevin_update(x0, x0, **kw, seed=7, step=0), z0.float())
    seed_tensor = torch.tensor([7], device=DEVICE)  # read by the kernel, as a graph-captured chain does
    assert torch.equal(tk().langevin_update(x0, x0, **kw, seed=seed_tensor, step=0), z0.float())
    assert not torch.equal(tk().langevin_update(x0, x0, **kw, seed=8, step=0), z0.float())
    half = tk().langevin_update(x0, x0, step_size=torch.full((100,), 2.0, device=DEVICE), noise_weight=0.25,
                                seed=7, step=0)
    torch.testing.assert_close(half.double(), 0.5 * z0)  # per-sample scale w * s, same draws


def test_torch_backend_selected_and_seeded(monkeypatch):
    monkeypatch.setenv("EBMKIT_KERNELS", "torch")
    x = torch.zeros(5, 4, device=DEVICE)
    assert backend(x) == "torch"
    a, b, c = (langevin_update(x, x, step_size=1.0, noise_weight=1.0, seed=1, step=k) for k in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_default_backend(monkeypatch):
    monkeypatch.delenv("EBMKIT_KERNELS", raising=False)
    x = torch.zeros(3)
    assert backend(x) == "torch"  # CPU
    assert backend(x.double()) == "torch"
    if torch.cuda.is_available() and importlib.util.find_spec("triton") is not None:
        assert backend(x.cuda()) == "triton" and backend(x.cuda().double()) == "torch"


def test_bad_backend_value_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("EBMKIT_KERNELS", "cuda")
    with pytest.raises(EbmkitError, match="EBMKIT_KERNELS='cuda'.*auto, torch, triton"):
        backend(torch.zeros(1))


@needs_triton
def test_forced_triton_through_the_dispatcher(monkeypatch):
    monkeypatch.setenv("EBMKIT_KERNELS", "triton")
    c = {k: v.to(DEVICE) for k, v in case((3, 2, 4, 4), seed=5).items()}
    assert backend(c["x"]) == "triton"
    with pytest.raises(EbmkitError, match="float32, float16 and bfloat16"):
        backend(c["x"].double())
    kw = dict(step_size=0.4, noise_weight=1.0, mask=c["channel"], observed=c["observed"])
    torch.testing.assert_close(langevin_update(c["x"], c["grad"], **kw, noise=c["noise"]),
                               torch_ref.langevin_update(c["x"], c["grad"], **kw, noise=c["noise"]))
    torch.manual_seed(0)
    a = langevin_update(c["x"], c["grad"], **kw)  # seed drawn from torch's generator
    torch.manual_seed(0)
    assert torch.equal(a, langevin_update(c["x"], c["grad"], **kw))
    with pytest.raises(EbmkitError, match="mask and observed"):
        langevin_update(c["x"], c["grad"], step_size=0.4, noise_weight=1.0, mask=c["channel"])
