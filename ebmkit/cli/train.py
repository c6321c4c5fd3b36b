"""`ebmkit train`, `ebmkit plot`, `ebmkit presets list|show` and `ebmkit info`."""

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ebmkit import inputs
from ebmkit.cli.common import DeviceOpt, JsonOpt, SetOpt, app, err, example, finish, out, presets_app, print_json
from ebmkit.errors import EbmkitError


@presets_app.command("list", epilog=example("ebmkit presets list",
                                            "ebmkit presets list --json"))
def presets_list(as_json: JsonOpt = False):
    """Every shipped preset with its description."""
    from ebmkit.presets import list_presets

    items = list_presets()
    if as_json:
        return print_json([{"name": n, "description": d} for n, d in items])
    table = Table("preset", "description", box=None)
    for name, desc in items:
        table.add_row(name, desc)
    out.print(table)


@presets_app.command("show", epilog=example("ebmkit presets show cdrl-cifar10 --set train.lr=2e-4",
                                            "ebmkit presets show runs/mine/model.safetensors --json"))
def presets_show(
    name: Annotated[str, typer.Argument(help="Preset name, a .toml/.json preset file (a run's preset.json) or a model file.", show_default=False)],
    overrides: SetOpt = [],
    as_json: JsonOpt = False,
):
    """A preset validated and fully expanded (every default written out), as TOML or JSON."""
    from ebmkit.presets import load_preset, to_toml

    data = load_preset(name, overrides).model_dump(mode="json")
    print(json.dumps(data, indent=2) if as_json else to_toml(data), end="\n" if as_json else "")


@app.command(epilog=example("ebmkit train --preset cdrl-points --data my_points.npy --run-dir runs/mine",
                            "ebmkit train --preset cdrl-digits --set train.iterations=2000",
                            "ebmkit train --resume runs/mine",
                            "torchrun --nproc_per_node 8 -m ebmkit train --preset cdrl-cifar10 --data ~/data/cifar10"))
def train(
    preset: Annotated[Optional[str], typer.Option(help="Preset name (see `ebmkit presets list`) or a .toml/.json file.")] = None,
    overrides: SetOpt = [],
    data: Annotated[Optional[str], typer.Option(help="Point presets: a point file (.npy, .npz, .csv) of shape (N, D) to train on; local image/scene sets: their folder (sets data.path).")] = None,
    run_dir: Annotated[Optional[Path], typer.Option(help="Run directory [default: runs/PRESET].")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue the run in this directory exactly where it stopped.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Start over in a non-empty run directory.")] = False,
    eval_every: Annotated[Optional[int], typer.Option(min=0, help="Measure sample quality every N iterations into metrics.jsonl (sets train.eval_every; FID needs $EBMKIT_INCEPTION_WEIGHTS except on built-in sets).")] = None,
    device: DeviceOpt = "auto",
    quiet: Annotated[bool, typer.Option(help="No progress output.")] = False,
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="Also log to RUN_DIR/tensorboard/ (needs the tensorboard package: the 'tensorboard' extra).")] = False,
):
    """Train a model. Multi-GPU/multi-node: `torchrun --nproc_per_node N -m ebmkit train ...`."""
    if data is not None:
        inputs.data_source(data, "--data", ())
    if resume is not None and not resume.is_dir():
        raise EbmkitError(f"cannot resume: {resume} is not a run directory")
    inputs.output_dir(run_dir, "--run-dir")
    inputs.device(device)

    from ebmkit.presets import resolve
    from ebmkit.training import train as run_training

    overrides = [*overrides, *([f"train.eval_every={eval_every}"] if eval_every is not None else [])]
    cfg, directory = resolve(preset, overrides, data, run_dir, resume)
    model = run_training(cfg, directory, resume=resume is not None, overwrite=overwrite, device=device, quiet=quiet,
                         tensorboard=tensorboard)
    if int(os.environ.get("RANK", "0")) == 0:
        err.print(f"model written to {model}")


@app.command(epilog=example("ebmkit info runs/mine/model.safetensors", "ebmkit info cdrl.safetensors --json"))
def info(
    model: Annotated[Path, typer.Argument(help="Model file.", show_default=False)],
    as_json: JsonOpt = False,
):
    """What a model file holds: method, step, example shape, networks and parameter counts, the EMA, the
    preset (in full: `ebmkit presets show MODEL`), and the ebmkit version that wrote it."""
    inputs.existing_file(model, "model")
    from ebmkit.methods.info import model_info

    r = model_info(model)
    if as_json:
        return print_json(r)
    nets = ", ".join(f"{k} {v['class']} {v['parameters']:,} (EMA {v['ema_distance']:.2%} away)" for k, v in r["networks"].items())
    out.print(f"{r['model']}: {r['method']} at step {r['step']}, examples of shape {tuple(r['shape'])}\n"
              f"preset {r['preset']} (data {r['data']}): {r['description']}\n"
              f"networks: {nets}; {r['parameters']:,} parameters; EMA decay {r['ema_decay']}\n"
              f"written by ebmkit {r['ebmkit_version']}" + (f"; status: {r['status']}" if r["status"] else ""),
              markup=False, highlight=False)


@app.command(epilog=example("ebmkit plot runs/mine", "ebmkit plot runs/mine --out mine_curves.png"))
def plot(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (holding metrics.jsonl).", show_default=False)],
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Picture to write [default: RUN_DIR/curves.png].")] = None,
):
    """Redraw a run's training curves (losses, energies, gradient norms, evaluations, guard events), as
    training draws them into RUN_DIR/curves.png at every preview."""
    log = run_dir / "metrics.jsonl"
    if not log.is_file():
        raise EbmkitError(f"{log} not found: give a run directory")
    out_path = out_path or run_dir / "curves.png"
    inputs.output_file(out_path, "--out", (".png",))
    from ebmkit import rundir, viz

    records = rundir.read_log(log, lambda message: err.print(f"warning: {message}", markup=False))
    if not any("event" not in r for r in records):
        raise EbmkitError(f"{log} holds no training records yet")
    viz.training_curves(records, out_path)
    finish({"run_dir": str(run_dir), "records": len(records), "written": [str(out_path)]}, False, f"curves -> {out_path}")
