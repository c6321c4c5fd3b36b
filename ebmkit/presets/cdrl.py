"""The preset schema of CDRL (thesis ch. 5): networks, noise levels, sampler, training."""

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ebmkit.presets.base import DataConfig, Loop, PositiveFloat, PositiveInt, PresetBase, Rate, Strict, Unit
from ebmkit.schedules import logsnr_drl


# What tells the EBM its noise level: the log-SNR (CDRL, sec. 5.4.8.1) or the level index t (DRL, Table 5.9's baseline)
NoiseInput = Literal["logsnr", "index"]


class ResNetEBM(Strict):
    """EBM of Tables 5.6 / 5.7."""

    arch: Literal["resnet"]
    channels: list[PositiveInt]           # channels per resolution; the stem conv has channels[0]
    num_res_blocks: PositiveInt           # N of Table 5.7
    temb_dim: PositiveInt                 # time embedding width (512, or 1024 for CDRL-large)
    spectral_norm: bool = True
    noise_input: NoiseInput = "logsnr"


class MLPEBM(Strict):
    arch: Literal["mlp"]
    hidden: PositiveInt = 128
    num_blocks: PositiveInt = 3
    temb_dim: PositiveInt = 128
    spectral_norm: bool = True
    noise_input: NoiseInput = "logsnr"


class InitBase(Strict):
    # What the initializer's output is (Table 5.9's ablations): the mean y-hat_t of Eq. 5.4 itself, or the clean
    # image x_0 or the total noise eps of x_{t+1}, turned into y-hat_t through the posterior mean of x_t.
    predicts: Literal["y", "x0", "eps"] = "y"


class UNetInit(InitBase):
    """Initializer U-Net (sec. 5.4.8.1): half-width DDPM U-Net, attention at 16x16 and 8x8."""

    arch: Literal["unet"]
    base_channels: PositiveInt = 64
    channel_mult: list[PositiveInt] = [1, 1, 1]
    num_res_blocks: PositiveInt = 3
    attn_resolutions: list[PositiveInt] = [16, 8]
    dropout: Unit = 0.1
    temb_dim: PositiveInt = 256
    num_heads: PositiveInt = 1
    resample: Literal["conv", "resblock"] = "conv"  # "resblock": the authors' code (nets/unet.py)
    norm_eps: PositiveFloat = 1e-5                 # GroupNorm eps; the authors' code: 1e-6


class MLPInit(InitBase):
    arch: Literal["mlp"]
    hidden: PositiveInt = 64
    num_blocks: PositiveInt = 2
    temb_dim: PositiveInt = 128


class Diffusion(Strict):
    num_levels: Annotated[int, Field(ge=2)] = 6   # T (sec. 5.4.8.3)
    schedule: Literal["cosine", "drl"] = "cosine"  # Eq. 5.17 / 5.18, or DRL's (Fig. 5.8; Table 5.9's DRL-T8 row)
    logsnr_max: float = 9.8                        # Eq. 5.17 (cosine)
    logsnr_min: float = -5.1                       # Eq. 5.18 (cosine)
    drl_spacing: PositiveInt | None = None         # DRL: DDPM steps between levels; unset: DRL's 1000 // (2 (T - 1))
    variance_reduction: bool = True                # Eq. 5.7

    @model_validator(mode="after")
    def _ordered(self):
        if not self.logsnr_min < self.logsnr_max:
            raise ValueError("logsnr_min must be below logsnr_max")
        if self.schedule == "cosine" and self.drl_spacing is not None:
            raise ValueError("drl_spacing is for schedule 'drl'")
        if self.schedule == "drl":
            logsnr_drl(self.num_levels, self.drl_spacing)  # raises where the levels do not fit
        return self


class NoInit(Strict):
    """No initializer: Langevin starts at y_t = x_{t+1} (x_T itself at the top level), as in DRL (Gao et al. 2021),
    the baseline of Table 5.9, and is the only thing that learns ("without cooperative training")."""

    arch: Literal["none"]
    predicts: Literal["y"] = "y"


class CDRLSampler(Strict):
    steps: Annotated[int, Field(ge=0)] = 15        # K Langevin steps per level (sec. 5.4.8.2)
    step_coef: PositiveFloat = 0.054               # Eq. 5.14
    step_rule: Literal["eq5.14", "sigma"] = "eq5.14"  # "sigma": s_t^2 = c sigma_{t+1}^2 (authors' 2-D code)
    noise_weight: Annotated[float, Field(ge=0)] = 1.0
    tweedie_coef: Annotated[float, Field(ge=0)] = 2.0   # gradient factor of the final Eq. 5.16 step; 0 skips it
    init_noise: bool = True                        # initializer proposals carry sigma-tilde noise (Eq. 5.4)
    envelope: PositiveFloat | None = None                   # k: keep x_t within +-(abar_t + k sbar_t), where noised data
                                                   # in [-1, 1] lies (a guard; unset in the thesis settings)


class CDRLTrain(Loop):
    lr: Rate = 1e-4                                # eta_theta (sec. 5.4.8.2)
    init_lr: Rate = 1e-5                           # eta_phi
    warmup: Annotated[int, Field(ge=0)] = 10_000   # Eq. 5.13
    init_warmup_lead: Annotated[int, Field(ge=0)] = 500   # the initializer starts 500 iterations earlier
    # Regression target of the initializer: "revised" = y-tilde (Eq. 5.6); "displacement" = y-tilde minus
    # the proposal noise (authors' code): same expectation, lower variance; "data" = y_t itself (Table 5.9's
    # ablation "an initializer that learns from y_t", item 7 of sec. 5.4.11).
    init_target: Literal["revised", "displacement", "data"] = "revised"
    betas: tuple[Unit, Unit] = (0.9, 0.999)
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    ema: Unit = 0.9999                             # Table 5.7
    grad_clip: Annotated[float, Field(ge=0)] = 1.0  # gradient-norm clip; 0: none (DRL)


class CDRLPreset(PresetBase):
    conditional = True
    method: Literal["cdrl"]
    data: DataConfig
    ebm: Annotated[ResNetEBM | MLPEBM, Field(discriminator="arch")]
    init: Annotated[UNetInit | MLPInit | NoInit, Field(discriminator="arch")]
    diffusion: Diffusion = Diffusion()
    sampler: CDRLSampler = CDRLSampler()
    train: CDRLTrain
