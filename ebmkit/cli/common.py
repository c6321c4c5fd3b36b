"""What every command shares: the Typer apps, option types, loading a model onto a device, progress,
the output writers and the report printer. Nothing here imports torch at load time: a bad argument
fails in a fraction of a second."""

import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import Progress

from ebmkit import inputs
from ebmkit.errors import EbmkitError

# Plain help (no Rich markup: "[default: runs/PRESET]" and JSON schemas stay as written); -h or --help.
HELP = {"no_args_is_help": True, "rich_markup_mode": None, "context_settings": {"help_option_names": ["-h", "--help"]}}
app = typer.Typer(pretty_exceptions_enable=False, **HELP,
                  help="Energy-based generative models of Zhu (UCLA 2024): CDRL, CoopFlow, NeRF-LEBM.")


def example(*lines: str) -> str:
    """The epilog of a command's --help: its examples, kept as written."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


presets_app = typer.Typer(**HELP, help="List and inspect presets.",
                          epilog=example("ebmkit presets list", "ebmkit presets show cdrl-points"))
app.add_typer(presets_app, name="presets")
eval_app = typer.Typer(**HELP, help="Measure sample quality.",
                       epilog=example("ebmkit eval mmd --model runs/mine/model.safetensors",
                                      "ebmkit eval fid --model runs/digits/model.safetensors"))
app.add_typer(eval_app, name="eval")
data_app = typer.Typer(**HELP, help="Built-in data sets as files.",
                       epilog=example("ebmkit data export scenes:test --out scenes_test/"))
app.add_typer(data_app, name="data")


def renamed(value, name: str, old_value, old: str):
    """An option given by its name or, for one more release, by its deprecated old name (with a warning)."""
    if old_value is None:
        return value
    if value is not None:
        raise EbmkitError(f"give {name} once ({old} is its deprecated old name)")
    err.print(f"warning: {old} is deprecated and goes in the next release: use {name}", markup=False)
    return old_value


def old_name(name: str):
    """A hidden option under a deprecated name (see renamed)."""
    return typer.Option(name, hidden=True)


def _print_version(value: bool) -> None:
    if value:
        from ebmkit import __version__

        print(f"ebmkit {__version__}")
        raise typer.Exit()


@app.callback(epilog=example("ebmkit train --preset cdrl-points --run-dir runs/mine",
                             "ebmkit sample --model runs/mine/model.safetensors --num 5000 --out s.png",
                             "ebmkit sample -h"))
def root(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                               help="Print the version and exit.")] = False):
    """Energy-based generative models of Zhu (UCLA 2024): CDRL, CoopFlow, NeRF-LEBM."""
out = Console(soft_wrap=True, emoji=False)  # long result lines stay whole in logs and pipes
err = Console(stderr=True, soft_wrap=True, emoji=False)  # ":x" in a message stays ":x"

SetOpt = Annotated[list[str], typer.Option("--set", help="Override a preset field, e.g. --set train.lr=2e-4 (repeatable).")]
SeedOpt = Annotated[int, typer.Option(help="Random seed.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
BatchOpt = Annotated[int, typer.Option(min=1, help="Images per batch.")]
OutDirOpt = Annotated[Optional[Path], typer.Option(help="Write one PNG per image here.")]
StepsOpt = Annotated[Optional[int], typer.Option(min=0, help="Langevin steps: CDRL's per noise level (fewer than trained scale the step size by sqrt(K/steps), sec. 5.4.2), CoopFlow's chain length T, NeRF-LEBM's prior chain K- (default: as trained).")]
InferStepsOpt = Annotated[Optional[int], typer.Option(min=0, help="Inference steps: CoopFlow's gradient steps on the Langevin start (sec. 4.4.3; default 200), NeRF-LEBM's Langevin steps on the latents (default inference.test_steps).")]
InferLrOpt = Annotated[Optional[float], typer.Option(min=0, help="CoopFlow: gradient-descent rate of the inference steps (default 0.05).")]


def load(model: Path, device: str, command: str, supported: tuple[str, ...] | None = None, why: str = ""):
    """(method, step): the model file on the process's device; `supported` gates the methods (load_model)."""
    from ebmkit.methods import load_model
    from ebmkit.runtime import setup_ranks

    return load_model(model, setup_ranks(device).device, supported=supported, command=command, why=why)


def generator(device, seed: int):
    import torch

    return torch.Generator(device).manual_seed(seed)


@contextmanager
def progress(label: str, total: int | None, quiet: bool):
    """A transient progress bar on stderr; yields advance(n). Off with --json (or quiet)."""
    with Progress(console=err, transient=True, disable=quiet) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n=1: bar.advance(task, n)


