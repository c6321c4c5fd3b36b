"""The von Mises-Fisher distribution on S^{m-1} for unknown camera poses (thesis sec. 3.4.4, Eq. 3.21).

p(xi | mu, kappa) = C_m(kappa) exp(kappa mu^T xi),  C_m(kappa) = kappa^{m/2-1} / ((2 pi)^{m/2} I_{m/2-1}(kappa)),
with unit mu, xi in R^m and kappa >= 0; kappa = 0 is the uniform distribution, the prior of the poses.
The poses of NeRF-LEBM are angles, each a unit vector of the circle (m = 2): unit_of(angle) = (cos, sin), so
angle 0 is e1 = (1, 0).

Numerics. With v = m/2 - 1 and phi_m(kappa) = log[I_v(kappa) Gamma(v + 1) / (kappa/2)^v] (>= 0, 0 at kappa = 0):
  log C_m(kappa) = -log|S^{m-1}| - phi_m(kappa),   |S^{m-1}| = 2 pi^{m/2} / Gamma(m/2),
  d phi_m / d kappa = A_m(kappa) = I_{m/2}(kappa) / I_{m/2-1}(kappa)   (the mean resultant E[mu^T xi]),
  A_m' = 1 - A_m^2 - (m - 1) A_m / kappa   (= Var[mu^T xi] >= 0),
so Eq. 3.21 reads KL = kappa A_m - phi_m: the constants cancel exactly and both terms are O(kappa^2) at
small kappa. Below kappa = 1, phi_m and A_m / kappa come from the power series of I_v; above, from the
exponentially scaled Bessel functions (torch's i0e, i1e for orders 0 and 1, so m = 2 runs on any device;
scipy's ive on the CPU otherwise, with Hankel's expansion above kappa = 1e8; fine for m up to about 100).
A_m' switches to its large-kappa expansion above kappa = 1000 m^2, where the direct formula cancels. All of
it runs in float64 and returns the input's dtype; gradients in kappa come from these closed forms (custom
autograd functions).

Sampling follows the hyperspherical VAE (Davidson et al. 2018): Wood's (1994) rejection sampler for the
component w = mu^T xi, a uniform direction orthogonal to e1, and the Householder reflection taking e1 to mu.
"""

import math

import scipy.special
import torch

from ebmkit.errors import EbmkitError

SERIES_BELOW = 1.0         # kappa below which the power series of I_v is used (16 terms: error < 1e-16)
SERIES_TERMS = 16
ASYMPTOTIC_ABOVE = 1000.0  # times m^2: kappa above which A_m' uses its large-kappa expansion
HANKEL_ABOVE = 1e8         # kappa above which I_v (v other than 0, 1) uses Hankel's large-argument expansion


def log_sphere_area(m: int) -> float:
    """log |S^{m-1}| = log(2 pi^{m/2} / Gamma(m/2)); the uniform density is its negative exponential."""
    return math.log(2) + m / 2 * math.log(math.pi) - math.lgamma(m / 2)


def log_normaliser(kappa: torch.Tensor, m: int) -> torch.Tensor:
    """log C_m(kappa) of sec. 3.4.4, kappa (...) >= 0 -> (...); -log|S^{m-1}| at kappa = 0."""
    return -log_sphere_area(m) - _LogBesselScaled.apply(kappa, m)


def mean_resultant(kappa: torch.Tensor, m: int) -> torch.Tensor:
    """A_m(kappa) = I_{m/2}(kappa) / I_{m/2-1}(kappa) = E[mu^T xi], kappa (...) -> (...) in [0, 1)."""
    return _MeanResultant.apply(kappa, m)


def kl_to_uniform(kappa: torch.Tensor, m: int) -> torch.Tensor:
    """Eq. 3.21: KL(vMF(mu, kappa) || U(S^{m-1})) = kappa A_m(kappa) + log C_m(kappa) + log|S^{m-1}|,
    computed as kappa A_m - phi_m; kappa (...) -> (...) >= 0, 0 at kappa = 0, ~ (m-1)/2 log kappa when large."""
    return kappa * mean_resultant(kappa, m) - _LogBesselScaled.apply(kappa, m)


