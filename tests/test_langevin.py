"""The Langevin engine against Eq. 2.3 / 5.3 computed by hand in float64."""

import pytest
import torch

from ebmkit.langevin import langevin

torch.set_default_dtype(torch.float32)


def quadratic(A, b):
    """f(x) = -1/2 x^T A x + b^T x per row; grad f = -A x + b."""
    return lambda x: -0.5 * torch.einsum("bi,ij,bj->b", x, A, x) + x @ b


@pytest.fixture
def problem():
    g = torch.Generator().manual_seed(0)
    d, n = 3, 5
    M = torch.randn(d, d, generator=g, dtype=torch.float64)
    A = M @ M.T + torch.eye(d, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    anchor = torch.randn(n, d, generator=g, dtype=torch.float64)
    return A, b, x0, anchor


def test_one_step_equals_equation(problem):
    A, b, x0, anchor = problem
    s = torch.tensor([0.1, 0.2, 0.05, 0.3, 0.15], dtype=torch.float64)  # per-sample step sizes
    prec = torch.tensor([4.0, 4.0, 0.0, 1.0, 2.0], dtype=torch.float64)  # 1 / sigma^2, 0 = marginal
    out = langevin(quadratic(A, b), x0, step_size=s, steps=1, anchor=anchor, anchor_precision=prec,
                   noise_weight=0.7, generator=torch.Generator().manual_seed(3)).x
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    grad = -x0 @ A.T + b
    s_ = s[:, None]
    by_hand = x0 + s_**2 / 2 * (grad - prec[:, None] * (x0 - anchor)) + 0.7 * s_ * eps  # Eq. 5.3
    assert torch.allclose(out, by_hand, atol=1e-12, rtol=0)


def test_noise_weight_zero_is_gradient_ascent(problem):
    A, b, x0, _ = problem
    out = langevin(quadratic(A, b), x0, step_size=0.1, steps=2, noise_weight=0.0).x
    x = x0
    for _ in range(2):
        x = x + 0.005 * (-x @ A.T + b)
    assert torch.allclose(out, x, atol=1e-12, rtol=0)


def test_clamps_projection_and_trajectory(problem):
    A, b, x0, _ = problem
    keep = torch.zeros_like(x0)
    keep[:, 0] = 1  # first coordinate observed
    calls = []

    def project(x, k):
        calls.append(k)
        return keep * x0 + (1 - keep) * x

    res = langevin(quadratic(A, b), x0, step_size=1.0, steps=4, drift_clamp=0.01, clamp=(-0.5, 0.5),
                   project=project, record=True, generator=torch.Generator().manual_seed(0))
    assert calls == [0, 1, 2, 3]
    assert res.trajectory.shape == (5, *x0.shape)
    assert torch.equal(res.trajectory[0], x0) and torch.equal(res.trajectory[-1], res.x)
    assert torch.equal(res.x[:, 0], x0[:, 0])
    assert res.x[:, 1:].abs().max() <= 0.5
    # Noiseless drift clamp: each step moves at most 0.01 per coordinate before noise.
    res2 = langevin(quadratic(A, b), x0, step_size=1.0, steps=3, drift_clamp=0.01, noise_weight=0.0)
    assert (res2.x - x0).abs().max() <= 0.03 + 1e-12


def test_samples_a_gaussian():
    """Many chains on N(mu, Sigma) reach its mean and covariance (small-step bias < tolerance)."""
    A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    mu = torch.tensor([1.0, -2.0], dtype=torch.float64)
    f = quadratic(A, A @ mu)
    x0 = torch.zeros(20_000, 2, dtype=torch.float64)
    x = langevin(f, x0, step_size=0.2, steps=1500, generator=torch.Generator().manual_seed(1)).x
    assert torch.allclose(x.mean(0), mu, atol=0.03)
    assert torch.allclose(torch.cov(x.T), torch.linalg.inv(A), atol=0.03)


def test_gradients_do_not_leak_to_parameters():
    w = torch.nn.Parameter(torch.tensor(2.0))
    x = langevin(lambda x: -(w * x**2).sum(1), torch.ones(4, 3), step_size=0.1, steps=3).x
    assert w.grad is None and not x.requires_grad


def test_differentiable_chain_has_the_closed_form_jacobian():
    """Noiseless steps on f = -c/2 |x|^2 map x0 to (1 - s^2 c / 2)^K x0: the gradient through the chain
    with respect to x0 is that factor, and the values equal the engine's ordinary (detached) run."""
    c, s, k = 1.5, 0.3, 5
    x0 = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    run = langevin(lambda x: -0.5 * c * x.pow(2).sum(1), x0, step_size=s, steps=k, noise_weight=0.0,
                   differentiable=True)
    (grad,) = torch.autograd.grad(run.x.sum(), x0)
    factor = (1 - s * s * c / 2) ** k
    assert torch.allclose(grad, torch.full_like(x0, factor))
    plain = langevin(lambda x: -0.5 * c * x.pow(2).sum(1), x0, step_size=s, steps=k, noise_weight=0.0)
    assert not plain.x.requires_grad
    assert torch.allclose(run.x.detach(), plain.x) and torch.allclose(plain.x, factor * x0.detach())
