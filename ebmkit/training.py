"""The one training loop, for every method.

It draws batches, asks the method for its losses, steps one Adam(W) per network with warm-up and
gradient clipping, keeps EMA copies, guards against divergence, and writes the run directory:

    RUN/preset.json               the exact resolved preset (written with the first checkpoint of each process)
    RUN/model.safetensors         networks + EMA + preset: all that `ebmkit sample` needs
    RUN/train_state.safetensors   networks, optimisers, RNG and data order: exact resume
    RUN/metrics.jsonl             one JSON line per log interval, and guard events
    RUN/samples/step_*.png        periodic previews
    RUN/curves.png                losses, energies, gradient norms, evaluations, guard events (at each preview)

Checkpoints are staged in temporary files and renamed over the run's files only once a forward pass
from that state has passed the divergence guard, so the run's model is never a state the guard would
reject; when the guard cannot recover, the run stops (exit 1) with the last good state as its model.

Multi-GPU / multi-node: launch with torchrun; each rank draws its own data shard and RNG stream,
gradients are averaged by DDP, only rank 0 writes. Ctrl-C (or SIGTERM) finishes the current step,
saves, and exits.
"""

import copy
import importlib.util
import json
import math
import os
import shutil
import signal
import time
from pathlib import Path

import torch
import torch.distributed as dist
from rich.console import Console
from rich.table import Column
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text
from torch.nn.parallel import DistributedDataParallel as DDP

from ebmkit import checkpoint, inputs, rundir, viz
from ebmkit.data import from_config
from ebmkit.data.batches import ShardedBatches
from ebmkit.data.points import PointUnits
from ebmkit.errors import EbmkitError
from ebmkit.methods import Method, build_method, save_model
from ebmkit.runtime import Ranks, rng_state, set_rng_state, setup_ranks

console = Console(stderr=True)


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
class Watch:
    """What the divergence guard tracks between steps: running means (decay 0.99) of each energy
    metric's magnitude, the references of the spike test, and of the gap between paired energies
    (Method.energy_pairs, data against samples), with the gap at recent snapshots, the reference of the
    drift test. Each energy has its own reference: the networks' energies have unrelated scales (the
    flow's -log q of CoopFlow against its EBM's f), and a metric that a new phase starts to report has
    none until the next snapshot. The drift test watches the gap, not the level: a constant added to f
    changes no loss, so the level may wander while the model is sound; a gap that keeps growing means
    the samples no longer follow the model."""

    def __init__(self):
        self.levels: dict[str, float] = {}
        self.gap: float | None = None
        self.history: list[list[float]] = []  # [step, gap] at the snapshots of the last guard.drift_window steps

    def update(self, levels: dict[str, float], gap: float) -> None:
        for k, v in levels.items():
            self.levels[k] = v if k not in self.levels else 0.99 * self.levels[k] + 0.01 * v
        self.gap = gap if self.gap is None else 0.99 * self.gap + 0.01 * gap

    def mark(self, step: int, window: int) -> None:
        """Record the running gap at a snapshot; forget marks older than `window` steps."""
        if self.gap is not None:
            self.history = [h for h in self.history if step - window <= h[0] < step] + [[step, self.gap]]

    def drift(self, factor: float, floor: float) -> str:
        """As a reason, that the running gap exceeds `factor` x its lowest value at the recorded snapshots
        (floored at `floor`); "" if it does not."""
        low = max(min((h[1] for h in self.history), default=float("inf")), floor)
        if self.gap is not None and self.gap > factor * low:
            return f"energy drift: the running data/sample energy gap {self.gap:.3g} is {self.gap / low:.0f}x its lowest recent level"
        return ""

    def state_dict(self) -> dict:
        return {"levels": dict(self.levels), "gap": self.gap, "history": [list(h) for h in self.history]}

    def load_state_dict(self, state: dict) -> None:
        # a training state written before each energy had its own level holds none: they start again
        self.levels, self.gap = dict(state.get("levels", {})), state["gap"]
        self.history = [list(h) for h in state["history"]]