def log_prob(xi: torch.Tensor, mu: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """log p_vMF(xi | mu, kappa) = log C_m(kappa) + kappa mu^T xi: xi, mu (..., m) unit, kappa (...) -> (...)."""
    return log_normaliser(kappa, mu.shape[-1]) + kappa * (mu * xi).sum(-1)


def sample(mu: torch.Tensor, kappa: torch.Tensor, generator: torch.Generator | None = None,
           max_rounds: int = 100) -> torch.Tensor:
    """Reparameterised draws xi (..., m) from vMF(mu, kappa): mu (..., m) unit, kappa (...) or (..., 1).

    What is differentiated: xi = H(mu) [w, sqrt(1 - w^2) v] with H the Householder reflection taking e1 to
    mu, so gradients flow to mu through H exactly; w = h(eps, kappa) is Wood's proposal map at the accepted
    Beta draw eps, so gradients flow to kappa through h with eps held fixed. That is the hyperspherical VAE's
    g_rep alone: its correction g_cor, the score of the acceptance probability, is NOT included, so the
    kappa-gradient of E[f(xi)] is biased: for m = 2 and f = mu^T xi, E[g_rep] is 0.34 against the exact
    A_2' = 0.46 at kappa = 0.5, 0.027 against 0.038 at kappa = 4, within 3% at kappa = 50. The KL of
    Eq. 3.21, the other place kappa enters the loss, has exact gradients.
    The accept/reject decisions and v (uniform on the sphere orthogonal to e1) carry no gradient.
    Rejection runs at most `max_rounds` vectorised rounds (each accepts above 65% of draws, measured for
    m = 2 to 20 and kappa up to 1e4), then raises EbmkitError."""
    m = mu.shape[-1]
    if kappa.dim() == mu.dim():
        kappa = kappa.squeeze(-1)
    kappa = kappa.to(mu.dtype).expand(mu.shape[:-1])                                      # (...)
    # w and sin in float64: in float32 a Beta draw within 3e-8 of 0 or 1 (about 1 in 10^4 for m = 2)
    # rounds to the end point, where sqrt's gradient is 0 / 0 and the kappa-gradient came out NaN.
    eps = _wood_accepted(kappa.detach(), m, generator, max_rounds)                         # (...) in (0, 1), float64
    b = _wood_b(kappa.double(), m)                                                        # (...) differentiable
    denom = 1 - (1 - b) * eps
    w = 1 - 2 * b * eps / denom                                                           # (...) Wood's h(eps, kappa)
    sin = 2 * (b * eps * (1 - eps)).clamp(min=torch.finfo(eps.dtype).tiny).sqrt() / denom  # sqrt(1 - w^2), exact
    v = _uniform_sphere(mu.shape[:-1], m - 1, generator, mu.dtype, mu.device)              # (..., m-1)
    around_e1 = torch.cat([w.to(mu.dtype)[..., None], sin.to(mu.dtype)[..., None] * v], -1)  # (..., m)
    return _householder(around_e1, mu)


def unit_of(angle: torch.Tensor) -> torch.Tensor:
    """Angles (...) in radians -> unit vectors (..., 2) = (cos, sin) on the circle S^1."""
    return torch.stack([angle.cos(), angle.sin()], -1)


def angle_of(unit: torch.Tensor) -> torch.Tensor:
    """Vectors (..., 2) (need not be unit) -> angles (...) in (-pi, pi]; inverse of unit_of."""
    return torch.atan2(unit[..., 1], unit[..., 0])


# --- Bessel functions in float64 --------------------------------------------------------------------------


def _series(kappa: torch.Tensor, b: float) -> torch.Tensor:
    """0F1(; b; kappa^2 / 4) - 1 = sum_{k >= 1} (kappa^2/4)^k / (k! (b)_k) for kappa <= 1, float64 (...)."""
    x = kappa**2 / 4
    term, total = torch.ones_like(x), torch.zeros_like(x)
    for k in range(1, SERIES_TERMS + 1):
        term = term * x / (k * (b + k - 1))
        total = total + term
    return total


def _ive(order: float, kappa: torch.Tensor) -> torch.Tensor:
    """Exponentially scaled I_order(kappa) = I_order(kappa) exp(-kappa) of a float64 tensor (...)."""
    if order == 0:
        return torch.special.i0e(kappa)
    if order == 1:
        return torch.special.i1e(kappa)
    scipy_ive = torch.as_tensor(scipy.special.ive(order, kappa.detach().cpu().numpy()), device=kappa.device)
    # scipy's ive returns nan beyond kappa ~ 1e9; there Hankel's expansion is exact to rounding (mu <~ 1e4)
    k, mu = kappa.clamp(min=1), 4 * order**2
    hankel = (1 - (mu - 1) / (8 * k) + (mu - 1) * (mu - 9) / (2 * (8 * k) ** 2)) / (2 * math.pi * k).sqrt()
    return torch.where(kappa > HANKEL_ABOVE, hankel, scipy_ive)


def _phi(kappa: torch.Tensor, m: int) -> torch.Tensor:
    """phi_m(kappa) = log[I_v(kappa) Gamma(v + 1) / (kappa/2)^v], v = m/2 - 1, float64 (...)."""
    v = m / 2 - 1
    small = torch.log1p(_series(kappa.clamp(max=SERIES_BELOW), v + 1))
    big = kappa.clamp(min=SERIES_BELOW)
    large = _ive(v, big).log() + big - v * (big / 2).log() + math.lgamma(v + 1)
    return torch.where(kappa < SERIES_BELOW, small, large)


def _ratio_over_kappa(kappa: torch.Tensor, m: int) -> torch.Tensor:
    """A_m(kappa) / kappa, float64 (...), finite at kappa = 0 (where it is 1/m)."""
    v = m / 2 - 1
    low = kappa.clamp(max=SERIES_BELOW)
    small = (1 + _series(low, v + 2)) / (m * (1 + _series(low, v + 1)))
    big = kappa.clamp(min=SERIES_BELOW)
    large = _ive(v + 1, big) / (_ive(v, big) * big)
    return torch.where(kappa < SERIES_BELOW, small, large)


def _ratio_derivative(kappa: torch.Tensor, m: int) -> torch.Tensor:
    """A_m'(kappa) = 1 - A^2 - (m-1) A / kappa = Var[mu^T xi], float64 (...); large-kappa expansion
    (m-1)/(2 k^2) - (m-1)(m-3)/(4 k^3) - 3(m-1)(m-3)/(8 k^4) where the direct formula cancels."""
    r = _ratio_over_kappa(kappa, m)
    direct = 1 - (kappa * r) ** 2 - (m - 1) * r
    k = kappa.clamp(min=1)
    expansion = (m - 1) / (2 * k**2) - (m - 1) * (m - 3) / (4 * k**3) - 3 * (m - 1) * (m - 3) / (8 * k**4)
    return torch.where(kappa > ASYMPTOTIC_ABOVE * m**2, expansion, direct).clamp(min=0)


class _LogBesselScaled(torch.autograd.Function):
    """phi_m(kappa), with d phi_m / d kappa = A_m(kappa)."""

    @staticmethod
    def forward(ctx, kappa, m):
        ctx.save_for_backward(kappa)
        ctx.m = m
        return _phi(kappa.double(), m).to(kappa.dtype)

    @staticmethod
    def backward(ctx, grad):
        (kappa,) = ctx.saved_tensors
        return grad * mean_resultant(kappa, ctx.m), None


class _MeanResultant(torch.autograd.Function):
    """A_m(kappa), with d A_m / d kappa = A_m'(kappa)."""

    @staticmethod
    def forward(ctx, kappa, m):
        ctx.save_for_backward(kappa)
        ctx.m = m
        k = kappa.double()
        return (k * _ratio_over_kappa(k, m)).to(kappa.dtype)

    @staticmethod
    def backward(ctx, grad):
        (kappa,) = ctx.saved_tensors
        return grad * _ratio_derivative(kappa.double(), ctx.m).to(kappa.dtype), None


# --- Sampling ---------------------------------------------------------------------------------------------


def _wood_b(kappa: torch.Tensor, m: int) -> torch.Tensor:
    """Wood's b = (-2 kappa + sqrt(4 kappa^2 + (m-1)^2)) / (m-1), written without cancellation; 1 at kappa = 0."""
    return (m - 1) / (2 * kappa + (4 * kappa**2 + (m - 1) ** 2).sqrt())


def _beta_symmetric(shape: torch.Size, m: int, generator, device) -> torch.Tensor:
    """Beta((m-1)/2, (m-1)/2) draws (...) in float64 as X / (X + Y), X, Y independent chi^2_{m-1}."""
    g = torch.randn(*shape, 2, m - 1, generator=generator, dtype=torch.float64, device=device)
    chi2 = (g**2).sum(-1)                                                                 # (..., 2)
    return chi2[..., 0] / chi2.sum(-1)


def _wood_accepted(kappa: torch.Tensor, m: int, generator, max_rounds: int) -> torch.Tensor:
    """Wood's (1994) rejection sampler, vectorised: the accepted Beta draws eps (...), float64, no gradient.
    Proposal w = 1 - s with s = 2 b eps / (1 - (1 - b) eps); accept when
    kappa w + (m-1) log(1 - x0 w) - c >= log u, x0 = (1 - b)/(1 + b), c = kappa x0 + (m-1) log(1 - x0^2),
    evaluated with q = 1 - x0 = 2b / (1 + b) so that nothing cancels at large kappa."""
    k = kappa.double()
    b = _wood_b(k, m)
    q = 2 * b / (1 + b)
    log_c = (m - 1) * (q * (2 - q)).log()                                                 # (m-1) log(1 - x0^2)
    eps = torch.full_like(k, float("nan"))
    pending = torch.ones_like(k, dtype=torch.bool)
    for _ in range(max_rounds):
        e = _beta_symmetric(k.shape, m, generator, k.device)
        u = torch.rand(k.shape, generator=generator, dtype=torch.float64, device=k.device)
        s = 2 * b * e / (1 - (1 - b) * e)                                                 # 1 - w
        log_ratio = k * (q - s) + (m - 1) * (q + s - q * s).log() - log_c                 # kappa (w - x0) + ...
        accept = pending & (log_ratio >= u.log())
        eps = torch.where(accept, e, eps)
        pending = pending & ~accept
        if not pending.any():
            return eps
    raise EbmkitError(f"vMF sampling: {int(pending.sum())} of {pending.numel()} draws still rejected after "
                      f"{max_rounds} rounds (kappa must be finite and >= 0)", exit_code=1)


def _uniform_sphere(shape: torch.Size, n: int, generator, dtype, device) -> torch.Tensor:
    """Uniform unit vectors (..., n) on S^{n-1} (normalised Gaussians; +-1 when n = 1)."""
    g = torch.randn(*shape, n, generator=generator, dtype=dtype, device=device)
    return g / g.norm(dim=-1, keepdim=True)


def _householder(x: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Reflect x (..., m) by H = I - 2 u u^T / u^T u, u = e1 - mu, which takes e1 to the unit mu (..., m).
    At mu = e1, u = 0 and H is the identity (the distribution around e1 is symmetric, so either is exact)."""
    u = torch.cat([1 - mu[..., :1], -mu[..., 1:]], -1)                                  # (..., m)
    uu = (u * u).sum(-1, keepdim=True).clamp(min=torch.finfo(mu.dtype).tiny)            # (..., 1)
    return x - 2 * u * (u * x).sum(-1, keepdim=True) / uu
