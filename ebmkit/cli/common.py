"""What every command shares: the Typer apps, option types, loading a model onto a device, progress,
the output writers and the report printer. Nothing here imports torch at load time: a bad argument
fails in a fraction of a second."""

import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import Progress

from ebmkit import inputs
from ebmkit.errors import EbmkitError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Energy-based generative models of Zhu (UCLA 2024): CDRL, CoopFlow, NeRF-LEBM.")
presets_app = typer.Typer(no_args_is_help=True, help="List and inspect presets.")
app.add_typer(presets_app, name="presets")
eval_app = typer.Typer(no_args_is_help=True, help="Measure sample quality.")
app.add_typer(eval_app, name="eval")
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
    if as_json:
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
        if out_path.suffix == ".npz":
            np.savez(out_path, samples=(x if npz is None else npz).numpy())
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
        write(x, out_path)
    return [str(out_path)]
