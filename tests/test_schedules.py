"""CDRL schedule quantities against their closed forms and the values in the implementation notes."""

import math

import pytest
import torch

from ebmkit.schedules import cdrl_levels, logsnr_cosine

PAPER = dict(num_levels=6, logsnr_max=9.8, logsnr_min=-5.1, step_coef=0.054)


def test_logsnr_endpoints_and_closed_form():
    lam = logsnr_cosine(torch.tensor([0.0, 0.5, 1.0]), 9.8, -5.1)
    assert lam[0].item() == pytest.approx(9.8, abs=1e-12)
    assert lam[2].item() == pytest.approx(-5.1, abs=1e-12)
    b = math.atan(math.exp(-4.9))
    a = math.atan(math.exp(2.55)) - b
    assert lam[1].item() == pytest.approx(-2 * math.log(math.tan(a * 0.5 + b)), rel=1e-12)


def test_six_levels_match_implementation_notes():
    lv = cdrl_levels(**PAPER)
    expected = [9.8, 2.69, 1.20, 0.14, -0.88, -2.17, -5.1]
    assert lv.logsnr.tolist() == pytest.approx(expected, abs=0.01)
    # Step sizes s_t quoted in the implementation notes for the 32x32 setting.
    assert lv.step_size.tolist() == pytest.approx([0.005, 0.049, 0.089, 0.129, 0.172, 0.219], abs=1.5e-3)


def test_variance_preserving_and_per_level_identities():
    lv = cdrl_levels(**PAPER)
    assert torch.allclose(lv.alpha_bar**2 + lv.sigma_bar**2, torch.ones(7, dtype=torch.float64))
    # abar_{t+1}^2 = alpha_{t+1}^2 abar_t^2 and sbar_{t+1}^2 = alpha_{t+1}^2 sbar_t^2 + sigma_{t+1}^2.
    assert torch.allclose(lv.alpha_bar[1:], lv.alpha * lv.alpha_bar[:-1])
    assert torch.allclose(lv.sigma_bar[1:] ** 2, lv.alpha**2 * lv.sigma_bar[:-1] ** 2 + lv.sigma**2)
    # Eq. 5.14 and the note that 0.054 = 4e-4 / sbar(lambda_max).
    assert torch.allclose(lv.step_size**2, 0.054 * lv.sigma_bar[:-1] * lv.sigma**2)
    assert 4e-4 / lv.sigma_bar[0].item() == pytest.approx(0.054, rel=0.01)
    # Top level is marginal: no alpha scaling, no recovery term.
    assert lv.y_scale[-1] == 1 and lv.recovery.tolist() == [1, 1, 1, 1, 1, 0]
    assert torch.allclose(lv.y_scale[:-1], lv.alpha[:-1])
    assert lv.loss_weight[0] == 1 and torch.all(lv.loss_weight[1:] < 1)


def test_initializer_std_is_true_posterior_std():
    """sigma-tilde is the std of x_t given (x_0, x_{t+1}) under the VP diffusion; check by Monte Carlo."""
    lv = cdrl_levels(**PAPER)
    g = torch.Generator().manual_seed(0)
    n, t = 400_000, 2
    x0 = torch.zeros(n, dtype=torch.float64)
    xt = lv.alpha_bar[t] * x0 + lv.sigma_bar[t] * torch.randn(n, generator=g, dtype=torch.float64)
    xt1 = lv.alpha[t] * xt + lv.sigma[t] * torch.randn(n, generator=g, dtype=torch.float64)
    # Residual of the linear regression of x_t on x_{t+1} (x_0 fixed) has the posterior variance.
    coef = (xt * xt1).mean() / (xt1 * xt1).mean()
    resid_std = (xt - coef * xt1).std()
    assert (lv.init_std[t] / lv.y_scale[t]).item() == pytest.approx(resid_std.item(), rel=5e-3)


@pytest.mark.parametrize("num_levels, spacing", [(6, None), (8, 100), (4, None)])
def test_drl_schedule_is_the_products_of_recovery_likelihoods_steps(num_levels, spacing):
    """DRL's schedule as ruiqigao/recovery_likelihood's get_sigma_schedule builds it (per-segment products of
    sqrt(1 - beta), chained), and its step rule (c_t^2 = sbar_t / sbar_0, s_t^2 = c_t^2 b^2 sigma_{t+1}^2) as Eq. 5.14
    with c = b^2 / sbar_0."""
    betas = [1e-4 + (0.02 - 1e-4) * i / 999 for i in range(1000)]
    step = spacing or 1000 // ((num_levels - 1) * 2)
    idx = [t * step for t in range(num_levels)] + [999]
    bounds = [0] + [i + 1 for i in idx]  # segment t covers betas idx_{t-1} + 1 .. idx_t
    a_s = [math.prod(math.sqrt(1 - b) for b in betas[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    abar = [math.prod(a_s[: t + 1]) for t in range(num_levels + 1)]
    b2 = 2e-4
    lv = cdrl_levels(num_levels, 9.8, -5.1, b2 / math.sqrt(1 - abar[0] ** 2), schedule="drl", drl_spacing=spacing)
    assert lv.alpha_bar.tolist() == pytest.approx(abar, rel=1e-12)
    assert lv.alpha.tolist() == pytest.approx(a_s[1:], rel=1e-12)
    assert abar[0] ** 2 == pytest.approx(1 - 1e-4, rel=1e-12)  # DRL's x_0 has passed one DDPM step
    sbar = [math.sqrt(1 - a**2) for a in abar]
    drl_s2 = [sbar[t] / sbar[0] * b2 * (1 - a_s[t + 1] ** 2) for t in range(num_levels)]
    assert (lv.step_size**2).tolist() == pytest.approx(drl_s2, rel=1e-10)
    if spacing == 100:  # DRL-T8 (Table 5.9): T = 6's levels, then two more in the high-noise region
        six = cdrl_levels(6, 9.8, -5.1, 1.0, schedule="drl", drl_spacing=100)
        assert torch.equal(lv.logsnr[:6], six.logsnr[:6]) and lv.logsnr[6] < six.logsnr[5]


def test_drl_schedule_settings_are_checked():
    from ebmkit.presets import load_preset
    from ebmkit.errors import EbmkitError

    with pytest.raises(EbmkitError, match="drl_spacing is for schedule 'drl'"):
        load_preset("cdrl-points", ["diffusion.drl_spacing=100"])
    with pytest.raises(EbmkitError, match="runs past DDPM's 1,000 steps"):
        load_preset("cdrl-points", ["diffusion.schedule=drl", "diffusion.num_levels=12", "diffusion.drl_spacing=100"])
    assert load_preset("cdrl-points", ["diffusion.schedule=drl"]).diffusion.schedule == "drl"
