"""The `ebmkit` command line. Each command parses, loads, calls one library function, prints.

Errors are one line on stderr: exit 2 for bad usage or input, 1 for failures at run time,
130 when interrupted.
"""

import json
import math
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
StepsOpt = Annotated[Optional[int], typer.Option(min=0, help="Langevin steps per level; fewer than trained scales the step size by sqrt(K/steps) (sec. 5.4.2).")]
InferStepsOpt = Annotated[int, typer.Option(min=0, help="CoopFlow: gradient steps on the Langevin start (sec. 4.4.3).")]
InferLrOpt = Annotated[float, typer.Option(min=0, help="CoopFlow: gradient-descent rate of those steps.")]
NoLangevinOpt = Annotated[bool, typer.Option("--no-langevin", help="Sample with the initializer alone (Fig. 5.9 a).")]


def _finite_json(v):
    """v with every NaN or infinite float as None: JSON has no Infinity (an identical image pair's PSNR)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite_json(u) for k, u in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite_json(u) for u in v]
    return v


def _print_json(report) -> None:
    """A command's --json result: one line of strict JSON on stdout."""
    print(json.dumps(_finite_json(report), allow_nan=False))


def _steps(steps, no_langevin: bool):
    if no_langevin and steps not in (None, 0):
        raise EbmkitError("--no-langevin and --steps contradict each other")
    return 0 if no_langevin else steps


# ---------------------------------------------------------------------------- presets
@presets_app.command("list")
def presets_list(as_json: JsonOpt = False):
    """Every shipped preset with its description."""
    from ebmkit.presets import list_presets

    items = list_presets()
    if as_json:
        _print_json([{"name": n, "description": d} for n, d in items])
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

    from ebmkit.presets import load_preset, with_data

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
        cfg = with_data(cfg, data)
    from ebmkit.train import train as run_training

    model = run_training(cfg, directory, resume=resume is not None, overwrite=overwrite, device=device, quiet=quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        err.print(f"model written to {model}")


# ---------------------------------------------------------------------------- sample
@app.command()
def sample(
    model: Annotated[Path, typer.Option(help="Model file (.safetensors) written by `ebmkit train`.")],
    num: Annotated[int, typer.Option(min=1, help="Number of samples.")] = 64,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="A .png grid (a scatter for 2-D models) or a .npz array.")] = None,
    out_dir: OutDirOpt = None,
    seed: SeedOpt = 0,
    steps: StepsOpt = None,
    no_langevin: NoLangevinOpt = False,
    guidance: Annotated[Optional[float], typer.Option(min=0, help="Classifier-free guidance weight w (Eq. 5.9, 5.10); needs --class.")] = None,
    classes: Annotated[list[str], typer.Option("--class", help="Class (number or name) of a class-conditional model; repeatable, or 'all'. Rows of the grid follow the classes.")] = [],
    batch_size: BatchOpt = 256,
    ema: Annotated[bool, typer.Option(help="Use the EMA weights.")] = True,
    grid: Annotated[Optional[str], typer.Option(help="NeRF-LEBM: shape-appearance (rows vary z_s, columns z_a) or pose (rows objects, columns a turn of azimuth), as Fig. 3.4; a sqrt(num) x sqrt(num) grid.")] = None,
    depth: Annotated[bool, typer.Option("--depth", help="NeRF-LEBM: also write inverse-depth maps (NAME_depth.png beside --out).")] = False,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Draw samples from a trained model, optionally class-conditional with guidance.

    Point models write their samples in the training data's own units: .npz (array `samples`), .csv, or
    for 2-D a scatter .png (with the per-level picture of Fig. 5.5 beside it, in model space)."""
    inputs.existing_file(model, "--model")
    _check_outputs(out_path, out_dir, (".png", ".npz", ".csv"))
    inputs.device(device)

    import torch

    from ebmkit.methods import load_model
    from ebmkit.train import setup_ranks

    dev = setup_ranks(device).device
    method, step = load_model(model, dev, command="sample")
    is_points = len(method.shape) == 1
    if is_points:
        _check_points_output(method, out_path, out_dir)
    else:
        _check_outputs(out_path, out_dir)
    if method.name == "nerf_lebm":
        return _sample_scenes(method, model, step, num, out_path, out_dir, seed, grid, depth, ema, as_json)
    if grid is not None or depth:
        raise EbmkitError("--grid and --depth are for NeRF-LEBM models")
    steps = _steps(steps, no_langevin)
    labels, nrow, guided = None, None, {}
    if classes or guidance is not None:
        cond = method.preset.conditioning
        if cond.kind != "class":
            hint = " (attribute models: use `ebmkit compose`)" if cond.kind == "attributes" else ""
            raise EbmkitError(f"--class and --guidance need a class-conditional model; {model} is not{hint}")
        if not classes:
            raise EbmkitError("--guidance needs --class (a number or name, repeatable, or 'all')")
        ids = list(range(cond.num_classes)) if classes == ["all"] else [cond.class_index(c) for c in classes]
        nrow = -(-num // len(ids))
        labels = method.class_labels(torch.tensor(ids).repeat_interleave(nrow)[:num])
        guided = {"guidance": guidance or 0.0, "classes": ids}
    gen = torch.Generator(dev).manual_seed(seed)
    tic = time.time()
    with Progress(console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task("sampling", total=num)
        x = method.sample(num, gen, batch_size=batch_size, steps=steps, use_ema=ema, labels=labels,
                          guidance=guidance or 0.0, progress=lambda n: bar.advance(task, n))
    seconds = time.time() - tic
    if is_points:  # in the data's own units
        written = _write_points(method, x, out_path, lambda path: _levels_figure(method, path, seed, dev, steps, ema))
    else:
        written = _write_images(x, out_path, out_dir, nrow)
    report = {"model": str(model), "step": step, "num": num, **guided, "seconds": round(seconds, 3), "written": written}
    if as_json:
        _print_json(report)
    else:
        err.print(f"{num} samples in {seconds:.1f} s -> {', '.join(written)}")


def _sample_scenes(method, model: Path, step: int, num: int, out_path, out_dir, seed: int, grid, depth: bool,
                   ema: bool, as_json: bool) -> None:
    """`sample` for NeRF-LEBM: random objects at random poses, or the grids of Fig. 3.4, with depth maps."""
    import torch

    from ebmkit import viz

    gen = torch.Generator(method.device).manual_seed(seed)
    tic = time.time()
    if grid is None and not depth:
        x, inv, nrow = method.sample(num, gen, use_ema=ema), None, None
    else:
        nrow = math.isqrt(num - 1) + 1
        x, inv = method.grid(grid or "random", nrow, nrow, gen, use_ema=ema)
        x, inv = 2 * x.cpu() - 1, 2 * inv.cpu() - 1
    written = _write_images(x, out_path, out_dir, nrow)
    if depth and inv is not None and out_path is not None and out_path.suffix == ".png":
        depth_path = out_path.with_name(out_path.stem + "_depth.png")
        viz.save_grid(inv, depth_path, nrow)
        written.append(str(depth_path))
    report = {"model": str(model), "step": step, "num": len(x), "grid": grid, "seconds": round(time.time() - tic, 3),
              "written": written}
    _print_json(report) if as_json else err.print(f"{len(x)} images in {report['seconds']:.1f} s -> {', '.join(written)}")


def _levels_figure(method, path: Path, seed: int, device, steps, ema) -> None:
    """Fig. 5.5 for a 2-D model, in its model space: data, learned density and samples at every noise level.
    A model trained on a file shows no data row: `sample` reads no file that the model's metadata names."""
    import torch

    from ebmkit import viz
    from ebmkit.metrics.points import reference_points

    data = None
    if method.preset.data.name != "points":  # a built-in set: a fresh draw
        data = method.units.to_model(reference_points(method, 1000, method.preset.train.seed)[0][:2000]).to(device)
    gen = torch.Generator(device).manual_seed(seed)
    levels = method.sample_levels(2000, gen, steps=steps, use_ema=ema)
    viz.levels_figure_2d(method, data, levels, path, gen)


