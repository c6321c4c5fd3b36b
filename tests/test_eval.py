"""`ebmkit eval ...` as a user runs it, and evaluation during training (--eval-every)."""

import json
import math

import numpy as np
import pytest
import torch

from conftest import ebmkit, in_process, set_args, tiny
from ebmkit.data import from_config, load_dataset, to_model_space
from ebmkit.methods import load_model
from ebmkit.metrics.evaluate import make_evaluator
from ebmkit.metrics.points import points_report
from ebmkit.viz import save_images


def run_json(*args, env=None):
    proc = ebmkit(*args, "--json", check=True, env=env)
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def test_digits_npz(tmp_path_factory):
    """The held-out digits, stored as `ebmkit sample --out x.npz` stores samples (model space)."""
    path = tmp_path_factory.mktemp("npz") / "digits_test.npz"
    np.savez(path, samples=to_model_space(load_dataset("digits", split="test").x).numpy())
    return path


def test_domain_fid_of_real_data_equals_its_baseline(test_digits_npz, tmp_path):
    report = run_json("eval", "fid", "--samples", test_digits_npz, "--ref", "digits")
    assert report["metric"].startswith("domain-FID") and "not Inception" in report["metric"]
    assert (report["num"], report["ref"], report["ref_num"]) == (297, "digits:train", 1500)
    assert report["fid"] == pytest.approx(report["baseline_fid"], rel=1e-9)  # the same held-out images
    assert report["classifier_test_accuracy"] >= 0.95 and sum(report["class_histogram"]) == 297
    # statistics written once give the same figure
    in_process("eval", "fid-stats", "--data", "digits", "--out", tmp_path / "s.npz", check=True)
    again = run_json("eval", "fid", "--samples", test_digits_npz, "--ref", tmp_path / "s.npz")
    assert again["fid"] == pytest.approx(report["fid"], rel=1e-9) and again["ref"] == "digits:train"


def test_domain_fid_of_a_model(digits_model):
    report = run_json("eval", "fid", "--model", digits_model, "--num", 40, "--steps", 1)
    assert report["num"] == 40 and report["ref"] == "digits:train"
    assert math.isfinite(report["fid"]) and report["fid"] > report["baseline_fid"]  # 3 training steps


def test_inception_fid_of_a_folder_against_itself_is_zero(stub_inception, tmp_path):
    imgs = torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    save_images(imgs, tmp_path / "a")
    save_images(imgs.flip(-1).mul(0.5), tmp_path / "b")
    env = {"EBMKIT_INCEPTION_WEIGHTS": str(stub_inception)}
    same = run_json("eval", "fid", "--samples", tmp_path / "a", "--ref", tmp_path / "a", env=env)
    assert same["features"] == "inception" and abs(same["fid"]) < 1e-6 and same["num"] == 12
    other = run_json("eval", "fid", "--samples", tmp_path / "a", "--ref", tmp_path / "b",
                     "--inception-weights", stub_inception)
    assert other["fid"] > 1e-3


