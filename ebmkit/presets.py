"""Presets: pydantic schemas (one per method, chosen by `method`), TOML loading, `--set` overrides.

A preset pins every hyperparameter of a run. Unknown keys, wrong types and out-of-range values are
errors that name the field. Paper presets cite the thesis table or section each number comes from.
"""

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, ValidationError, model_validator

from ebmkit.errors import EbmkitError

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Unit = Annotated[float, Field(ge=0, le=1)]
Rate = Annotated[float, Field(gt=0, le=1)]  # an Adam learning rate


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # no inf or NaN anywhere in a preset


# ---------------------------------------------------------------------------- shared sections
class DataConfig(Strict):
    name: str                             # built-in set or local format, see ebmkit.data
    path: str | None = None                        # where local data sets live; the file of "points"
    image_size: PositiveInt | None = None
    hflip: bool = False                   # random horizontal flips of training images
    num_points: PositiveInt = 50_000      # size of the fixed draw for 2-D sets
    scale: PositiveFloat = 1.0            # 2-D sets lie within [-4, 4]^2 times this; with standardize, the std
    standardize: bool = False             # points: each coordinate to mean 0 and std `scale` by the training
                                          # data's statistics, kept in the model file (samples come back in data units)

    @property
    def toy_scale(self) -> float:
        """The factor on a built-in 2-D set's own units: `scale`, unless `scale` is the standardised spread."""
        return 1.0 if self.standardize else self.scale

    @model_validator(mode="after")
    def _path_fits_name(self):
        from ebmkit.inputs import BUILTIN, POINT_SETS

        if self.name == "points" and self.path is None:
            raise ValueError("name 'points' reads a point file: set data.path (or give --data FILE)")
        if self.name in BUILTIN and self.path is not None:
            raise ValueError(f"the built-in set {self.name!r} reads no file, yet data.path is set"
                             + (" (for your own points use data.name = 'points', or --data FILE)"
                                if self.name in POINT_SETS else ""))
        if self.standardize and self.name not in POINT_SETS:
            raise ValueError(f"standardize is for point data, not {self.name!r}")
        return self


class Conditioning(Strict):
    kind: Literal["none", "class", "attributes"] = "none"
    num_classes: Annotated[int, Field(ge=0)] = 0   # classes of the data ("class" kind)
    class_names: list[str] = []                     # optional names, so `--class circle` works
    attributes: list[str] = []                      # attribute names ("attributes" kind, sec. 5.4.6)
    attribute_values: list[list[str]] = []          # value names per attribute; empty: all binary (false, true)
    attribute_weights: list[PositiveFloat] = []     # how often each attribute labels an image; empty: uniform
    label_dropout: Unit = 0.1                       # null-class rate for classifier-free guidance
    classifier_loss: NonNegativeFloat = 0.0         # weight of the EBM-as-classifier cross-entropy (ours, not
                                                    # the thesis's; CDRL.label_candidates); 0: off
    conditional_init: bool | None = None                     # label the initializer too; unset: only for "class" (sec. 5.4.6)

    @model_validator(mode="after")
    def _consistent(self):
        if self.kind == "class" and self.num_classes < 1:
            raise ValueError("kind 'class' needs num_classes >= 1")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(f"class_names has {len(self.class_names)} names for {self.num_classes} classes")
        if self.kind == "attributes" and not self.attributes:
            raise ValueError("kind 'attributes' needs a non-empty attributes list")
        if self.attribute_values and (len(self.attribute_values) != len(self.attributes)
                                      or any(len(v) < 2 for v in self.attribute_values)):
            raise ValueError("attribute_values needs one list of at least 2 values per attribute")
        if self.attribute_weights and len(self.attribute_weights) != len(self.attributes):
            raise ValueError(f"attribute_weights has {len(self.attribute_weights)} weights for "
                             f"{len(self.attributes)} attributes")
        if self.kind == "none" and (self.num_classes or self.attributes):
            raise ValueError("kind 'none' takes no num_classes or attributes")
        if self.kind == "none" and self.conditional_init:
            raise ValueError("kind 'none' has no labels for a conditional initializer")
        return self

    @property
    def init_takes_labels(self) -> bool:
        """Whether the initializer takes labels: class models always; attribute models only when asked,
        since sec. 5.4.6 pairs the attribute EBM with an unconditional initializer (and notes that a
        conditional one, as in sec. 5.3.5, is possible)."""
        return self.kind == "class" if self.conditional_init is None else self.conditional_init

    @property
    def values(self) -> list[list[str]]:
        """Value names of each attribute."""
        return self.attribute_values or [["false", "true"] for _ in self.attributes]

    @property
    def num_labels(self) -> int:
        """Labels the networks embed (0 = unconditional): a class, or one value of one attribute."""
        return {"none": 0, "class": self.num_classes, "attributes": sum(map(len, self.values))}[self.kind]

    def class_index(self, item: str) -> int:
        """A class by number or name, or a one-line error listing the valid ones."""
        names = self.class_names or [str(i) for i in range(self.num_classes)]
        if item in names:
            return names.index(item)
        if item.isdigit() and int(item) < self.num_classes:
            return int(item)
        raise EbmkitError(f"unknown class {item!r}; valid: {', '.join(names)} (or 0..{self.num_classes - 1})")

    def attribute_index(self, item: str) -> tuple[int, int]:
        """'NAME=VALUE' -> (attribute index, value index), or a one-line error listing the valid ones."""
        name, sep, value = item.partition("=")
        if not sep or name not in self.attributes:
            raise EbmkitError(f"--attr {item!r}: expected NAME=VALUE with NAME one of {', '.join(self.attributes)}")
        j = self.attributes.index(name)
        if value not in self.values[j]:
            raise EbmkitError(f"--attr {item!r}: {name} takes {', '.join(self.values[j])}")
        return j, self.values[j].index(value)

    def attribute_label(self, attribute: int, value):
        """Network label (null = 0) of `value` (int or tensor) of attribute number `attribute`."""
        return 1 + sum(len(v) for v in self.values[:attribute]) + value

    def label_groups(self) -> list[range]:
        """Network labels of each attribute's values in order (class models: one group, every class)."""
        if self.kind == "class":
            return [range(1, self.num_classes + 1)]
        return [range(self.attribute_label(j, 0), self.attribute_label(j, len(v))) for j, v in enumerate(self.values)]