class Trainer:
    def __init__(self, preset, run_dir: Path, ranks: Ranks, resume: bool, quiet: bool = False):
        self.preset, self.run_dir, self.ranks, self.quiet = preset, run_dir, ranks, quiet
        self.board = None  # a TensorBoard writer (train(tensorboard=True)), opened once the step is known
        t = preset.train
        torch.manual_seed(t.seed * 1000 + ranks.rank)  # each rank its own stream
        self.data = from_config(preset.data, "train", t.seed)
        self.method = build_method(preset, self.data.shape, ranks.device)
        self.method.use_data(self.data)
        if not resume:
            self.method.fit_units(self.data)
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
        self.step, self.lr_scale, self.rollbacks, self.watch = 0, 1.0, 0, Watch()
        if resume:
            try:
                self._load_state(checkpoint.load_state(run_dir / "train_state.safetensors"))
            except (KeyError, RuntimeError, ValueError, TypeError) as e:  # a state of other networks, or a crafted file
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise EbmkitError(f"cannot resume {run_dir}: its training state does not fit the preset's networks "
                                  f"({first[:200]})") from None
        # A state is good once a forward pass from it has passed the guard. `snapshot` is the last good
        # state in memory (rollbacks restore it); `pending` a newer one awaiting that check; `staged`
        # checkpoint files written beside the run's files, renamed over them once their state is good.
        self.snapshot, self.pending, self.staged, self.staged_step = self._snapshot(), None, [], None
        self.any_good = resume  # whether any state has passed the guard (the initial one has not, yet)
        self.committed = self.step if resume else None  # the step of the run's checkpoint files
        self.preset_recorded = False  # preset.json is written with this process's first checkpoint
        self.preview_gen_seed = t.seed + 12345
        self.evaluator = None
        if t.eval_every and ranks.main:  # references are prepared now: a bad setting fails before step 1
            from ebmkit.metrics.evaluate import make_evaluator

            self.evaluator = make_evaluator(self.method, self.data, t.eval_num, t.seed)

    # -- state ------------------------------------------------------------------------------
    def _snapshot(self) -> dict:
        return copy.deepcopy({"step": self.step, "watch": self.watch.state_dict(),
                              "components": {k: m.state_dict() for k, m in self.method.components().items()},
                              "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}})

    def _restore(self, snap: dict) -> None:
        for k, m in self.method.components().items():
            m.load_state_dict(snap["components"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(snap["optimizers"][k])
        self.watch.load_state_dict(copy.deepcopy(snap["watch"]))

    def _state(self) -> dict:
        return {"step": self.step, "lr_scale": self.lr_scale, "rollbacks": self.rollbacks,
                "watch": self.watch.state_dict(),
                "components": {k: m.state_dict() for k, m in self.method.components().items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "batches": self.batches.state_dict(), "rng": rng_state(self.ranks),
                "units": None if self.method.units is None else self.method.units.to_dict()}

    def _load_state(self, state: dict) -> None:
        self._restore(state)
        self.step, self.lr_scale, self.rollbacks = state["step"], state["lr_scale"], state["rollbacks"]
        self.batches.load_state_dict(state["batches"])
        set_rng_state(state["rng"], self.ranks)
        if state.get("units") is not None:
            self.method.units = PointUnits.from_dict(state["units"])

    def rank_checksums(self) -> list[float]:
        """A position-weighted float64 sum of every parameter, per rank (collective)."""
        flat = torch.cat([p.detach().flatten().double() for p in self.method.nets.parameters()])
        local = (flat * (torch.arange(len(flat), device=flat.device) % 97 + 1)).sum().reshape(1)
        if self.ranks.world == 1:
            return [float(local)]
        parts = [torch.empty_like(local) for _ in range(self.ranks.world)]
        dist.all_gather(parts, local)
        return [float(x) for x in parts]

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self, status: str | None = None) -> bool:
        """Stage the training state and the model of this step beside the run's files (collective). They
        replace those files once a forward pass from this state passes the guard (`_commit`), at once when
        the guard is off. False, writing nothing, when a weight is not finite. `status` goes into the
        model's metadata."""
        if not all(bool(torch.isfinite(v).all()) for m in self.method.components().values()
                   for v in m.state_dict().values() if v.is_floating_point()):
            return False
        state = self._state()
        checksums = self.rank_checksums()
        if len(set(checksums)) > 1:
            raise EbmkitError(f"ranks hold different parameters at step {self.step}: {checksums}", exit_code=1)
        self._discard()
        if self.ranks.main:
            self.staged = [
                (checkpoint.save_state(self.run_dir / "train_state.safetensors", state, commit=False),
                 self.run_dir / "train_state.safetensors"),
                (save_model(self.run_dir / "model.safetensors", self.method, self.step, commit=False, status=status),
                 self.run_dir / "model.safetensors")]
        self.staged_step, self.staged_checksums = self.step, checksums
        self.pending = self._snapshot()
        if not self.preset.guard.enabled:
            self._commit()
        return True

    def _commit(self) -> None:
        """The staged checkpoint files replace the run's (rank 0 holds them; every rank keeps the count)."""
        if self.staged_step is None:
            return
        for tmp, path in self.staged:
            os.replace(tmp, path)
        if self.ranks.main and not self.preset_recorded:  # on resume too: --set overrides are part of the record
            tmp = self.run_dir / f".preset.json.tmp{os.getpid()}"
            tmp.write_text(json.dumps(self.preset.model_dump(mode="json"), indent=2) + "\n")
            os.replace(tmp, self.run_dir / "preset.json")
            self.preset_recorded = True
        self.log({"event": "checkpoint", "step": self.staged_step, "rank_checksums": self.staged_checksums})
        self.committed, self.staged, self.staged_step = self.staged_step, [], None

    def _discard(self) -> None:
        for tmp, _ in self.staged:
            tmp.unlink(missing_ok=True)
        self.staged, self.staged_step = [], None

    def _state_is_good(self) -> None:
        """The forward pass from the current state passed the guard: it becomes the last good state, and
        its staged checkpoint the run's."""
        if self.pending is not None:
            self.snapshot, self.pending = self.pending, None
        self.any_good = True
        self._commit()

    def _unsettled(self) -> str:
        """Why the current state, though it passed the guard, is no good state to keep: its data/sample gap
        beyond guard.settled_factor x its lowest recent level, on its way to the drift limit ("" if settled)."""
        g = self.preset.guard
        return self.watch.drift(g.settled_factor, g.gap_floor) if self.step >= g.spike_after else ""

    def _drop_pending(self) -> None:
        """The state awaiting its check is unsettled: it replaces neither the snapshot nor the run's files."""
        self.pending = None
        self._discard()

    def preview(self) -> None:
        """Samples in RUN/samples/ and the training curves so far in RUN/curves.png."""
        if self.ranks.main:
            gen = torch.Generator(self.ranks.device).manual_seed(self.preview_gen_seed)
            self.method.preview(self.run_dir / "samples" / f"step_{self.step:07d}.png", gen, self.data)
            viz.training_curves(rundir.read_log(self.run_dir / "metrics.jsonl", lambda message: None),
                                self.run_dir / "curves.png")

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
        """On resume, drop the records written after the checkpoint (and any line cut short), so the log
        reads as one run."""
        path = self.run_dir / "metrics.jsonl"
        if path.is_file():
            warn = lambda message: console.print(f"warning: {message}", style="yellow", markup=False, soft_wrap=True)  # noqa: E731
            keep = [r for r in rundir.read_log(path, warn) if r.get("step", 0) <= self.step]
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
            os.replace(tmp, path)

    def log(self, record: dict) -> None:
        if self.ranks.main:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            if self.board is not None:
                group = record.get("event", "train")
                for key, value in record.items():
                    if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                        self.board.add_scalar(f"{group}/{key}", value, record["step"])
                if group in ("guard", "guard_failed"):
                    self.board.add_text("guard", f"step {record['step']}: {record.get('reason', '')}", record["step"])

    # -- one step ---------------------------------------------------------------------------
    def _set_lr(self) -> None:
        for name, opt in self.optimizers.items():
            spec = self.specs[name]
            for group in opt.param_groups:
                group["lr"] = spec.lr_at(self.step) * self.lr_scale

    def train_step(self, update: bool = True) -> dict[str, torch.Tensor] | None:
        """One update of every network; None when the guard rolled back instead. With update=False only
        the forward pass and the guard's check of the current state (before it is committed as final)."""
        batch = self.method.make_batch(self.data, self.batches.next())
        losses, metrics = self.method.train_step(batch, self.train_nets, self.step)
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        norms = {}
        for name, net in self.method.nets.items():
            clip = self.specs[name].grad_clip or float("inf")
            norms[f"grad_norm_{name}"] = torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        values = {**{f"loss_{k}": v.detach() for k, v in losses.items()}, **metrics, **norms}
        unsettled = ""
        if self.preset.guard.enabled:
            reason, vals = self._check(values)
            unsettled = "" if reason else self._unsettled()
            if unsettled and not update:
                reason = f"{unsettled} in the final state"  # a run ends only on a state it may keep
            if reason:
                self._rollback(reason, vals)
                return None
        if unsettled:
            self._drop_pending()
        else:
            self._state_is_good()
        if not update:
            return values
        self._set_lr()
        for opt in self.optimizers.values():
            opt.step()
        for name in self.method.nets:
            ema_update(self.method.ema[name], self.method.nets[name], self.preset.train.ema)
        self.step += 1
        return values

    def _check(self, values: dict[str, torch.Tensor]) -> tuple[str, dict[str, float]]:
        """Why the step's values show divergence ("" if they do not), the same on every rank. Tests, in
        order: a non-finite loss or gradient; |energy| above guard.max_abs_energy; from guard.spike_after
        on, an |energy*| metric above spike_factor x its own running mean at the last snapshot (a sudden
        blow-up; a metric new since that snapshot has no reference yet), and the running data/sample energy
        gap above drift_factor x its lowest value at the snapshots of the last drift_window steps (a slow
        drift; see Watch). Energy references are floored at 1, the gap's at guard.gap_floor."""
        g, w = self.preset.guard, self.watch
        vals = dict(zip(values, torch.stack(list(values.values())).tolist()))  # one sync per step
        levels = {k: abs(v) for k, v in vals.items() if k.startswith("energy")}
        gap = max((abs(vals[a] - vals[b]) for a, b in self.method.energy_pairs if a in vals and b in vals), default=0.0)
        refs = self.snapshot["watch"]["levels"] or w.levels  # before the first snapshot: the running means
        spikes = [(v / max(refs[k], 1.0), k, v) for k, v in levels.items() if k in refs]
        relative = self.step >= g.spike_after
        reason = ""
        if not all(math.isfinite(v) for v in vals.values()):
            reason = "non-finite value"
        elif (top := max(levels.values(), default=0.0)) > g.max_abs_energy:
            reason = f"|energy| {top:.3g} above guard.max_abs_energy"
        elif relative and spikes and (worst := max(spikes))[0] > g.spike_factor:
            reason = f"|{worst[1]}| {worst[2]:.3g} is {worst[0]:.0f}x its running mean at the last snapshot"
        elif relative and (drift := w.drift(g.drift_factor, g.gap_floor)):
            reason = drift
        bad = torch.tensor(float(bool(reason)))
        if self.ranks.world > 1:  # every rank takes the same decision
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
            reason = reason or ("divergence on another rank" if bad.item() else "")
        if not reason:
            w.update(levels, gap)
        return reason, vals

    def _rollback(self, reason: str, vals: dict[str, float]) -> None:
        """Restore the last good state and lower the learning rates; give up (exit 1, the last good state
        written as the run's model) after guard.max_rollbacks or below guard.min_lr_scale."""
        g = self.preset.guard
        self._discard()
        self.pending = None
        self.rollbacks += 1
        self.lr_scale *= g.lr_factor
        at, restored = self.step, self.snapshot["step"]
        self._restore(self.snapshot)
        self.step = restored
        self.log({"event": "guard", "step": at, "reason": reason, "restored": restored, "lr_scale": self.lr_scale,
                  "values": {k: round(v, 6) for k, v in vals.items()}})
        if self.rollbacks > g.max_rollbacks or self.lr_scale < g.min_lr_scale:
            self._give_up(at, reason)
        if self.ranks.main:
            console.print(f"[yellow]guard: {reason} at step {at}; restored step {restored}, "
                          f"learning rates x{self.lr_scale:g}[/yellow]")

    def _give_up(self, at: int, reason: str) -> None:
        g, step = self.preset.guard, self.step
        why = (f"{self.rollbacks} rollbacks (guard.max_rollbacks {g.max_rollbacks})" if self.rollbacks > g.max_rollbacks
               else f"learning rates cut to x{self.lr_scale:g} (below guard.min_lr_scale {g.min_lr_scale:g})")
        self.log({"event": "guard_failed", "step": at, "reason": reason, "model_step": step if self.any_good else None,
                  "why": why})
        message = f"training diverged and the guard could not recover ({why}; last: {reason} at step {at})"
        if not self.any_good:
            raise EbmkitError(f"{message}; no state of this run passed the guard, so no model was written. Check "
                              f"the preset's step sizes and learning rates", exit_code=1)
        self.save(status=f"training diverged at step {at} ({reason}); these are the weights of step {step}, "
                         f"the last good state")  # the restored snapshot passed the guard when it was taken
        self._commit()
        raise EbmkitError(f"{message}; {self.run_dir / 'model.safetensors'} holds step {step}, the last good state. "
                          f"Lower train.lr (or the step sizes) and resume, or see {self.run_dir / 'metrics.jsonl'}",
                          exit_code=1)

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
        try:
            with Stopper() as stopper, progress:
                task = progress.add_task("train", total=t.iterations, completed=self.step, info="")
                while True:
                    done = self.step >= t.iterations or stopper.requested
                    if done and self.committed == self.step:
                        break
                    if done and self.staged_step is None and not self.save():
                        self._rollback("non-finite weights", {})
                        continue
                    if done and not g.enabled:
                        break
                    values = self.train_step(update=not done)  # when done: the final state's check, then commit
                    progress.update(task, completed=self.step)
                    if values is None or done:
                        continue
                    for k, v in values.items():
                        sums[k] = sums.get(k, 0) + v
                    count += 1
                    if self.step % t.log_every == 0:
                        record = {"step": self.step, "time": round(time.time() - tic, 2), "lr_scale": self.lr_scale,
                                  **{k: round(float(v) / count, 6) for k, v in sums.items()}}
                        self.log(record)
                        info = " ".join(f"{k.removeprefix('loss_')}={record[k]:.3g}" for k in sums if k.startswith(("loss", "energy")))
                        progress.update(task, info=info)
                        if self.ranks.main and not self.quiet and not console.is_terminal:
                            console.print(f"step {self.step}/{t.iterations} {info}")
                        sums, count = {}, 0
                    if self.step % g.snapshot_every == 0:
                        self.watch.mark(self.step, g.drift_window)
                    if self.step % t.ckpt_every == 0:
                        if not self.save():
                            self._rollback("non-finite weights", {})
                            continue
                    elif self.step % g.snapshot_every == 0:
                        self.pending = self._snapshot()
                    if self.step % t.sample_every == 0:
                        self.preview()
                    if t.eval_every and self.step % t.eval_every == 0:
                        self.evaluate()
        finally:
            self._discard()
        if stopper.requested:
            raise EbmkitError(f"interrupted at step {self.step}; saved to {self.run_dir} "
                              f"(continue with: ebmkit train --resume {self.run_dir})", exit_code=130)
        if self.step % t.sample_every:
            self.preview()
        if t.eval_every and self.step % t.eval_every:
            self.evaluate()


def train(preset, run_dir: str | Path, resume: bool = False, overwrite: bool = False,
          device: str = "auto", quiet: bool = False, tensorboard: bool = False) -> Path:
    """Train `preset` into `run_dir` (or continue the run there). Returns the model file. The run directory
    is locked for the life of the process; a command that fails before training leaves it as it was.
    With `tensorboard`, every logged figure also goes to RUN/tensorboard/ (needs the tensorboard package)."""
    run_dir = Path(run_dir)
    if tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise EbmkitError("--tensorboard needs the tensorboard package: pip install tensorboard "
                          "(or install ebmkit-cli[tensorboard])")
    ranks = setup_ranks(device)
    inputs.output_dir(run_dir, "run directory")
    if resume:
        for name in ("train_state.safetensors", "model.safetensors"):
            if not (run_dir / name).is_file():
                raise EbmkitError(f"cannot resume: {run_dir / name} not found")
    missing = [p for p in (run_dir, *run_dir.parents) if not p.exists()]  # folders this command creates
    had_lock = (run_dir / rundir.LOCK).exists()
    lock = rundir.RunLock(run_dir)
    try:
        if ranks.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            lock.acquire()  # before anything in the directory is read or changed
            rundir.remove_temporary(run_dir)
        if not resume and not overwrite and any(p.name != rundir.LOCK for p in run_dir.glob("*")):
            raise EbmkitError(f"run directory {run_dir} is not empty; use --resume to continue it "
                              f"or --overwrite to start over")
        if resume:
            rundir.check_resume(rundir.stored_preset(run_dir / "model.safetensors"), preset.model_dump(mode="json"), run_dir)
        trainer = Trainer(preset, run_dir, ranks, resume, quiet)  # loads the data first: a bad path writes nothing
    except BaseException:
        if missing and ranks.main:  # removed while still locked: no other process can have taken it
            shutil.rmtree(missing[-1], ignore_errors=True)
        elif not had_lock and ranks.main:
            (run_dir / rundir.LOCK).unlink(missing_ok=True)
        lock.release()
        raise
    try:
        if not resume and ranks.main:
            for name in ("model.safetensors", "train_state.safetensors", "metrics.jsonl", "preset.json", "curves.png"):
                (run_dir / name).unlink(missing_ok=True)
            for folder in ("samples", "tensorboard"):
                shutil.rmtree(run_dir / folder, ignore_errors=True)
        if resume and ranks.main:
            trainer.truncate_log()
        if tensorboard and ranks.main:
            from torch.utils.tensorboard import SummaryWriter

            trainer.board = SummaryWriter(str(run_dir / "tensorboard"), purge_step=trainer.step or None)
        trainer.run()
    finally:
        if trainer.board is not None:
            trainer.board.close()
        lock.release()
    return run_dir / "model.safetensors"
