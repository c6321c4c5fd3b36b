"""`ebmkit train` and `ebmkit presets list|show`."""

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ebmkit import inputs
from ebmkit.cli.common import DeviceOpt, JsonOpt, SetOpt, app, err, out, presets_app, print_json
from ebmkit.errors import EbmkitError


@presets_app.command("list")
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


@presets_app.command("show")
def presets_show(name: str, overrides: SetOpt = [], as_json: JsonOpt = False):
    """A preset validated and fully expanded (every default written out), as TOML or JSON."""
    from ebmkit.presets import load_preset, to_toml

    data = load_preset(name, overrides).model_dump(mode="json")
    print(json.dumps(data, indent=2) if as_json else to_toml(data), end="\n" if as_json else "")


@app.command()
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
):
    """Train a model. Multi-GPU/multi-node: `torchrun --nproc_per_node N -m ebmkit train ...`."""
    if data is not None:
        inputs.data_source(data, "--data", ())
    if resume is not None and not resume.is_dir():
        raise EbmkitError(f"cannot resume: {resume} is not a run directory")
    inputs.output_dir(run_dir, "--run-dir")
    inputs.device(device)

    from ebmkit.presets import resolve
    from ebmkit.train import train as run_training

    overrides = [*overrides, *([f"train.eval_every={eval_every}"] if eval_every is not None else [])]
    cfg, directory = resolve(preset, overrides, data, run_dir, resume)
    model = run_training(cfg, directory, resume=resume is not None, overwrite=overwrite, device=device, quiet=quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        err.print(f"model written to {model}")