class Guard(Strict):
    """Divergence guard (Trainer._check in train.py): a non-finite loss, gradient or weight; |energy| above
    `max_abs_energy`; and from iteration `spike_after` on, an energy above `spike_factor` x its own running
    mean at the last good snapshot (a blow-up; an energy that a new phase starts to report is first
    compared once a snapshot has seen it), or the running gap between data and sample energies above
    `drift_factor` x its lowest value at the snapshots of the last `drift_window` iterations (a slow
    drift: the samples no longer follow the model); energy references are floored at 1, the gap's at
    `gap_floor` (set it a few times above a recipe's healthy gap: below, noise counts as drift; far above,
    a gap many times the healthy one passes). Each restores the last good state and multiplies the
    learning rates by `lr_factor`; after `max_rollbacks`, or below `min_lr_scale`, the run stops (exit 1)
    with that state as its model. A state is good (a snapshot to restore, a checkpoint, the model) only
    while that gap stays within `settled_factor` x its lowest recent value: a drifting state is never
    kept, even before it reaches the drift limit, and the run's final state must be settled too."""

    enabled: bool = True
    max_abs_energy: PositiveFloat = 1e6
    spike_factor: Annotated[float, Field(gt=1)] = 100.0
    spike_after: NonNegativeInt = 100              # no relative test before this iteration: energies grow fast at first
    drift_factor: Annotated[float, Field(gt=1)] = 30.0
    drift_window: PositiveInt = 2000
    settled_factor: Annotated[float, Field(gt=1)] = 10.0
    gap_floor: PositiveFloat = 1.0
    lr_factor: Annotated[float, Field(gt=0, lt=1)] = 0.5
    snapshot_every: PositiveInt = 200
    max_rollbacks: PositiveInt = 20
    min_lr_scale: Annotated[float, Field(gt=0, lt=1)] = 0.01

    @model_validator(mode="after")
    def _settled_within_drift(self):
        if self.settled_factor > self.drift_factor:
            raise ValueError(f"settled_factor {self.settled_factor:g} must not exceed drift_factor {self.drift_factor:g}")
        return self


