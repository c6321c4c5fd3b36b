"""The von Mises-Fisher distribution (sec. 3.4.4, Eq. 3.21) against numerical integration with scipy.

The references never call Bessel functions: under vMF(mu, kappa) on S^{m-1}, s = 1 - mu^T xi has the density
proportional to e^{-kappa s} s^a (2 - s)^a on [0, 2], a = (m - 3)/2 (the slices of the sphere), which quad
integrates with its algebraic weight. From it: the normaliser, A_m = E[w], Var[w] and Eq. 3.21's KL."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from ebmkit.errors import EbmkitError
from ebmkit.nerf import vmf
from ebmkit.nerf.vmf import angle_of, kl_to_uniform, log_normaliser, log_prob, mean_resultant, sample, unit_of

F64 = torch.float64
KAPPAS = [1e-6, 1e-3, 0.3, 0.999, 1.0, 1.001, 4.0, 60.0, 1e3, 5e3, 1e5]


def s_integral(kappa, m, f=lambda s: 1.0, upto=2.0):
    """int_0^upto f(s) e^{-kappa s} s^a (2 - s)^a ds, a = (m-3)/2; the tail beyond s = 60/kappa (a fraction
    below e^-60 of the mass) is cut so that quad sees the peak at s = 0."""
    a = (m - 3) / 2
    top = min(upto, 60 / kappa) if kappa > 0 else upto
    opts = dict(epsabs=0, epsrel=1e-13, limit=200)
    if top < 2:
        return quad(lambda s: f(s) * math.exp(-kappa * s) * (2 - s) ** a, 0, top, weight="alg", wvar=(a, 0), **opts)[0]
    return quad(lambda s: f(s) * math.exp(-kappa * s), 0, 2, weight="alg", wvar=(a, a), **opts)[0]


def reference(kappa, m):
    """Quadrature references: log C_m, A_m = E[w], Var[w], E[1 - w^2] and the KL of Eq. 3.21."""
    z = s_integral(kappa, m)
    mean_s = s_integral(kappa, m, lambda s: s) / z
    var = s_integral(kappa, m, lambda s: (s - mean_s) ** 2) / z
    log_slices = math.log(2) + (m - 1) / 2 * math.log(math.pi) - math.lgamma((m - 1) / 2)  # log|S^{m-2}|
    # log p/u = -kappa s - log z + log z0 for the vMF density p and the uniform density u
    kl = -kappa * mean_s - math.log(z) + math.log(s_integral(0.0, m))
    return dict(log_c=-log_slices - kappa - math.log(z), mean=1 - mean_s, var=var,
                perp=s_integral(kappa, m, lambda s: s * (2 - s)) / z, kl=kl)


def unit_mean(m):
    mu = torch.tensor([(-1) ** i * (i + 1.0) for i in range(m)], dtype=F64)
    return mu / mu.norm()


@pytest.mark.parametrize("m", [2, 3, 5])
def test_kl_normaliser_and_mean_resultant_match_numerical_integration(m):
    """quad is asked for a relative precision of 1e-13 on each integral, the implementation works in float64:
    relative tolerances 1e-10 to 1e-12. At tiny kappa the KL (~kappa^2 / (2m), also checked) is the
    difference log z(0) - log z(kappa) - kappa E[s] of O(kappa) terms, so there the comparison is absolute:
    1e-14 (observed differences are below 5e-16)."""
    kappa = torch.tensor(KAPPAS, dtype=F64)
    kl, log_c, a = kl_to_uniform(kappa, m), log_normaliser(kappa, m), mean_resultant(kappa, m)
    for i, k in enumerate(KAPPAS):
        ref = reference(k, m)
        assert kl[i].item() == pytest.approx(ref["kl"], rel=1e-10, abs=1e-14)
        assert log_c[i].item() == pytest.approx(ref["log_c"], rel=1e-12, abs=1e-12)
        assert a[i].item() == pytest.approx(ref["mean"], rel=1e-11, abs=1e-15)
    small = kappa < 1e-2                                                                  # KL ~ kappa^2 / (2m)
    assert torch.allclose(kl[small] / kappa[small] ** 2, torch.full_like(kl[small], 1 / (2 * m)), rtol=1e-3)


@pytest.mark.parametrize("kappa", [0.0, 1e-4, 1.0, 30.0, 1e3])
def test_density_integrates_to_one(kappa):
    """m = 2: the trapezoid rule on a periodic analytic integrand converges geometrically (4096 points,
    spacing 1.5e-3 against a peak width 1/sqrt(kappa) >= 0.03). m = 3: the slice at mu^T xi = w has
    length 2 pi, and 400-point Gauss-Legendre in s = 1 - w on [0, min(2, 60/kappa)] integrates the
    exponential integrand exactly to rounding."""
    theta = torch.arange(4096, dtype=F64) * 2 * math.pi / 4096
    lp = log_prob(unit_of(theta), unit_of(torch.tensor(0.7, dtype=F64)), torch.tensor(kappa, dtype=F64))
    assert (lp.exp().sum() * 2 * math.pi / 4096).item() == pytest.approx(1, abs=1e-12)

    mu = unit_mean(3)
    perp = torch.linalg.cross(mu, torch.tensor([0.0, 0.0, 1.0], dtype=F64))
    perp = perp / perp.norm()
    nodes, weights = np.polynomial.legendre.leggauss(400)
    top = min(2.0, 60 / kappa) if kappa > 0 else 2.0
    s = torch.tensor((nodes + 1) * top / 2, dtype=F64)                                    # (400,) in [0, top]
    xi = (1 - s)[:, None] * mu + (s * (2 - s)).sqrt()[:, None] * perp
    lp = log_prob(xi, mu, torch.tensor(kappa, dtype=F64))
    total = 2 * math.pi * (lp.exp() * torch.tensor(weights, dtype=F64)).sum() * top / 2
    assert total.item() == pytest.approx(1, abs=1e-12)


CASES = [(2, 0.0), (2, 0.5), (2, 4.0), (2, 50.0), (2, 1e4), (3, 2.0), (3, 100.0), (5, 10.0)]


@pytest.mark.parametrize("m,kappa", CASES)
def test_sampler_matches_the_distribution(m, kappa):
    """200k draws with a fixed seed. Mean of w = mu^T xi within 5 standard errors sqrt(Var[w] / n) of A_m.
    The mean's component orthogonal to mu has squared norm ~ E[1 - w^2] / n chi^2_{m-1} / (m - 1): within
    5 sqrt(E[1 - w^2] / n). Empirical CDF of s = 1 - w at 19 sample quantiles within the DKW bound
    sqrt(log(2 / 1e-6) / (2 n)) of the quad CDF: a correct sampler fails either with probability < 1e-6."""
    n = 200_000
    mu = unit_mean(m)
    xi = sample(mu.expand(n, m), torch.full((n,), kappa, dtype=F64), torch.Generator().manual_seed(0))
    ref = reference(kappa, m)
    assert xi.shape == (n, m)
    assert (xi.norm(dim=-1) - 1).abs().max() < 1e-12
    w = xi @ mu
    assert abs(w.mean().item() - ref["mean"]) < 5 * math.sqrt(ref["var"] / n)
    mean = xi.mean(0)
    assert (mean - (mean @ mu) * mu).norm() < 5 * math.sqrt(ref["perp"] / n)
    s = np.sort((1 - w).numpy())
    z = s_integral(kappa, m)
    for q in np.arange(1, 20) / 20:
        point = float(s[int(q * n)])
        empirical = np.searchsorted(s, point, side="right") / n
        assert abs(empirical - s_integral(kappa, m, upto=point) / z) < math.sqrt(math.log(2 / 1e-6) / (2 * n))


@pytest.mark.parametrize("m", [2, 3, 5])
def test_kappa_gradients_match_finite_differences_and_the_variance(m):
    """Float64. Autograd against central differences of the forward (h = 1e-5 max(kappa, 1): truncation ~1e-10
    relative, rounding ~1e-16 |f| / h), and against the exact d KL / d kappa = kappa Var[w],
    d log C / d kappa = -E[w], d A / d kappa = Var[w] from quad. Both branches of every closed form are hit
    (series below 1, Bessel above, the large-kappa expansion of A' above 1000 m^2)."""
    values = [1e-4, 0.5, 0.999, 1.001, 7.0, 300.0, 5e3, 1e5]
    kappa = torch.tensor(values, dtype=F64, requires_grad=True)
    for fn, exact in ((kl_to_uniform, lambda r, k: k * r["var"]), (log_normaliser, lambda r, k: -r["mean"]),
                      (mean_resultant, lambda r, k: r["var"])):
        (grad,) = torch.autograd.grad(fn(kappa, m).sum(), kappa)
        h = 1e-5 * kappa.detach().clamp(min=1)
        fd = (fn(kappa.detach() + h, m) - fn(kappa.detach() - h, m)) / (2 * h)
        assert torch.allclose(grad, fd, rtol=1e-5, atol=0), fn.__name__
        for i, k in enumerate(values):
            assert grad[i].item() == pytest.approx(exact(reference(k, m), k), rel=1e-8, abs=1e-16), (fn.__name__, k)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_extreme_concentrations_are_finite(dtype):
    kappa = torch.tensor([0.0, 1e-30, 1e-12, 1e8, 1e12], dtype=dtype, requires_grad=True)
    for m in (2, 3):
        kl = kl_to_uniform(kappa, m)
        (grad,) = torch.autograd.grad(kl.sum() + log_normaliser(kappa, m).sum() + mean_resultant(kappa, m).sum(),
                                      kappa)
        assert kl.dtype == dtype and torch.isfinite(kl).all() and torch.isfinite(grad).all()
        assert kl[0].item() == 0 and (kl >= 0).all()
        uniform = -math.log(2 * math.pi ** (m / 2) / math.gamma(m / 2))                    # -log|S^{m-1}|
        assert log_normaliser(kappa[:1], m).item() == pytest.approx(uniform)
    mu = unit_of(torch.tensor([0.3, 0.3], dtype=dtype))
    xi = sample(mu, torch.tensor([0.0, 1e8], dtype=dtype), torch.Generator().manual_seed(0))
    assert torch.isfinite(xi).all() and torch.allclose(xi.norm(dim=-1), torch.ones(2, dtype=dtype))
    assert (angle_of(xi[1]) - 0.3).abs() < 1e-3                                           # ~ 1 / sqrt(kappa)


def test_kl_increases_with_concentration():
    kappa = torch.logspace(-4, 6, 200, dtype=F64)
    for m in (2, 3, 5):
        assert (kl_to_uniform(kappa, m).diff() > 0).all()


def test_sample_gradients_flow_through_the_reflection_and_the_proposal():
    """m = 2, mu = unit_of(theta): the estimator of d E[a^T xi] / d theta = A a^T unit'(theta) is
    a^T H'(theta) mean(xi') with |H'| = 1, so its error is at most the error of mean(xi') around (A, 0):
    5 sqrt((Var[w] + E[1 - w^2]) / n). The kappa-gradient goes through Wood's h(eps, kappa) only
    (no g_cor): every draw moves towards mu as kappa grows."""
    n, kappa0 = 200_000, 4.0
    theta = torch.tensor(1.2, dtype=F64, requires_grad=True)
    kappa = torch.full((n, 1), kappa0, dtype=F64, requires_grad=True)
    xi = sample(unit_of(theta).expand(n, 2), kappa, torch.Generator().manual_seed(1))
    a = unit_of(torch.tensor(-0.4, dtype=F64))
    (d_theta,) = torch.autograd.grad((xi @ a).mean(), theta, retain_graph=True)
    ref = reference(kappa0, 2)
    exact = ref["mean"] * (a @ torch.stack([-theta.sin(), theta.cos()])).item()
    assert abs(d_theta.item() - exact) < 5 * math.sqrt((ref["var"] + ref["perp"]) / n)
    (d_kappa,) = torch.autograd.grad((xi @ unit_of(theta.detach())).sum(), kappa)
    assert torch.isfinite(d_kappa).all() and (d_kappa > 0).all()


@pytest.mark.parametrize("eps", [1 - 1e-9, 1e-50, 0.0, 1.0])
def test_float32_draws_at_the_ends_of_the_beta_keep_finite_gradients(monkeypatch, eps):
    """A Beta draw within 3e-8 of 0 or 1 used to round to the end point in float32, where the
    kappa-gradient of the draw was 0 / 0 (about once per thousand training iterations)."""
    monkeypatch.setattr(vmf, "_wood_accepted", lambda kappa, *a: torch.full(kappa.shape, eps, dtype=F64))
    mu = unit_of(torch.tensor([0.9, -2.0])).requires_grad_(True)
    kappa = torch.tensor([5.0, 300.0], requires_grad=True)
    xi = sample(mu, kappa)
    assert xi.dtype == torch.float32 and torch.allclose(xi.norm(dim=-1), torch.ones(2))
    (xi @ torch.tensor([0.3, -0.7])).sum().backward()
    assert torch.isfinite(mu.grad).all() and torch.isfinite(kappa.grad).all()


def test_sample_shapes_seeds_poles_and_the_round_cap():
    mu = unit_mean(3).expand(6, 3)
    kappa = torch.tensor([[0.0], [0.1], [1.0], [10.0], [100.0], [1e4]], dtype=F64)
    a = sample(mu, kappa, torch.Generator().manual_seed(5))
    assert a.shape == (6, 3) and torch.equal(a, sample(mu, kappa.flatten(), torch.Generator().manual_seed(5)))
    assert not torch.equal(a, sample(mu, kappa, torch.Generator().manual_seed(6)))
    e1 = torch.tensor([1.0, 0.0], dtype=F64).expand(50_000, 2)                           # Householder is the identity
    w = sample(e1, torch.full((50_000,), 3.0, dtype=F64), torch.Generator().manual_seed(0))[:, 0]
    ref = reference(3.0, 2)
    assert abs(w.mean().item() - ref["mean"]) < 5 * math.sqrt(ref["var"] / 50_000)
    with pytest.raises(EbmkitError, match="rejected after 1 rounds"):
        sample(e1[:1000], torch.ones(1000, dtype=F64), torch.Generator().manual_seed(0), max_rounds=1)


def test_angles_and_unit_vectors_round_trip():
    angle = torch.linspace(-3.1, 3.1, 50, dtype=F64)
    assert torch.allclose(angle_of(unit_of(angle)), angle, atol=1e-15)
    assert torch.allclose(unit_of(torch.tensor(0.0)), torch.tensor([1.0, 0.0]))
    assert torch.allclose(angle_of(3 * unit_of(angle)), angle, atol=1e-15)
