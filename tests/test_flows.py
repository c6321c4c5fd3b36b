"""Normalizing flows of CoopFlow (thesis ch. 4): Flow++ and the 2-D affine coupling flow.

Numeric checks in float64 on tiny configurations: invertibility, log-determinants against the
autograd Jacobian, the inverse's implicit-function gradient, ActNorm's data-dependent initialisation,
normalisation of the 2-D density, the bits/dim bookkeeping, and that a few Adam steps learn.
"""

import math

import pytest
import torch

from ebmkit.nets import FlowPP, PointFlow, count_parameters
from ebmkit.nets.flowpp_coupling import MixLogCDFCoupling
from ebmkit.nets.flow_layers import (ActNorm, InvConv1x1, checkerboard_merge, checkerboard_split, mixture_logit_cdf,
                                     mixture_logit_cdf_inverse, squeeze, unsqueeze)

F64 = torch.float64
SMALL = dict(num_channels=8, num_blocks=1, num_components=3, num_heads=2, dropout=0.0, num_dequant_blocks=1)


def perturb(module: torch.nn.Module, std: float, seed: int = 0) -> None:
    """Move every parameter off its initialisation (zero-initialised couplings start as the identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(std * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def tiny_flowpp(channels: int, factor_out: bool = True, use_dequant: bool = True, seed: int = 0) -> FlowPP:
    """A 4x4 Flow++ with the paper's layout, ActNorms initialised on a batch, then perturbed; eval mode."""
    torch.manual_seed(seed)
    flow = FlowPP(channels, 4, factor_out=factor_out, use_dequant=use_dequant, **SMALL).to(F64)
    flow(torch.rand(16, channels, 4, 4, dtype=F64) * 1.8 - 0.9)  # data-dependent init
    perturb(flow, 0.1, seed)
    return flow.eval()


def images(channels: int, n: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, channels, 4, 4, generator=torch.Generator().manual_seed(seed), dtype=F64) * 2 - 1


def pixels(channels: int, n: int = 4, seed: int = 2) -> torch.Tensor:
    """8-bit images in model space, v / 127.5 - 1."""
    v = torch.randint(0, 256, (n, channels, 4, 4), generator=torch.Generator().manual_seed(seed))
    return v.to(F64) / 127.5 - 1


# ---- layers --------------------------------------------------------------------------------------

def test_reshapes_are_inverse_permutations():
    x = torch.arange(2 * 3 * 4 * 6, dtype=F64).view(2, 3, 4, 6)
    h = checkerboard_split(x)
    assert h.shape == (2, 6, 4, 3)
    assert torch.equal(checkerboard_merge(h), x)
    parity = (torch.arange(4).view(4, 1) + torch.arange(6).view(1, 6)) % 2  # (H, W)
    assert torch.equal(h[:, :3].sort(-1).values.flatten(), x[:, :, parity == 0].flatten())  # even colour first
    assert torch.equal(h[:, 3:].flatten(2).sort(-1).values, x[:, :, parity == 1].flatten(2))
    s = squeeze(x)
    assert s.shape == (2, 12, 2, 3)
    assert torch.equal(s[:, 4 * 1 + 2 * 1 + 0], x[:, 1, 1::2, 0::2])  # channel c * 4 + 2 dy + dx
    assert torch.equal(unsqueeze(s), x)


def test_actnorm_data_dependent_init():
    x = 3.0 + 5.0 * torch.randn(16, 4, 5, 5, dtype=F64) * torch.arange(1, 5, dtype=F64).view(1, 4, 1, 1)
    norm = ActNorm(4).to(F64)
    y, logdet = norm(x)
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(4, dtype=F64), atol=1e-12)
    assert torch.allclose(y.var((0, 2, 3), unbiased=False), torch.ones(4, dtype=F64), atol=1e-6)
    assert torch.allclose(logdet, norm.log_scale.sum() * 25 * torch.ones(16, dtype=F64))
    assert bool(norm.state_dict()["initialized"])
    loc = norm.loc.clone()
    norm(x + 10)  # later batches do not re-initialise
    assert torch.equal(norm.loc, loc)
    assert torch.allclose(norm.inverse(y), x, atol=1e-12)


@pytest.mark.parametrize("dtype, tol", [(F64, 1e-12), (torch.float32, 1e-5)])
def test_mixture_cdf_bisection(dtype, tol):
    gen = torch.Generator().manual_seed(0)
    logits, means = torch.randn(2, 3, 5, 2, 3, 3, generator=gen, dtype=dtype)
    log_scales = torch.rand(3, 5, 2, 3, 3, generator=gen, dtype=dtype) * 3 - 2
    x = torch.linspace(-30, 30, 54, dtype=dtype).view(3, 2, 3, 3)  # well into both tails
    y, log_dy = mixture_logit_cdf(x, logits, means, log_scales)
    assert torch.isfinite(y).all() and torch.isfinite(log_dy).all()
    x_back = mixture_logit_cdf_inverse(y, logits, means, log_scales)
    assert torch.allclose(x_back, x, rtol=tol, atol=tol)