# ---------------------------------------------------------------------------- compose
@app.command()
def compose(
    model: Annotated[Path, typer.Option(help="Attribute-conditional model file (conditioning.kind = attributes).")],
    attrs: Annotated[list[str], typer.Option("--attr", help="NAME=VALUE, repeatable; attributes left out are uncontrolled.")],
    guidance: Annotated[float, typer.Option(min=0, help="Guidance weight w of Eq. 5.12 (3 in Fig. 5.6; 0 = Eq. 5.11).")] = 3.0,
    num: Annotated[int, typer.Option(min=1)] = 64,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="A .png grid or a .npz array.")] = None,
    out_dir: OutDirOpt = None,
    seed: SeedOpt = 0,
    steps: StepsOpt = None,
    batch_size: BatchOpt = 256,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Compositional generation (sec. 5.3.6): samples carrying every requested attribute value."""
    inputs.existing_file(model, "--model")
    _check_outputs(out_path, out_dir)
    inputs.device(device)

    import torch

    from ebmkit.methods import load_model
    from ebmkit.train import setup_ranks

    dev = setup_ranks(device).device
    method, step = load_model(model, dev, supported=("cdrl",), command="compose")
    cond = method.preset.conditioning
    if cond.kind != "attributes":
        raise EbmkitError(f"{model} is not attribute-conditional (conditioning.kind = {cond.kind!r}); "
                          "compose needs a model trained with attributes")
    wanted = dict(cond.attribute_index(a) for a in attrs)
    if len(wanted) != len(attrs):
        raise EbmkitError("each attribute may be given once")
    labels = method.attribute_labels(wanted, num)
    with Progress(console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task("composing", total=num)
        x = method.sample(num, torch.Generator(dev).manual_seed(seed), batch_size=batch_size, steps=steps,
                          labels=labels, guidance=guidance, progress=lambda n: bar.advance(task, n))
    written = _write_images(x, out_path, out_dir)
    report = {"model": str(model), "step": step, "attributes": {cond.attributes[j]: cond.values[j][v] for j, v in wanted.items()},
              "guidance": guidance, "num": num, "written": written}
    _print_json(report) if as_json else err.print(f"{num} composed samples -> {', '.join(written)}")


# ---------------------------------------------------------------------------- inpaint
@app.command()
def inpaint(
    model: Annotated[Path, typer.Option(help="Model file.")],
    image: Annotated[str, typer.Option(help="Image file, folder, .npz, or built-in set NAME[:SPLIT] (first --limit images).")],
    mask: Annotated[Optional[Path], typer.Option(help="Mask PNG: white = fill, black = keep.")] = None,
    box: Annotated[Optional[str], typer.Option(help="Fill the box x,y,w,h (pixels from the top left).")] = None,
    irregular: Annotated[bool, typer.Option(help="Fill random free-form strokes (one mask per image, by --seed).")] = False,
    num: Annotated[int, typer.Option(min=1, help="Completions per image.")] = 4,
    limit: Annotated[int, typer.Option(min=1, help="At most this many input images.")] = 16,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="A .png grid (rows: original, masked, completions) or a .npz.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option(help="Write one PNG per completion here.")] = None,
    seed: SeedOpt = 0,
    steps: StepsOpt = None,
    infer_steps: InferStepsOpt = 200,
    lr: InferLrOpt = 0.05,
    batch_size: BatchOpt = 256,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Fill the masked part of images. CDRL (sec. 5.4.7): observed pixels kept exactly; CoopFlow (sec. 4.4.3):
    the Langevin start fitted to the observed pixels, one completion per flow initialisation."""
    inputs.existing_file(model, "--model")
    inputs.data_source(image, "--image")
    inputs.existing_file(mask, "--mask")
    _check_outputs(out_path, out_dir)
    if (mask is not None) + (box is not None) + irregular != 1:
        raise EbmkitError("give exactly one of --mask PNG, --box x,y,w,h and --irregular")
    inputs.device(device)

    import torch

    from ebmkit.data.masks import box_mask, irregular_mask, read_mask
    from ebmkit.methods import load_model
    from ebmkit.methods.cdrl import keep_observed
    from ebmkit.train import setup_ranks

    dev = setup_ranks(device).device
    method, step = load_model(model, dev, supported=("cdrl", "coopflow"), command="inpaint")
    x = _image_inputs(method, model, image, limit, dev)
    if method.name == "cdrl":
        kw = {"steps": steps}
    elif steps is not None:
        raise EbmkitError("--steps sets CDRL's Langevin steps per level; for CoopFlow use --infer-steps")
    else:
        kw = {"infer_steps": infer_steps, "lr": lr}
    size = method.shape[-2:]
    gen = torch.Generator(dev).manual_seed(seed)
    m = read_mask(mask, size) if mask else box_mask(box, size) if box else irregular_mask(len(x), size, torch.Generator().manual_seed(seed))
    m = m.to(dev)
    with Progress(console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task("inpainting", total=len(x) * num)
        filled = method.inpaint(x, m, num, gen, batch_size=batch_size, progress=lambda n: bar.advance(task, n),
                                **kw).cpu()                                          # (N, num, C, H, W)
    x, m = x.cpu(), m.cpu()
    m_rows = m.expand(len(x), *m.shape[1:])[:, None].expand_as(filled)
    observed_mse = float(((filled - x[:, None]) ** 2 * m_rows).sum() / m_rows.sum().clamp(min=1))
    filled = keep_observed(x[:, None].expand_as(filled), m_rows, filled)          # paste the observation
    masked = torch.where(m.bool(), x, torch.zeros_like(x))                         # holes in mid-grey
    rows = torch.cat([x[:, None], masked[:, None], filled], 1)                     # Fig. 5.7 layout
    written = _write_images(rows.flatten(0, 1), out_path, None, nrow=num + 2, npz=filled)
    if out_dir is not None:
        from ebmkit import viz

        viz.save_images(filled.flatten(0, 1), out_dir)
        written.append(str(out_dir))
    report = {"model": str(model), "step": step, "images": len(x), "completions": num,
              "observed_fraction": float(m.mean()), "observed_mse": observed_mse, "written": written}
    if as_json:
        _print_json(report)
    else:
        err.print(f"{len(x)} images x {num} completions -> {', '.join(written)} "
                  f"(MSE on observed pixels before pasting them back: {observed_mse:.2e})")


def _image_inputs(method, model: Path, spec: str, limit: int | None, device):
    """Images from a file, folder, .npz or built-in set, fitted to an image model, in model space."""
    from ebmkit.data import to_model_space
    from ebmkit.data.files import fit, load_images

    if len(method.shape) == 1:
        raise EbmkitError(f"{model} draws 2-D points; this command needs an image model")
    images = load_images(spec)
    return to_model_space(fit(images[:limit] if limit else images, method.shape)).to(device)


# ---------------------------------------------------------------------------- reconstruct, interpolate
@app.command()
def reconstruct(
    model: Annotated[Path, typer.Option(help="CoopFlow model file.")],
    images: Annotated[str, typer.Option(help="Image file, folder, .npz, or built-in set NAME[:SPLIT].")],
    limit: Annotated[Optional[int], typer.Option(min=1, help="At most this many images (default: all).")] = None,
    infer_steps: InferStepsOpt = 200,
    lr: InferLrOpt = 0.05,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="A .png grid (rows: x_hat*, reconstruction, original, as Fig. 4.6) or a .npz.")] = None,
    out_dir: OutDirOpt = None,
    curve: Annotated[Optional[Path], typer.Option(help="Write the MSE-per-step curve (Fig. 4.7) as .png or .json.")] = None,
    seed: SeedOpt = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per batch.")] = 100,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Reconstruct images with a CoopFlow model (sec. 4.4.3) and print the per-pixel MSE (Table 4.2)."""
    inputs.existing_file(model, "--model")
    inputs.data_source(images, "--images")
    _check_outputs(out_path, out_dir)
    inputs.output_file(curve, "--curve", (".png", ".json"))
    inputs.device(device)

    import torch

    from ebmkit import viz
    from ebmkit.methods import load_model
    from ebmkit.train import setup_ranks

    dev = setup_ranks(device).device
    method, step = load_model(model, dev, supported=("coopflow",), command="reconstruct")
    x = _image_inputs(method, model, images, limit, dev)
    gen = torch.Generator(dev).manual_seed(seed)
    tic = time.time()
    with Progress(console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task("reconstructing", total=len(x))
        done = method.batched_infer(x, None, batch_size, steps=infer_steps, lr=lr, generator=gen,
                                    progress=lambda n: bar.advance(task, n))
    seconds = time.time() - tic
    mse_curve = done.curve.mean(0).tolist()  # per-pixel MSE in model space [-1, 1], mean over images
    show = slice(0, 16)
    rows = torch.stack([done.x_hat[show], done.x[show], x[show]], 1).flatten(0, 1).cpu()
    written = _write_images(rows, out_path, None, nrow=3, npz=done.x.cpu())
    if out_dir is not None:
        viz.save_images(done.x.cpu(), out_dir)
        written.append(str(out_dir))
    if curve is not None:
        if curve.suffix == ".json":
            curve.write_text(json.dumps({"mse_per_step": mse_curve}))
        else:
            viz.save_curves(list(range(len(mse_curve))), {"MSE per pixel": mse_curve}, curve, "gradient step")
        written.append(str(curve))
    report = {"model": str(model), "step": step, "mode": method.preset.train.mode, "images": len(x),
              "infer_steps": infer_steps, "mse": mse_curve[-1], "mse_start": mse_curve[0],
              "seconds": round(seconds, 3), "written": written}
    if as_json:
        _print_json(report)
    else:
        out.print(f"MSE per pixel {mse_curve[-1]:.5f} (start {mse_curve[0]:.5f}) over {len(x)} images, "
                  f"{infer_steps} steps, {seconds:.1f} s -> {', '.join(written)}")


@app.command()
def interpolate(
    model: Annotated[Path, typer.Option(help="CoopFlow model file.")],
    a: Annotated[str, typer.Option(help="First image: an image file (or the first image of a folder, .npz or built-in set).")],
    b: Annotated[str, typer.Option(help="Second image, the same way.")],
    steps: Annotated[int, typer.Option(min=1, help="Intervals between the two latents (steps + 1 decoded images).")] = 8,
    infer_steps: InferStepsOpt = 200,
    lr: InferLrOpt = 0.05,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="A .png row (a, decoded images, b, as Fig. 4.9) or a .npz.")] = None,
    out_dir: OutDirOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Interpolate between two images in CoopFlow's latent space z (sec. 4.4.4)."""
    inputs.existing_file(model, "--model")
    inputs.data_source(a, "--a")
    inputs.data_source(b, "--b")
    _check_outputs(out_path, out_dir)
    inputs.device(device)

    import torch

    from ebmkit.methods import load_model
    from ebmkit.train import setup_ranks

    dev = setup_ranks(device).device
    method, step = load_model(model, dev, command="interpolate")
    if method.name != "coopflow":
        raise EbmkitError(f"{model} is a {method.name} model: its samples are not a function of one latent "
                          f"(fresh noise enters at every level), so there is no latent to infer from --a/--b; "
                          f"interpolate supports coopflow models")
    ends = [_image_inputs(method, model, spec, 1, dev) for spec in (a, b)]
    x = torch.cat(ends)
    done = method.infer(x, steps=infer_steps, lr=lr, generator=torch.Generator(dev).manual_seed(seed))
    t = torch.linspace(0, 1, steps + 1, device=dev).view(-1, *[1] * len(method.shape))
    z = (1 - t) * done.z[:1] + t * done.z[1:]                         # linear in z, as the authors do
    row = torch.cat([x[:1], method.decode(z), x[1:]]).cpu()
    written = _write_images(row, out_path, out_dir, nrow=len(row))
    report = {"model": str(model), "step": step, "steps": steps, "mse_ends": done.curve[:, -1].tolist(),
              "written": written}
    _print_json(report) if as_json else err.print(f"{steps + 1} interpolated images -> {', '.join(written)}")