def test_psnr_of_known_pairs(tmp_path):
    a = torch.zeros(2, 3, 8, 8, dtype=torch.uint8) + 100
    b = a.clone()
    b[0] += 1                                       # MSE 1 -> 10 log10(255^2) = 48.13 dB
    b[1, :, :4] += 10                               # MSE 50
    np.savez(tmp_path / "a.npz", images=a.permute(0, 2, 3, 1).numpy())  # NHWC uint8
    np.savez(tmp_path / "b.npz", images=b.numpy())                      # NCHW uint8
    report = run_json("eval", "psnr", "--images", tmp_path / "a.npz", "--ref", tmp_path / "b.npz")
    assert report["psnr"] == pytest.approx([20 * math.log10(255), 10 * math.log10(255**2 / 50)], rel=1e-12)
    np.savez(tmp_path / "c.npz", images=torch.cat([b[:1], a[1:]]).numpy())  # the second pair identical
    proc = in_process("eval", "psnr", "--images", tmp_path / "a.npz", "--ref", tmp_path / "c.npz", "--json", check=True)
    report = json.loads(proc.stdout, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert report["psnr"] == [pytest.approx(20 * math.log10(255), rel=1e-12), None]
    assert (report["psnr_mean"], report["identical"]) == (None, 1)


def test_auroc_of_known_scores(tmp_path):
    (tmp_path / "in.csv").write_text("name,score\na,0.1\nb,0.4\nc,0.35\n")
    (tmp_path / "out.txt").write_text("0.8\n0.3\n")
    # pairs (out > in): 0.8 beats all 3, 0.3 beats 0.1 only -> 4 of 6
    assert run_json("eval", "auroc", "--in-scores", tmp_path / "in.csv",
                    "--ood-scores", tmp_path / "out.txt")["auroc"] == pytest.approx(4 / 6)


@pytest.mark.parametrize("args, code, pattern", [
    (["eval", "fid", "--model", "m.safetensors", "--samples", "x.npz"], 2, "exactly one of"),
    (["eval", "fid", "--samples", "nowhere"], 2, "not found"),
    (["eval", "fid", "--samples", "{npz}", "--ref", "digits", "--features", "inception"], 2, "inception-2015-12-05.pt"),
    (["eval", "fid", "--samples", "{npz}", "--features", "bogus", "--ref", "digits"], 2, "choose auto"),
    (["eval", "psnr", "--images", "{npz}", "--ref", "{npz2}"], 2, "holds 297 images but"),
    (["eval", "auroc", "--in-scores", "{npz}", "--ood-scores", "{npz}"], 2, "not a list of numbers"),
])
def test_bad_input(args, code, pattern, test_digits_npz, tmp_path, monkeypatch):
    monkeypatch.delenv("EBMKIT_INCEPTION_WEIGHTS", raising=False)
    np.savez(tmp_path / "two.npz", images=np.zeros((2, 8, 8, 1), np.uint8))
    args = [a.format(npz=test_digits_npz, npz2=tmp_path / "two.npz") for a in args]
    proc = ebmkit(*args)
    assert proc.returncode == code and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and pattern in proc.stderr, proc.stderr


def test_stats_of_another_feature_space_are_refused(test_digits_npz, stub_inception, tmp_path):
    in_process("eval", "fid-stats", "--data", "digits", "--out", tmp_path / "s.npz", check=True)
    proc = in_process("eval", "fid", "--samples", test_digits_npz, "--ref", tmp_path / "s.npz", "--features", "inception",
                      "--inception-weights", stub_inception)
    assert proc.returncode == 2 and "holds domain-digits-8px statistics but this FID uses inception" in proc.stderr


def records(run_dir, event):
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r.get("event") == event]


def test_eval_every_points(tmp_path):
    in_process("train", "--preset", "cdrl-points", "--run-dir", tmp_path / "r", "--quiet", "--eval-every", 4,
               *set_args(tiny("cdrl-points", "train.iterations=10", "train.eval_num=200")), check=True)
    evals = records(tmp_path / "r", "eval")
    assert [e["step"] for e in evals] == [4, 8, 10]
    method, step = load_model(tmp_path / "r" / "model.safetensors")  # the final evaluation is of the model file
    final = points_report(method, 200, 0)
    assert step == 10 and evals[-1]["mmd2_ratio"] == pytest.approx(final["ratio"], rel=1e-5)
    assert evals[-1]["on_squares"] == pytest.approx(final["on_squares"], rel=1e-5)  # the log keeps 6 digits


def test_eval_every_digits(tmp_path):
    in_process("train", "--preset", "cdrl-digits", "--run-dir", tmp_path / "r", "--quiet",
               *set_args(tiny("cdrl-digits", "train.eval_every=3", "train.eval_num=20")), check=True)
    (evaluation,) = records(tmp_path / "r", "eval")
    method, _ = load_model(tmp_path / "r" / "model.safetensors")
    seed = method.preset.train.seed
    again = make_evaluator(method, from_config(method.preset.data, "train", seed), 20, seed)()
    assert evaluation["step"] == 3 and evaluation["domain_fid_num"] == 20
    assert evaluation["domain_fid"] == pytest.approx(again["domain_fid"], rel=1e-4)