def test_mixture_inverse_gradient_is_implicit_function_gradient():
    gen = torch.Generator().manual_seed(1)
    logits, means = (t.requires_grad_() for t in torch.randn(2, 1, 3, 1, 2, 2, generator=gen, dtype=F64))
    log_scales = (0.5 * torch.randn(1, 3, 1, 2, 2, generator=gen, dtype=F64)).requires_grad_()
    y = torch.randn(1, 1, 2, 2, generator=gen, dtype=F64).requires_grad_()
    assert torch.autograd.gradcheck(mixture_logit_cdf_inverse, (y, logits, means, log_scales))


# ---- Flow++ --------------------------------------------------------------------------------------

CONFIGS = [(1, True), (3, True), (3, False)]


@pytest.mark.parametrize("channels, factor_out", CONFIGS)
def test_flowpp_inverse_and_logdet(channels, factor_out):
    flow = tiny_flowpp(channels, factor_out)
    x = images(channels)
    z, logdet = flow(x)
    assert z.shape == x.shape and logdet.shape == (4,)
    assert (flow.inverse(z) - x).abs().max() < 1e-12  # achieved: about 1e-14
    dim = x[0].numel()
    jac = torch.autograd.functional.jacobian(lambda v: flow(v.view(1, *x.shape[1:]))[0].flatten(), x[0].flatten())
    assert jac.shape == (dim, dim)
    assert abs(torch.linalg.slogdet(jac)[1] - logdet[0]) < 1e-12  # achieved: about 1e-14
    # the inverse's gradient through the bisection is the inverse Jacobian
    jac_inv = torch.autograd.functional.jacobian(lambda v: flow.inverse(v.view(1, *x.shape[1:])).flatten(),
                                                 z[0].detach().flatten())
    assert torch.allclose(jac_inv @ jac, torch.eye(dim, dtype=F64), atol=1e-9)


def test_flowpp_identity_layers_leave_logit_preprocessing():
    """With identity ActNorms and 1x1 convolutions and zeroed coupling outputs, only the logit is left."""
    flow = FlowPP(1, 4, **SMALL).to(F64)
    for layer in flow.modules():
        if isinstance(layer, ActNorm):
            layer.initialized.fill_(True)  # skip the data-dependent init: loc 0, scale 1
        if isinstance(layer, InvConv1x1):
            layer.weight.data = torch.eye(layer.weight.shape[0], dtype=F64)
        if isinstance(layer, MixLogCDFCoupling):  # equal components at (0, 1): logit F is the identity
            layer.out.parametrizations.weight.original0.data.zero_()
            layer.out.bias.data.zero_()
    x = images(1)
    z, logdet = flow(x)
    y = torch.logit((1 + 0.9 * x) / 2)
    assert torch.allclose(z.flatten(1).sort(1).values, y.flatten(1).sort(1).values, atol=1e-12)  # up to the swaps
    assert torch.allclose(flow.inverse(z), x, atol=1e-12)
    expected = (math.log(0.9 / 2) - torch.log((1 + 0.9 * x) / 2) - torch.log((1 - 0.9 * x) / 2)).sum((1, 2, 3))
    assert torch.allclose(logdet, expected, atol=1e-12)
    assert torch.allclose(flow.log_prob(x), -0.5 * (z ** 2 + math.log(2 * math.pi)).sum((1, 2, 3)) + logdet)


def test_flowpp_sample_shapes_and_generator():
    flow = tiny_flowpp(3)
    a = flow.sample(5, generator=torch.Generator().manual_seed(7))
    b = flow.sample(5, generator=torch.Generator().manual_seed(7))
    c = flow.sample(5, generator=torch.Generator().manual_seed(8))
    assert a.shape == (5, 3, 4, 4) and a.dtype == F64
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a.abs() < 1 / 0.9).all()
    zero = flow.sample(2, temperature=0.0)
    assert torch.allclose(zero, flow.inverse(torch.zeros(2, 3, 4, 4, dtype=F64)))


def test_uniform_dequantisation_bits_per_dim_by_hand():
    flow = tiny_flowpp(3, use_dequant=False)
    x = pixels(3)
    bpd = flow.nll_bits_per_dim(x, generator=torch.Generator().manual_seed(3))
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(3), dtype=F64)
    v = (x + 1) * 127.5
    # w = v + u in [0, 256) pixel units maps to model space by x = w / 128 - 1: log p(w) = log p(x) - D log 128,
    # so bits/dim = -log p(x) / (D ln 2) + log2(128).
    dim = 48
    expected = -flow.log_prob((v + u) / 128 - 1) / (dim * math.log(2)) + 7.0
    assert torch.allclose(bpd, expected, atol=1e-10)


def test_variational_dequantisation_bits_per_dim():
    flow = tiny_flowpp(3, use_dequant=True)
    x = pixels(3)
    gen = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    bpd = flow.nll_bits_per_dim(x, generator=gen())
    assert bpd.shape == (4,) and torch.isfinite(bpd).all()
    assert torch.equal(bpd, flow.nll_bits_per_dim(x, generator=gen()))
    # the bound is E_q[log q(u|v) - log p(v + u)]: check it from the dequantiser's own output
    u, log_q = flow.dequantizer(x, gen())
    assert ((u > 0) & (u < 1)).all()
    log_p = flow.log_prob((x + 1) * 127.5 / 128 + u / 128 - 1) - 48 * math.log(128)
    assert torch.allclose(bpd, (log_q - log_p) / (48 * math.log(2)), atol=1e-10)


