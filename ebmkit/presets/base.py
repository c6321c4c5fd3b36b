"""What every preset shares: value types, the data section, conditioning, the divergence guard, GPU speed
settings, the training loop's own fields (`Loop`) and the top level (`PresetBase`)."""

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, model_validator

from ebmkit.errors import EbmkitError

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Unit = Annotated[float, Field(ge=0, le=1)]
Rate = Annotated[float, Field(gt=0, le=1)]  # an Adam learning rate


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # no inf or NaN anywhere in a preset


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
    """Divergence guard (Trainer._check in training.py): a non-finite loss, gradient or weight; |energy| above
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


class Loop(Strict):
    """The fields the training loop reads (training.py); each method's [train] section adds its own."""

    batch_size: PositiveInt                      # global, split over ranks
    iterations: PositiveInt                      # all phases together
    ema: Unit = 0.0                              # EMA decay of every network's copy (0: the copy is the network)
    seed: int = 0
    log_every: PositiveInt = 100
    sample_every: PositiveInt = 5000             # a preview picture every N iterations
    ckpt_every: PositiveInt = 5000
    num_preview: PositiveInt = 64                # samples in the preview picture
    eval_every: NonNegativeInt = 0               # measure quality every N iterations (0 = never)
    eval_num: Annotated[int, Field(ge=10)] = 1000  # samples per evaluation


class PresetBase(Strict):
    """The top level every method's preset has: which method, its name, the guard, speed and conditioning
    sections (labels only for methods that take them)."""

    conditional: ClassVar[bool] = False  # whether the method's networks take labels
    method: str
    name: str
    description: str = ""
    guard: Guard = Guard()
    speed: Speed = Speed()
    conditioning: Conditioning = Conditioning()

    @model_validator(mode="after")
    def _labels_only_where_taken(self):
        if not self.conditional and self.conditioning.kind != "none":
            raise ValueError(f"{self.method} models are unconditional: conditioning.kind must be 'none'")
        return self
