"""CDRL pieces against the thesis equations: Eq. 5.3 with f = f_hat / s^2, Eq. 5.4, 5.5-5.7, 5.16."""

import math

import pytest
import torch

from conftest import tiny
from ebmkit.methods import Batch, build_method
from ebmkit.presets import load_preset
from ebmkit.schedules import cdrl_levels

TINY = tiny("cdrl-points", "sampler.steps=3")  # K = 3 for the fast-sampling check


class Quadratic(torch.nn.Module):
    """f_hat(y; lambda) = -c |y - m|^2 per example, for closed-form checks."""

    def __init__(self, c=0.3, m=0.5):
        super().__init__()
        self.c, self.m = c, m

    def forward(self, y, logsnr, label=None):
        return -self.c * (y - self.m).pow(2).flatten(1).sum(1)


@pytest.fixture
def cdrl():
    torch.manual_seed(0)
    return build_method(load_preset("cdrl-points", TINY), (2,))


def test_refine_is_eq_5_3_with_f_over_s2(cdrl):
    lv = cdrl.levels
    t = torch.tensor([0, 2, 4])                       # includes the marginal top level (T = 5)
    y0, x_next = torch.randn(3, 2), torch.randn(3, 2)
    out = cdrl.refine(Quadratic(), y0, x_next, t, None, steps=1, generator=torch.Generator().manual_seed(1))
    eps = torch.randn(3, 2, generator=torch.Generator().manual_seed(1))
    s = lv.step_size[t][:, None]
    grad_f = -2 * 0.3 * (y0 - 0.5) / s**2             # f = f_hat / s_t^2
    recovery = lv.recovery[t][:, None] / lv.sigma[t][:, None] ** 2
    by_hand = y0 + s**2 / 2 * (grad_f - recovery * (y0 - x_next)) + s * eps
    assert torch.allclose(out, by_hand, atol=1e-6)
    # drift of the network term is grad(f_hat) / 2, independent of s_t (sec. 5.4.8.2)
    assert torch.allclose(s**2 / 2 * grad_f, -0.3 * (y0 - 0.5), atol=1e-6)


def test_envelope_keeps_chains_where_noised_data_lives():
    torch.manual_seed(0)
    m = build_method(load_preset("cdrl-points", TINY + ["sampler.envelope=2.0"]), (2,))
    lv, t = m.levels, torch.tensor([0, 2, 4])
    far = torch.full((3, 2), 50.0)                     # a runaway proposal
    out = m.refine(Quadratic(m=50.0), far, far, t, None, steps=2, generator=torch.Generator().manual_seed(1))
    bound = (lv.y_scale[t] * (lv.alpha_bar[t] + 2.0 * lv.sigma_bar[t]))[:, None]
    assert torch.allclose(out, bound.expand(3, 2))     # clamped to +-y_scale (abar + k sbar), per level
    assert m.envelope(t) is not None and build_method(load_preset("cdrl-points", TINY), (2,)).envelope(t) is None


def test_tweedie_is_eq_5_16(cdrl):
    cdrl.preset.sampler.tweedie_coef = 2.0
    lv, x = cdrl.levels, torch.randn(4, 2)
    out = cdrl.tweedie(Quadratic(), x, None)
    y = lv.y_scale[0] * x
    grad_x = lv.y_scale[0] * (-2 * 0.3 * (y - 0.5)) / lv.step_size[0] ** 2
    assert torch.allclose(out, (x + lv.sigma_bar[0] ** 2 * 2.0 * grad_x) / lv.alpha_bar[0], atol=1e-5)


def test_train_step_losses_and_disjoint_gradients(cdrl):
    batch = Batch(x=torch.randn(32, 2))
    losses, metrics = cdrl.train_step(batch, dict(cdrl.nets.items()))
    assert set(losses) == {"ebm", "init"} and set(metrics) == {"energy_data", "energy_sample"}
    assert all(torch.isfinite(v) for v in [*losses.values(), *metrics.values()])
    losses["init"].backward(retain_graph=True)
    assert all(p.grad is None for p in cdrl.nets["ebm"].parameters())     # Eq. 5.6 touches only phi
    assert any(p.grad is not None for p in cdrl.nets["init"].parameters())
    cdrl.nets.zero_grad(set_to_none=True)
    losses["ebm"].backward()
    assert all(p.grad is None for p in cdrl.nets["init"].parameters())    # Eq. 5.5 touches only theta


