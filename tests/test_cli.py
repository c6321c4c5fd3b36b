"""The command line as a user meets it: results on success, one-line errors and exit codes on failure."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.utils import make_grid

from conftest import ebmkit, in_process, one_line_error
from ebmkit import checkpoint
from ebmkit.methods import load_model
from ebmkit.metrics.points import REPEATS, points_report
from ebmkit.viz import tile


def test_presets_commands():
    listing = json.loads(in_process("presets", "list", "--json", check=True).stdout)
    assert {"cdrl-points", "cdrl-digits", "cdrl-cifar10"} <= {p["name"] for p in listing}
    shown = json.loads(in_process("presets", "show", "cdrl-cifar10", "--set", "train.lr=2e-4", "--json", check=True).stdout)
    assert shown["train"]["lr"] == 2e-4 and shown["sampler"]["steps"] == 15


def test_sample_points(points_model, tmp_path):
    proc = in_process("sample", "--model", points_model, "--num", 300, "--out", tmp_path / "s.png", "--json", check=True)
    report = json.loads(proc.stdout)
    assert report["num"] == 300 and report["step"] == 4
    assert (tmp_path / "s.png").is_file() and (tmp_path / "s_levels.png").is_file()
    in_process("sample", "--model", points_model, "--num", 30, "--out", tmp_path / "s.npz", "--steps", 1, check=True)
    assert np.load(tmp_path / "s.npz")["samples"].shape == (30, 2)
    report = json.loads(in_process("eval", "mmd", "--model", points_model, "--num", 200, "--json", check=True).stdout)
    assert report["num"] == 200 and len(report["mmd2_model"]) == len(report["bandwidths"]) == 5
    assert report["repeats"] == REPEATS  # the CLI's default is the library's
    method, _ = load_model(points_model)
    library = points_report(method, 200, 0)  # the command reports what the library computes
    assert report["ratio"] == pytest.approx(library["ratio"], rel=1e-5)
    assert report["on_squares"] == pytest.approx(library["on_squares"]) and report["on_squares_data"] == 1.0


def test_sample_images(digits_model, tmp_path):
    in_process("sample", "--model", digits_model, "--num", 6, "--out", tmp_path / "g.png", "--out-dir", tmp_path / "imgs",
               "--batch-size", 4, check=True)
    assert Image.open(tmp_path / "g.png").size == (3 * 33 + 1, 2 * 33 + 1)  # 8-pixel digits shown at 32, framed by 1
    files = sorted((tmp_path / "imgs").iterdir())
    assert len(files) == 6 and Image.open(files[0]).size == (8, 8)


@pytest.mark.parametrize("num, channels, nrow", [(5, 3, 2), (6, 1, 3), (2, 3, 4)])
def test_grids_are_laid_out_as_torchvision_lays_them(num, channels, nrow):
    """viz.tile against torchvision's make_grid (one channel stays one channel: make_grid repeats it 3 times)."""
    images = torch.randint(0, 255, (num, channels, 4, 5), dtype=torch.uint8)
    grid = tile(images, nrow)
    assert torch.equal(grid.expand(3, -1, -1), make_grid(images, nrow=nrow, padding=1, pad_value=255))


def test_bad_input_is_one_line(points_model, digits_model, tmp_path, cli):
    one_line_error(ebmkit("train", "--preset", "nope"), 2, "unknown preset 'nope'")  # as a real process
    one_line_error(cli("train", "--preset", "cdrl-digits", "--set", "train.lr=abc"), 2, "train.lr")
    one_line_error(cli("train", "--preset", "cdrl-digits", "--set", "nolayer"), 2, "expected KEY=VALUE")
    one_line_error(cli("train", "--resume", tmp_path / "none"), 2, "cannot resume")
    one_line_error(cli("sample", "--model", points_model), 2, "give --out")
    one_line_error(cli("sample", "--model", points_model, "--out", "x.jpg"), 2, "use a .png, .npz or .csv file name")
    one_line_error(cli("sample", "--nope"), 2, "No such option")
    one_line_error(cli("eval", "mmd", "--model", digits_model), 2, "eval mmd is for point models")
    data = points_model.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) - 100])
    one_line_error(cli("sample", "--model", tmp_path / "trunc.safetensors", "--out", tmp_path / "a.png"), 2,
                   "corrupt or truncated")
    (tmp_path / "junk.safetensors").write_bytes(b"not a model")
    one_line_error(cli("sample", "--model", tmp_path / "junk.safetensors", "--out", tmp_path / "a.png"), 2,
                   "corrupt or truncated")
    tensors, meta = checkpoint.read_safetensors(points_model)
    checkpoint.atomic_save(tensors, {**meta, "method": "coopflow"}, tmp_path / "other.safetensors")
    one_line_error(cli("compose", "--model", tmp_path / "other.safetensors", "--attr", "a=b", "--out", tmp_path / "a.png"),
                   2, "holds a 'coopflow' model; compose supports: cdrl")
    checkpoint.atomic_save(tensors, {**meta, "method": "wavenet"}, tmp_path / "unknown.safetensors")
    one_line_error(cli("sample", "--model", tmp_path / "unknown.safetensors", "--out", tmp_path / "a.png"), 2,
                   "holds a 'wavenet' model")
    (tmp_path / "empty").mkdir()
    one_line_error(cli("train", "--preset", "cdrl-digits", "--set", "data.name=folder", "--data", tmp_path / "empty",
                       "--run-dir", tmp_path / "r"), 2, "no images found")
    one_line_error(cli("train", "--preset", "cdrl-cifar10", "--data", tmp_path / "empty", "--run-dir",
                       tmp_path / "r2"), 2, "cifar-10-batches-bin")
