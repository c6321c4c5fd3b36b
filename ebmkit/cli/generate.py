"""`ebmkit sample` and `ebmkit compose`."""

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ebmkit import inputs
from ebmkit.cli.common import (BatchOpt, DeviceOpt, JsonOpt, OutDirOpt, SeedOpt, StepsOpt, app, check_outputs,
                               check_points_output, example, finish, generator, load, progress, write_images,
                               write_points)


@app.command(epilog=example("ebmkit sample --model runs/mine/model.safetensors --num 5000 --out mine.csv",
                            "ebmkit sample --model cdrl.safetensors --num 100 --out fast.png --steps 5",
                            "ebmkit sample --model runs/mine/model.safetensors --num 1000 --out - | head -3",
                            "ebmkit sample --model runs/cdrl-shapes-cond/model.safetensors --class all --guidance 0.7 --num 32 --out g.png"))
def sample(
    model: Annotated[Path, typer.Option(help="Model file (.safetensors) written by `ebmkit train`.")],
    num: Annotated[int, typer.Option(min=1, help="Number of samples.")] = 64,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="A .png grid (a scatter for 2-D models) or a .npz array; point models also .csv. - writes the array (point models: CSV) to standard output.")] = None,
    out_dir: OutDirOpt = None,
    seed: SeedOpt = 0,
    steps: StepsOpt = None,
    no_langevin: Annotated[bool, typer.Option("--no-langevin", help="CDRL: sample with the initializer alone (Fig. 5.9 a).")] = False,
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
    check_outputs(out_path, out_dir, (".png", ".npz", ".csv"))
    inputs.device(device)
    from ebmkit.tasks import generate

    method, step = load(model, device, "sample --grid/--depth" if grid or depth else "sample",
                        supported=("nerf_lebm",) if grid or depth else None)
    points = len(method.shape) == 1
    if points:
        check_points_output(method, out_path, out_dir)
    else:
        check_outputs(out_path, out_dir)
    steps = generate.langevin_steps(steps, no_langevin)
    conditional, nrow, request = generate.class_request(method, classes, guidance, num)
    tic, depth_map = time.time(), None
    if grid is not None or depth:
        x, depth_map, nrow = generate.scene_grid(method, num, grid, generator(method.device, seed), ema)
    else:
        with progress("sampling", num, as_json) as advance:
            x = method.sample(num, generator(method.device, seed), batch_size, advance, steps=steps, use_ema=ema,
                              **conditional)
    seconds = time.time() - tic
    written = write_points(method, x, out_path) if points else write_images(x, out_path, out_dir, nrow)
    if points and out_path.suffix == ".png" and method.shape[0] == 2:
        written.append(str(generate.levels_figure(method, out_path, generator(method.device, seed), steps, ema)))
    if depth_map is not None and out_path is not None and out_path.suffix == ".png":
        written += write_images(depth_map, out_path.with_name(out_path.stem + "_depth.png"), None, nrow)
    report = {"model": str(model), "step": step, "num": len(x), **request, **({"grid": grid} if grid else {}),
              "seconds": round(seconds, 3), "written": written}
    finish(report, as_json, f"{len(x)} samples in {seconds:.1f} s -> {', '.join(written)}")


@app.command(epilog=example("ebmkit compose --model runs/cdrl-shapes-compose/model.safetensors --attr shape=circle --attr color=red --num 16 --out c.png"))
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
    """Compositional generation: samples carrying every requested attribute value (sec. 5.3.6)."""
    inputs.existing_file(model, "--model")
    check_outputs(out_path, out_dir)
    inputs.device(device)
    from ebmkit.tasks import generate

    method, step = load(model, device, "compose", supported=("cdrl",))
    conditional, named = generate.attribute_request(method, attrs, guidance, num)
    with progress("composing", num, as_json) as advance:
        x = method.sample(num, generator(method.device, seed), batch_size, advance, steps=steps, **conditional)
    written = write_images(x, out_path, out_dir)
    report = {"model": str(model), "step": step, "attributes": named, "guidance": guidance, "num": num,
              "written": written}
    finish(report, as_json, f"{num} composed samples -> {', '.join(written)}")
