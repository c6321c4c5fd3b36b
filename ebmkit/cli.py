"""The `ebmkit` command line. Each command parses, loads, calls one library function, prints.

Errors are one line on stderr: exit 2 for bad usage or input, 1 for failures at run time,
130 when interrupted.
"""

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.exceptions import Abort, Exit, TyperException
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ebmkit.errors import EbmkitError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Energy-based generative models of Zhu (UCLA 2024): CDRL, CoopFlow, NeRF-LEBM.")
presets_app = typer.Typer(no_args_is_help=True, help="List and inspect presets.")
app.add_typer(presets_app, name="presets")
eval_app = typer.Typer(no_args_is_help=True, help="Measure sample quality.")
app.add_typer(eval_app, name="eval")
out = Console(soft_wrap=True)  # long result lines stay whole in logs and pipes
err = Console(stderr=True, soft_wrap=True)

SetOpt = Annotated[list[str], typer.Option("--set", help="Override a preset field, e.g. --set train.lr=2e-4 (repeatable).")]
SeedOpt = Annotated[int, typer.Option(help="Random seed.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


# ---------------------------------------------------------------------------- presets
@presets_app.command("list")
def presets_list(as_json: JsonOpt = False):
    """Every shipped preset with its description."""
    from ebmkit.presets import list_presets

    items = list_presets()
    if as_json:
        print(json.dumps([{"name": n, "description": d} for n, d in items]))
        return
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


# ---------------------------------------------------------------------------- train
@app.command()
def train(
    preset: Annotated[Optional[str], typer.Option(help="Preset name (see `ebmkit presets list`) or a .toml/.json file.")] = None,
    overrides: SetOpt = [],
    data: Annotated[Optional[str], typer.Option(help="Local data path (sets data.path).")] = None,
    run_dir: Annotated[Optional[Path], typer.Option(help="Run directory [default: runs/PRESET].")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue the run in this directory exactly where it stopped.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Start over in a non-empty run directory.")] = False,
    eval_every: Annotated[Optional[int], typer.Option(min=0, help="Measure sample quality every N iterations into metrics.jsonl (sets train.eval_every; FID needs $EBMKIT_INCEPTION_WEIGHTS except on built-in sets).")] = None,
    device: DeviceOpt = "auto",
    quiet: Annotated[bool, typer.Option(help="No progress output.")] = False,
):
    """Train a model. Multi-GPU/multi-node: `torchrun --nproc_per_node N -m ebmkit train ...`."""
    from ebmkit.presets import load_preset
    from ebmkit.train import train as run_training

    if eval_every is not None:
        overrides = [*overrides, f"train.eval_every={eval_every}"]
    if resume is not None:
        if preset is not None:
            raise EbmkitError("--resume continues a run with its own preset; drop --preset")
        if not (resume / "preset.json").is_file():
            raise EbmkitError(f"cannot resume: {resume / 'preset.json'} not found")
        cfg = load_preset(str(resume / "preset.json"), overrides)
        directory = resume
    else:
        if preset is None:
            raise EbmkitError("give --preset NAME (see `ebmkit presets list`) or --resume RUN_DIR")
        cfg = load_preset(preset, overrides)
        directory = run_dir or Path("runs") / cfg.name
    if data is not None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": data})})
    model = run_training(cfg, directory, resume=resume is not None, overwrite=overwrite, device=device, quiet=quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        err.print(f"model written to {model}")


# ---------------------------------------------------------------------------- sample
@app.command()
def sample(
    model: Annotated[Path, typer.Option(help="Model file (.safetensors) written by `ebmkit train`.")],
    num: Annotated[int, typer.Option(min=1, help="Number of samples.")] = 64,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="A .png grid (a scatter for 2-D models) or a .npz array.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option(help="Write one PNG per image here.")] = None,
    seed: SeedOpt = 0,
    steps: Annotated[Optional[int], typer.Option(min=0, help="Langevin steps per level (fewer than trained scales the step size, sec. 5.4.2; 0 = initializer only).")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    ema: Annotated[bool, typer.Option(help="Use the EMA weights.")] = True,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Draw samples from a trained model."""
    import numpy as np
    import torch

    from ebmkit import viz
    from ebmkit.methods import load_model
    from ebmkit.train import setup_ranks

    if out_path is None and out_dir is None:
        raise EbmkitError("give --out FILE (.png or .npz) and/or --out-dir DIR")
    if out_path is not None and out_path.suffix not in (".png", ".npz"):
        raise EbmkitError(f"--out {out_path}: use a .png or .npz file name")
    dev = setup_ranks(device).device
    method, step = load_model(model, dev, command="sample")
    is_points = len(method.shape) == 1
    if out_dir is not None and is_points:
        raise EbmkitError("--out-dir writes images; this model draws 2-D points (use --out .png or .npz)")
    gen = torch.Generator(dev).manual_seed(seed)
    tic = time.time()
    with Progress(console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task("sampling", total=num)
        x = method.sample(num, gen, batch_size=batch_size, steps=steps, use_ema=ema,
                          progress=lambda n: bar.advance(task, n))
    seconds = time.time() - tic
    written = []
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if out_path.suffix == ".npz":
            np.savez(out_path, samples=x.numpy())
        elif is_points:
            viz.save_scatter(x, out_path)
            levels_path = out_path.with_name(out_path.stem + "_levels.png")
            written.append(str(levels_path))
            _levels_figure(method, levels_path, seed, dev, steps, ema)
        else:
            viz.save_grid(x, out_path)
        written.insert(0, str(out_path))
    if out_dir is not None:
        viz.save_images(x, out_dir)
        written.append(str(out_dir))
    report = {"model": str(model), "step": step, "num": num, "seconds": round(seconds, 3), "written": written}
    if as_json:
        print(json.dumps(report))
    else:
        err.print(f"{num} samples in {seconds:.1f} s -> {', '.join(written)}")


def _levels_figure(method, path: Path, seed: int, device, steps, ema) -> None:
    """Fig. 5.5 for a 2-D model: data, learned density and samples at every noise level."""
    import torch

    from ebmkit import viz
    from ebmkit.data import from_config

    data = from_config(method.preset.data, "test", method.preset.train.seed)
    gen = torch.Generator(device).manual_seed(seed)
    levels = method.sample_levels(2000, gen, steps=steps, use_ema=ema)
    viz.levels_figure_2d(method, data.x[:2000].to(device), levels, path, gen)


# ---------------------------------------------------------------------------- eval
@eval_app.command("mmd")
def eval_mmd(
    model: Annotated[Path, typer.Option(help="Model file of a 2-D model.")],
    num: Annotated[int, typer.Option(min=10, help="Samples, and points in each fresh data draw.")] = 5000,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Squared MMD (RBF kernels) of samples to fresh data, beside a second data draw's."""
    from ebmkit.methods import load_model
    from ebmkit.metrics.points import points_report
    from ebmkit.train import setup_ranks

    method, step = load_model(model, setup_ranks(device).device, command="eval mmd")
    if len(method.shape) != 1:
        raise EbmkitError(f"{model} is an image model; eval mmd is for 2-D models")
    report = {"model": str(model), "step": step, **points_report(method, num, seed)}
    if as_json:
        print(json.dumps(report))
        return
    table = Table("bandwidth", "MMD^2 model", "MMD^2 data", "ratio", box=None)
    for h, m, d in zip(report["bandwidths"], report["mmd2_model"], report["mmd2_data"]):
        table.add_row(f"{h:g}", f"{m:.3e}", f"{d:.3e}", f"{m / d:.2f}")
    table.add_row("sum", f"{report['mmd2_model_sum']:.3e}", f"{report['mmd2_data_sum']:.3e}", f"{report['ratio']:.2f}")
    out.print(table)
    if "on_squares" in report:
        out.print(f"on the checkerboard's squares: {report['on_squares']:.1%} of {num} samples "
                  f"(data: {report['on_squares_data']:.1%})")


@eval_app.command("fid")
def eval_fid(
    model: Annotated[Optional[Path], typer.Option(help="Model file to sample from.")] = None,
    samples: Annotated[Optional[Path], typer.Option(help="Score these images instead (folder or .npz).")] = None,
    ref: Annotated[Optional[str], typer.Option(help="Reference: image folder, statistics .npz, or built-in set NAME[:SPLIT]  [default: the model's training data]")] = None,
    num: Annotated[Optional[int], typer.Option(min=2, help="Samples to draw  [default: 50000 (the thesis's figure); for domain features, the size of the held-out split]")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    features: Annotated[str, typer.Option(help="auto (domain for built-in image sets, else Inception), inception or domain.")] = "auto",
    inception_weights: Annotated[Optional[Path], typer.Option(help="TorchScript Inception file (inception-2015-12-05.pt) [env EBMKIT_INCEPTION_WEIGHTS].")] = None,
    seed: SeedOpt = 0,
    steps: Annotated[Optional[int], typer.Option(min=0, help="Langevin steps per level (as in `sample`).")] = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """FID of a model's samples (or of an image set) against a reference, with the sample count and
    reference named; built-in image sets get a domain-FID and its real-data baseline."""
    from ebmkit.data import from_model_space
    from ebmkit.metrics import fid
    from ebmkit.train import setup_ranks

    if (model is None) == (samples is None):
        raise EbmkitError("give exactly one of --model and --samples")
    dev = setup_ranks(device).device
    method = data_cfg = images = None
    if model is not None:
        from ebmkit.methods import load_model

        method, step = load_model(model, dev, command="eval fid")
        if len(method.shape) == 1:
            raise EbmkitError(f"{model} draws 2-D points: use `ebmkit eval mmd`")
        data_cfg, size = method.preset.data, method.shape[-1]
    else:
        from ebmkit.data.files import read_images

        images = read_images(samples)
        size = images.shape[-1]
    reference = fid.resolve_reference(ref, data_cfg, size)
    space = fid.feature_space(features, reference.builtin, size, dev, inception_weights)
    with Progress(console=err, transient=True, disable=as_json) as bar:
        ref_task = bar.add_task("reference features", total=None)
        ref_stats = fid.reference_stats(space, reference, batch_size, lambda n: bar.advance(ref_task, n))
        bar.update(ref_task, visible=False)
        if images is None:
            num = num or (fid.held_out_size(space.data) if hasattr(space, "data") else 50_000)
            task = bar.add_task("sampling", total=num)
            gen = torch_generator(dev, seed)
            images = from_model_space(method.sample(num, gen, batch_size=batch_size, steps=steps,
                                                    progress=lambda n: bar.advance(task, n)))
        task = bar.add_task("sample features", total=len(images))
        report = fid.fid_report(space, images, ref_stats, batch_size, lambda n: bar.advance(task, n))
    report = {"model" if model else "samples": str(model or samples), **report}
    if as_json:
        print(json.dumps(report))
        return
    out.print(f"{report['metric']}: [bold]{report['fid']:.3f}[/bold]  ({report['num']} samples vs {report['ref']}, "
              f"{report['ref_num']} images)")
    if "baseline_fid" in report:
        out.print(f"real-data baseline: {report['baseline_fid']:.3f}  ({report['baseline']}, {report['baseline_num']} images, "
                  f"same reference)")
        out.print(f"domain classifier: {report['classifier_test_accuracy']:.1%} test accuracy; recognises "
                  f"{report['confident_samples']:.1%} of samples with p >= 0.9 (held-out real data: "
                  f"{report['confident_real']:.1%}); classes {report['class_histogram']}")


def torch_generator(device, seed: int):
    import torch

    return torch.Generator(device).manual_seed(seed)


@eval_app.command("fid-stats")
def eval_fid_stats(
    data: Annotated[str, typer.Option(help="Built-in set NAME[:SPLIT], image folder or .npz of images.")],
    out_path: Annotated[Path, typer.Option("--out", help="Statistics file to write (.npz with mu, sigma).")],
    features: Annotated[str, typer.Option(help="auto, inception or domain (as in `eval fid`).")] = "auto",
    image_size: Annotated[Optional[int], typer.Option(min=1, help="Resize images to this size first.")] = None,
    inception_weights: Annotated[Optional[Path], typer.Option(help="TorchScript Inception file [env EBMKIT_INCEPTION_WEIGHTS].")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Write reference statistics once, for `eval fid --ref stats.npz`."""
    from ebmkit.metrics import fid
    from ebmkit.train import setup_ranks

    if out_path.suffix != ".npz":
        raise EbmkitError(f"--out {out_path}: use a .npz file name")
    dev = setup_ranks(device).device
    reference = fid.resolve_reference(data, image_size=image_size)
    if reference.stats_file is not None:
        raise EbmkitError(f"{data} already holds statistics")
    images = reference.images()
    space = fid.feature_space(features, reference.builtin, images.shape[-1], dev, inception_weights)
    with Progress(console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task("features", total=len(images))
        stats = fid.stats_of(space, images, reference.source, batch_size, lambda n: bar.advance(task, n))
    fid.save_stats(stats, out_path)
    report = {"out": str(out_path), "features": stats.features, "num": stats.num, "source": stats.source}
    if as_json:
        print(json.dumps(report))
    else:
        err.print(f"{stats.features} statistics of {stats.num} images of {stats.source} -> {out_path}")


@eval_app.command("psnr")
def eval_psnr(
    a: Annotated[Path, typer.Option(help="Images (folder, image file or .npz).")],
    b: Annotated[Path, typer.Option(help="The images to compare with, in the same order (sorted file names).")],
    as_json: JsonOpt = False,
):
    """PSNR (dB, peak 255) of image pairs: one per pair and their mean."""
    from ebmkit.data.files import read_images
    from ebmkit.metrics.psnr import psnr

    x, y = read_images(a), read_images(b)
    if len(x) != len(y):
        raise EbmkitError(f"{a} holds {len(x)} images but {b} holds {len(y)}")
    if x.shape[1] != y.shape[1]:  # a grey set saved as PNG reads back as RGB
        x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
    values = psnr(x, y).tolist()
    report = {"psnr_mean": sum(values) / len(values), "num": len(values), "psnr": values}
    if as_json:
        print(json.dumps(report))
    else:
        out.print(f"PSNR {report['psnr_mean']:.2f} dB (mean of {len(values)} pairs)")


@eval_app.command("auroc")
def eval_auroc(
    in_scores: Annotated[Path, typer.Option("--in-scores", help="Scores of in-distribution inputs (CSV with a 'score' column, or one number per line).")],
    out_scores: Annotated[Path, typer.Option("--out-scores", help="Scores of out-of-distribution inputs (same format).")],
    as_json: JsonOpt = False,
):
    """AUROC of OOD scores (higher = more anomalous; out-of-distribution is the positive class)."""
    from ebmkit.metrics.auroc import auroc, read_scores

    a, b = read_scores(in_scores), read_scores(out_scores)
    report = {"auroc": auroc(a, b), "num_in": len(a), "num_out": len(b)}
    if as_json:
        print(json.dumps(report))
    else:
        out.print(f"AUROC {report['auroc']:.4f} ({len(a)} in-distribution, {len(b)} out-of-distribution)")


# ---------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> None:
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="ebmkit", standalone_mode=False)
    except EbmkitError as e:
        err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except Exit as e:
        sys.exit(e.exit_code)
    except TyperException as e:  # usage errors: unknown option, missing or malformed value
        err.print(f"error: {e.format_message()} (see --help)", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except (KeyboardInterrupt, Abort):
        err.print("error: interrupted", markup=False)
        sys.exit(130)
    except Exception as e:  # never a traceback for the user, unless asked
        if os.environ.get("EBMKIT_DEBUG"):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        err.print(f"error: internal error: {type(e).__name__}: {first} (EBMKIT_DEBUG=1 shows the traceback)",
                  markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