@pytest.mark.parametrize("use_dequant", [False, True])
def test_flowpp_adam_steps_lower_nll(use_dequant):
    torch.manual_seed(0)
    flow = FlowPP(1, 4, use_dequant=use_dequant, **SMALL)
    x = pixels(1, n=16).float()
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)

    def loss():
        return flow.nll_bits_per_dim(x, generator=torch.Generator().manual_seed(0)).mean()

    with torch.no_grad():
        start = loss().item()  # also the ActNorm initialisation
    for _ in range(15):
        opt.zero_grad()
        loss().backward()
        opt.step()
    with torch.no_grad():
        assert loss().item() < start - 0.3


def test_flowpp_paper_configuration():
    """Thesis sec. 4.5.1 / Table 4.8: Flow++ of 28.8M parameters at 3x32x32; one forward and inverse."""
    torch.manual_seed(0)
    flow = FlowPP()
    assert count_parameters(flow) == 28_784_776  # authors' code: 28,784,792 (weight-norm bookkeeping differs)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z, logdet = flow(x)
        perturb(flow, 0.01)
        flow.eval()
        z, logdet = flow(x)
        assert z.shape == x.shape and torch.isfinite(logdet).all()
        assert (flow.inverse(z) - x).abs().max() < 1e-4  # float32; achieved about 1e-6
        bpd = flow.nll_bits_per_dim(torch.round((x + 1) * 127.5) / 127.5 - 1)
    assert bpd.shape == (2,) and torch.isfinite(bpd).all()


# ---- coupling flows for points -------------------------------------------------------------------

COUPLINGS = ["affine", "mixlogcdf"]


def tiny_point_flow(coupling: str, seed: int = 0, dim: int = 2, std: float = 0.3) -> PointFlow:
    torch.manual_seed(seed)
    flow = PointFlow(dim, hidden=16, num_couplings=6, coupling=coupling, num_components=4).to(F64)
    flow(torch.randn(256, dim, dtype=F64))  # data-dependent init
    perturb(flow, std, seed)
    return flow


@pytest.mark.parametrize("coupling", COUPLINGS)
@pytest.mark.parametrize("dim", [2, 3])
def test_point_flow_inverse_and_logdet(coupling, dim):
    flow = tiny_point_flow(coupling, dim=dim)
    x = 2 * torch.randn(64, dim, dtype=F64)
    z, logdet = flow(x)
    assert torch.allclose(flow.inverse(z), x, atol=1e-10)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], x[i])
        assert abs(torch.linalg.slogdet(jac)[1] - logdet[i]) < 1e-10


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_point_flow_density_integrates_to_one(coupling):
    flow = tiny_point_flow(coupling, seed=1, std=0.1)  # at 0.3 the mixture's tails reach past the grid
    n, half = 801, 12.0
    grid = torch.linspace(-half, half, n, dtype=F64)
    pts = torch.cartesian_prod(grid, grid)  # (n^2, 2)
    with torch.no_grad():
        mass = flow.log_prob(pts).exp().sum() * (grid[1] - grid[0]) ** 2
    assert abs(mass.item() - 1) < 1e-3


def test_mixture_couplings_start_with_distinct_components():
    """Equal components would get equal gradients and stay one logistic: both mixture couplings start with
    a = b = 0 and component means that differ (the authors' Flow++ leaves its output layer at its random init)."""
    torch.manual_seed(0)
    point = PointFlow(2, hidden=8, num_couplings=2, coupling="mixlogcdf", num_components=4).couplings[1]
    a, b, _, means, _ = point._params(torch.randn(5, 2))
    assert (a == 0).all() and (b == 0).all() and means.std(1).min() > 1e-3
    image = next(m for m in FlowPP(1, 4, **SMALL).modules() if isinstance(m, MixLogCDFCoupling))
    a, b, _, means, _ = image._params(torch.randn(2, image.stem.in_channels, 4, 2), None)
    assert (a == 0).all() and (b == 0).all() and means.std(1).min() > 1e-4


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_point_flow_sample_and_learning(coupling):
    torch.manual_seed(0)
    flow = PointFlow(2, hidden=32, num_couplings=4, coupling=coupling)
    a = flow.sample(100, generator=torch.Generator().manual_seed(0))
    assert a.shape == (100, 2) and torch.equal(a, flow.sample(100, generator=torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    t = torch.rand(512) * 4 * math.pi  # a spiral
    data = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) / 4 + 0.05 * torch.randn(512, 2)
    opt = torch.optim.Adam(flow.parameters(), lr=2e-3)
    with torch.no_grad():
        start = -flow.log_prob(data).mean().item()
    for _ in range(150):
        opt.zero_grad()
        (-flow.log_prob(data).mean()).backward()
        opt.step()
    with torch.no_grad():
        assert -flow.log_prob(data).mean().item() < start - 0.25