class Speed(Strict):
    """How Langevin sampling runs on a GPU. None of it changes results beyond float tolerance (bf16's
    is about 1e-2); on a CPU only `autocast` applies."""

    cuda_graphs: bool = True               # CUDA: capture each fixed-shape K-step chain once, then replay it
    autocast: Literal["none", "bf16"] = "none"   # energy network under bf16 autocast inside Langevin chains
    channels_last: bool = True             # CUDA: image networks and chains in channels-last memory format


# ---------------------------------------------------------------------------- CDRL
class ResNetEBM(Strict):
    """EBM of Tables 5.6 / 5.7."""

    arch: Literal["resnet"]
    channels: list[PositiveInt]           # channels per resolution; the stem conv has channels[0]
    num_res_blocks: PositiveInt           # N of Table 5.7
    temb_dim: PositiveInt                 # time embedding width (512, or 1024 for CDRL-large)
    spectral_norm: bool = True


class MLPEBM(Strict):
    arch: Literal["mlp"]
    hidden: PositiveInt = 128
    num_blocks: PositiveInt = 3
    temb_dim: PositiveInt = 128
    spectral_norm: bool = True


class UNetInit(Strict):
    """Initializer U-Net (sec. 5.4.8.1): half-width DDPM U-Net, attention at 16x16 and 8x8."""

    arch: Literal["unet"]
    base_channels: PositiveInt = 64
    channel_mult: list[PositiveInt] = [1, 1, 1]
    num_res_blocks: PositiveInt = 3
    attn_resolutions: list[PositiveInt] = [16, 8]
    dropout: Unit = 0.1
    temb_dim: PositiveInt = 256
    num_heads: PositiveInt = 1


class MLPInit(Strict):
    arch: Literal["mlp"]
    hidden: PositiveInt = 64
    num_blocks: PositiveInt = 2
    temb_dim: PositiveInt = 128


class Diffusion(Strict):
    num_levels: Annotated[int, Field(ge=2)] = 6   # T (sec. 5.4.8.3)
    logsnr_max: float = 9.8                        # Eq. 5.17
    logsnr_min: float = -5.1                       # Eq. 5.18
    variance_reduction: bool = True                # Eq. 5.7

    @model_validator(mode="after")
    def _ordered(self):
        if not self.logsnr_min < self.logsnr_max:
            raise ValueError("logsnr_min must be below logsnr_max")
        return self


class CDRLSampler(Strict):
    steps: Annotated[int, Field(ge=0)] = 15        # K Langevin steps per level (sec. 5.4.8.2)
    step_coef: PositiveFloat = 0.054               # Eq. 5.14
    step_rule: Literal["eq5.14", "sigma"] = "eq5.14"  # "sigma": s_t^2 = c sigma_{t+1}^2 (authors' 2-D code)
    noise_weight: Annotated[float, Field(ge=0)] = 1.0
    tweedie_coef: Annotated[float, Field(ge=0)] = 2.0   # gradient factor of the final Eq. 5.16 step; 0 skips it
    init_noise: bool = True                        # initializer proposals carry sigma-tilde noise (Eq. 5.4)
    envelope: PositiveFloat | None = None                   # k: keep x_t within +-(abar_t + k sbar_t), where noised data
                                                   # in [-1, 1] lies (a guard; unset in the thesis settings)


class CDRLTrain(Strict):
    batch_size: PositiveInt                        # global, split over ranks
    iterations: PositiveInt
    lr: Rate = 1e-4                                # eta_theta (sec. 5.4.8.2)
    init_lr: Rate = 1e-5                           # eta_phi
    warmup: Annotated[int, Field(ge=0)] = 10_000   # Eq. 5.13
    init_warmup_lead: Annotated[int, Field(ge=0)] = 500   # the initializer starts 500 iterations earlier
    # Regression target of the initializer: "revised" = y-tilde (Eq. 5.6); "displacement" = y-tilde minus
    # the proposal noise (authors' code): same expectation, lower variance.
    init_target: Literal["revised", "displacement"] = "revised"
    betas: tuple[Unit, Unit] = (0.9, 0.999)
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    ema: Unit = 0.9999
    grad_clip: PositiveFloat = 1.0
    seed: int = 0
    log_every: PositiveInt = 100
    sample_every: PositiveInt = 5000
    ckpt_every: PositiveInt = 5000
    num_preview: PositiveInt = 64                  # samples in the periodic preview picture
    eval_every: Annotated[int, Field(ge=0)] = 0    # measure quality every N iterations (0 = never)
    eval_num: Annotated[int, Field(ge=10)] = 1000  # samples per evaluation


