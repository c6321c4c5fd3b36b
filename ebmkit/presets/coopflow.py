"""The preset schema of CoopFlow (thesis ch. 4): flow, EBM, the Langevin flow, training phases."""

from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, model_validator

from ebmkit.presets.base import DataConfig, Loop, PositiveFloat, PositiveInt, PresetBase, Rate, Strict, Unit


class FlowPPConfig(Strict):
    """Flow++ (sec. 4.5.1 and implementation notes): the arguments of ebmkit.nets.FlowPP."""

    arch: Literal["flowpp"]
    num_channels: PositiveInt = 96                 # coupling network width
    num_blocks: PositiveInt = 10                   # gated conv + attention blocks per coupling
    num_components: PositiveInt = 32               # logistic mixture components
    num_heads: PositiveInt = 4
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.2
    scales: Annotated[list[tuple[NonNegativeInt, NonNegativeInt]], Field(min_length=1)] = [(0, 4), (2, 3)]
    factor_out: bool = True                        # half the squeezed channels go straight to z
    use_dequant: bool = True                       # variational dequantisation (else uniform)
    num_dequant_blocks: PositiveInt = 2
    num_dequant_components: PositiveInt | None = None   # the dequantizer's K; unset: num_components (the authors'
                                                        # code fixes it at 32)
    dequant_context_residual: bool = True          # residual gated convs in the dequantizer's context (not the
                                                   # authors' code)
    inverse_cdf_clamp: Annotated[float, Field(ge=0, lt=0.5)] = 0.0  # the inverse clamps each coupling's CDF value
                                                   # to [c, 1 - c]; 0: the exact inverse; the authors' code: 1e-5
    bound: Annotated[float, Field(gt=0, lt=1)] = 0.9   # logit pre-processing
    # the proposals x_hat: "inverse", g(z), the exact inverse of the forward, tanh(h/2) / bound; "bound",
    # bound * g(z) = 2 sigmoid(h) - 1, as the authors' sampler computes it (samples at 0.9 scale, implementation notes)
    sample_scale: Literal["inverse", "bound"] = "inverse"

    @model_validator(mode="after")
    def _heads_divide(self):
        if self.num_channels % self.num_heads:
            raise ValueError(f"num_channels {self.num_channels} is not divisible by num_heads {self.num_heads}")
        return self


class PointFlowConfig(Strict):
    """Coupling flow for points (sec. 4.4.1): the arguments of ebmkit.nets.PointFlow. arch "affine": RealNVP's
    affine coupling; "mixlogcdf": Flow++'s logistic-mixture CDF coupling (sec. 4.5.1) with an MLP."""

    arch: Literal["affine", "mixlogcdf"]
    hidden: PositiveInt = 64
    num_couplings: PositiveInt = 8
    num_hidden_layers: PositiveInt = 2
    num_components: PositiveInt = 8                # K of the mixture ("mixlogcdf" only)


class CoopFlowEBMBase(Strict):
    # "gaussian": p(x) ~ exp(f(x)) N(x; 0, I), the short-run EBM of Eq. 4.9; "uniform": exp(f(x)) (Eq. 4.1)
    reference: Literal["uniform", "gaussian"] = "uniform"


class CoopFlowConvEBM(CoopFlowEBMBase):
    """Table 4.3: stem to channels[0], one residual block per further entry, head conv, swish, sum."""

    arch: Literal["coopflow"]
    channels: Annotated[list[PositiveInt], Field(min_length=1)] = [128, 256, 512, 1024]
    head_channels: PositiveInt = 100
    head: Literal["thesis", "authors"] = "thesis"  # 3x3 stride-4 conv (Table 4.3) or 4x4 conv (authors' code)
    head_swish: bool = True                        # swish before the sum (Table 4.3); the authors' code has none


class CoopFlowMLPEBM(CoopFlowEBMBase):
    """Swish MLP to a scalar, for 2-D points."""

    arch: Literal["mlp"]
    hidden: PositiveInt = 128
    num_layers: PositiveInt = 3


