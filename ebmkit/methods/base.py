"""What every method exposes to the training loop, the CLI, the metrics and the pictures.

A method owns its networks (`nets`) and their EMA copies (`ema`), says how to optimise each network
(`optim_specs`), turns a batch into losses (`train_step`) and samples (`sample_levels`, `sample`), stage
by stage (`num_levels`, with `log_density` and `noised_levels` for the 2-D figure of Fig. 5.5). The
training loop never knows which method it runs. Tasks only some methods have (inpaint, infer, render)
live on those methods; `load_model(supported=...)` is the gate that keeps other models from them.
"""

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ebmkit import viz
from ebmkit.data import Dataset
from ebmkit.data.points import PointUnits, write_points
from ebmkit.errors import EbmkitError
from ebmkit.graphs import GraphCache


@dataclass
class Batch:
    x: torch.Tensor                        # (B, *shape) in model space
    labels: torch.Tensor | None = None     # (B,) class ids
    attributes: torch.Tensor | None = None  # (B, A) value indices, columns in the preset's attribute order
    poses: torch.Tensor | None = None       # (B, V, 2) camera (elevation, azimuth) of V views per object (NeRF-LEBM)
    masks: torch.Tensor | None = None       # (B, V, 1, H, W) 1 where observed (incomplete images)
    objects: torch.Tensor | None = None     # (B,) object ids (persistent chains)


@dataclass
class OptimSpec:
    """Adam(W) settings of one network and its linear warm-up (Eq. 5.13)."""

    lr: float
    betas: tuple[float, float]
    weight_decay: float = 0.0
    warmup: int = 0        # iterations of linear warm-up
    warmup_lead: int = 0   # the warm-up runs this many iterations ahead
    grad_clip: float | None = None
    decoupled: bool = False  # AdamW rather than Adam
    lr_before: tuple[int, float] | None = None  # (N, rate): a different rate before step N (a pre-training phase)

    def lr_at(self, step: int) -> float:
        """The learning rate at training step `step`, warm-up included."""
        lr = self.lr_before[1] if self.lr_before is not None and step < self.lr_before[0] else self.lr
        return lr * (min(1.0, (step + self.warmup_lead) / self.warmup) if self.warmup else 1.0)