class CDRLPreset(Strict):
    method: Literal["cdrl"]
    name: str
    description: str = ""
    data: DataConfig
    conditioning: Conditioning = Conditioning()
    ebm: Annotated[ResNetEBM | MLPEBM, Field(discriminator="arch")]
    init: Annotated[UNetInit | MLPInit, Field(discriminator="arch")]
    diffusion: Diffusion = Diffusion()
    sampler: CDRLSampler = CDRLSampler()
    train: CDRLTrain
    guard: Guard = Guard()
    speed: Speed = Speed()


# ---------------------------------------------------------------------------- CoopFlow
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
    bound: Annotated[float, Field(gt=0, lt=1)] = 0.9   # logit pre-processing

    @model_validator(mode="after")
    def _heads_divide(self):
        if self.num_channels % self.num_heads:
            raise ValueError(f"num_channels {self.num_channels} is not divisible by num_heads {self.num_heads}")
        return self


class AffineFlowConfig(Strict):
    """RealNVP-style flow for 2-D points (sec. 4.4.1): the arguments of ebmkit.nets.AffineCouplingFlow."""

    arch: Literal["affine"]
    hidden: PositiveInt = 64
    num_couplings: PositiveInt = 8
    num_hidden_layers: PositiveInt = 2


class CoopFlowEBMBase(Strict):
    # "gaussian": p(x) ~ exp(f(x)) N(x; 0, I), the short-run EBM of Eq. 4.9; "uniform": exp(f(x)) (Eq. 4.1)
    reference: Literal["uniform", "gaussian"] = "uniform"


class CoopFlowConvEBM(CoopFlowEBMBase):
    """Table 4.3: stem to channels[0], one residual block per further entry, head conv, swish, sum."""

    arch: Literal["coopflow"]
    channels: Annotated[list[PositiveInt], Field(min_length=1)] = [128, 256, 512, 1024]
    head_channels: PositiveInt = 100
    head: Literal["thesis", "authors"] = "thesis"  # 3x3 stride-4 conv (Table 4.3) or 4x4 conv (authors' code)


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


class CoopFlowTrain(Strict):
    # "coopflow": Algorithm 3; "flow": the normalizing flow alone, MLE on data; "langevin": the short-run
    # Langevin flow alone, chains from langevin.start (the two baselines of Table 4.7)
    mode: Literal["coopflow", "flow", "langevin"] = "coopflow"
    batch_size: PositiveInt                        # m of Algorithm 3
    iterations: PositiveInt                        # all phases together
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
    ema: Unit = 0.0                                # 0: the EMA copy is the network (the thesis averages nothing)
    seed: int = 0
    log_every: PositiveInt = 100
    sample_every: PositiveInt = 5000
    ckpt_every: PositiveInt = 5000
    num_preview: PositiveInt = 64
    eval_every: NonNegativeInt = 0
    eval_num: Annotated[int, Field(ge=10)] = 1000

    @model_validator(mode="after")
    def _phases(self):
        if self.mode != "coopflow" and (self.pretrain_iterations or self.warmup_iterations):
            raise ValueError(f"pretrain_iterations and warmup_iterations are phases of mode 'coopflow', "
                             f"not of mode {self.mode!r}")
        if self.mode == "coopflow" and self.pretrain_iterations + self.warmup_iterations >= self.iterations:
            raise ValueError(f"pretrain_iterations + warmup_iterations ({self.pretrain_iterations} + "
                             f"{self.warmup_iterations}) leave no cooperative iterations of {self.iterations}")
        return self


class CoopFlowPreset(Strict):
    method: Literal["coopflow"]
    name: str
    description: str = ""
    data: DataConfig
    flow: Annotated[FlowPPConfig | AffineFlowConfig, Field(discriminator="arch")] | None = None
    ebm: Annotated[CoopFlowConvEBM | CoopFlowMLPEBM, Field(discriminator="arch")] | None = None
    langevin: CoopFlowLangevin = CoopFlowLangevin()
    train: CoopFlowTrain
    guard: Guard = Guard()
    speed: Speed = Speed()

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

    @property
    def conditioning(self) -> Conditioning:
        """CoopFlow models are unconditional."""
        return Conditioning()