class CoopFlowLangevin(Strict):
    """The Langevin flow, Eq. 4.2 as coded: x <- clamp(x + clamp(s^2/2 grad log p(x), -c, c) + w s eps)."""

    steps: PositiveInt = 30                        # T (Table 4.4)
    step_size: PositiveFloat = 0.03                # delta in training (Table 4.4)
    step_size_test: PositiveFloat = 0.04           # delta when sampling (Table 4.4, sec. 4.5.3: about 4/3 of it)
    noise: bool = False                            # sec. 4.5.2 removes the noise term in training
    noise_decay_K: PositiveInt | None = None                # Eq. 4.14: noise weight max(1 - epoch / K, 0)^20 (sec. 4.9)
    noise_test: bool = False                       # sec. 4.9: no noise when sampling
    drift_clamp: PositiveFloat = 0.1               # c (implementation notes)
    clamp: tuple[float, float] | None = None                # [-1, 1] for images; unset (no clamp) for points
    # p_0 of the Langevin flow alone (train.mode "langevin"): "gaussian", N(0, I), the reference q_0 of
    # Eq. 4.9 (sec. 4.3.3); "uniform", uniform over the clamp box, Eq. 4.2 as the short-run EBM (NHZ19)
    start: Literal["gaussian", "uniform"] = "gaussian"

    @model_validator(mode="after")
    def _consistent(self):
        if self.start == "uniform" and self.clamp is None:
            raise ValueError("start 'uniform' draws from the clamp box: set clamp = [low, high]")
        if self.noise_decay_K is not None and not self.noise:
            raise ValueError("noise_decay_K decays the training noise: it needs noise = true")
        if self.clamp is not None and not self.clamp[0] < self.clamp[1]:
            raise ValueError(f"clamp needs low < high, got {list(self.clamp)}")
        return self


class CoopFlowTrain(Loop):
    """batch_size is m of Algorithm 3; the thesis averages no weights (ema 0)."""

    # "coopflow": Algorithm 3; "flow": the normalizing flow alone, MLE on data; "langevin": the short-run
    # Langevin flow alone, chains from langevin.start (the two baselines of Table 4.7)
    mode: Literal["coopflow", "flow", "langevin"] = "coopflow"
    pretrain_iterations: NonNegativeInt = 0        # flow MLE on data first (CoopFlow(Pre), sec. 4.5.2)
    warmup_iterations: NonNegativeInt = 0          # then the EBM alone, the flow frozen (sec. 4.5.2)
    flow_from: str | None = None                            # a model file (e.g. a mode "flow" run) whose flow starts this run
    lr_ebm: Rate = 1e-4                            # eta_theta (sec. 4.5.2)
    lr_flow: Rate = 1e-4                           # eta_alpha
    lr_flow_pretrain: Rate | None = None           # the flow's rate in the pretrain_iterations; unset: lr_flow
    betas_ebm: tuple[Unit, Unit] = (0.5, 0.5)
    betas_flow: tuple[Unit, Unit] = (0.9, 0.999)
    flow_warmup: NonNegativeInt = 200              # linear lr warm-up of the flow (implementation notes)
    grad_clip: PositiveFloat = 1.0                 # the flow's gradient-norm clip (implementation notes)
    grad_clip_ebm: PositiveFloat | None = None              # unset: the EBM is not clipped (authors' CIFAR-10 code)

    @model_validator(mode="after")
    def _phases(self):
        if self.mode != "coopflow" and (self.pretrain_iterations or self.warmup_iterations):
            raise ValueError(f"pretrain_iterations and warmup_iterations are phases of mode 'coopflow', "
                             f"not of mode {self.mode!r}")
        if self.mode == "coopflow" and self.pretrain_iterations + self.warmup_iterations >= self.iterations:
            raise ValueError(f"pretrain_iterations + warmup_iterations ({self.pretrain_iterations} + "
                             f"{self.warmup_iterations}) leave no cooperative iterations of {self.iterations}")
        return self


class CoopFlowPreset(PresetBase):
    method: Literal["coopflow"]
    data: DataConfig
    flow: Annotated[FlowPPConfig | PointFlowConfig, Field(discriminator="arch")] | None = None
    ebm: Annotated[CoopFlowConvEBM | CoopFlowMLPEBM, Field(discriminator="arch")] | None = None
    langevin: CoopFlowLangevin = CoopFlowLangevin()
    train: CoopFlowTrain

    @model_validator(mode="after")
    def _networks_of_mode(self):
        needs = {"coopflow": ("flow", "ebm"), "flow": ("flow",), "langevin": ("ebm",)}[self.train.mode]
        for section in needs:
            if getattr(self, section) is None:
                raise ValueError(f"train.mode {self.train.mode!r} needs a [{section}] section")
        if self.langevin.start != "gaussian" and self.train.mode != "langevin":
            raise ValueError("langevin.start is p_0 of the Langevin flow alone (train.mode 'langevin'); "
                             "CoopFlow's chains start from its flow")
        return self
