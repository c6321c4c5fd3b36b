"""Faults: Ctrl-C and SIGTERM at any moment end with exit 130 and one line; nothing non-finite is written."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import save_file

from conftest import ROOT, TINY, ebmkit, set_args
from ebmkit import checkpoint


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
    proc = ebmkit("train", "--preset", "cdrl-points", "--run-dir", run, "--quiet",
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
    proc = ebmkit("sample", "--model", tmp_path / "nan.safetensors", "--out", tmp_path / "s.npz")
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