# ---------------------------------------------------------------------------- NeRF-LEBM (ch. 3)
class SceneData(DataConfig):
    views: PositiveInt | None = None               # images per object (sec. 3.5.1: 1 for Carla, 50 for ShapeNet); unset: the set's default
    num_objects: PositiveInt | None = None           # training objects (unset: the set's default)
    masked: bool = False                  # incomplete observations: a hidden region per image (sec. 3.5.7)
    distinct_ends: bool = False           # procedural cars whose front and back a view tells apart (unknown poses)

    @model_validator(mode="after")
    def _procedural_only(self):
        if self.distinct_ends and self.name != "scenes":
            raise ValueError(f"distinct_ends shapes the procedural 'scenes', not {self.name!r}")
        return self


class NeRFConfig(Strict):
    """The generator: Fig. 3.1 ("nerf", known poses) or Fig. 3.2 ("film", unknown poses)."""

    arch: Literal["nerf", "film"] = "nerf"
    width: PositiveInt = 256               # trunk width (sec. 3.5.2.1)
    depth: PositiveInt = 8                 # trunk layers (8 for "nerf", 4 FiLM-ed layers for "film")
    skip: NonNegativeInt = 4               # the input joins again at this layer ("nerf")
    freqs_xyz: NonNegativeInt = 10         # positional encoding (implementation notes)
    freqs_dir: NonNegativeInt = 4
    map_hidden: PositiveInt = 256          # mapping MLPs 128 -> 256 -> 256 -> 256 -> 128
    map_out: PositiveInt = 128


class RenderConfig(Strict):
    """Eq. 3.1 with the camera of the implementation notes."""

    num_samples: PositiveInt = 64          # stratified samples per ray, linear in depth
    rays_per_image: PositiveInt = 800      # random rays per training image (authors: N_rand 1600 for 2 images)
    white_background: bool = True
    elevation: tuple[float, float] = (10.0, 40.0)  # degrees: generation draws poses uniformly in this band
    fov_deg: PositiveFloat = 30.0          # the camera of the implementation notes (SRN cars: about 52)
    radius: PositiveFloat = 10.0           # camera distance to the object's centre (SRN cars: 1.3)
    near: PositiveFloat = 7.5
    far: PositiveFloat = 12.5


class LatentPrior(Strict):
    """One latent EBM prior (Table 3.1, 3.2); "gaussian" is the baseline of Table 3.4 (no network)."""

    kind: Literal["ebm", "gaussian"] = "ebm"
    size: Literal["small", "large"] = "large"  # Table 3.1: 2 or 4 swish layers
    hidden: PositiveInt = 256                   # C of Table 3.1 (Table 3.2)


class NeRFLatents(Strict):
    """z_s and z_a with EBM priors tilting a reference q_0 (Eq. 3.4, 3.5), sampled by Eq. 3.10-3.13."""

    dim: PositiveInt = 128                      # Table 3.2
    reference: Literal["gaussian", "uniform"] = "gaussian"  # q_0 (Table 3.3)
    sigma: PositiveFloat = 1.0                  # of q_0 = N(0, sigma^2 I); with "uniform" only the start
    shape: LatentPrior = LatentPrior()
    appearance: LatentPrior = LatentPrior()
    prior_steps: NonNegativeInt = 60            # K- (Table 3.3)
    prior_step_size: PositiveFloat = 0.5        # delta- (Table 3.3)
    prior_noise: Annotated[float, Field(ge=0)] = 1.0  # MCMC noise weight (Table 3.3)
    prior_samples: PositiveInt = 50             # prior chains per update (authors' code)


