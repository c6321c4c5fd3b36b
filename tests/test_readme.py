"""README's commands run as written: every `ebmkit` line names options that exist, and every one that does not
train (or convert an authors' released checkpoint, which tests/test_convert*.py do on fixtures) runs, in a folder
holding tiny models and inputs at the paths README uses."""

import re
import shlex
import shutil

import numpy as np
import pytest
import torch

from conftest import ROOT, in_process
from ebmkit.cli import main
from ebmkit.data import load_dataset, sample_toy
from ebmkit.viz import save_images

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
LINES = [line.split("  #")[0].strip() for block in BLOCKS for line in block.splitlines()
         if line.strip().startswith(("ebmkit ", "torchrun "))]
COMMANDS = [shlex.split(line[line.index("ebmkit "):])[1:] for line in LINES]  # torchrun ... -m ebmkit ARGS too
RUNNABLE = [c for c in COMMANDS if c[0] not in ("train", "convert")]


def test_readme_shows_every_command():
    shown = {c[0] for c in COMMANDS} | {" ".join(c[:2]) for c in COMMANDS if c[0] in ("eval", "presets")}
    assert {"train", "sample", "compose", "inpaint", "reconstruct", "interpolate", "novel-view", "ood-score",
            "eval mmd", "eval fid", "presets list", "presets show"} <= shown


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_readme_options_exist(args, capsys):
    """--help after the line: an unknown option or command fails to parse before help is printed."""
    try:
        main([*args, "--help"])
    except SystemExit as e:
        assert e.code == 0, capsys.readouterr().err


@pytest.fixture(scope="module")
def folder(tmp_path_factory, points_model, digits_model, shapes_models, coopflow_digits, nerf_model):
    """The models and inputs README's commands name, tiny, at the paths they name."""
    root = tmp_path_factory.mktemp("readme")
    for path, model in {"runs/mine/model.safetensors": points_model, "cdrl.safetensors": digits_model,
                        "runs/digits/model.safetensors": digits_model,
                        "runs/cdrl-shapes-cond/model.safetensors": shapes_models["cdrl-shapes-cond"],
                        "runs/cdrl-shapes-compose/model.safetensors": shapes_models["cdrl-shapes-compose"],
                        "runs/coopflow-digits/model.safetensors": coopflow_digits, "cf.safetensors": coopflow_digits,
                        "runs/nerf-lebm-scenes/model.safetensors": nerf_model, "nerf.safetensors": nerf_model}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(model, root / path)
    digits = load_dataset("digits", split="test").x[:2].float() / 127.5 - 1
    save_images(digits, root / "digits")  # a folder named like the built-in set: eval fid still uses the set
    for folder in ("cifar10_test", "svhn_test"):  # image folders of "Use the paper's models"
        save_images(digits, root / folder)
    for name, i in (("x.png", 0), ("y.png", 1)):
        shutil.copy(root / "digits" / f"{i:06d}.png", root / name)
    np.save(root / "held_out.npy", sample_toy("checkerboard", 2000, torch.Generator().manual_seed(1)).numpy())
    return root


@pytest.mark.parametrize("args", RUNNABLE, ids=[" ".join(c[:2]) for c in RUNNABLE])
def test_readme_command_runs(args, folder, monkeypatch):
    monkeypatch.chdir(folder)
    in_process(*args, check=True)
