"""Faults: Ctrl-C and SIGTERM at any moment end with exit 130 and one line; nothing non-finite is written."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import save_file

from conftest import ROOT, ebmkit, in_process, set_args, tiny
from ebmkit import checkpoint

TINY = tiny("cdrl-points")  # the tiny checkerboard CDRL these tests train


def interrupted(args, sig, after):
    proc = subprocess.Popen([sys.executable, "-m", "ebmkit", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after)
    assert proc.poll() is None, f"finished before the signal: {proc.communicate()}"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    return proc.returncode, stderr.strip().splitlines()


# After 0.3 s the command is still importing; after 6 s a sample of ten million points is under way.
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("after", [0.3, 6.0])
def test_a_signal_during_sample_exits_130(points_model, tmp_path, sig, after):
    code, lines = interrupted(["sample", "--model", points_model, "--num", 10_000_000, "--out",
                               tmp_path / "s.npz"], sig, after)
    assert (code, lines) == (130, ["error: interrupted"])
    assert not (tmp_path / "s.npz").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_training_start_up_exits_130(tmp_path, sig):
    code, lines = interrupted(["train", "--preset", "cdrl-points", "--run-dir", tmp_path / "r", "--quiet",
                               *set_args(TINY)], sig, 0.3)
    assert (code, lines) == (130, ["error: interrupted"])


def test_a_huge_learning_rate_never_yields_a_non_finite_model(tmp_path):
    run = tmp_path / "r"
    proc = in_process("train", "--preset", "cdrl-points", "--run-dir", run, "--quiet",
                      *set_args(TINY + ["train.iterations=3", "train.lr=1", "train.init_lr=1", "train.warmup=0",
                                        "guard.snapshot_every=1"]))
    tensors, meta = checkpoint.read_safetensors(run / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in tensors.values())
    if proc.returncode:  # the guard gave up: the model is the last good state, and the run says so
        assert proc.returncode == 1 and "the guard could not recover" in proc.stderr
        assert json.loads(meta["step"]) < 3


def test_a_model_file_with_nan_weights_is_refused(points_model, tmp_path):
    tensors, meta = checkpoint.read_safetensors(points_model)
    name = sorted(tensors)[0]
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, tmp_path / "nan.safetensors", metadata=meta)
    proc = in_process("sample", "--model", tmp_path / "nan.safetensors", "--out", tmp_path / "s.npz")
    assert proc.returncode == 2 and not (tmp_path / "s.npz").exists()
    assert proc.stderr.strip() == f"error: {tmp_path / 'nan.safetensors'}: tensor '{name}' holds NaN or inf values; " \
                                  "the model file is broken"


def test_non_finite_samples_are_never_written(points_model, tmp_path, monkeypatch):
    from ebmkit.cli import main
    from ebmkit.methods.base import Method

    monkeypatch.setattr(Method, "sample", lambda self, num, *a, **k: torch.full((num, 2), float("nan")))
    for out in ("s.npz", "s.csv", "s.png"):
        with pytest.raises(SystemExit) as stop:
            main(["sample", "--model", str(points_model), "--num", "10", "--out", str(tmp_path / out)])
        assert stop.value.code == 1 and not (tmp_path / out).exists()


@pytest.mark.parametrize("device", ["bogus", "cuda:x", "cpu:0"])
def test_a_bad_device_is_bad_input(points_model, tmp_path, device):
    proc = ebmkit("sample", "--model", points_model, "--out", tmp_path / "s.npz", "--device", device)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: --device {device}: use auto, cpu, cuda or cuda:N"


def _tiny_run(run, iterations, *extra, env=None, preexec=None):
    args = [sys.executable, "-m", "ebmkit", "train", "--quiet",
            *(["--resume", run] if (run / "preset.json").exists() else ["--preset", "cdrl-points", "--run-dir", run]),
            *set_args((TINY if not (run / "preset.json").exists() else []) + [f"train.iterations={iterations}",
                                                                           "train.ckpt_every=10", *extra])]
    return subprocess.run(list(map(str, args)), cwd=ROOT, capture_output=True, text=True, timeout=300,
                          preexec_fn=preexec)


def _files(run):
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}


def test_a_second_writer_is_refused_and_a_killed_holder_leaves_no_lock(tmp_path):
    run = tmp_path / "r"
    holder = subprocess.Popen([sys.executable, "-m", "ebmkit", "train", "--preset", "cdrl-points", "--run-dir", str(run),
                               "--quiet", *set_args(TINY + ["train.iterations=100000", "train.ckpt_every=10"])], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (run / "model.safetensors").exists() and time.time() < deadline:  # its first checkpoint is written
            time.sleep(0.2)
        for second in (["--resume", run], ["--preset", "cdrl-points", "--run-dir", run, "--overwrite"]):
            proc = ebmkit("train", *second, "--quiet")
            assert proc.returncode == 1 and f"in use by another training process (PID {holder.pid})" in proc.stderr
        assert holder.poll() is None  # the holder trains on, undisturbed
    finally:
        holder.kill()
        holder.wait()
    proc = ebmkit("train", "--resume", run, "--quiet", "--set", "train.iterations=1")  # SIGKILL released the lock
    assert proc.returncode == 0, proc.stderr


def test_a_cut_log_line_is_dropped_on_resume(tmp_path):
    run = tmp_path / "r"
    assert _tiny_run(run, 10).returncode == 0
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 11, "loss_eb')  # a write cut short by a full disk or a kill
    proc = _tiny_run(run, 20)
    assert proc.returncode == 0, proc.stderr
    assert "dropped 1 incomplete or unreadable line" in proc.stderr
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "event" not in r]
    assert steps == sorted(steps) and steps[-1] == 20


def test_a_full_disk_keeps_the_last_checkpoint_and_the_run_resumes_exactly(tmp_path):
    """A file-size limit makes every write beyond 300 KB fail (EFBIG), as a full disk does: the checkpoint
    write of step 20 fails, the run says so (exit 1, 'disk full'), its files stay as they were at step 10
    and, given space again, the resumed run ends where an uninterrupted one does, bit for bit."""
    import resource

    run, straight = tmp_path / "r", tmp_path / "straight"
    assert _tiny_run(run, 10).returncode == 0
    before = _files(run)
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))  # noqa: E731
    proc = _tiny_run(run, 20, preexec=limit)
    assert proc.returncode == 1 and "disk full writing" in proc.stderr and "internal error" not in proc.stderr
    after = _files(run)
    assert {k: v for k, v in after.items() if k != "metrics.jsonl"} == {k: v for k, v in before.items() if k != "metrics.jsonl"}
    assert json.loads((run / "preset.json").read_text())["train"]["iterations"] == 10  # the committed state's record
    assert not list(run.glob(".*tmp*")) and not list(run.glob("*.tmp"))
    assert _tiny_run(run, 20).returncode == 0
    assert _tiny_run(straight, 20).returncode == 0
    resumed, _ = checkpoint.read_safetensors(run / "model.safetensors")
    reference, _ = checkpoint.read_safetensors(straight / "model.safetensors")
    assert resumed.keys() == reference.keys() and all(torch.equal(resumed[k], reference[k]) for k in reference)


def test_a_failed_command_leaves_the_run_directory_as_it_found_it(tmp_path):
    run = tmp_path / "r"
    assert _tiny_run(run, 10).returncode == 0
    before = _files(run)
    for bad in (["--set", "ebm.hidden=32"], ["--set", "data.name=spiral"]):
        proc = in_process("train", "--resume", run, "--quiet", *bad)
        assert proc.returncode == 2 and "cannot resume" in proc.stderr
        assert _files(run) == before  # preset.json included
    fresh = tmp_path / "fresh"
    proc = in_process("train", "--preset", "cdrl-points", "--data", tmp_path / "missing.npy", "--run-dir", fresh)
    assert proc.returncode == 2 and not fresh.exists()
    proc = in_process("train", "--preset", "cdrl-points", "--set", "data.num_points=3", "--run-dir", fresh)
    assert proc.returncode == 2 and not fresh.exists(), proc.stderr