class NeRFInference(Strict):
    """Posterior inference: "mcmc" (Algorithm 1, chains from q_0 every iteration), "persistent" (one chain
    per training object carried across iterations, updated by Adam: the ShapeNet setting of Table 3.3),
    "amortized" (Algorithm 2, an encoder)."""

    kind: Literal["mcmc", "persistent", "amortized"] = "mcmc"
    steps: NonNegativeInt = 60                  # K+ (Table 3.3)
    step_size: PositiveFloat = 0.1              # delta+ (Table 3.3; the Adam rate with "persistent")
    noise: bool = False                         # sec. 3.5.3: no noise in posterior Langevin
    sigma_eps: PositiveFloat = 0.05             # observation noise of Eq. 3.3 (sec. 3.5.3)
    poses: Literal["known", "unknown"] = "known"  # unknown: vMF posteriors on the angles (sec. 3.4.4)
    choose_ends: bool = False                   # unknown poses: the azimuth's vMF covers half a turn, the elevation's
                                                # render.elevation; each view's end is the likelier (NeRFLEBM.choose_ends)
    end_balance: NonNegativeFloat = 0.02        # the rate that keeps half the views turned (NeRFLEBM.choose_ends); 0: off
    likelihood_scale: PositiveFloat = 1.0       # multiplies log p(I | z, xi), Eq. 3.3 summed over the sampled rays;
                                                # the authors' code uses the mean: 1 / (3 x batch size) of the sum
    test_steps: PositiveInt = 600               # MCMC steps to infer an unseen object (sec. 3.5.6)


class NeRFTrain(Strict):
    batch_size: PositiveInt                     # objects per iteration (Table 3.3)
    views: PositiveInt = 1                      # views of each object per iteration, sharing its latents (Table 3.3)
    iterations: PositiveInt
    lr_gen: Rate = 1e-4                         # eta_theta (Table 3.3)
    lr_prior: Rate = 2e-5                       # eta_alpha
    lr_encoder: Rate = 3e-5                     # eta_phi: feature extractor and pose head (sec. 3.5.2.3)
    lr_heads: Rate = 5e-6                       # the z_a and z_s heads (sec. 3.5.2.3)
    betas: tuple[Unit, Unit] = (0.9, 0.999)     # sec. 3.5.3
    prior_start: NonNegativeInt = 0             # EBM priors update from this iteration on (authors: 2000)
    ramp: NonNegativeInt = 0                    # K+ and K- grow linearly from 0 over this many iterations after prior_start
    grad_clip: PositiveFloat | None = None
    ema: Unit = 0.0
    seed: int = 0
    log_every: PositiveInt = 100
    sample_every: PositiveInt = 5000
    ckpt_every: PositiveInt = 5000
    num_preview: PositiveInt = 16
    eval_every: NonNegativeInt = 0
    eval_num: Annotated[int, Field(ge=10)] = 1000


class NeRFLEBMPreset(Strict):
    method: Literal["nerf_lebm"]
    name: str
    description: str = ""
    data: SceneData
    generator: NeRFConfig = NeRFConfig()
    render: RenderConfig = RenderConfig()
    latents: NeRFLatents = NeRFLatents()
    inference: NeRFInference = NeRFInference()
    train: NeRFTrain
    guard: Guard = Guard()
    speed: Speed = Speed()

    @model_validator(mode="after")
    def _consistent(self):
        if self.inference.poses == "unknown" and self.inference.kind != "amortized":
            raise ValueError("inference.poses = 'unknown' needs inference.kind = 'amortized' (sec. 3.4.4)")
        if self.inference.choose_ends and self.inference.poses != "unknown":
            raise ValueError("inference.choose_ends chooses the ends of inferred poses: set inference.poses = 'unknown'")
        if self.generator.arch == "nerf" and self.generator.skip >= self.generator.depth:
            raise ValueError(f"generator.skip {self.generator.skip} must be below generator.depth {self.generator.depth}")
        return self

    @property
    def conditioning(self) -> Conditioning:
        """NeRF-LEBM models are unconditional."""
        return Conditioning()


SCHEMAS: dict[str, type[BaseModel]] = {"cdrl": CDRLPreset, "coopflow": CoopFlowPreset, "nerf_lebm": NeRFLEBMPreset}
Preset = CDRLPreset | CoopFlowPreset | NeRFLEBMPreset  # the union of all method schemas


# ---------------------------------------------------------------------------- loading
def list_presets() -> list[tuple[str, str]]:
    """(name, description) of every preset shipped in presets/."""
    out = []
    for f in sorted(PRESET_DIR.glob("*.toml")):
        raw = tomllib.loads(f.read_text())
        out.append((f.stem, raw.get("description", "")))
    return out


