"""The one training loop, for every method.

It draws batches, asks the method for its losses, steps one Adam(W) per network with warm-up and
gradient clipping, keeps EMA copies, guards against divergence, and writes the run directory:

    RUN/preset.json               the exact resolved preset
    RUN/model.safetensors         networks + EMA + preset: all that `ebmkit sample` needs
    RUN/train_state.safetensors   networks, optimisers, RNG and data order: exact resume
    RUN/metrics.jsonl             one JSON line per log interval, and guard events
    RUN/samples/step_*.png        periodic previews

Multi-GPU / multi-node: launch with torchrun; each rank draws its own data shard and RNG stream,
gradients are averaged by DDP, only rank 0 writes. Ctrl-C (or SIGTERM) finishes the current step,
saves, and exits.
"""

import copy
import json
import math
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from rich.console import Console
from rich.table import Column
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text
from torch.nn.parallel import DistributedDataParallel as DDP

from ebmkit import checkpoint
from ebmkit.data import from_config
from ebmkit.data.batches import ShardedBatches
from ebmkit.errors import EbmkitError
from ebmkit.methods import Method, build_method, save_model

console = Console(stderr=True)


# ---------------------------------------------------------------------------- processes
@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_ranks(device: str = "auto") -> Ranks:
    """One process, or one rank of a torchrun launch (WORLD_SIZE > 1): gloo on CPU, nccl on CUDA."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EbmkitError(f"--device {device}: no CUDA device is available")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks(device=torch.device(device))
    use_cuda = device.startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)
    return Ranks(dist.get_rank(), dist.get_world_size(), torch.device(f"cuda:{local}" if use_cuda else "cpu"))


def rng_state(ranks: Ranks) -> dict[str, torch.Tensor]:
    """Every rank's RNG state, stacked by rank (gathered to all ranks)."""
    states = {"cpu": torch.get_rng_state()}
    if ranks.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(ranks.device)
    if ranks.world == 1:
        return {k: v[None] for k, v in states.items()}
    out = {}
    for k, v in states.items():
        v = v.to(ranks.device)
        parts = [torch.empty_like(v) for _ in range(ranks.world)]
        dist.all_gather(parts, v)
        out[k] = torch.stack(parts).cpu()
    return out


def set_rng_state(states: dict[str, torch.Tensor], ranks: Ranks) -> None:
    if states["cpu"].shape[0] != ranks.world:
        raise EbmkitError(f"this run was trained with {states['cpu'].shape[0]} processes; "
                          f"resume it with the same number (got {ranks.world})")
    torch.set_rng_state(states["cpu"][ranks.rank])
    if "cuda" in states and ranks.device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"][ranks.rank], ranks.device)


# ---------------------------------------------------------------------------- helpers
@torch.no_grad()
def ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    """Average parameters; copy buffers. Spectral-norm power-iteration vectors (u, v) are buffers and
    must not be averaged: averaged u, v blow up the EMA network's outputs (implementation notes)."""
    for e, p in zip(ema.parameters(), net.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), net.buffers()):
        e.copy_(b)


def make_optimizers(method: Method) -> dict[str, torch.optim.Optimizer]:
    out = {}
    for name, spec in method.optim_specs().items():
        cls = torch.optim.AdamW if spec.decoupled else torch.optim.Adam
        out[name] = cls(method.nets[name].parameters(), lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)
    return out


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f} it/s" if task.speed else "-- it/s", style="cyan")