def test_variance_reduced_pairs_share_noise(cdrl, monkeypatch):
    """Eq. 5.7: with x_0 = 0 the pair is (sbar_t e, sbar_{t+1} e) for one e."""
    seen = {}

    def spy(init, x_next, t, label, generator=None):
        seen["x_next"], seen["t"] = x_next, t
        return x_next, x_next

    monkeypatch.setattr(cdrl, "propose", spy)
    monkeypatch.setattr(cdrl, "refine", lambda ebm, y0, *a, **k: y0)
    real_ebm = cdrl.nets["ebm"]
    captured = {}

    def record(y, logsnr, label=None):
        captured["y"] = y
        return real_ebm(y, logsnr, label)

    cdrl.train_step(Batch(x=torch.zeros(64, 2)), {"ebm": record, "init": cdrl.nets["init"]})
    lv, t = cdrl.levels, seen["t"]
    y_data = captured["y"][:64]
    e_next = seen["x_next"] / lv.sigma_bar[t + 1][:, None]
    e_t = y_data / (lv.y_scale[t] * lv.sigma_bar[t])[:, None]
    assert torch.allclose(e_next, e_t, atol=1e-5)


def test_initializer_proposal_std(cdrl):
    """Eq. 5.4: proposals are N(g, sigma-tilde^2) in y-space (alpha-scaled below the top level)."""
    t = torch.full((20_000,), 1)
    _, y = cdrl.propose(lambda x, l, lab: torch.zeros_like(x), torch.zeros(20_000, 2), t, None)
    assert y.std().item() == pytest.approx(cdrl.levels.init_std[1].item(), rel=0.03)


def test_sampling_shapes_steps_and_labels(cdrl):
    g = torch.Generator().manual_seed(0)
    levels = cdrl.sample_levels(16, g)
    assert len(levels) == cdrl.levels.num_levels + 1 and all(x.shape == (16, 2) for x in levels)
    a = cdrl.sample(10, torch.Generator().manual_seed(3), batch_size=4)
    b = cdrl.sample(10, torch.Generator().manual_seed(3), batch_size=4)
    assert a.shape == (10, 2) and torch.equal(a, b)


def test_zero_steps_samples_with_the_initializer_alone(cdrl, monkeypatch):
    """steps=0 is Algorithm 5 without its Langevin refinement: the same draws as a sampler whose Eq. 5.3 step
    returns the initializer's proposal unchanged."""
    alone = cdrl.sample(6, torch.Generator().manual_seed(4), steps=0)
    monkeypatch.setattr(cdrl, "refine", lambda ebm, y, *rest: y)
    assert torch.equal(alone, cdrl.sample(6, torch.Generator().manual_seed(4)))
    monkeypatch.undo()
    assert not torch.equal(alone, cdrl.sample(6, torch.Generator().manual_seed(4)))  # the refinement moves them


def test_fast_sampling_scales_step_size(cdrl, monkeypatch):
    """sec. 5.4.2: K' < K steps use s * sqrt(K / K')."""
    seen = []
    monkeypatch.setattr(cdrl, "refine", lambda ebm, y, x, t, lab, steps, scale=1.0, *rest: seen.append((steps, scale)) or y)
    cdrl.sample_levels(2, steps=1)
    assert seen and all(s == (1, math.sqrt(3)) for s in seen)


def test_initializer_targets(cdrl, monkeypatch):
    """Without Langevin moves, the 'displacement' target equals g (zero loss); Eq. 5.6's keeps the
    proposal noise, E|sigma-tilde eps|^2 per example."""
    monkeypatch.setattr(cdrl, "refine", lambda ebm, y0, *a, **k: y0)
    batch = Batch(x=torch.randn(4096, 2))
    cdrl.preset.train.init_target = "displacement"
    assert cdrl.train_step(batch, dict(cdrl.nets.items()))[0]["init"].item() < 1e-10
    cdrl.preset.train.init_target = "revised"
    torch.manual_seed(0)
    loss = cdrl.train_step(batch, dict(cdrl.nets.items()))[0]["init"].item()
    expected = 2 * (cdrl.levels.init_std**2).mean().item()  # levels drawn uniformly, 2 dimensions
    assert loss == pytest.approx(expected, rel=0.1)


class Fixed(torch.nn.Module):
    """An initializer that outputs a given tensor, whatever its input."""

    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x, logsnr, label=None):
        return self.out


@pytest.mark.parametrize("level", [0, 2, 4])  # 4: the marginal top level of T = 5
def test_every_initializer_parameterisation_gives_the_same_mean(cdrl, level):
    """Table 5.9 items 4, 5: an x_0 or eps prediction becomes y-hat_t = y_scale_t E[x_t | x_0, x_{t+1}]. By hand in
    float64: x_0 and eps that make y the mean, then each parameterisation must return y."""
    lv64 = cdrl_levels(5, 9.8, -5.1, 0.054, "sigma")  # the preset's schedule, in float64
    t = torch.full((3,), level)
    x_next, y = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    abar, sbar, a, s = lv64.alpha_bar, lv64.sigma_bar, lv64.alpha[level], lv64.sigma[level]
    c0 = abar[level] * s**2 / sbar[level + 1] ** 2  # posterior mean of x_t given (x_0, x_{t+1}), DDPM's Eq. 7
    c1 = a * sbar[level] ** 2 / sbar[level + 1] ** 2
    x0 = (y / lv64.y_scale[level] - c1 * x_next) / c0
    eps = (x_next - abar[level + 1] * x0) / sbar[level + 1]
    for predicts, out in (("y", y), ("x0", x0), ("eps", eps)):
        cdrl.preset.init.predicts = predicts
        g, _ = cdrl.propose(Fixed(out.float()), x_next.float(), t, None)
        assert torch.allclose(g.double(), y, rtol=1e-4, atol=1e-4), predicts