def _read(source: str) -> tuple[dict, str]:
    """Raw dict from a preset name, a .toml file or a .json file (e.g. a run's preset.json)."""
    path = Path(source)
    if path.suffix in (".toml", ".json") and path.is_file():
        text = path.read_text()
        try:
            raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise EbmkitError(f"cannot parse preset file {path}: {e}") from None
        if not isinstance(raw, dict):
            raise EbmkitError(f"preset file {path} holds a {type(raw).__name__}, not a table of settings")
        return raw, str(path)
    named = PRESET_DIR / f"{source}.toml"
    if not named.is_file():
        names = ", ".join(n for n, _ in list_presets())
        raise EbmkitError(f"unknown preset '{source}' (known: {names}; or give a .toml/.json path)")
    return tomllib.loads(named.read_text()), source


def parse_override(item: str) -> tuple[list[str], Any]:
    """'train.lr=2e-4' -> (['train', 'lr'], 2e-4). Values use TOML syntax; bare words are strings."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise EbmkitError(f"bad override '{item}': expected KEY=VALUE, e.g. train.lr=2e-4")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return key.strip().split("."), value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for item in overrides:
        keys, value = parse_override(item)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise EbmkitError(f"bad override '{item}': '{k}' is not a section")
        node[keys[-1]] = value
    return raw


_UNION_TAGS = {"resnet", "mlp", "unet", "flowpp", "affine", "coopflow"}


def _describe(error: ValidationError) -> str:
    parts = []
    for err in error.errors():
        loc = ".".join(str(p) for p in err["loc"] if p not in _UNION_TAGS) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        if err["type"] not in ("missing", "extra_forbidden") and "input" in err and not isinstance(err["input"], dict):
            msg += f" (got {err['input']!r})"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def validate(raw: dict, source: str = "preset") -> Preset:
    method = raw.get("method")
    if method not in SCHEMAS:
        raise EbmkitError(f"{source}: unknown method {method!r} (known: {', '.join(SCHEMAS)})")
    try:
        return SCHEMAS[method].model_validate(raw)
    except ValidationError as e:
        raise EbmkitError(f"invalid preset {source}: {_describe(e)}") from None


def load_preset(source: str, overrides: list[str] = ()) -> Preset:
    """A validated preset from a name or file, with `--set KEY=VALUE` overrides applied first."""
    raw, label = _read(source)
    return validate(apply_overrides(raw, list(overrides)), label)


def with_data(preset: Preset, path: str) -> Preset:
    """`ebmkit train --data PATH`: a point preset trains on the point file PATH (data.name = "points"); a
    preset of a local image or scene set reads it from PATH (data.path). A preset of a built-in set
    cannot use a path, and says so."""
    from ebmkit.inputs import BUILTIN, POINT_SETS
    from ebmkit.data.points import POINT_EXTS

    data = preset.data
    if data.name in POINT_SETS:
        if Path(path).suffix.lower() not in POINT_EXTS:
            raise EbmkitError(f"--data {path}: preset {preset.name!r} learns points, so --data takes a point file "
                              f"({', '.join(POINT_EXTS)}) holding an (N, D) array")
        update = {"name": "points", "path": path}
    elif data.name in BUILTIN:
        raise EbmkitError(f"--data {path}: preset {preset.name!r} trains on the built-in {data.name!r} set, which "
                          f"reads no files (--data is for presets of point files and local data sets)")
    else:
        update = {"path": path}
    raw = preset.model_dump(mode="json")
    raw["data"].update(update)
    return validate(raw, f"{preset.name} with --data {path}")


def speed_overrides() -> list[str]:
    """EBMKIT_SPEED="autocast=bf16,cuda_graphs=false": [speed] settings for a stored model, whose other
    settings are fixed (`--set speed.KEY=VALUE` does the same for a run being trained)."""
    text = os.environ.get("EBMKIT_SPEED", "")
    return [f"speed.{item.strip()}" for item in text.replace(" ", ",").split(",") if item.strip()]


def to_toml(data: dict) -> str:
    """Serialise a fully expanded preset (nested dicts of scalars and lists) as TOML."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    def table(d: dict, prefix: str) -> list[str]:
        lines = [f"{k} = {value(v)}" for k, v in d.items() if not isinstance(v, dict) and v is not None]
        for k, v in d.items():
            if isinstance(v, dict):
                name = f"{prefix}.{k}" if prefix else k
                lines += ["", f"[{name}]"] + table(v, name)
        return lines

    return "\n".join(table(data, "")) + "\n"