class Stopper:
    """Turns the first Ctrl-C / SIGTERM into a flag checked between steps; a second one interrupts."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------- the loop
class Trainer:
    def __init__(self, preset, run_dir: Path, ranks: Ranks, resume: bool, quiet: bool = False):
        self.preset, self.run_dir, self.ranks, self.quiet = preset, run_dir, ranks, quiet
        t = preset.train
        torch.manual_seed(t.seed * 1000 + ranks.rank)  # each rank its own stream
        self.data = from_config(preset.data, "train", t.seed)
        self.method = build_method(preset, self.data.shape, ranks.device)
        self.method.check_data(self.data)
        if not resume:
            self.method.start()
        if t.batch_size % ranks.world:
            raise EbmkitError(f"train.batch_size {t.batch_size} is not divisible by {ranks.world} processes")
        self.batches = ShardedBatches(len(self.data), t.batch_size // ranks.world, t.seed, ranks.rank, ranks.world)
        self.optimizers = make_optimizers(self.method)
        self.specs = self.method.optim_specs()
        self.train_nets = {k: DDP(v, find_unused_parameters=k in self.method.partly_used) if ranks.world > 1 else v
                           for k, v in self.method.nets.items()}
        if ranks.world > 1:  # DDP gave every rank rank 0's initial weights; so must the EMA copies
            self.method.ema.load_state_dict(self.method.nets.state_dict())
        self.step, self.lr_scale, self.rollbacks, self.energy_scale = 0, 1.0, 0, None
        if resume:
            self._load_state(checkpoint.load_state(run_dir / "train_state.safetensors"))
        self.snapshot = self._snapshot()
        self.preview_gen_seed = t.seed + 12345
        self.evaluator = None
        if t.eval_every and ranks.main:  # references are prepared now: a bad setting fails before step 1
            from ebmkit.metrics.evaluate import make_evaluator

            self.evaluator = make_evaluator(self.method, self.data, t.eval_num, t.seed)

    # -- state ------------------------------------------------------------------------------
    def _snapshot(self) -> dict:
        return copy.deepcopy({"step": self.step, "energy_scale": self.energy_scale,
                              "components": {k: m.state_dict() for k, m in self.method.components().items()},
                              "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}})

    def _restore(self, snap: dict) -> None:
        for k, m in self.method.components().items():
            m.load_state_dict(snap["components"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(snap["optimizers"][k])

    def _state(self) -> dict:
        return {"step": self.step, "lr_scale": self.lr_scale, "rollbacks": self.rollbacks,
                "energy_scale": self.energy_scale,
                "components": {k: m.state_dict() for k, m in self.method.components().items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "batches": self.batches.state_dict(), "rng": rng_state(self.ranks)}

    def _load_state(self, state: dict) -> None:
        self._restore(state)
        self.step, self.lr_scale, self.rollbacks = state["step"], state["lr_scale"], state["rollbacks"]
        self.energy_scale = state["energy_scale"]
        self.batches.load_state_dict(state["batches"])
        set_rng_state(state["rng"], self.ranks)

    def rank_checksums(self) -> list[float]:
        """A position-weighted float64 sum of every parameter, per rank (collective)."""
        flat = torch.cat([p.detach().flatten().double() for p in self.method.nets.parameters()])
        local = (flat * (torch.arange(len(flat), device=flat.device) % 97 + 1)).sum().reshape(1)
        if self.ranks.world == 1:
            return [float(local)]
        parts = [torch.empty_like(local) for _ in range(self.ranks.world)]
        dist.all_gather(parts, local)
        return [float(x) for x in parts]

    def save(self) -> None:
        state = self._state()  # collective: every rank takes part
        checksums = self.rank_checksums()
        self.log({"event": "checkpoint", "step": self.step, "rank_checksums": checksums})
        if len(set(checksums)) > 1:
            raise EbmkitError(f"ranks hold different parameters at step {self.step}: {checksums}", exit_code=1)
        if self.ranks.main:
            checkpoint.save_state(self.run_dir / "train_state.safetensors", state)
            save_model(self.run_dir / "model.safetensors", self.method, self.step)
        self.snapshot = self._snapshot()

    def preview(self) -> None:
        if self.ranks.main:
            gen = torch.Generator(self.ranks.device).manual_seed(self.preview_gen_seed)
            self.method.preview(self.run_dir / "samples" / f"step_{self.step:07d}.png", gen, self.data)

    def evaluate(self) -> None:
        """Measure sample quality on rank 0 (metrics/evaluate.py) and log it as an "eval" event."""
        if self.ranks.main:
            figures = {k: round(v, 6) if isinstance(v, float) else v for k, v in self.evaluator().items()}
            self.log({"event": "eval", "step": self.step, **figures})
            if not self.quiet:
                console.print(f"eval at step {self.step}: " + " ".join(f"{k}={v:.4g}" for k, v in figures.items()))
        if self.ranks.world > 1:
            dist.barrier()

    def truncate_log(self) -> None:
        """On resume, drop the records written after the checkpoint, so the log reads as one run."""
        path = self.run_dir / "metrics.jsonl"
        if path.is_file():
            keep = [line for line in path.read_text().splitlines() if json.loads(line).get("step", 0) <= self.step]
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text("".join(line + "\n" for line in keep))
            os.replace(tmp, path)

    def log(self, record: dict) -> None:
        if self.ranks.main:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    # -- one step ---------------------------------------------------------------------------
    def _set_lr(self) -> None:
        for name, opt in self.optimizers.items():
            spec = self.specs[name]
            for group in opt.param_groups:
                group["lr"] = spec.lr * spec.lr_factor(self.step) * self.lr_scale

    def train_step(self) -> dict[str, torch.Tensor] | None:
        """One update of every network; None when the guard rolled back instead."""
        batch = self.method.make_batch(self.data, self.batches.next())
        self.method.step = self.step  # methods with training phases (CoopFlow pre-training) read it
        losses, metrics = self.method.train_step(batch, self.train_nets)
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        norms = {}
        for name, net in self.method.nets.items():
            clip = self.specs[name].grad_clip or float("inf")
            norms[f"grad_norm_{name}"] = torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        values = {**{f"loss_{k}": v.detach() for k, v in losses.items()}, **metrics, **norms}
        if self.preset.guard.enabled and self._diverged(values):
            return None
        self._set_lr()
        for opt in self.optimizers.values():
            opt.step()
        for name in self.method.nets:
            ema_update(self.method.ema[name], self.method.nets[name], self.preset.train.ema)
        self.step += 1
        return values

    def _diverged(self, values: dict[str, torch.Tensor]) -> bool:
        """Non-finite loss or gradient, |energy| above the bound, or an energy spike: restore the last
        good state and lower the learning rates."""
        g = self.preset.guard
        vals = dict(zip(values, torch.stack(list(values.values())).tolist()))  # one sync per step
        energy = max((abs(v) for k, v in vals.items() if k.startswith("energy")), default=0.0)
        reason = ""
        if not all(math.isfinite(v) for v in vals.values()):
            reason = "non-finite value"
        elif energy > g.max_abs_energy:
            reason = f"|energy| {energy:.3g} above guard.max_abs_energy"
        elif (ref := self.snapshot["energy_scale"] or self.energy_scale) and self.step >= g.spike_after \
                and energy > g.spike_factor * max(ref, 1.0):
            reason = f"|energy| {energy:.3g} is {energy / ref:.0f}x its running mean at the last snapshot"
        bad = torch.tensor(float(bool(reason)))
        if self.ranks.world > 1:  # every rank takes the same decision
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
            reason = reason or ("divergence on another rank" if bad.item() else "")
        if not reason:
            self.energy_scale = energy if self.energy_scale is None else 0.99 * self.energy_scale + 0.01 * energy
            return False
        self.rollbacks += 1
        if self.rollbacks > g.max_rollbacks:
            raise EbmkitError(f"training diverged {self.rollbacks} times (last at step {self.step}: {reason}); "
                              f"lower train.lr or see {self.run_dir / 'metrics.jsonl'}", exit_code=1)
        self._restore(self.snapshot)
        self.lr_scale *= g.lr_factor
        message = (f"guard: {reason} at step {self.step}; restored step {self.snapshot['step']}, "
                   f"learning rates x{self.lr_scale:g}")
        if self.ranks.main:
            console.print(f"[yellow]{message}[/yellow]")
        self.log({"event": "guard", "step": self.step, "reason": reason, "restored": self.snapshot["step"],
                  "lr_scale": self.lr_scale, "values": {k: round(v, 6) for k, v in vals.items()}})
        self.step = self.snapshot["step"]
        return True

    # -- run --------------------------------------------------------------------------------
    def run(self) -> None:
        t, g = self.preset.train, self.preset.guard
        sums: dict[str, torch.Tensor] = {}
        count, tic = 0, time.time()
        progress = Progress(TextColumn("[bold]train[/bold]"), BarColumn(bar_width=20), MofNCompleteColumn(),
                            RateColumn(), TimeRemainingColumn(),
                            TextColumn("{task.fields[info]}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
                            console=console, expand=True,
                            disable=self.quiet or not self.ranks.main or not console.is_terminal)
        with Stopper() as stopper, progress:
            task = progress.add_task("train", total=t.iterations, completed=self.step, info="")
            while self.step < t.iterations:
                values = self.train_step()
                if values is None:
                    progress.update(task, completed=self.step)
                    continue
                for k, v in values.items():
                    sums[k] = sums.get(k, 0) + v
                count += 1
                progress.update(task, completed=self.step)
                if self.step % t.log_every == 0:
                    record = {"step": self.step, "time": round(time.time() - tic, 2), "lr_scale": self.lr_scale,
                              **{k: round(float(v) / count, 6) for k, v in sums.items()}}
                    self.log(record)
                    info = " ".join(f"{k.removeprefix('loss_')}={record[k]:.3g}" for k in sums if k.startswith(("loss", "energy")))
                    progress.update(task, info=info)
                    if self.ranks.main and not self.quiet and not console.is_terminal:
                        console.print(f"step {self.step}/{t.iterations} {info}")
                    sums, count = {}, 0
                if self.step % t.ckpt_every == 0:
                    self.save()
                elif self.step % g.snapshot_every == 0:
                    self.snapshot = self._snapshot()
                if self.step % t.sample_every == 0:
                    self.preview()
                if t.eval_every and self.step % t.eval_every == 0:
                    self.evaluate()
                if stopper.requested:
                    self.save()
                    raise EbmkitError(f"interrupted at step {self.step}; saved to {self.run_dir} "
                                      f"(continue with: ebmkit train --resume {self.run_dir})", exit_code=130)
        if self.step % t.ckpt_every:
            self.save()
        if self.step % t.sample_every:
            self.preview()
        if t.eval_every and self.step % t.eval_every:
            self.evaluate()


def train(preset, run_dir: str | Path, resume: bool = False, overwrite: bool = False,
          device: str = "auto", quiet: bool = False) -> Path:
    """Train `preset` into `run_dir` (or continue the run there). Returns the model file."""
    run_dir = Path(run_dir)
    ranks = setup_ranks(device)
    if resume and not (run_dir / "train_state.safetensors").is_file():
        raise EbmkitError(f"cannot resume: {run_dir / 'train_state.safetensors'} not found")
    if not resume and not overwrite and run_dir.exists() and any(run_dir.iterdir()):
        raise EbmkitError(f"run directory {run_dir} is not empty; use --resume to continue it "
                          f"or --overwrite to start over")
    trainer = Trainer(preset, run_dir, ranks, resume, quiet)  # loads the data first: a bad path writes nothing
    if not resume and ranks.main:
        for name in ("model.safetensors", "train_state.safetensors", "metrics.jsonl", "preset.json"):
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "samples", ignore_errors=True)
        run_dir.mkdir(parents=True, exist_ok=True)
    if ranks.main:  # on resume too: --set overrides (e.g. more iterations) are part of the record
        (run_dir / "preset.json").write_text(json.dumps(preset.model_dump(mode="json"), indent=2) + "\n")
    if resume and ranks.main:
        trainer.truncate_log()
    trainer.run()
    return run_dir / "model.safetensors"