def test_an_initializer_can_learn_from_the_data(cdrl, monkeypatch):
    """init_target 'data' (Table 5.9 item 7) regresses g on y_t = y_scale_t x_t: with g = 0 and x_0 ~ N(0, I) in 2-D
    the loss is E|y_t|^2 = 2 y_scale_t^2 (a VP diffusion keeps E|x_t|^2 = 2)."""
    monkeypatch.setattr(cdrl, "refine", lambda ebm, y0, *a, **k: y0)
    nets = {**cdrl.nets, "init": Fixed(torch.zeros(8192, 2))}
    cdrl.preset.train.init_target = "data"
    torch.manual_seed(0)
    loss = cdrl.train_step(Batch(x=torch.randn(8192, 2)), nets)[0]["init"].item()
    assert loss == pytest.approx(2 * (cdrl.levels.y_scale**2).mean().item(), rel=0.05)


@pytest.mark.parametrize("level", [0, 4])
def test_drl_levels_are_eq_5_3_from_the_noisier_sample(level):
    """Without an initializer (DRL, Table 5.9's first row) a level starts Langevin at y = x_{t+1}, where the
    recovery term's gradient vanishes: one step is y = x + s^2 / 2 grad(f_hat) / s^2 + s eps, and x_t = y / y_scale_t."""
    drl = build_method(load_preset("cdrl-points", TINY + ['init={arch="none"}']), (2,))
    assert set(drl.nets) == {"ebm"} and set(drl.optim_specs()) == {"ebm"}
    x = torch.randn(3, 2)
    out = drl._level(x, nets={"ebm": Quadratic()}, level=level, steps=1, scale=1.0,
                     generator=torch.Generator().manual_seed(1), guidance=None)
    s = drl.levels.step_size[level]
    eps = torch.randn(3, 2, generator=torch.Generator().manual_seed(1))
    by_hand = x + s**2 / 2 * (-2 * 0.3 * (x - 0.5) / s**2) + s * eps
    assert torch.allclose(out, by_hand / drl.levels.y_scale[level], atol=1e-6)


def test_drl_trains_and_samples_with_its_ebm_alone(tmp_path):
    from ebmkit.methods import load_model
    from ebmkit.training import train

    train(load_preset("cdrl-points", TINY + ['init={arch="none"}', "train.iterations=3"]), tmp_path / "r", quiet=True)
    model, _ = load_model(tmp_path / "r" / "model.safetensors")
    assert set(model.components()) == {"ebm", "ebm_ema"}
    assert model.sample(5, torch.Generator().manual_seed(0)).shape == (5, 2)


def test_drl_conditioning_is_the_timestep_embedding_of_the_level():
    """ebm.noise_input 'index': the EBM sees t, embedded as DRL's get_timestep_embedding(t, d) = [sin(t w_i),
    cos(t w_i)], w_i = 10000^(-i / (d/2 - 1)) (by hand), and the method hands it t, not lambda_t."""
    from ebmkit.nets.embedding import NoiseLevelEmbedding

    emb = NoiseLevelEmbedding(8, 16, torch.nn.functional.leaky_relu, position="index")
    seen = []
    emb.dense1.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    emb(torch.tensor([0.0, 3.0]))
    w = torch.tensor([10000.0 ** (-i / 3) for i in range(4)])
    by_hand = torch.cat([torch.sin(torch.tensor([[0.0], [3.0]]) * w), torch.cos(torch.tensor([[0.0], [3.0]]) * w)], 1)
    assert torch.allclose(seen[0], by_hand, atol=1e-6)

    drl = build_method(load_preset("cdrl-points", TINY + ["ebm.noise_input=index"]), (2,))
    inputs = []

    class Recorder(Quadratic):
        def forward(self, y, noise, label=None):
            inputs.append(noise)
            return super().forward(y, noise, label)

    drl.refine(Recorder(), torch.zeros(3, 2), torch.zeros(3, 2), torch.tensor([0, 2, 4]), None, steps=1)
    assert inputs[0].tolist() == [0.0, 2.0, 4.0]