# ---------------------------------------------------------------------------- novel-view
def _posed_set(method, data: str):
    """The built-in posed set NAME[:SPLIT] at the model's image size; the model's own procedural scenes
    keep its data options (distinct_ends)."""
    from ebmkit.data import load_dataset
    from ebmkit.data.files import builtin_spec

    spec = builtin_spec(data)
    if spec is None:
        raise EbmkitError(f"--data {data}: give a built-in posed set such as scenes:test")
    own = spec[0] == method.preset.data.name and getattr(method.preset.data, "distinct_ends", False)
    return load_dataset(spec[0], split=spec[1], image_size=method.shape[-1], distinct_ends=own)


@app.command("novel-view")
def novel_view(
    model: Annotated[Path, typer.Option(help="NeRF-LEBM model file.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the rendered views (PNG) and a grid.")],
    views: Annotated[list[str], typer.Option("--views", help="Image files of one object (repeatable, or comma-separated).")] = [],
    masks: Annotated[list[str], typer.Option("--masks", help="Incomplete views (sec. 3.5.7): one mask PNG per view, white where the view is not observed.")] = [],
    poses: Annotated[Optional[Path], typer.Option(help='JSON: {"views": {FILE: [elevation, azimuth]}, "targets": [[el, az], ...] or {FILE: [el, az]}} in degrees; FILE targets are ground truth for PSNR. Optional for a model trained without poses: it infers the views\' poses, and "views" then aligns its frame with yours.')] = None,
    data: Annotated[Optional[str], typer.Option(help="Instead: a posed built-in set, e.g. scenes:test; each object's first --shots views are given, the rest are scored.")] = None,
    objects: Annotated[int, typer.Option(min=1, help="With --data: how many objects.")] = 20,
    shots: Annotated[int, typer.Option(min=1, help="With --data: views given per object.")] = 2,
    turntable: Annotated[int, typer.Option(min=1, help="Without targets: render this many azimuths at the views' mean elevation.")] = 8,
    steps: Annotated[Optional[int], typer.Option(min=0, help="Inference steps (default inference.test_steps; sec. 3.5.6 uses 600).")] = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Infer an unseen object's latents from one or more posed views and render new views (sec. 3.5.6).
    A model trained without poses renders in its own frame, fitted to the given views' true poses where
    known; without them, the turntable starts at the first view's inferred pose."""
    inputs.existing_file(model, "--model")
    inputs.output_dir(out_dir, "--out")
    for f in _file_list(views):
        inputs.existing_file(f, "--views")
    for f in _file_list(masks):
        inputs.existing_file(f, "--masks")
    inputs.existing_file(poses, "--poses")
    inputs.data_source(data, "--data")
    inputs.device(device)

    import torch

    from ebmkit import viz
    from ebmkit.data.files import fit, load_images
    from ebmkit.data.masks import read_mask
    from ebmkit.methods import load_model
    from ebmkit.metrics.novel_view import novel_view_psnr
    from ebmkit.metrics.poses import to_model_frame
    from ebmkit.metrics.psnr import psnr
    from ebmkit.train import setup_ranks

    dev = setup_ranks(device).device
    method, step = load_model(model, dev, supported=("nerf_lebm",), command="novel-view")
    gen = torch.Generator(dev).manual_seed(seed)
    total = method.preset.inference.test_steps if steps is None else steps
    report = {"model": str(model), "step": step}
    with Progress(console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task("inferring latents", total=total)
        advance = lambda k: bar.advance(task, k)  # noqa: E731
        if data is not None:
            posed = _posed_set(method, data)
            result = novel_view_psnr(method, posed, shots, objects, steps, gen, advance)
            rows = torch.cat([result["images"][:, :shots], result["rendered"][:, shots:], result["images"][:, shots:]], 1)
            _check_finite(rows)
            out_dir.mkdir(parents=True, exist_ok=True)
            viz.save_grid(2 * rows[:8].flatten(0, 1) - 1, out_dir / "novel_views.png", rows.shape[1])
            report.update({k: v for k, v in result.items() if k not in ("rendered", "images")})
            report["written"] = [str(out_dir / "novel_views.png")]
        else:
            files = _file_list(views)
            unknown = method.preset.inference.poses == "unknown"  # the model infers the views' poses itself
            if not files or (poses is None and not unknown):
                raise EbmkitError("give --views FILE(s) with --poses JSON, or --data scenes:test")
            spec, given_poses = {}, None
            if poses is not None:
                try:
                    spec = json.loads(poses.read_text())
                    if "views" in spec or not unknown:
                        given_poses = torch.tensor([spec["views"][Path(f).name if Path(f).name in spec["views"] else f]
                                                    for f in files], dtype=torch.float32).deg2rad()
                except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    raise EbmkitError(f"--poses {poses}: needs {{\"views\": {{FILE: [elevation, azimuth]}}}} for every view ({e})") from None
            images = torch.stack([fit(load_images(f)[:1], method.shape)[0] for f in files]).float() / 255
            inferred = method.infer_poses(images) if unknown else None
            mask_files = _file_list(masks)
            observed = None
            if mask_files:
                if len(mask_files) != len(files):
                    raise EbmkitError(f"--masks: give one mask per view ({len(files)} views, {len(mask_files)} masks)")
                observed = torch.cat([read_mask(f, method.shape[-2:]) for f in mask_files])[None]  # (1, V, 1, S, S)
            z = method.infer_objects(images[None], (inferred if given_poses is None else given_poses)[None], observed,
                                     steps=steps, generator=gen, progress=advance)
            targets = spec.get("targets")
            truth = None
            if isinstance(targets, dict):
                truth = torch.stack([fit(load_images(poses.parent / f if not Path(f).is_file() else f)[:1], method.shape)[0]
                                     for f in targets]).float() / 255
                target_poses = torch.tensor(list(targets.values()), dtype=torch.float32).deg2rad()
            elif targets:
                target_poses = torch.tensor(targets, dtype=torch.float32).deg2rad()
            else:
                start = inferred[0] if given_poses is None else torch.stack([given_poses[:, 0].mean(), torch.tensor(0.0)])
                target_poses = torch.stack([start[0].expand(turntable),
                                            start[1] + 2 * math.pi * torch.arange(turntable) / turntable], 1)
            report["poses_deg"] = target_poses.rad2deg().tolist()
            if unknown:
                report["inferred_poses_deg"] = inferred.rad2deg().tolist()  # the given views, in the model's frame
                if given_poses is not None:
                    target_poses = to_model_frame(inferred, given_poses, target_poses)
                    report["model_frame_poses_deg"] = target_poses.rad2deg().tolist()
            rendered, inv_depth = method.render_images(z, target_poses[None].to(dev))
            rendered, inv_depth = rendered[0].cpu(), inv_depth[0].cpu()
            _check_finite(rendered)
            viz.save_images(2 * rendered - 1, out_dir)
            viz.save_grid(2 * rendered - 1, out_dir / "views.png", len(rendered))
            report["written"] = [str(out_dir)]
            if truth is not None:
                report["psnr"] = float(psnr(rendered, truth, peak=1.0).mean())
    if as_json:
        _print_json(report)
    else:
        scores = f", PSNR {report['psnr']:.2f} dB" if "psnr" in report else ""
        err.print(f"novel views -> {', '.join(report['written'])}{scores}")
        if "psnr" in report:
            out.print(f"PSNR {report['psnr']:.2f} dB on novel views"
                      + (f" of {report['objects']} objects ({report['shots']} views given; given views "
                         f"{report['psnr_given_views']:.2f} dB)" if "objects" in report else ""))


def _file_list(items: list[str]) -> list[str]:
    """File names of a repeatable option whose values may also be comma-separated."""
    return [f for item in items for f in item.split(",") if f]


def _check_outputs(out_path: Optional[Path], out_dir: Optional[Path], suffixes: tuple[str, ...] = (".png", ".npz")) -> None:
    """--out FILE and/or --out-dir DIR are given and can be written (before any work)."""
    if out_path is None and out_dir is None:
        raise EbmkitError(f"give --out FILE ({', '.join(suffixes)}) and/or --out-dir DIR")
    inputs.output_file(out_path, "--out", suffixes)
    inputs.output_dir(out_dir, "--out-dir")


def _check_points_output(method, out_path: Optional[Path], out_dir: Optional[Path]) -> None:
    dim = method.shape[0]
    if out_dir is not None:
        raise EbmkitError(f"--out-dir writes images; this model draws {dim}-D points (use --out .npz, .csv or .png)")
    if out_path.suffix not in (".png", ".npz", ".csv"):
        raise EbmkitError(f"--out {out_path}: use a .npz, .csv or (2-D points) .png file name")
    if out_path.suffix == ".png" and dim != 2:
        raise EbmkitError(f"--out {out_path}: a scatter picture needs 2-D points, this model draws {dim}-D ones "
                          f"(write .npz or .csv)")


def _check_finite(x) -> None:
    """Outputs are finite or not written: a NaN sample is a failure, never a result."""
    import torch

    bad = int((~torch.isfinite(x.reshape(len(x), -1))).any(1).sum())
    if bad:
        raise EbmkitError(f"{bad} of {len(x)} outputs hold NaN or inf values; nothing written "
                          f"(the model or the sampler diverged: try fewer --steps, or another model file)", 1)


def _write_points(method, x, out_path: Path, levels_figure) -> list[str]:
    """Samples in the data's units: .npz / .csv, or a 2-D scatter with `levels_figure(path)` beside it."""
    from ebmkit import viz
    from ebmkit.data.points import write_points

    _check_finite(x)
    x = method.units.to_data(x)
    if out_path.suffix != ".png":
        write_points(x, out_path)
        return [str(out_path)]
    viz.save_scatter(x, out_path)
    levels_path = out_path.with_name(out_path.stem + "_levels.png")
    levels_figure(levels_path)
    return [str(out_path), str(levels_path)]


def _write_images(x, out_path: Optional[Path], out_dir: Optional[Path], nrow: int | None = None, npz=None) -> list[str]:
    """A grid (.png) or array (.npz, `npz` if given, else x) and/or one PNG per image."""
    import numpy as np

    from ebmkit import viz

    _check_finite(x if npz is None else npz)
    written = []
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if out_path.suffix == ".npz":
            np.savez(out_path, samples=(x if npz is None else npz).numpy())
        else:
            viz.save_grid(x, out_path, nrow)
        written.append(str(out_path))
    if out_dir is not None:
        viz.save_images(x, out_dir)
        written.append(str(out_dir))
    return written


# ---------------------------------------------------------------------------- ood-score
@app.command("ood-score")
def ood_score(
    model: Annotated[Path, typer.Option(help="Model file.")],
    data: Annotated[Optional[str], typer.Option(help="Inputs to score: folder, image, .npz or built-in set NAME[:SPLIT].")] = None,
    in_data: Annotated[Optional[str], typer.Option("--in", help="In-distribution inputs (with --out: print AUROC).")] = None,
    out_data: Annotated[Optional[str], typer.Option("--out", help="Out-of-distribution inputs.")] = None,
    csv: Annotated[bool, typer.Option("--csv", help="index,score lines on stdout.")] = False,
    level: Annotated[int, typer.Option(min=0, help="Noise level whose energy scores (0 = the lowest, as in sec. 5.4.5).")] = 0,
    draws: Annotated[int, typer.Option(min=1, help="Noise draws averaged per input at that level.")] = 4,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 256,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """OOD scores (sec. 5.4.5): the energy at a noise level (default the lowest), higher = more anomalous.

    Inputs are converted to the model's channels and size. With --in and --out: AUROC (OOD = positive)."""
    inputs.existing_file(model, "--model")
    if (data is None) == (in_data is None and out_data is None) or (in_data is None) != (out_data is None):
        raise EbmkitError("give --data PATH, or both --in PATH and --out PATH")
    for spec, option in ((data, "--data"), (in_data, "--in"), (out_data, "--out")):
        inputs.data_source(spec, option)
    inputs.device(device)

    import torch

    from ebmkit.data import to_model_space
    from ebmkit.data.files import fit, load_images
    from ebmkit.methods import load_model
    from ebmkit.metrics.auroc import auroc
    from ebmkit.train import setup_ranks

    dev = setup_ranks(device).device
    method, _ = load_model(model, dev, supported=("cdrl",), command="ood-score")
    if len(method.shape) == 1:
        raise EbmkitError(f"{model} draws 2-D points; ood-score scores images")

    def scores(spec: str, bar) -> list[float]:
        x = to_model_space(fit(load_images(spec), method.shape))
        task = bar.add_task(f"scoring {spec}", total=len(x))
        out = []
        gen = torch.Generator(dev).manual_seed(seed)
        for batch in x.split(batch_size):
            out += method.energy(batch, level, draws, gen).tolist()
            bar.advance(task, len(batch))
        return out

    with Progress(console=err, transient=True, disable=as_json or csv) as bar:
        if data is not None:
            values = scores(data, bar)
        else:
            s_in, s_out = scores(in_data, bar), scores(out_data, bar)
    if data is not None:
        if as_json:
            _print_json({"model": str(model), "data": data, "scores": values})
        elif csv:
            print("index,score")
            print("\n".join(f"{i},{v:.6g}" for i, v in enumerate(values)))
        else:
            table = Table("index", "score (energy)", box=None)
            for i, v in enumerate(values):
                table.add_row(str(i), f"{v:.6g}")
            out.print(table)
        return
    report = {"model": str(model), "in": in_data, "out": out_data, "level": level, "auroc": auroc(s_in, s_out),
              "num_in": len(s_in), "num_out": len(s_out),
              "mean_score_in": sum(s_in) / len(s_in), "mean_score_out": sum(s_out) / len(s_out)}
    if as_json:
        _print_json(report)
    elif csv:
        print("set,index,score")
        print("\n".join([f"in,{i},{v:.6g}" for i, v in enumerate(s_in)] + [f"out,{i},{v:.6g}" for i, v in enumerate(s_out)]))
    else:
        out.print(f"AUROC {report['auroc']:.4f}  ({len(s_in)} in-distribution from {in_data}, mean score "
                  f"{report['mean_score_in']:.4g}; {len(s_out)} out-of-distribution from {out_data}, mean score "
                  f"{report['mean_score_out']:.4g})")


# ---------------------------------------------------------------------------- eval
@eval_app.command("mmd")
def eval_mmd(
    model: Annotated[Path, typer.Option(help="Model file of a point model.")],
    ref: Annotated[Optional[Path], typer.Option(help="Held-out points (.npy, .npz, .csv) in the data's units; default: a fresh draw of a built-in set, or the training file.")] = None,
    num: Annotated[int, typer.Option(min=10, help="Samples, and reference points in each half.")] = 5000,
    repeats: Annotated[int, typer.Option(min=1, help="Independent comparisons averaged (one alone is noisy).")] = 16,
    seed: SeedOpt = 0,
    steps: StepsOpt = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Squared MMD (RBF kernels) of samples to held-out data, beside a second half of that data's."""
    inputs.existing_file(model, "--model")
    inputs.existing_file(ref, "--ref")
    inputs.device(device)

    from ebmkit.methods import load_model
    from ebmkit.metrics.points import points_report
    from ebmkit.train import setup_ranks

    method, step = load_model(model, setup_ranks(device).device, command="eval mmd")
    if len(method.shape) != 1:
        raise EbmkitError(f"{model} is an image model; eval mmd is for point models")
    report = {"model": str(model), "step": step,
              **points_report(method, num, seed, steps=steps, ref=None if ref is None else str(ref), repeats=repeats)}
    if not report["finite"]:
        raise EbmkitError(f"{model} draws non-finite samples (NaN or inf): the model is broken", exit_code=1)
    if as_json:
        _print_json(report)
        return
    out.print(f"{report['num']} samples against {report['reference']}, mean of {repeats} comparisons "
              f"(ratios {', '.join(f'{r:.2f}' for r in report['ratio_each'])})")
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
    samples: Annotated[Optional[str], typer.Option(help="Score these images instead (folder, .npz or built-in set NAME[:SPLIT]).")] = None,
    ref: Annotated[Optional[str], typer.Option(help="Reference: image folder, statistics .npz, or built-in set NAME[:SPLIT]  [default: the model's training data]")] = None,
    num: Annotated[Optional[int], typer.Option(min=2, help="Samples to draw  [default: 50000 (the thesis's figure); for domain features, the size of the held-out split]")] = None,
    batch_size: BatchOpt = 256,
    features: Annotated[str, typer.Option(help="auto (domain for built-in image sets, else Inception), inception or domain.")] = "auto",
    inception_weights: Annotated[Optional[Path], typer.Option(help="TorchScript Inception file (inception-2015-12-05.pt) [env EBMKIT_INCEPTION_WEIGHTS].")] = None,
    seed: SeedOpt = 0,
    steps: Annotated[Optional[int], typer.Option(min=0, help="Langevin steps per level (as in `sample`).")] = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """FID of a model's samples (or of an image set) against a reference, with the sample count and
    reference named; built-in image sets get a domain-FID and its real-data baseline."""
    if (model is None) == (samples is None):
        raise EbmkitError("give exactly one of --model and --samples")
    inputs.existing_file(model, "--model")
    inputs.data_source(samples, "--samples")
    inputs.data_source(ref, "--ref")
    inputs.existing_file(inception_weights, "--inception-weights")
    inputs.device(device)

    from ebmkit.data import from_model_space
    from ebmkit.metrics import fid
    from ebmkit.train import setup_ranks

    dev = setup_ranks(device).device
    method = data_cfg = images = None
    if model is not None:
        from ebmkit.methods import load_model

        method, step = load_model(model, dev, command="eval fid")
        if len(method.shape) == 1:
            raise EbmkitError(f"{model} draws 2-D points: use `ebmkit eval mmd`")
        data_cfg, size = method.preset.data, method.shape[-1]
    else:
        from ebmkit.data.files import load_images

        images = load_images(samples)
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
        _print_json(report)
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


@eval_app.command("guidance-sweep")
def eval_guidance_sweep(
    model: Annotated[Path, typer.Option(help="Class-conditional model file.")],
    weights: Annotated[str, typer.Option(help="Comma-separated guidance weights w.")] = "0,0.5,1,2,4",
    num_per_class: Annotated[int, typer.Option(min=2, help="Samples per class and weight.")] = 50,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Plot of the metrics against w (.png).")] = None,
    ref: Annotated[Optional[str], typer.Option(help="FID reference (as in `eval fid`) [default: the model's training data].")] = None,
    features: Annotated[str, typer.Option(help="auto, inception or domain (as in `eval fid`).")] = "auto",
    inception_weights: Annotated[Optional[Path], typer.Option(help="TorchScript Inception file [env EBMKIT_INCEPTION_WEIGHTS].")] = None,
    seed: SeedOpt = 0,
    steps: StepsOpt = None,
    batch_size: BatchOpt = 256,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """FID and (on built-in sets) classifier accuracy on the requested class across guidance weights,
    as in Fig. 5.3 (c, d): a table, and a plot with --out."""
    inputs.existing_file(model, "--model")
    inputs.output_file(out_path, "--out", (".png",))
    inputs.data_source(ref, "--ref")
    inputs.existing_file(inception_weights, "--inception-weights")
    inputs.device(device)

    from ebmkit import viz
    from ebmkit.methods import load_model
    from ebmkit.metrics import fid
    from ebmkit.metrics.guidance import guidance_sweep
    from ebmkit.train import setup_ranks

    try:
        ws = [float(w) for w in weights.split(",")]
    except ValueError:
        raise EbmkitError(f"--weights {weights!r}: expected comma-separated numbers, e.g. 0,0.5,1,2") from None
    dev = setup_ranks(device).device
    method, step = load_model(model, dev, supported=("cdrl",), command="eval guidance-sweep")
    cond = method.preset.conditioning
    if cond.kind != "class":
        raise EbmkitError(f"{model} is not class-conditional; a guidance sweep needs conditioning.kind = 'class'")
    reference = fid.resolve_reference(ref, method.preset.data, method.shape[-1])
    space = fid.feature_space(features, reference.builtin, method.shape[-1], dev, inception_weights)
    with Progress(console=err, transient=True, disable=as_json) as bar:
        ref_stats = fid.reference_stats(space, reference, batch_size)
        task = bar.add_task("sampling", total=len(ws) * num_per_class * cond.num_classes)
        rows = guidance_sweep(method, ws, num_per_class, space, ref_stats, seed, batch_size, steps,
                              lambda n: bar.advance(task, n))
    if out_path is not None:
        curves = {space.label.split(" (")[0]: [r["fid"] for r in rows]}
        if "accuracy" in rows[0]:
            curves["accuracy on the requested class"] = [r["accuracy"] for r in rows]
        viz.save_curves(ws, curves, out_path, "guidance weight w")
    report = {"model": str(model), "step": step, "metric": space.label, "ref": ref_stats.source, "rows": rows,
              "written": [str(out_path)] if out_path else []}
    if as_json:
        _print_json(report)
        return
    table = Table("w", space.label.split(" (")[0], *(["accuracy"] if "accuracy" in rows[0] else []), box=None)
    for r in rows:
        table.add_row(f"{r['guidance']:g}", f"{r['fid']:.3f}", *([f"{r['accuracy']:.1%}"] if "accuracy" in r else []))
    out.print(table)
    out.print(f"{num_per_class} samples per class and weight, against {ref_stats.source}")


@eval_app.command("fid-stats")
def eval_fid_stats(
    data: Annotated[str, typer.Option(help="Built-in set NAME[:SPLIT], image folder or .npz of images.")],
    out_path: Annotated[Path, typer.Option("--out", help="Statistics file to write (.npz with mu, sigma).")],
    features: Annotated[str, typer.Option(help="auto, inception or domain (as in `eval fid`).")] = "auto",
    image_size: Annotated[Optional[int], typer.Option(min=1, help="Resize images to this size first.")] = None,
    inception_weights: Annotated[Optional[Path], typer.Option(help="TorchScript Inception file [env EBMKIT_INCEPTION_WEIGHTS].")] = None,
    batch_size: BatchOpt = 256,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Write reference statistics once, for `eval fid --ref stats.npz`."""
    inputs.data_source(data, "--data")
    inputs.output_file(out_path, "--out", (".npz",))
    inputs.existing_file(inception_weights, "--inception-weights")
    inputs.device(device)

    from ebmkit.metrics import fid
    from ebmkit.train import setup_ranks

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
        _print_json(report)
    else:
        err.print(f"{stats.features} statistics of {stats.num} images of {stats.source} -> {out_path}")


@eval_app.command("psnr")
def eval_psnr(
    a: Annotated[Path, typer.Option(help="Images (folder, image file or .npz).")],
    b: Annotated[Path, typer.Option(help="The images to compare with, in the same order (sorted file names).")],
    as_json: JsonOpt = False,
):
    """PSNR (dB, peak 255) of image pairs: one per pair and their mean (identical pairs: infinite; null in --json)."""
    inputs.data_source(a, "--a", ())
    inputs.data_source(b, "--b", ())

    from ebmkit.data.files import read_images
    from ebmkit.metrics.psnr import psnr

    x, y = read_images(a), read_images(b)
    if len(x) != len(y):
        raise EbmkitError(f"{a} holds {len(x)} images but {b} holds {len(y)}")
    if x.shape[1] != y.shape[1]:  # a grey set saved as PNG reads back as RGB
        x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
    values = psnr(x, y).tolist()
    report = {"psnr_mean": sum(values) / len(values), "num": len(values), "psnr": values,
              "identical": sum(v == math.inf for v in values)}  # infinite PSNR: null in --json
    if as_json:
        _print_json(report)
    else:
        out.print(f"PSNR {report['psnr_mean']:.2f} dB (mean of {len(values)} pairs)")


@eval_app.command("poses")
def eval_poses(
    model: Annotated[Path, typer.Option(help="NeRF-LEBM model trained with inference.poses = 'unknown'.")],
    data: Annotated[str, typer.Option(help="Posed built-in set NAME[:SPLIT].")] = "scenes:test",
    limit: Annotated[Optional[int], typer.Option(min=1, help="Use the first N images.")] = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Azimuth error of the camera poses a model infers without pose supervision (sec. 3.4.4): raw, and
    after the rotation (and reflection) that best aligns the model's frame with the true one; and how much
    of the view's axis (azimuth modulo 180 degrees) and of the azimuth the inferred camera explains."""
    inputs.existing_file(model, "--model")
    inputs.data_source(data, "--data")
    inputs.device(device)

    from ebmkit.methods import load_model
    from ebmkit.metrics.poses import pose_report
    from ebmkit.train import setup_ranks

    method, step = load_model(model, setup_ranks(device).device, supported=("nerf_lebm",), command="eval poses")
    posed = _posed_set(method, data)
    if posed.poses is None:
        raise EbmkitError(f"--data {data} has no true camera poses to compare with")
    n = len(posed.x) if limit is None else min(limit, len(posed.x))
    report = {"model": str(model), "step": step, "data": data,
              **pose_report(method.infer_poses(posed.x[:n].float() / 255), posed.poses[:n].float())}
    if as_json:
        _print_json(report)
        return
    raw, al, a = report["azimuth_error_deg"], report["aligned_azimuth_error_deg"], report["alignment"]
    out.print(f"azimuth error over {n} images: mean {raw['mean']:.1f} deg, median {raw['median']:.1f} (chance: mean 90); "
              f"aligned (offset {a['offset_deg']:.0f} deg{', reflected' if a['reflected'] else ''}): "
              f"mean {al['mean']:.1f}, median {al['median']:.1f}, {100 * al['within_30deg']:.0f}% within 30 deg; "
              f"explained (R^2): view axis (azimuth mod 180) {report['view_axis_r2']:.2f}, "
              f"azimuth {report['azimuth_r2']:.2f}")


@eval_app.command("auroc")
def eval_auroc(
    in_scores: Annotated[Path, typer.Option("--in-scores", help="Scores of in-distribution inputs (CSV with a 'score' column, or one number per line).")],
    out_scores: Annotated[Path, typer.Option("--out-scores", help="Scores of out-of-distribution inputs (same format).")],
    as_json: JsonOpt = False,
):
    """AUROC of OOD scores (higher = more anomalous; out-of-distribution is the positive class)."""
    inputs.existing_file(in_scores, "--in-scores")
    inputs.existing_file(out_scores, "--out-scores")

    from ebmkit.metrics.auroc import auroc, read_scores

    a, b = read_scores(in_scores), read_scores(out_scores)
    report = {"auroc": auroc(a, b), "num_in": len(a), "num_out": len(b)}
    if as_json:
        _print_json(report)
    else:
        out.print(f"AUROC {report['auroc']:.4f} ({len(a)} in-distribution, {len(b)} out-of-distribution)")


# ---------------------------------------------------------------------------- entry point
def _os_error(e: OSError) -> str:
    """One line for a failed read or write, naming a full disk as such."""
    import errno

    where = f" writing {e.filename}" if e.filename else ""
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (f"disk full{where} ({e.strerror}); nothing was committed half-written: free space, then rerun "
                f"(training: ebmkit train --resume RUN_DIR continues from the last checkpoint)")
    return f"{e.strerror or type(e).__name__}: {e.filename or e}"


def main(argv: list[str] | None = None) -> None:
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="ebmkit", standalone_mode=False)
        # Without standalone mode, typer returns the code of an Exit instead of exiting; Ctrl-C is Exit(130).
        if isinstance(code, int) and not isinstance(code, bool) and code:
            raise Exit(code)
    except EbmkitError as e:
        err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except Exit as e:
        if e.exit_code == 130:
            err.print("error: interrupted", markup=False)
        sys.exit(e.exit_code)
    except TyperException as e:  # usage errors: unknown option, missing or malformed value
        err.print(f"error: {e.format_message()} (see --help)", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except (KeyboardInterrupt, Abort):
        err.print("error: interrupted", markup=False)
        sys.exit(130)
    except OSError as e:  # the file system refused: a full disk, a read-only folder, a vanished file
        err.print(f"error: {_os_error(e)}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    except Exception as e:  # never a traceback for the user, unless asked
        if os.environ.get("EBMKIT_DEBUG"):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        err.print(f"error: internal error: {type(e).__name__}: {first} (EBMKIT_DEBUG=1 shows the traceback)",
                  markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
