"""Noise schedules and Langevin step sizes of CDRL (thesis sec. 5.3.1, 5.3.2, 5.4.8.2, 5.4.8.3).

Indexing follows the thesis: x_0 is data, x_1..x_T ever noisier, x_t = abar_t x_0 + sbar_t e.
The EBM and initializer of level t = 0..T-1 model y_t = alpha_{t+1} x_t given x_{t+1}. The top
level t = T-1 is a marginal EBM of x_{T-1} itself (implementation notes): no recovery term and no
alpha scaling there.
"""

from dataclasses import dataclass

import torch


def logsnr_cosine(t: torch.Tensor, logsnr_max: float, logsnr_min: float) -> torch.Tensor:
    """Cosine log-SNR schedule lambda(t) = -2 log tan(a t + b) for t in [0, 1] (Eq. 5.17, 5.18)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    b = torch.atan(torch.exp(torch.tensor(-0.5 * logsnr_max, dtype=torch.float64)))  # Eq. 5.17
    a = torch.atan(torch.exp(torch.tensor(-0.5 * logsnr_min, dtype=torch.float64))) - b  # Eq. 5.18
    return -2.0 * torch.log(torch.tan(a * t + b))


def logsnr_drl(num_levels: int, spacing: int | None = None) -> torch.Tensor:
    """The (T+1,) log-SNRs of DRL's schedule (Gao et al. 2021; Fig. 5.8's green line; ruiqigao/recovery_likelihood
    model.py): DDPM's 1,000 linear betas from 1e-4 to 0.02, of which x_t has passed the first idx_t + 1, with
    idx_t = t * spacing for t < T and idx_T = 999; abar_t^2 = prod_{i <= idx_t} (1 - beta_i). DRL's spacing is
    1000 // (2 (T - 1)), which puts the first T levels in the lower half of the chain; a fixed spacing with a
    larger T adds levels in the high-noise region instead (the DRL-T8 row of Table 5.9: spacing 100, T = 8)."""
    spacing = spacing or 1000 // (2 * (num_levels - 1))
    if (num_levels - 1) * spacing >= 999:
        raise ValueError(f"a DRL schedule of {num_levels} levels {spacing} DDPM steps apart runs past DDPM's 1,000 steps")
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    idx = torch.cat([torch.arange(num_levels) * spacing, torch.tensor([999])])
    abar2 = torch.cumprod(1.0 - betas, 0)[idx]
    return torch.log(abar2 / (1.0 - abar2))


@dataclass(frozen=True)
class DiffusionLevels:
    """Every per-level quantity of a T-level CDRL diffusion, float64.

    Tensors of length T+1 are indexed by the noise level of x_t; tensors of length T by the
    EBM/initializer level t (the pair y_t, x_{t+1}).
    """

    logsnr: torch.Tensor       # (T+1,) lambda_t = log(abar_t^2 / sbar_t^2)
    alpha_bar: torch.Tensor    # (T+1,) abar_t = sqrt(sigmoid(lambda_t))
    sigma_bar: torch.Tensor    # (T+1,) sbar_t = sqrt(sigmoid(-lambda_t))
    alpha: torch.Tensor        # (T,) alpha_{t+1} = abar_{t+1} / abar_t
    sigma: torch.Tensor        # (T,) sigma_{t+1} = sqrt(1 - alpha_{t+1}^2)
    y_scale: torch.Tensor      # (T,) y_t = y_scale_t x_t: alpha_{t+1}, and 1 at the marginal top level
    recovery: torch.Tensor     # (T,) 1 where the recovery term of Eq. 5.1 applies, 0 at the top level
    init_std: torch.Tensor     # (T,) std of the initializer proposal in y-space: y_scale_t * sigma-tilde_t
    step_size: torch.Tensor    # (T,) Langevin step size s_t of Eq. 5.14
    loss_weight: torch.Tensor  # (T,) EBM loss weight sigma_1 / sigma_{t+1} (as in DRL)

    @property
    def num_levels(self) -> int:
        return len(self.alpha)

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "DiffusionLevels":
        return DiffusionLevels(**{k: v.to(device, dtype) for k, v in vars(self).items()})


def cdrl_levels(num_levels: int, logsnr_max: float, logsnr_min: float, step_coef: float,
                step_rule: str = "eq5.14", schedule: str = "cosine", drl_spacing: int | None = None) -> DiffusionLevels:
    """The T = num_levels levels: the cosine schedule on the grid t = k/T (sec. 5.4.8.3), or with
    schedule "drl" DRL's (logsnr_drl; logsnr_max / logsnr_min unused).

    step_rule "eq5.14": s_t^2 = c * sbar_t * sigma_{t+1}^2 (images; DRL's rule too, with c = b^2 / sbar_0);
    "sigma": s_t^2 = c * sigma_{t+1}^2, the rule of the authors' 2-D code, with larger steps at the low noise levels.
    """
    T = num_levels
    if schedule == "drl":
        logsnr = logsnr_drl(T, drl_spacing)
    else:
        logsnr = logsnr_cosine(torch.arange(T + 1, dtype=torch.float64) / T, logsnr_max, logsnr_min)
    return levels_from_logsnr(logsnr, step_coef, step_rule)


def levels_from_logsnr(logsnr: torch.Tensor, step_coef: float, step_rule: str) -> DiffusionLevels:
    """Every per-level quantity from the (T+1,) log-SNRs of x_0 .. x_T."""
    T = len(logsnr) - 1
    alpha_bar = torch.sigmoid(logsnr).sqrt()
    sigma_bar = torch.sigmoid(-logsnr).sqrt()
    alpha = alpha_bar[1:] / alpha_bar[:-1]
    sigma = (1.0 - alpha**2).sqrt()
    top = torch.arange(T) == T - 1
    y_scale = torch.where(top, torch.ones_like(alpha), alpha)
    # sigma-tilde_t^2 = sbar_t^2 / sbar_{t+1}^2 * sigma_{t+1}^2 (sec. 5.3.2, the DDPM lower bound).
    sigma_tilde = sigma_bar[:-1] / sigma_bar[1:] * sigma
    # Eq. 5.14: s_t^2 = 0.054 * sbar_t * sigma_{t+1}^2.
    step_size = (step_coef * (sigma_bar[:-1] if step_rule == "eq5.14" else 1.0) * sigma**2).sqrt()
    return DiffusionLevels(
        logsnr=logsnr,
        alpha_bar=alpha_bar,
        sigma_bar=sigma_bar,
        alpha=alpha,
        sigma=sigma,
        y_scale=y_scale,
        recovery=(~top).double(),
        init_std=y_scale * sigma_tilde,
        step_size=step_size,
        loss_weight=sigma[0] / sigma,
    )