class Method:
    name: str = ""
    partly_used: tuple[str, ...] = ()  # networks some training steps use only in part (DDP must look for it)
    # Pairs of train_step metrics that agree when the sampler follows the model (data against samples);
    # the divergence guard watches their gap.
    energy_pairs: tuple[tuple[str, str], ...] = (("energy_data", "energy_sample"),)

    def __init__(self, preset, shape: tuple[int, ...], device: torch.device | str = "cpu"):
        self.preset = preset
        self.shape = tuple(shape)
        self.device = torch.device(device)
        self.nets = nn.ModuleDict(self.build_networks()).to(self.device)
        # Point models: model space = units.to_model(data units); the identity unless data.standardize.
        self.units = PointUnits.identity(self.shape[0]) if len(self.shape) == 1 else None
        self.ema = copy.deepcopy(self.nets).requires_grad_(False).eval()
        # GPU execution (preset [speed]): graphs replay fixed-shape chains, images go channels-last.
        speed = preset.speed
        on_cuda = self.device.type == "cuda"
        self.graphs = GraphCache() if on_cuda and speed.cuda_graphs else None
        self.autocast = torch.bfloat16 if speed.autocast == "bf16" else None  # for Langevin's energy evaluations
        self.memory_format = torch.contiguous_format
        if on_cuda and speed.channels_last:
            self.use_channels_last()

    def use_channels_last(self) -> None:
        """Image models: networks and chains in channels-last memory format (no-op for other data)."""
        if len(self.shape) == 3:
            self.memory_format = torch.channels_last
            self.nets.to(memory_format=torch.channels_last)
            self.ema.to(memory_format=torch.channels_last)

    # -- to implement -----------------------------------------------------------------------
    def build_networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def optim_specs(self) -> dict[str, OptimSpec]:
        raise NotImplementedError

    def train_step(self, batch: Batch, nets: dict[str, nn.Module], step: int = 0) -> tuple[dict, dict]:
        """Losses {network name: scalar} (disjoint graphs) and detached scalar metrics of training iteration
        `step` (methods with phases or ramps read it). `nets` are the trainable networks, possibly
        DDP-wrapped; sample with `self.nets`, never through DDP. Metrics named `energy*` are watched by the
        divergence guard."""
        raise NotImplementedError

    def sample_levels(self, num: int, generator: torch.Generator | None = None, steps: int | None = None,
                      use_ema: bool = True) -> list[torch.Tensor]:
        """One batch of `num` samples at every stage of the sampler, `steps` Langevin steps per stage
        (default: as trained), with the EMA networks or the raw ones; the last entry is the final sample.
        Methods add keyword arguments of their own (CDRL: labels, guidance, observed)."""
        raise NotImplementedError

    @property
    def num_levels(self) -> int:
        """Stages of the sampler a picture shows (CDRL's noise levels; CoopFlow's flow and EBM)."""
        raise NotImplementedError

    def log_density(self, x: torch.Tensor, level: int, use_ema: bool = True) -> torch.Tensor:
        """(B,) unnormalised log density of the model at stage `level` (0 = the data's)."""
        raise NotImplementedError

    def noised_levels(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Data x0 as each stage sees it, stage num_levels - 1 first (CDRL: noised to each level)."""
        raise NotImplementedError

    def preview(self, path: Path, generator: torch.Generator, data: Dataset) -> None:
        """Write a picture of samples (a grid, or for 2-D data a scatter) to `path`."""
        raise NotImplementedError

    def preview_points(self, samples: torch.Tensor, path: Path) -> None:
        """Point samples (model space) as a preview in the data's units: a scatter for 2-D points, else
        an .npz in place of the .png `path`."""
        x = self.units.to_data(samples.cpu())
        if self.shape[0] == 2:
            viz.save_scatter(x, path)
        else:
            write_points(x, path.with_suffix(".npz"))

    def start(self) -> None:
        """Called once when a training run starts fresh (not on resume), before any step."""

    def fit_units(self, data: Dataset) -> None:
        """Point models with data.standardize: the model space of `data` (the training set), kept in the
        model file. Called when a training run starts fresh."""
        if self.units is not None and self.preset.data.standardize:
            self.units = PointUnits.fit(data.x, self.preset.data.scale, f"data set '{data.name}'")

    # -- shared ------------------------------------------------------------------------------
    def sample(self, num: int, generator: torch.Generator | None = None, batch_size: int = 256,
               progress=None, **kw) -> torch.Tensor:
        """`num` final samples in model space (on the CPU), in batches of `batch_size`; `progress(n)` is
        told of each batch. Per-sample arguments (tensors with `num` rows, or lists/tuples of them, such
        as CDRL's labels and observations) are split with the batches and moved to the device."""

        def rows(v, part: slice):
            if isinstance(v, torch.Tensor) and v.dim() > 0 and len(v) == num:
                return v[part].to(self.device)
            if isinstance(v, (list, tuple)):
                return type(v)(rows(u, part) for u in v)
            return v

        out = []
        for start in range(0, num, batch_size):
            part = slice(start, min(start + batch_size, num))
            n = part.stop - part.start
            out.append(self.sample_levels(n, generator, **{k: rows(v, part) for k, v in kw.items()})[-1].cpu())
            if progress is not None:
                progress(n)
        return torch.cat(out)

    def components(self) -> dict[str, nn.Module]:
        """Every network and its EMA copy, named as in the model file (`ebm`, `ebm_ema`, ...)."""
        out = {}
        for name in self.nets:
            out[name] = self.nets[name]
            out[f"{name}_ema"] = self.ema[name]
        return out

    def load_components(self, states: dict[str, dict[str, torch.Tensor]], source: str) -> None:
        comps = self.components()
        if set(states) != set(comps):
            raise EbmkitError(f"{source} holds components {sorted(states)}, expected {sorted(comps)}")
        for name, module in comps.items():
            try:
                module.load_state_dict(states[name])
            except RuntimeError as e:
                first = str(e).strip().splitlines()[0]
                raise EbmkitError(f"{source}: '{name}' does not match its preset ({first})") from None

    def use_data(self, data: Dataset) -> None:
        """The training set, once, before training: checked (check_data), and what the method needs of it
        recorded (CoopFlow: its size; NeRF-LEBM: each object's views)."""
        self.check_data(data)

    def check_data(self, data: Dataset) -> None:
        """The data set must match the networks' input shape and the preset's conditioning."""
        if tuple(data.shape) != self.shape:
            raise EbmkitError(f"data set '{data.name}' has examples of shape {tuple(data.shape)}, "
                              f"the model expects {self.shape}")
        cond = self.preset.conditioning
        if cond.kind == "class":
            if data.labels is None:
                raise EbmkitError(f"conditioning.kind = 'class' but data set '{data.name}' has no labels")
            if int(data.labels.max()) >= cond.num_classes:
                raise EbmkitError(f"data set '{data.name}' has label {int(data.labels.max())}, "
                                  f"beyond conditioning.num_classes = {cond.num_classes}")
        if cond.kind == "attributes":
            known = data.attribute_names or []
            missing = [a for a in cond.attributes if a not in known]
            if missing:
                raise EbmkitError(f"data set '{data.name}' has no attribute {missing[0]!r} "
                                  f"(valid: {', '.join(known) or 'none'})")
            for name, values in zip(cond.attributes, cond.values):
                j = known.index(name)
                data_values = data.attribute_values[j] if data.attribute_values else ["false", "true"]
                if data_values != values:
                    raise EbmkitError(f"attribute {name!r} of data set '{data.name}' takes values {data_values}, "
                                      f"the preset's conditioning.attribute_values say {values}")

    def make_batch(self, data: Dataset, idx: torch.Tensor) -> Batch:
        """Examples `idx` in model space on the method's device, with random flips if the preset asks."""
        x = data.model_space(idx).to(self.device)
        if self.units is not None:
            x = self.units.to_model(x)
        if self.preset.data.hflip and x.dim() == 4:
            flip = torch.rand(x.shape[0], device=self.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        labels = attributes = None
        if self.preset.conditioning.kind == "class":
            labels = data.labels[idx].to(self.device)
        elif self.preset.conditioning.kind == "attributes":
            cols = [data.attribute_names.index(a) for a in self.preset.conditioning.attributes]
            attributes = data.attributes[idx][:, cols].long().to(self.device)
        return Batch(x=x, labels=labels, attributes=attributes)
