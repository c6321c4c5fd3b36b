"""The training loop: run directory, exact resume after SIGKILL and Ctrl-C, divergence guard, DDP."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, ebmkit, set_args, tiny
from ebmkit import checkpoint
from ebmkit.errors import EbmkitError
from ebmkit.methods import build_method, load_model
from ebmkit.metrics.points import points_report
from ebmkit.presets import load_preset
from ebmkit.runtime import Ranks
from ebmkit.training import Trainer, train

TINY = tiny("cdrl-points")  # the tiny checkerboard CDRL these tests train


def model_tensors(run_dir):
    return checkpoint.read_safetensors(run_dir / "model.safetensors")[0]


def assert_same_model(a, b):
    ta, tb = model_tensors(a), model_tensors(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


def test_run_directory(tmp_path):
    preset = load_preset("cdrl-points", TINY + ["train.iterations=12", "train.ckpt_every=5",
                                                      "train.sample_every=6"])
    model = train(preset, tmp_path / "r", quiet=True)
    run = tmp_path / "r"
    assert model == run / "model.safetensors" and (run / "train_state.safetensors").is_file()
    assert json.loads((run / "preset.json").read_text()) == preset.model_dump(mode="json")
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "event" not in r] == [5, 10]
    assert [r["step"] for r in lines if r.get("event") == "checkpoint"] == [5, 10, 12]
    assert {"loss_ebm", "loss_init", "energy_data", "energy_sample"} <= set(lines[0])
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000006.png", "step_0000012.png"]
    assert checkpoint.load_state(run / "train_state.safetensors")["step"] == 12
    with pytest.raises(Exception, match="not empty"):
        train(preset, run, quiet=True)


def log_without_times(run_dir):
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def start_training(run_dir, iterations, extra=()):
    args = ["train", "--preset", "cdrl-points", "--run-dir", run_dir, "--quiet",
            *set_args(TINY + [f"train.iterations={iterations}", "train.ckpt_every=20", *extra])]
    return subprocess.Popen([sys.executable, "-m", "ebmkit", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=120):
    start = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() - start < timeout
        time.sleep(0.02)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    ref = tmp_path_factory.mktemp("ref") / "run"
    ebmkit("train", "--preset", "cdrl-points", "--run-dir", ref, "--quiet",
           *set_args(TINY + ["train.iterations=400", "train.ckpt_every=20"]), check=True)
    return ref


def test_sigkill_then_resume_is_bitwise_identical(tmp_path, reference_run):
    run = tmp_path / "killed"
    proc = start_training(run, 400)
    wait_for(run / "train_state.safetensors", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = checkpoint.load_state(run / "train_state.safetensors")["step"]
    assert 0 < stopped_at < 400, "the run finished before it could be killed"
    ebmkit("train", "--resume", run, "--quiet", check=True)
    assert checkpoint.load_state(run / "train_state.safetensors")["step"] == 400
    assert_same_model(run, reference_run)
    assert log_without_times(run) == log_without_times(reference_run)  # records after the checkpoint were dropped


def test_ctrl_c_saves_and_resume_is_bitwise_identical(tmp_path, reference_run):
    run = tmp_path / "interrupted"
    proc = start_training(run, 400)
    wait_for(run / "train_state.safetensors", proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr.strip().startswith("error: interrupted at step") and "--resume" in stderr
    assert len(stderr.strip().splitlines()) == 1
    stopped_at = checkpoint.load_state(run / "train_state.safetensors")["step"]
    assert 0 < stopped_at < 400
    ebmkit("train", "--resume", run, "--quiet", check=True)
    assert_same_model(run, reference_run)


def altered_trainer(tmp_path, monkeypatch, overrides, alter):
    """A Trainer of the TINY checkerboard preset whose method's train_step output passes through
    alter(trainer, losses, metrics) -> (losses, metrics): injected divergence."""
    trainer = Trainer(load_preset("cdrl-points", TINY + overrides), tmp_path, Ranks(), resume=False, quiet=True)
    real_step = trainer.method.train_step
    monkeypatch.setattr(trainer.method, "train_step", lambda batch, nets, step: alter(trainer, *real_step(batch, nets, step)))
    return trainer


def events_of(run_dir, kind):
    return [e for e in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if e.get("event") == kind]


def model_meta(run_dir):
    return checkpoint.read_safetensors(run_dir / "model.safetensors")[1]


def test_guard_rolls_back_and_lowers_the_learning_rate(tmp_path, monkeypatch):
    calls = {"n": 0}

    def poisoned(trainer, losses, metrics):  # the 15th update produces a NaN loss
        calls["n"] += 1
        if calls["n"] == 15:
            losses["ebm"] = losses["ebm"] * float("nan")
        return losses, metrics

    trainer = altered_trainer(tmp_path, monkeypatch, ["train.iterations=30", "train.ckpt_every=100",
                                                      "guard.snapshot_every=10"], poisoned)
    trainer.run()
    guard = events_of(tmp_path, "guard")
    assert len(guard) == 1 and guard[0]["step"] == 14 and guard[0]["restored"] == 10
    assert trainer.lr_scale == 0.5 and trainer.step == 30
    state = checkpoint.load_state(tmp_path / "train_state.safetensors")
    assert state["lr_scale"] == 0.5 and state["rollbacks"] == 1
    assert all(torch.isfinite(t).all() for t in model_tensors(tmp_path).values())


@pytest.mark.parametrize("spike_after", [0, 100])
def test_guard_catches_an_energy_spike(tmp_path, monkeypatch, spike_after):
    calls = {"n": 0}

    def spiking(trainer, losses, metrics):  # the 21st update reports energies 1000x larger than usual
        calls["n"] += 1
        if calls["n"] == 21:
            metrics = {k: v * 0 + 1e3 * max(1.0, *trainer.watch.levels.values()) for k, v in metrics.items()}
        return losses, metrics

    trainer = altered_trainer(tmp_path, monkeypatch, ["train.iterations=25", "train.ckpt_every=100",
                                                      "guard.snapshot_every=10", f"guard.spike_after={spike_after}"],
                              spiking)
    trainer.run()
    guard = events_of(tmp_path, "guard")
    if spike_after > 20:  # early in training a fast rise is no divergence
        assert guard == []
    else:
        # the state of step 20 gave the spike, so the last good one is the snapshot of step 10
        assert len(guard) == 1 and "running mean" in guard[0]["reason"] and guard[0]["restored"] == 10


def test_guard_gives_an_energy_of_a_new_phase_its_own_reference(tmp_path, monkeypatch):
    """From step 30 on a new metric (as CoopFlow's flow -log q from the start of Algorithm 3) reports 500x
    the other energies, with a transient: not a spike of those energies. Once a snapshot has seen it, a
    jump of that metric to ~280x its running mean is one."""

    def new_phase(trainer, losses, metrics):
        if trainer.step >= 30:
            scale = 5e5 if trainer.step == 52 and not trainer.rollbacks else 2e3 if trainer.step < 35 else 500.0
            metrics["energy_new"] = metrics["energy_data"] * 0 + scale
        return losses, metrics

    trainer = altered_trainer(tmp_path, monkeypatch, ["train.iterations=60", "train.ckpt_every=100",
                                                      "guard.snapshot_every=10", "guard.spike_after=0"], new_phase)
    trainer.run()
    guard = events_of(tmp_path, "guard")
    assert len(guard) == 1 and guard[0]["step"] == 52 and guard[0]["reason"].startswith("|energy_new|")
    assert guard[0]["restored"] == 50


def test_guard_catches_a_gradual_runaway(tmp_path, monkeypatch):
    """Energies growing 25% per step, as a prior chain running away: a running mean follows them (it stays
    ~20x behind), the running mean frozen at the last snapshot does not."""

    def running_away(trainer, losses, metrics):  # until the first rollback
        scale = 5.0 * 1.25 ** max(0, trainer.step - 25) if trainer.rollbacks == 0 else 5.0
        return losses, {k: v * 0 + scale if k.startswith("energy") else v for k, v in metrics.items()}

    trainer = altered_trainer(tmp_path, monkeypatch, ["train.iterations=60", "train.ckpt_every=100",
                                                      "guard.snapshot_every=25", "guard.spike_after=0"], running_away)
    trainer.run()
    guard = events_of(tmp_path, "guard")
    assert len(guard) == 1 and "at the last snapshot" in guard[0]["reason"]
    assert guard[0]["restored"] == 25 and guard[0]["step"] == 25 + 21  # 1.25^21 > 100
    assert trainer.step == 60


DRIFT = ["guard.snapshot_every=10", "guard.spike_after=0", "guard.drift_window=200", "guard.gap_floor=1.0"]


@pytest.mark.parametrize("kind", ["drift", "blow-up"])
def test_guard_stops_a_run_it_cannot_recover(tmp_path, monkeypatch, kind):
    """A slow drift (the gap between data and sample energies 3% up per step: never 100x in one
    snapshot interval, 369x in the drift window, at an energy level that barely moves) or a blow-up (a
    non-finite loss) from step 40 on, at every try: the guard rolls back until the learning rates fall
    below guard.min_lr_scale, then the run stops with exit 1 and the last good state as its model."""

    def failing(trainer, losses, metrics):
        if kind == "drift":  # the level stays near 1000 (up 1.4x at most before the guard acts)
            gap = 1.03 ** (trainer.step - 40) if trainer.step >= 40 else 0.0
            metrics = {**metrics, "energy_data": metrics["energy_data"] * 0 + 1e3,
                       "energy_sample": metrics["energy_sample"] * 0 + 1e3 + gap}
        if trainer.step >= 40 and kind == "blow-up":
            losses["ebm"] = losses["ebm"] * float("inf")
        return losses, metrics

    trainer = altered_trainer(tmp_path, monkeypatch, ["train.iterations=400", "train.ckpt_every=20", *DRIFT], failing)
    with pytest.raises(EbmkitError, match="could not recover.*min_lr_scale.*the last good state") as failure:
        trainer.run()
    assert failure.value.exit_code == 1
    guard = events_of(tmp_path, "guard")
    assert len(guard) == 7 and guard[-1]["lr_scale"] < 0.01  # 0.5^7
    assert all(("data/sample energy gap" if kind == "drift" else "non-finite") in e["reason"] for e in guard)
    failed = events_of(tmp_path, "guard_failed")
    assert len(failed) == 1 and failed[0]["model_step"] == guard[-1]["restored"]
    assert all(torch.isfinite(t).all() for t in model_tensors(tmp_path).values())
    meta = model_meta(tmp_path)
    assert int(meta["step"]) == failed[0]["model_step"] and "diverged" in meta["status"]
    assert checkpoint.load_state(tmp_path / "train_state.safetensors")["step"] == failed[0]["model_step"]
    if kind == "blow-up":  # every state up to step 40 passed; 40 itself never did
        assert failed[0]["model_step"] == 30
    assert not list(tmp_path.glob(".*.tmp*"))  # no staged file left behind


def gap_bump(start: int, end: int, size: float = 100.0, base: float = 0.0):
    """A train_step alteration: energies at a level of 1000 (so that the bump is no spike), the samples'
    `size` above the data's from step `start` to `end`, `base` above at other steps."""

    def alter(trainer, losses, metrics):
        gap = size if start <= trainer.step < end else base
        return losses, {**metrics, "energy_data": metrics["energy_data"] * 0 + 1e3,
                        "energy_sample": metrics["energy_sample"] * 0 + 1e3 + gap}

    return alter


def test_guard_keeps_no_state_whose_gap_has_not_settled(tmp_path, monkeypatch):
    """A gap of 100 for 25 steps (60-84) lifts the running gap (decay 0.99) to 22: beyond
    guard.settled_factor (10) x its floor of 1 from step 71 to about 165, never at the drift limit (30).
    No rollback; the snapshots and checkpoints of those steps are never kept; training ends normally."""
    trainer = altered_trainer(tmp_path, monkeypatch, ["train.iterations=240", "train.ckpt_every=20", *DRIFT],
                              gap_bump(60, 85))
    trainer.run()
    assert events_of(tmp_path, "guard") == [] and trainer.step == 240
    kept = [e["step"] for e in events_of(tmp_path, "checkpoint")]
    assert kept[:3] == [20, 40, 60] and not [k for k in kept if 80 <= k <= 160] and kept[-1] == 240
    assert int(model_meta(tmp_path)["step"]) == 240


def test_guard_never_ends_on_an_unsettled_state(tmp_path, monkeypatch):
    """A gap of 100 from step 230 on, every try: the final state (step 250) is unsettled (running gap 19,
    below the drift limit), and so is step 240 (10.5). The run rolls back to step 230 until the learning
    rates fall below guard.min_lr_scale, then stops with exit 1 and step 230 as its model."""
    trainer = altered_trainer(tmp_path, monkeypatch, ["train.iterations=250", "train.ckpt_every=10", *DRIFT],
                              gap_bump(230, 10**9))
    with pytest.raises(EbmkitError, match="could not recover.*in the final state") as failure:
        trainer.run()
    assert failure.value.exit_code == 1
    guard = events_of(tmp_path, "guard")
    assert len(guard) == 7 and all(e["step"] == 250 and e["restored"] == 230 for e in guard)
    assert int(model_meta(tmp_path)["step"]) == 230 == events_of(tmp_path, "guard_failed")[0]["model_step"]


@pytest.mark.parametrize("floor", [1.0, 0.01])
def test_guard_measures_a_small_gap_against_its_floor(tmp_path, monkeypatch, floor):
    """A gap of 0.002 (as a sound CDRL run's) that jumps to 0.5 at step 40: 250x, but half the default floor
    of 1, so no drift; with guard.gap_floor = 0.01 it is 50x the floor, and the guard rolls back."""
    trainer = altered_trainer(tmp_path, monkeypatch, ["train.iterations=120", "train.ckpt_every=100", *DRIFT,
                                                      f"guard.gap_floor={floor}"], gap_bump(40, 10**9, 0.5, 0.002))
    if floor == 1.0:
        trainer.run()
        assert events_of(tmp_path, "guard") == []
    else:
        with pytest.raises(EbmkitError, match="could not recover"):
            trainer.run()
        guard = events_of(tmp_path, "guard")
        assert guard and all("data/sample energy gap" in e["reason"] for e in guard)


def test_guard_lets_the_energy_offset_wander(tmp_path, monkeypatch):
    """A constant added to f changes no loss: energies of data and samples wandering together, 3% up per
    step (120x over the run, never 100x in one snapshot interval), are no divergence."""

    def wandering(trainer, losses, metrics):
        offset = 1.03 ** max(0, trainer.step - 40)
        return losses, {k: v + offset if k.startswith("energy") else v for k, v in metrics.items()}

    trainer = altered_trainer(tmp_path, monkeypatch, ["train.iterations=200", "train.ckpt_every=100", *DRIFT], wandering)
    trainer.run()
    assert events_of(tmp_path, "guard") == [] and trainer.step == 200


def test_guard_never_writes_a_rejected_final_state(tmp_path, monkeypatch):
    """Weights poisoned by the last update (and by the update into a checkpoint step) are never
    written: the guard rolls back, training redoes the steps, and the model written is finite."""
    preset = load_preset("cdrl-points", TINY + ["train.iterations=40", "train.ckpt_every=20",
                                                      "guard.snapshot_every=10"])
    trainer = Trainer(preset, tmp_path, Ranks(), resume=False, quiet=True)
    opt, poisoned = trainer.optimizers["ebm"], []
    real_opt_step = opt.step

    def poisoning_step(*args, **kw):  # the updates into steps 20 and 40, once each
        out = real_opt_step(*args, **kw)
        if trainer.step + 1 in (20, 40) and trainer.step + 1 not in poisoned:
            poisoned.append(trainer.step + 1)
            next(trainer.method.nets["ebm"].parameters()).data.fill_(float("inf"))
        return out

    monkeypatch.setattr(opt, "step", poisoning_step)
    trainer.run()
    guard = events_of(tmp_path, "guard")
    assert [(e["step"], e["restored"]) for e in guard] == [(20, 10), (40, 30)]
    assert all("non-finite" in e["reason"] for e in guard)
    assert [e["step"] for e in events_of(tmp_path, "checkpoint")] == [20, 40]
    assert trainer.step == 40 and int(model_meta(tmp_path)["step"]) == 40
    assert all(torch.isfinite(t).all() for t in model_tensors(tmp_path).values())
    assert all(torch.isfinite(t).all() for t in checkpoint.read_safetensors(tmp_path / "train_state.safetensors")[0].values()
               if t.is_floating_point())


def test_guard_catches_exploding_energy(tmp_path):
    preset = load_preset("cdrl-points", TINY + ["train.iterations=3", "guard.max_abs_energy=1e-9",
                                                      "guard.max_rollbacks=2"])
    with pytest.raises(EbmkitError, match="could not recover.*3 rollbacks.*no model was written") as failure:
        train(preset, tmp_path / "r", quiet=True)
    assert failure.value.exit_code == 1 and not (tmp_path / "r" / "model.safetensors").exists()


def test_ddp_two_processes_on_gloo(tmp_path):
    """torchrun with 2 CPU ranks: identical parameters on every rank, and it learns like one process."""
    run = tmp_path / "ddp"
    common = ["train.iterations=600", "train.ckpt_every=300", "train.batch_size=128", "train.lr=3e-3",
              "train.init_lr=3e-3", "train.ema=0.9", "train.warmup=10", "train.init_warmup_lead=1",
              "sampler.steps=5", "data.num_points=2000", "train.log_every=50", "train.sample_every=1000"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "ebmkit", "train", "--preset", "cdrl-points", "--run-dir", str(run), "--quiet",
           "--device", "cpu", *set_args(common)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    syncs = [e for e in events if e.get("event") == "checkpoint"]
    assert [e["step"] for e in syncs] == [300, 600]
    for e in syncs:  # one checksum per rank, all equal
        assert len(e["rank_checksums"]) == 2 and len(set(e["rank_checksums"])) == 1
    single = tmp_path / "single"
    train(load_preset("cdrl-points", common), single, quiet=True)
    untrained = build_method(load_preset("cdrl-points", common), (2,))
    ratio = {name: points_report(load_model(r / "model.safetensors")[0], num=2000)["ratio"]
             for name, r in (("ddp", run), ("single", single))}
    ratio["untrained"] = points_report(untrained, num=2000)["ratio"]
    # Both runs move far from the untrained model, and end close to each other.
    assert ratio["ddp"] < ratio["untrained"] / 2 and ratio["single"] < ratio["untrained"] / 2, ratio
    assert 0.5 < ratio["ddp"] / ratio["single"] < 2.0, ratio