# ---------------------------------------------------------------------------- reports
def _finite_json(v):
    """v with every NaN or infinite float as None: JSON has no Infinity (an identical image pair's PSNR)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite_json(u) for k, u in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite_json(u) for u in v]
    return v


def print_json(report) -> None:
    """A command's --json result: one line of strict JSON on stdout."""
    print(json.dumps(_finite_json(report), allow_nan=False))


def finish(report: dict, as_json: bool, line: str, result: bool = False) -> None:
    """The end of every command: `report` as JSON on stdout with --json; else `line`, on stdout when it is
    the command's result (a figure), on stderr when it only says what was written."""
    if "-" in report.get("written", []):  # the data went to standard output: the report goes to stderr
        err.print(json.dumps(_finite_json(report)) if as_json else line, markup=False, highlight=False)
    elif as_json:
        print_json(report)
    else:
        (out if result else err).print(line, markup=False, highlight=False)


# ---------------------------------------------------------------------------- outputs
def file_list(items: list[str]) -> list[str]:
    """File names of a repeatable option whose values may also be comma-separated."""
    return [f for item in items for f in item.split(",") if f]


def check_outputs(out_path: Optional[Path], out_dir: Optional[Path], suffixes: tuple[str, ...] = (".png", ".npz")) -> None:
    """--out FILE and/or --out-dir DIR are given and can be written (before any work)."""
    if out_path is None and out_dir is None:
        raise EbmkitError(f"give --out FILE ({', '.join(suffixes)}) and/or --out-dir DIR")
    inputs.output_file(out_path, "--out", suffixes)
    inputs.output_dir(out_dir, "--out-dir")


def from_stdin(value):
    """An input given as "-": standard input, saved to a temporary file (.npz when it is a zip archive, else
    .csv) so that every reader and check applies; any other value passes through."""
    if value is None or str(value) != "-":
        return value
    import atexit
    import os
    import sys
    import tempfile

    data = sys.stdin.buffer.read()
    if not data:
        raise EbmkitError("standard input (-) is empty")
    f = tempfile.NamedTemporaryFile(prefix="ebmkit-stdin-", suffix=".npz" if data[:2] == b"PK" else ".csv", delete=False)
    f.write(data)
    f.close()
    atexit.register(os.unlink, f.name)
    return type(value)(f.name)


def check_finite(x) -> None:
    """Outputs are finite or not written: a NaN sample is a failure, never a result."""
    import torch

    bad = int((~torch.isfinite(x.reshape(len(x), -1))).any(1).sum())
    if bad:
        raise EbmkitError(f"{bad} of {len(x)} outputs hold NaN or inf values; nothing written "
                          f"(the model or the sampler diverged: try fewer --steps, or another model file)", 1)


def write_images(x, out_path: Optional[Path], out_dir: Optional[Path], nrow: int | None = None, npz=None) -> list[str]:
    """Images in model space: a grid (.png) or an array (.npz: `npz` if given, else x) and/or one PNG each."""
    import numpy as np

    from ebmkit import viz

    check_finite(x if npz is None else npz)
    written = []
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if out_path.suffix == ".npz" or str(out_path) == "-":  # "-": the .npz on standard output
            np.savez(sys.stdout.buffer if str(out_path) == "-" else out_path, samples=(x if npz is None else npz).numpy())
        else:
            viz.save_grid(x, out_path, nrow)
        written.append(str(out_path))
    if out_dir is not None:
        viz.save_images(x if npz is None else npz.flatten(0, -4), out_dir)
        written.append(str(out_dir))
    return written


def check_points_output(method, out_path: Optional[Path], out_dir: Optional[Path]) -> None:
    """A point model writes .npz, .csv, or for 2-D points a .png scatter; no image folder."""
    dim = method.shape[0]
    if out_dir is not None:
        raise EbmkitError(f"--out-dir writes images; this model draws {dim}-D points (use --out .npz, .csv or .png)")
    if out_path.suffix == ".png" and dim != 2:
        raise EbmkitError(f"--out {out_path}: a scatter picture needs 2-D points, this model draws {dim}-D ones "
                          f"(write .npz or .csv)")


def write_points(method, x, out_path: Path) -> list[str]:
    """Point samples (model space) in the data's own units: .npz / .csv, or a 2-D scatter .png."""
    from ebmkit import viz
    from ebmkit.data.points import write_points as write

    check_finite(x)
    x = method.units.to_data(x)
    if out_path.suffix == ".png":
        viz.save_scatter(x, out_path)
    else:
        write(x, sys.stdout if str(out_path) == "-" else out_path)  # "-": CSV on standard output
    return [str(out_path)]
