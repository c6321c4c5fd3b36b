"""Bad input across every command, as one table: each row is a command line, the exit code it must end
with and a pattern its one-line error must match. Never a traceback, never "internal error", never
success. Tiny models are trained once per module; crafted model files are derived from them."""

import json
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from conftest import tiny
from ebmkit.cli import main
from ebmkit.presets import load_preset
from ebmkit.rundir import RunLock
from ebmkit.training import train


def _craft(src, dst, edit_meta=None, edit_stored=None, edit_tensors=None):
    """A copy of model file `src` with its metadata, stored preset or tensors changed."""
    with safe_open(str(src), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    stored = json.loads(meta["preset"])
    if edit_stored:
        stored = edit_stored(stored)
    meta["preset"] = json.dumps(stored)
    if edit_meta:
        edit_meta(meta)
    if edit_tensors:
        edit_tensors(tensors)
    save_file(tensors, str(dst), metadata=meta)


def _set(path, value):
    """An edit of a stored preset: the field at dotted `path` (under 'preset') set to `value`."""
    def edit(stored):
        node = stored["preset"]
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
        return stored
    return edit


@pytest.fixture(scope="module")
def world(tmp_path_factory, digits_model, shapes_models, coopflow_digits, nerf_model):
    """Every model and input file the table refers to, by placeholder name."""
    root = tmp_path_factory.mktemp("bad")
    torch.manual_seed(0)
    runs = {"P": root / "P"}  # a run directory of its own, to resume and lock
    train(load_preset("cdrl-points", tiny("cdrl-points", "train.iterations=4", "train.ckpt_every=2")), runs["P"], quiet=True)
    w = {"P": runs["P"] / "model.safetensors", "C": coopflow_digits, "N": nerf_model, "D": digits_model,
         "S": shapes_models["cdrl-shapes-cond"], "A": shapes_models["cdrl-shapes-compose"], "T": root / "tmp",
         "RUN": runs["P"]}
    w["T"].mkdir()
    f = root / "files"
    f.mkdir()
    w["F"] = f
    P = w["P"]
    # crafted model files
    crafted = {
        "hidden6000": dict(edit_stored=_set("ebm.hidden", 6000)),
        "hidden1e6": dict(edit_stored=_set("ebm.hidden", 10 ** 6)),
        "hiddenneg": dict(edit_stored=_set("ebm.hidden", -1)),
        "lrinf": dict(edit_stored=_set("train.lr", float("inf"))),
        "storedlist": dict(edit_stored=lambda s: [1, 2]),
        "presetlist": dict(edit_stored=lambda s: {**s, "preset": [1]}),
        "nopreset": dict(edit_stored=lambda s: {"shape": s["shape"]}),
        "noshape": dict(edit_stored=lambda s: {"preset": s["preset"]}),
        "negshape": dict(edit_stored=lambda s: {**s, "shape": [-2]}),
        "hugeshape": dict(edit_stored=lambda s: {**s, "shape": [10 ** 9]}),
        "shape3d": dict(edit_stored=lambda s: {**s, "shape": [3]}),
        "strshape": dict(edit_stored=lambda s: {**s, "shape": "2"}),
        "floatshape": dict(edit_stored=lambda s: {**s, "shape": [2.0]}),
        "units0": dict(edit_stored=lambda s: {**s, "units": {"mean": [0, 0], "std": [0, 1]}}),
        "unitsdim": dict(edit_stored=lambda s: {**s, "units": {"mean": [0, 0, 0], "std": [1, 1, 1]}}),
        "unitsstr": dict(edit_stored=lambda s: {**s, "units": "x"}),
        "unknownfield": dict(edit_stored=_set("ebm.colour", 1)),
        "unknownmethod": dict(edit_stored=_set("method", "wavenet")),
        "strstep": dict(edit_meta=lambda m: m.update(step="abc")),
        "negstep": dict(edit_meta=lambda m: m.update(step="-5")),
        "othermethod": dict(edit_meta=lambda m: m.update(method="coopflow")),
        "wavenet": dict(edit_meta=lambda m: m.update(method="wavenet")),
        "noformat": dict(edit_meta=lambda m: m.pop("format")),
        "badjson": dict(edit_meta=lambda m: m.update(preset="{not json")),
        "nopresetmeta": dict(edit_meta=lambda m: m.pop("preset")),
        "nan": dict(edit_tensors=lambda t: t[next(k for k in t if k.startswith("ebm."))].fill_(float("nan"))),
        "inf": dict(edit_tensors=lambda t: t[next(k for k in t if k.startswith("init."))].fill_(float("inf"))),
        "missing": dict(edit_tensors=lambda t: t.pop(next(k for k in t if k.startswith("ebm_ema.")))),
        "extra": dict(edit_tensors=lambda t: t.update({"ebm.extra": torch.zeros(3)})),
        "wrongshape": dict(edit_tensors=lambda t: t.update({k: torch.zeros(7) for k in [next(iter(t))]})),
        "noinit": dict(edit_tensors=lambda t: [t.pop(k) for k in [k for k in t if k.startswith("init")]]),
    }
    for name, edits in crafted.items():
        _craft(P, f / f"{name}.safetensors", **edits)
    _craft(w["D"], f / "digits_rgb.safetensors", edit_stored=lambda s: {**s, "shape": [3, 8, 8]})
    _craft(w["N"], f / "nerf_size.safetensors", edit_stored=lambda s: {**s, "shape": [3, 64, 64]})
    data = P.read_bytes()
    (f / "trunc.safetensors").write_bytes(data[: len(data) - 100])
    (f / "junk.safetensors").write_bytes(b"not a model at all")
    (f / "empty.safetensors").write_bytes(b"")
    (f / "folder.safetensors").mkdir()
    # images and arrays
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(f / "a.png")
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(f / "b.png")
    Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(f / "big.png")
    (f / "two").mkdir()
    for i in range(2):
        shutil.copy(f / "a.png", f / "two" / f"{i}.png")
    (f / "mixed").mkdir()
    shutil.copy(f / "a.png", f / "mixed" / "0.png")
    shutil.copy(f / "big.png", f / "mixed" / "1.png")
    (f / "empty").mkdir()
    (f / "dir.png").mkdir()
    (f / "dir.npz").mkdir()
    (f / "notimage.png").write_text("this is not a PNG")
    (f / "a.txt").write_text("hello")
    png = (f / "a.png").read_bytes()
    (f / "truncated.png").write_bytes(png[: len(png) // 2])
    bomb = bytearray(png)  # the IHDR chunk claims 100000 x 100000 pixels
    bomb[16:24] = (100000).to_bytes(4, "big") * 2
    (f / "bomb.png").write_bytes(bytes(bomb))
    np.savez(f / "empty.npz", images=np.zeros((0, 8, 8, 3), np.uint8))
    np.savez(f / "obj.npz", images=np.array([{"a": 1}, None], dtype=object))
    (f / "corrupt.npz").write_bytes(b"PK\x03\x04 broken zip")
    np.savez(f / "nan.npz", samples=np.full((2, 1, 8, 8), np.nan, np.float32))
    np.savez(f / "good.npz", images=rng.integers(0, 255, (2, 8, 8, 1), dtype=np.uint8))
    np.savez(f / "two_arrays.npz", x=np.zeros((2, 8, 8, 1), np.uint8), y=np.zeros(3))
    np.savez(f / "flat.npz", images=np.zeros((4, 64), np.uint8))
    np.savez(f / "complex.npz", images=np.zeros((2, 1, 8, 8), np.complex64))
    # points
    np.save(f / "pts.npy", rng.normal(size=(500, 2)).astype(np.float32))
    np.save(f / "pts3.npy", rng.normal(size=(500, 3)).astype(np.float32))
    pts = rng.normal(size=(500, 2))
    pts[7, 1] = np.nan
    np.save(f / "pts_nan.npy", pts)
    np.save(f / "pts_few.npy", rng.normal(size=(3, 2)))
    np.save(f / "pts_obj.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    np.save(f / "pts_3d.npy", rng.normal(size=(50, 2, 2)))
    (f / "pts_bad.csv").write_text("x,y\n1,2\nthree,4\n")
    (f / "pts_ragged.csv").write_text("1,2\n3\n4,5\n")
    # scores, poses, presets
    (f / "scores.txt").write_text("0.1\n0.2\n0.3\n")
    (f / "scores_nan.txt").write_text("0.1\nnan\n0.3\n")
    (f / "scores_inf.txt").write_text("0.1\ninf\n")
    (f / "scores_empty.txt").write_text("")
    (f / "scores_text.txt").write_text("0.1\nhigh\n")
    (f / "scores_col.csv").write_text("index,score\n0,0.5\n1,\n")
    (f / "scores_bin.txt").write_bytes(bytes(range(256)))
    (f / "poses_bad.json").write_text("{not json")
    (f / "poses_noview.json").write_text(json.dumps({"views": {"other.png": [30, 0]}}))
    (f / "poses_list.json").write_text(json.dumps([1, 2]))
    (f / "poses_str.json").write_text(json.dumps({"views": {"a.png": ["high", 0]}}))
    (f / "bad.toml").write_text("[ebm\nhidden = ")
    (f / "list.json").write_text("[1, 2]")
    (f / "nomethod.toml").write_text("[ebm]\nhidden = 4\n")
    # run directories
    w["FOREIGN"] = root / "foreign"
    shutil.copytree(runs["P"], w["FOREIGN"])
    (w["FOREIGN"] / "preset.json").write_text(json.dumps(load_preset("cdrl-points", ["ebm.hidden=24"]).model_dump(mode="json")))
    w["NOSTATE"] = root / "nostate"
    shutil.copytree(runs["P"], w["NOSTATE"])
    (w["NOSTATE"] / "train_state.safetensors").unlink()
    w["BADSTATE"] = root / "badstate"
    shutil.copytree(runs["P"], w["BADSTATE"])
    (w["BADSTATE"] / "train_state.safetensors").write_bytes(b"junk")
    w["LOCKED"] = root / "locked"
    shutil.copytree(runs["P"], w["LOCKED"])
    lock = RunLock(w["LOCKED"]).acquire()  # this process holds it: another open file description conflicts
    yield w
    lock.release()


# command line, exit code, pattern of the one-line error (a regular expression, searched)
ROWS = [
    # ------------------------------------------------------------------ usage
    ("nope-command", 2, "No such command"),
    ("--nope", 2, "No such option"),
    ("sample --nope", 2, "No such option"),
    ("sample", 2, "Missing option '--model'"),
    # ------------------------------------------------------------------ presets
    ("presets show nope", 2, "unknown preset 'nope'"),
    ("presets show {T}/missing.toml", 2, "not found|unknown preset"),
    ("presets show {F}/bad.toml", 2, "bad.toml"),
    ("presets show {F}/list.json", 2, "list.json"),
    ("presets show {F}/nomethod.toml", 2, "method"),
    ("presets show cdrl-points --set train.lr=inf", 2, "train.lr"),
    ("presets show cdrl-points --set train.lr=nan", 2, "train.lr"),
    ("presets show cdrl-points --set train.lr=2", 2, "train.lr"),
    ("presets show cdrl-points --set train.lr=abc", 2, "train.lr"),
    ("presets show cdrl-points --set nolayer", 2, "expected KEY=VALUE"),
    ("presets show cdrl-points --set ebm.colour=1", 2, "ebm.colour"),
    ("presets show cdrl-points --set sampler.step_coef=inf", 2, "sampler.step_coef"),
    ("presets show cdrl-points --set guard.max_abs_energy=inf", 2, "guard.max_abs_energy"),
    ("presets show cdrl-points --set diffusion.logsnr_max=nan", 2, "diffusion.logsnr_max"),
    ("presets show cdrl-points --set train.iterations=-1", 2, "train.iterations"),
    ("presets show cdrl-points --set train.batch_size=0", 2, "train.batch_size"),
    # ------------------------------------------------------------------ train
    ("train", 2, "give --preset"),
    ("train --preset nope", 2, "unknown preset 'nope'"),
    ("train --preset {F}/bad.toml", 2, "bad.toml"),
    ("train --preset cdrl-points --resume {RUN}", 2, "drop --preset"),
    ("train --resume {T}/none", 2, "cannot resume"),
    ("train --resume {F}/a.png", 2, "cannot resume"),
    ("train --resume {F}/empty", 2, "cannot resume.*preset.json not found"),
    ("train --resume {NOSTATE}", 2, "cannot resume.*train_state.safetensors not found"),
    ("train --resume {BADSTATE}", 2, "training-state file .*corrupt or truncated"),
    ("train --resume {RUN} --set ebm.hidden=32", 2, "cannot resume .*ebm.hidden is 16 in the run's stored state but 32"),
    ("train --resume {RUN} --set data.name=spiral", 2, "cannot resume .*data.name"),
    ("train --resume {RUN} --set train.seed=3", 2, "cannot resume .*train.seed"),
    ("train --resume {RUN} --set train.batch_size=64", 2, "cannot resume .*train.batch_size"),
    ("train --resume {RUN} --set sampler.steps=3", 2, "cannot resume .*sampler.steps"),
    ("train --resume {FOREIGN}", 2, "cannot resume .*data.num_points is 2000 in the run's stored state but 50000"),
    ("train --resume {LOCKED}", 1, r"in use by another training process \(PID \d+\)"),
    ("train --preset cdrl-points --run-dir {LOCKED} --overwrite", 1, r"in use .*PID \d+"),
    ("train --preset cdrl-points --run-dir {RUN}", 2, "is not empty; use --resume"),
    ("train --preset cdrl-points --run-dir {F}/a.png", 2, "--run-dir .*a.png is a file"),
    ("train --preset cdrl-points --run-dir {F}/a.png/sub", 2, "a.png is a file, not a folder"),
    ("train --preset cdrl-points --data {T}/missing.npy", 2, "--data .*missing.npy not found: no such file or folder"),
    ("train --preset cdrl-points --data {F}/a.png", 2, "a.png"),
    ("train --preset cdrl-digits --data {F}/pts.npy --run-dir {T}/r1", 2, "pts.npy"),
    ("train --preset cdrl-points --data {F}/pts_nan.npy --run-dir {T}/r2", 2, "NaN|non-finite|not finite"),
    ("train --preset cdrl-points --data {F}/pts_few.npy --run-dir {T}/r3", 2, "pts_few.npy"),
    ("train --preset cdrl-points --data {F}/pts_obj.npy --run-dir {T}/r4", 2, "pts_obj.npy"),
    ("train --preset cdrl-points --data {F}/pts_3d.npy --run-dir {T}/r5", 2, "pts_3d.npy"),
    ("train --preset cdrl-points --data {F}/pts_bad.csv --run-dir {T}/r6", 2, "pts_bad.csv"),
    ("train --preset cdrl-points --data {F}/pts_ragged.csv --run-dir {T}/r7", 2, "pts_ragged.csv"),
    ("train --preset cdrl-points --data {F}/pts3.npy --set ebm.hidden=abc --run-dir {T}/r8", 2, "ebm.hidden"),
    ("train --preset cdrl-digits --set data.name=folder --data {F}/empty --run-dir {T}/r9", 2, "no images found"),
    ("train --preset cdrl-cifar10 --data {F}/empty --run-dir {T}/r10", 2, "cifar-10-batches-bin"),
    ("train --preset cdrl-points --device bogus", 2, "--device bogus: use auto, cpu, cuda or cuda:N"),
    ("train --preset cdrl-points --device cuda:x", 2, "--device cuda:x: use auto"),
    ("train --preset cdrl-points --eval-every -1", 2, "--eval-every"),
    ("train --preset cdrl-points --set train.lr=inf --run-dir {T}/r11", 2, "train.lr"),
    ("train --preset cdrl-points --set train.init_lr=1e38 --run-dir {T}/r12", 2, "train.init_lr"),
    # ------------------------------------------------------------------ sample: arguments
    ("sample --model {T}/none.safetensors --out {T}/x.png", 2, "--model .*none.safetensors not found"),
    ("sample --model {F}/folder.safetensors --out {T}/x.png", 2, "is a folder"),
    ("sample --model {P}", 2, "give --out"),
    ("sample --model {P} --out {T}/x.jpg", 2, r"use a \.png, \.npz or \.csv file name"),
    ("sample --model {P} --out {F}/dir.png", 2, "dir.png is a folder"),
    ("sample --model {P} --out {F}/a.png/x.png", 2, "a.png is a file, not a folder"),
    ("sample --model {P} --out-dir {T}/o", 2, "--out-dir writes images; this model draws 2-D points"),
    ("sample --model {D} --out {T}/x.csv", 2, r"use a \.png or \.npz"),
    ("sample --model {D} --out-dir {F}/a.png", 2, "--out-dir .*a.png is a file"),
    ("sample --model {P} --out {T}/x.png --num 0", 2, "--num"),
    ("sample --model {P} --out {T}/x.png --num abc", 2, "--num"),
    ("sample --model {P} --out {T}/x.png --steps -1", 2, "--steps"),
    ("sample --model {P} --out {T}/x.png --batch-size 0", 2, "--batch-size"),
    ("sample --model {P} --out {T}/x.png --no-langevin --steps 3", 2, "contradict"),
    ("sample --model {P} --out {T}/x.png --guidance 1", 2, "need a class-conditional model"),
    ("sample --model {P} --out {T}/x.png --class 1", 2, "need a class-conditional model"),
    ("sample --model {A} --out {T}/x.png --class 1", 2, "use `ebmkit compose`"),
    ("sample --model {S} --out {T}/x.png --guidance 1", 2, "--guidance needs --class"),
    ("sample --model {S} --out {T}/x.png --class nope", 2, "nope"),
    ("sample --model {S} --out {T}/x.png --class 99", 2, "99"),
    ("sample --model {S} --out {T}/x.png --class 0 --guidance -1", 2, "--guidance"),
    ("sample --model {P} --out {T}/x.png --grid pose", 2, "sample --grid/--depth supports: nerf_lebm"),
    ("sample --model {P} --out {T}/x.png --depth", 2, "sample --grid/--depth supports: nerf_lebm"),
    ("sample --model {P} --out {T}/x.png --device bogus", 2, "--device bogus"),
    ("sample --model {P} --out {T}/x.png --device cuda:3", 2, "--device cuda:3: no CUDA device"),
    ("sample --model {P} --out {T}/x.png --seed x", 2, "--seed"),
    # ------------------------------------------------------------------ sample: untrusted model files
    ("sample --model {F}/trunc.safetensors --out {T}/x.png", 2, "corrupt or truncated"),
    ("sample --model {F}/junk.safetensors --out {T}/x.png", 2, "corrupt or truncated"),
    ("sample --model {F}/empty.safetensors --out {T}/x.png", 2, "corrupt or truncated"),
    ("sample --model {F}/a.png --out {T}/x.png", 2, "corrupt or truncated"),
    ("sample --model {F}/noformat.safetensors --out {T}/x.png", 2, "not an ebmkit model file"),
    ("sample --model {F}/nan.safetensors --out {T}/x.png", 2, "tensor 'ebm.* holds NaN or inf"),
    ("sample --model {F}/inf.safetensors --out {T}/x.png", 2, "tensor 'init.* holds NaN or inf"),
    ("sample --model {F}/hidden6000.safetensors --out {T}/x.png", 2, r"has shape \(16,\) but its preset builds \(6000,\)"),
    ("sample --model {F}/hidden1e6.safetensors --out {T}/x.png", 2, r"but its preset builds \(1000000,\)"),
    ("sample --model {F}/hiddenneg.safetensors --out {T}/x.png", 2, "ebm.hidden"),
    ("sample --model {F}/lrinf.safetensors --out {T}/x.png", 2, "train.lr"),
    ("sample --model {F}/storedlist.safetensors --out {T}/x.png", 2, "unreadable preset metadata"),
    ("sample --model {F}/presetlist.safetensors --out {T}/x.png", 2, "unreadable preset metadata"),
    ("sample --model {F}/nopreset.safetensors --out {T}/x.png", 2, "unreadable preset metadata"),
    ("sample --model {F}/noshape.safetensors --out {T}/x.png", 2, "unreadable preset metadata.*shape"),
    ("sample --model {F}/negshape.safetensors --out {T}/x.png", 2, r"shape \[-2\] is not"),
    ("sample --model {F}/hugeshape.safetensors --out {T}/x.png", 2, r"shape \[1000000000\] is not"),
    ("sample --model {F}/strshape.safetensors --out {T}/x.png", 2, "shape '2' is not"),
    ("sample --model {F}/floatshape.safetensors --out {T}/x.png", 2, r"shape \[2.0\] is not"),
    ("sample --model {F}/shape3d.safetensors --out {T}/x.npz", 2, "shape"),
    ("sample --model {F}/units0.safetensors --out {T}/x.png", 2, "unreadable preset metadata.*units"),
    ("sample --model {F}/unitsdim.safetensors --out {T}/x.png", 2, "point units do not fit"),
    ("sample --model {F}/unitsstr.safetensors --out {T}/x.png", 2, "unreadable preset metadata"),
    ("sample --model {F}/unknownfield.safetensors --out {T}/x.png", 2, "ebm.colour"),
    ("sample --model {F}/unknownmethod.safetensors --out {T}/x.png", 2, "unknown method 'wavenet'|method"),
    ("sample --model {F}/strstep.safetensors --out {T}/x.png", 2, "unreadable preset metadata"),
    ("sample --model {F}/negstep.safetensors --out {T}/x.png", 2, "unreadable preset metadata.*step -5"),
    ("sample --model {F}/othermethod.safetensors --out {T}/x.png", 2, "method 'coopflow' but a 'cdrl' preset"),
    ("sample --model {F}/wavenet.safetensors --out {T}/x.png", 2, "holds a 'wavenet' model"),
    ("sample --model {F}/badjson.safetensors --out {T}/x.png", 2, "unreadable preset metadata"),
    ("sample --model {F}/nopresetmeta.safetensors --out {T}/x.png", 2, "unreadable preset metadata"),
    ("sample --model {F}/missing.safetensors --out {T}/x.png", 2, "tensor 'ebm_ema.* which the file lacks"),
    ("sample --model {F}/extra.safetensors --out {T}/x.png", 2, "tensor 'ebm.extra' .* belongs to no network"),
    ("sample --model {F}/wrongshape.safetensors --out {T}/x.png", 2, r"has shape \(7,\) but its preset builds"),
    ("sample --model {F}/noinit.safetensors --out {T}/x.png", 2, "tensor 'init.* which the file lacks"),
    ("sample --model {F}/digits_rgb.safetensors --out {T}/x.png", 2, "has shape .* but its preset builds"),
    ("sample --model {F}/nerf_size.safetensors --out {T}/x.png", 2, r"shape \[3, 64, 64\] but data.image_size 32"),
    ("eval mmd --model {F}/hidden6000.safetensors", 2, "its preset builds"),
    ("ood-score --model {F}/nan.safetensors --data digits", 2, "holds NaN or inf"),
    # ------------------------------------------------------------------ compose
    ("compose --model {S} --out {T}/x.png", 2, "Missing option '--attr'"),
    ("compose --model {T}/none.safetensors --attr a=b --out {T}/x.png", 2, "not found"),
    ("compose --model {A} --attr shape=circle", 2, "give --out"),
    ("compose --model {A} --attr shape=circle --out {T}/x.gif", 2, r"use a \.png or \.npz"),
    ("compose --model {C} --attr a=b --out {T}/x.png", 2, "holds a 'coopflow' model; compose supports: cdrl"),
    ("compose --model {S} --attr a=b --out {T}/x.png", 2, "is not attribute-conditional"),
    ("compose --model {P} --attr a=b --out {T}/x.png", 2, "is not attribute-conditional"),
    ("compose --model {A} --attr nope=1 --out {T}/x.png", 2, "nope"),
    ("compose --model {A} --attr noequals --out {T}/x.png", 2, "noequals"),
    ("compose --model {A} --attr shape=nope --out {T}/x.png", 2, "nope"),
    ("compose --model {A} --attr shape=circle --attr shape=square --out {T}/x.png", 2, "each attribute may be given once"),
    ("compose --model {A} --attr shape=circle --guidance -1 --out {T}/x.png", 2, "--guidance"),
    ("compose --model {A} --attr shape=circle --num 0 --out {T}/x.png", 2, "--num"),
    # ------------------------------------------------------------------ inpaint
    ("inpaint --model {D} --image digits --out {T}/x.png", 2, "give exactly one of --mask PNG, --box"),
    ("inpaint --model {D} --image digits --box 1,1,2,2 --irregular --out {T}/x.png", 2, "give exactly one of"),
    ("inpaint --model {D} --image nope --box 1,1,2,2 --out {T}/x.png", 2, "--image nope not found: no such file or folder, and not a built-in set"),
    ("inpaint --model {D} --image digits --mask {T}/none.png --out {T}/x.png", 2, "--mask .*none.png not found"),
    ("inpaint --model {D} --image digits --box 1,2 --out {T}/x.png", 2, "--box '1,2': expected x,y,w,h"),
    ("inpaint --model {D} --image digits --box a,b,c,d --out {T}/x.png", 2, "expected x,y,w,h"),
    ("inpaint --model {D} --image digits --box 0,0,100,100 --out {T}/x.png", 2, "must lie inside the 8x8 image"),
    ("inpaint --model {D} --image digits --box 0,0,0,0 --out {T}/x.png", 2, "must lie inside"),
    ("inpaint --model {D} --image digits --box 1,1,2,2", 2, "give --out"),
    ("inpaint --model {D} --image digits --box 1,1,2,2 --out {F}/a.png/x.png", 2, "is a file, not a folder"),
    ("inpaint --model {D} --image digits --box 1,1,2,2 --out {T}/x.png --num 0", 2, "--num"),
    ("inpaint --model {P} --image digits --box 1,1,2,2 --out {T}/x.png", 2, "draws 2-D points; this command needs an image model"),
    ("inpaint --model {N} --image digits --box 1,1,2,2 --out {T}/x.png", 2, "holds a 'nerf_lebm' model; inpaint supports: cdrl, coopflow"),
    ("inpaint --model {C} --image digits --box 1,1,2,2 --steps 3 --out {T}/x.png", 2, "for CoopFlow use --infer-steps"),
    ("inpaint --model {D} --image digits --box 1,1,2,2 --infer-steps 3 --out {T}/x.png", 2, "set CoopFlow's inference"),
    ("inpaint --model {D} --image digits --mask {F}/notimage.png --out {T}/x.png", 2, "notimage.png"),
    ("inpaint --model {D} --image digits --mask {F}/good.npz --out {T}/x.png", 2, "expected one mask image, found 2"),
    ("inpaint --model {D} --image {F}/bomb.png --box 1,1,2,2 --out {T}/x.png", 2, "bomb.png"),
    ("inpaint --model {D} --image {F}/truncated.png --box 1,1,2,2 --out {T}/x.png", 2, "truncated.png"),
    ("inpaint --model {D} --image {F}/notimage.png --box 1,1,2,2 --out {T}/x.png", 2, "notimage.png"),
    ("inpaint --model {D} --image {F}/a.txt --box 1,1,2,2 --out {T}/x.png", 2, "a.txt: expected a folder, an image"),
    ("inpaint --model {D} --image {F}/empty.npz --box 1,1,2,2 --out {T}/x.png", 2, "empty.npz"),
    ("inpaint --model {D} --image {F}/obj.npz --box 1,1,2,2 --out {T}/x.png", 2, "obj.npz"),
    ("inpaint --model {D} --image {F}/corrupt.npz --box 1,1,2,2 --out {T}/x.png", 2, "corrupt.npz"),
    ("inpaint --model {D} --image {F}/nan.npz --box 1,1,2,2 --out {T}/x.png", 2, "nan.npz"),
    ("inpaint --model {D} --image {F}/two_arrays.npz --box 1,1,2,2 --out {T}/x.png", 2, "name the images 'images' or 'samples'"),
    ("inpaint --model {D} --image {F}/flat.npz --box 1,1,2,2 --out {T}/x.png", 2, "flat.npz"),
    ("inpaint --model {D} --image {F}/complex.npz --box 1,1,2,2 --out {T}/x.png", 2, "complex.npz"),
    ("inpaint --model {D} --image {F}/empty --box 1,1,2,2 --out {T}/x.png", 2, "no images found"),
    ("inpaint --model {D} --image {F}/mixed --box 1,1,2,2 --out {T}/x.png", 2, "mixed"),
    # ------------------------------------------------------------------ reconstruct, interpolate
    ("reconstruct --model {D} --images digits --out {T}/x.png", 2, "holds a 'cdrl' model; reconstruct supports: coopflow"),
    ("reconstruct --model {C} --images nope --out {T}/x.png", 2, "--images nope not found: no such file"),
    ("reconstruct --model {C} --images digits", 2, "give --out"),
    ("reconstruct --model {C} --images digits --out {T}/x.png --curve {T}/c.txt", 2, r"--curve .*: use a \.png or \.json"),
    ("reconstruct --model {C} --images digits --out {T}/x.png --curve {F}/dir.png", 2, "dir.png is a folder"),
    ("reconstruct --model {C} --images {F}/empty.npz --out {T}/x.png", 2, "empty.npz"),
    ("reconstruct --model {C} --images {F}/nan.npz --out {T}/x.png", 2, "nan.npz"),
    ("reconstruct --model {C} --images digits --limit 0 --out {T}/x.png", 2, "--limit"),
    ("reconstruct --model {C} --images digits --infer-steps -1 --out {T}/x.png", 2, "--infer-steps"),
    ("reconstruct --model {C} --images digits --lr -1 --out {T}/x.png", 2, "--lr"),
    ("interpolate --model {D} --start digits --end digits --out {T}/x.png", 2, "interpolate supports: coopflow .*no latent to infer"),
    ("interpolate --model {C} --start nope --end digits --out {T}/x.png", 2, "--start nope not found: no such file"),
    ("interpolate --model {C} --start digits --end nope --out {T}/x.png", 2, "--end nope not found: no such file"),
    ("interpolate --model {C} --start digits --out {T}/x.png", 2, "give --start IMAGE and --end IMAGE"),
    ("interpolate --model {C} --start digits --end digits --points 1 --out {T}/x.png", 2, "--points"),
    ("interpolate --model {C} --start digits --end digits --steps 3 --out {T}/x.png", 2, "No such option: --steps"),
    ("interpolate --model {C} --start digits --end digits --out {T}/x.jpg", 2, r"use a \.png or \.npz"),
    ("interpolate --model {C} --start {F}/nan.npz --end digits --out {T}/x.png", 2, "nan.npz"),
    ("interpolate --model {C} --start {F}/bomb.png --end digits --out {T}/x.png", 2, "bomb.png"),
    # ------------------------------------------------------------------ novel-view
    ("novel-view --model {N}", 2, "Missing option '--out'"),
    ("novel-view --model {D} --out {T}/nv --data scenes:test", 2, "holds a 'cdrl' model; novel-view supports: nerf_lebm"),
    ("novel-view --model {N} --out {F}/a.png --data scenes:test", 2, "--out .*a.png is a file; give a folder"),
    ("novel-view --model {N} --out {T}/nv", 2, "give --views FILE"),
    ("novel-view --model {N} --out {T}/nv --views {T}/none.png", 2, "--views .*none.png not found"),
    ("novel-view --model {N} --out {T}/nv --views {F}/a.png", 2, "give --views FILE.*with --poses"),
    ("novel-view --model {N} --out {T}/nv --views {F}/a.png --poses {T}/none.json", 2, "--poses .*none.json not found"),
    ("novel-view --model {N} --out {T}/nv --views {F}/a.png --poses {F}/poses_bad.json", 2, "--poses .*needs"),
    ("novel-view --model {N} --out {T}/nv --views {F}/a.png --poses {F}/poses_noview.json", 2, "--poses .*needs"),
    ("novel-view --model {N} --out {T}/nv --views {F}/a.png --poses {F}/poses_list.json", 2, "--poses .*needs"),
    ("novel-view --model {N} --out {T}/nv --views {F}/a.png --poses {F}/poses_str.json", 2, "--poses .*needs"),
    ("novel-view --model {N} --out {T}/nv --views {F}/a.png --masks {T}/none.png", 2, "--masks .*none.png not found"),
    ("novel-view --model {N} --out {T}/nv --data nope", 2, "--data nope not found: no such file"),
    ("novel-view --model {N} --out {T}/nv --data {F}/empty", 2, "--data .*give a built-in posed set"),
    ("novel-view --model {N} --out {T}/nv --data scenes:test --objects 0", 2, "--objects"),
    ("novel-view --model {N} --out {T}/nv --data scenes:test --shots 0", 2, "--shots"),
    ("novel-view --model {N} --out {T}/nv --data scenes:test --steps 3", 2, "No such option: --steps"),
    ("novel-view --model {N} --out {T}/nv --data scenes:test --infer-steps -1", 2, "--infer-steps"),
    ("novel-view --model {N} --out {T}/nv --views {F}/a.png --turntable 0", 2, "--turntable"),
    ("novel-view --model {N} --out {T}/nv --views {F}/bomb.png --poses {F}/poses_noview.json", 2, "--poses|bomb.png"),
    # ------------------------------------------------------------------ ood-score
    ("ood-score --model {D}", 2, "give --data PATH, or both --in-data PATH and --ood-data PATH"),
    ("ood-score --model {D} --data digits --in-data digits --ood-data digits", 2, "give --data PATH, or both"),
    ("ood-score --model {D} --in-data digits", 2, "give --data PATH, or both"),
    ("ood-score --model {C} --data digits", 2, "holds a 'coopflow' model; ood-score supports: cdrl"),
    ("ood-score --model {P} --data digits", 2, "draws 2-D points; this command needs an image model"),
    ("ood-score --model {D} --data nope", 2, "--data nope not found: no such file"),
    ("ood-score --model {D} --in-data digits --ood-data nope", 2, "--ood-data nope not found: no such file"),
    ("ood-score --model {D} --data {F}/nan.npz", 2, "nan.npz"),
    ("ood-score --model {D} --data {F}/empty.npz", 2, "empty.npz"),
    ("ood-score --model {D} --data {F}/obj.npz", 2, "obj.npz"),
    ("ood-score --model {D} --data digits --draws 0", 2, "--draws"),
    ("ood-score --model {D} --data digits --level -1", 2, "--level"),
    ("ood-score --model {D} --data digits --level 99", 2, "level"),
    # ------------------------------------------------------------------ eval mmd
    ("eval mmd --model {D}", 2, "is an image model; eval mmd is for point models"),
    ("eval mmd --model {T}/none.safetensors", 2, "not found"),
    ("eval mmd --model {P} --ref {T}/none.npy", 2, "--ref .*none.npy not found"),
    ("eval mmd --model {P} --ref {F}/pts_nan.npy", 2, "pts_nan.npy"),
    ("eval mmd --model {P} --ref {F}/pts3.npy", 2, "pts3.npy|3"),
    ("eval mmd --model {P} --ref {F}/pts_bad.csv", 2, "pts_bad.csv"),
    ("eval mmd --model {P} --num 5", 2, "--num"),
    ("eval mmd --model {P} --repeats 0", 2, "--repeats"),
    # ------------------------------------------------------------------ eval fid, fid-stats, guidance-sweep
    ("eval fid", 2, "give exactly one of --model and --samples"),
    ("eval fid --model {P} --samples digits", 2, "give exactly one of --model and --samples"),
    ("eval fid --model {P}", 2, "draws 2-D points: use `ebmkit eval mmd`"),
    ("eval fid --samples nope", 2, "--samples nope not found: no such file"),
    ("eval fid --samples digits --ref nope", 2, "--ref nope not found: no such file"),
    ("eval fid --samples digits --ref digits --features bogus", 2, "bogus"),
    ("eval fid --samples digits --inception-weights {T}/none.pt", 2, "--inception-weights .*none.pt not found"),
    ("eval fid --samples digits --num 1", 2, "--num"),
    ("eval fid --samples {F}/empty.npz --ref digits", 2, "empty.npz"),
    ("eval fid --samples {F}/nan.npz --ref digits", 2, "nan.npz"),
    ("eval fid-stats --data digits --out {T}/x.png", 2, r"use a \.npz file name"),
    ("eval fid-stats --data nope --out {T}/x.npz", 2, "--data nope not found: no such file"),
    ("eval fid-stats --data digits --out {F}/dir.npz", 2, "dir.npz is a folder"),
    ("eval fid-stats --data digits --out {T}/x.npz --image-size 0", 2, "--image-size"),
    ("eval guidance-sweep --model {D}", 2, "is not class-conditional"),
    ("eval guidance-sweep --model {C}", 2, "holds a 'coopflow' model; eval guidance-sweep supports: cdrl"),
    ("eval guidance-sweep --model {S} --weights a,b", 2, "--weights 'a,b': expected comma-separated numbers"),
    ("eval guidance-sweep --model {S} --out {T}/x.jpg", 2, r"use a \.png file name"),
    ("eval guidance-sweep --model {S} --num-per-class 1", 2, "--num-per-class"),
    # ------------------------------------------------------------------ eval psnr, poses, auroc
    ("eval psnr --images {T}/nope --ref {F}/a.png", 2, "--images .*nope not found: no such file or folder$"),
    ("eval psnr --images {F}/a.png --ref {F}/two", 2, "holds 1 images but .* holds 2"),
    ("eval psnr --images {F}/nan.npz --ref {F}/good.npz", 2, "nan.npz"),
    ("eval psnr --images {F}/corrupt.npz --ref {F}/good.npz", 2, "corrupt.npz"),
    ("eval psnr --images {F}/a.png --ref {F}/big.png", 2, "size|8x8|12"),
    ("eval psnr --images {F}/mixed --ref {F}/two", 2, "mixed"),
    ("eval poses --model {D}", 2, "holds a 'cdrl' model; eval poses supports: nerf_lebm"),
    ("eval poses --model {N} --data nope", 2, "--data nope not found: no such file"),
    ("eval poses --model {N} --limit 0", 2, "--limit"),
    ("eval auroc --in-scores {T}/none.txt --ood-scores {F}/scores.txt", 2, "--in-scores .*none.txt not found"),
    ("eval auroc --in-scores {F}/scores.txt --ood-scores {F}/scores_nan.txt", 2, "scores_nan.txt"),
    ("eval auroc --in-scores {F}/scores_inf.txt --ood-scores {F}/scores.txt", 2, "scores_inf.txt"),
    ("eval auroc --in-scores {F}/scores_empty.txt --ood-scores {F}/scores.txt", 2, "scores_empty.txt"),
    ("eval auroc --in-scores {F}/scores_text.txt --ood-scores {F}/scores.txt", 2, "scores_text.txt"),
    ("eval auroc --in-scores {F}/scores_col.csv --ood-scores {F}/scores.txt", 2, "scores_col.csv"),
    ("eval auroc --in-scores {F}/scores_bin.txt --ood-scores {F}/scores.txt", 2, "scores_bin.txt"),
    ("eval auroc --in-scores {F}/scores.txt", 2, "give --ood-scores FILE"),
]


@pytest.mark.parametrize("line,code,pattern", ROWS, ids=[f"{i:03d}" for i in range(len(ROWS))])
def test_bad_input(world, capsys, line, code, pattern):
    args = [part.format(**world) for part in line.split()]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    got = SimpleNamespace(code=exit_info.value.code, err=capsys.readouterr().err)
    lines = got.err.strip().splitlines()
    assert got.code == code, got.err
    assert len(lines) == 1 and lines[0].startswith("error: "), got.err
    assert "internal error" not in got.err and "Traceback" not in got.err, got.err
    assert re.search(pattern, lines[0]), lines[0]


def test_the_table_covers_every_command():
    commands = {" ".join(w for w in line.split()[:2] if not w.startswith(("-", "{"))) for line, _, _ in ROWS} - {""}
    first = {c.split()[0] for c in commands}
    assert {"train", "sample", "compose", "inpaint", "reconstruct", "interpolate", "novel-view", "ood-score",
            "presets", "eval"} <= first
    assert {f"eval {e}" for e in ("mmd", "fid", "fid-stats", "guidance-sweep", "psnr", "poses", "auroc")} <= commands
    assert len(ROWS) >= 150
