"""`ebmkit inpaint`, `reconstruct`, `interpolate`, `novel-view` and `ood-score`: tasks on images a user gives."""

import csv as csv_module
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ebmkit import inputs
from ebmkit.cli.common import (BatchOpt, DeviceOpt, InferLrOpt, InferStepsOpt, JsonOpt, OutDirOpt, SeedOpt, StepsOpt,
                               app, check_outputs, example, file_list, finish, from_stdin, generator, load, old_name,
                               out, print_json, progress, renamed, write_images)
from ebmkit.errors import EbmkitError


@app.command(epilog=example("ebmkit inpaint --model runs/digits/model.safetensors --image digits:test --limit 8 --irregular --out d.png",
                            "ebmkit inpaint --model cf.safetensors --image photo.png --box 8,8,24,24 --num 4 --out-dir fills/"))
def inpaint(
    model: Annotated[Path, typer.Option(help="Model file.")],
    image: Annotated[str, typer.Option(help="Image file, folder, .npz, or built-in set NAME[:SPLIT] (first --limit images).")],
    mask: Annotated[Optional[Path], typer.Option(help="Mask PNG: white = fill, black = keep.")] = None,
    box: Annotated[Optional[str], typer.Option(help="Fill the box x,y,w,h (pixels from the top left).")] = None,
    irregular: Annotated[bool, typer.Option(help="Fill random free-form strokes (one mask per image, by --seed).")] = False,
    num: Annotated[int, typer.Option(min=1, help="Completions per image.")] = 4,
    limit: Annotated[int, typer.Option(min=1, help="At most this many input images.")] = 16,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="A .png grid (rows: original, masked, completions) or a .npz of the completions.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option(help="Write one PNG per completion here.")] = None,
    seed: SeedOpt = 0,
    steps: StepsOpt = None,
    infer_steps: InferStepsOpt = None,
    lr: InferLrOpt = None,
    batch_size: BatchOpt = 256,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Fill the masked part of images. CDRL (sec. 5.4.7): observed pixels kept exactly; CoopFlow (sec. 4.4.3):
    the Langevin start fitted to the observed pixels, one completion per flow initialisation."""
    inputs.existing_file(model, "--model")
    inputs.data_source(image, "--image")
    inputs.existing_file(mask, "--mask")
    check_outputs(out_path, out_dir)
    if (mask is not None) + (box is not None) + irregular != 1:
        raise EbmkitError("give exactly one of --mask PNG, --box x,y,w,h and --irregular")
    inputs.device(device)
    from ebmkit.data.files import model_inputs
    from ebmkit.tasks.inpaint import inpaint as fill, make_mask

    method, step = load(model, device, "inpaint", supported=("cdrl", "coopflow"))
    x = model_inputs(image, method.shape, limit).to(method.device)
    m = make_mask(method.shape, len(x), mask, box, irregular, seed)
    with progress("inpainting", len(x) * num, as_json) as advance:
        done = fill(method, x, m, num, generator(method.device, seed), batch_size, advance, steps, infer_steps, lr)
    written = write_images(done.rows, out_path, out_dir, nrow=num + 2, npz=done.filled)
    report = {"model": str(model), "step": step, "images": len(x), "completions": num,
              "observed_fraction": done.observed_fraction, "observed_mse": done.observed_mse, "written": written}
    finish(report, as_json, f"{len(x)} images x {num} completions -> {', '.join(written)} "
                            f"(MSE on observed pixels before pasting them back: {done.observed_mse:.2e})")


@app.command(epilog=example("ebmkit reconstruct --model runs/coopflow-digits/model.safetensors --images digits:test --out rec.png"))
def reconstruct(
    model: Annotated[Path, typer.Option(help="CoopFlow model file.")],
    images: Annotated[str, typer.Option(help="Image file, folder, .npz, or built-in set NAME[:SPLIT].")],
    limit: Annotated[Optional[int], typer.Option(min=1, help="At most this many images (default: all).")] = None,
    infer_steps: InferStepsOpt = None,
    lr: InferLrOpt = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="A .png grid (rows: x_hat*, reconstruction, original, as Fig. 4.6) or a .npz of the reconstructions.")] = None,
    out_dir: OutDirOpt = None,
    curve: Annotated[Optional[Path], typer.Option(help="Write the MSE-per-step curve (Fig. 4.7) as .png or .json.")] = None,
    seed: SeedOpt = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per batch.")] = 100,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Reconstruct images with a CoopFlow model and print the per-pixel MSE (sec. 4.4.3, Table 4.2)."""
    inputs.existing_file(model, "--model")
    inputs.data_source(images, "--images")
    check_outputs(out_path, out_dir)
    inputs.output_file(curve, "--curve", (".png", ".json"))
    inputs.device(device)
    from ebmkit import viz
    from ebmkit.data.files import model_inputs
    from ebmkit.tasks.latent import reconstruct as infer

    method, step = load(model, device, "reconstruct", supported=("coopflow",))
    x = model_inputs(images, method.shape, limit).to(method.device)
    tic = time.time()
    with progress("reconstructing", len(x), as_json) as advance:
        done = infer(method, x, infer_steps, lr, generator(method.device, seed), batch_size, advance)
    seconds = time.time() - tic
    written = write_images(done.rows, out_path, out_dir, nrow=3, npz=done.x)
    if curve is not None:
        if curve.suffix == ".json":
            curve.write_text(json.dumps({"mse_per_step": done.curve}))
        else:
            viz.save_curves(list(range(len(done.curve))), {"MSE per pixel": done.curve}, curve, "gradient step")
        written.append(str(curve))
    report = {"model": str(model), "step": step, "mode": method.preset.train.mode, "images": len(x),
              "infer_steps": len(done.curve) - 1, "mse": done.curve[-1], "mse_start": done.curve[0],
              "seconds": round(seconds, 3), "written": written}
    finish(report, as_json, f"MSE per pixel {done.curve[-1]:.5f} (start {done.curve[0]:.5f}) over {len(x)} images, "
                            f"{len(done.curve) - 1} steps, {seconds:.1f} s -> {', '.join(written)}", result=True)


@app.command(epilog=example("ebmkit interpolate --model cf.safetensors --start x.png --end y.png --points 9 --out row.png"))
def interpolate(
    model: Annotated[Path, typer.Option(help="CoopFlow model file.")],
    start: Annotated[Optional[str], typer.Option(help="First image: an image file (or the first image of a folder, .npz or built-in set).")] = None,
    end: Annotated[Optional[str], typer.Option(help="Last image, the same way.")] = None,
    points: Annotated[int, typer.Option(min=2, help="Decoded images along the line between the two latents, ends included.")] = 9,
    infer_steps: InferStepsOpt = None,
    lr: InferLrOpt = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="A .png row (start, decoded images, end, as Fig. 4.9) or a .npz.")] = None,
    out_dir: OutDirOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    a: Annotated[Optional[str], old_name("--a")] = None,
    b: Annotated[Optional[str], old_name("--b")] = None,
):
    """Interpolate between two images in CoopFlow's latent space z (sec. 4.4.4)."""
    inputs.existing_file(model, "--model")
    start, end = renamed(start, "--start", a, "--a"), renamed(end, "--end", b, "--b")
    if start is None or end is None:
        raise EbmkitError("give --start IMAGE and --end IMAGE")
    inputs.data_source(start, "--start")
    inputs.data_source(end, "--end")
    check_outputs(out_path, out_dir)
    inputs.device(device)
    from ebmkit.data.files import model_inputs
    from ebmkit.tasks.latent import interpolate as between

    method, step = load(model, device, "interpolate", supported=("coopflow",),
                        why="other models' samples are no function of one latent: fresh noise enters at every "
                            "level, so there is no latent to infer from --start and --end")
    ends = [model_inputs(spec, method.shape, 1).to(method.device) for spec in (start, end)]
    row, mse_ends = between(method, *ends, points, infer_steps, lr, generator(method.device, seed))
    written = write_images(row, out_path, out_dir, nrow=len(row))
    report = {"model": str(model), "step": step, "points": points, "mse_ends": mse_ends, "written": written}
    finish(report, as_json, f"{points} interpolated images -> {', '.join(written)}")


@app.command("novel-view", epilog=example("ebmkit novel-view --model runs/nerf-lebm-scenes/model.safetensors --data scenes:test --objects 20 --shots 2 --out nv/",
                                          "ebmkit novel-view --model m.safetensors --views front.png,side.png --poses poses.json --turntable 24 --out nv/"))
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
    infer_steps: InferStepsOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Infer an unseen object's latents from one or more posed views and render new views (sec. 3.5.6).
    A model trained without poses renders in its own frame, fitted to the given views' true poses where
    known; without them, the turntable starts at the first view's inferred pose."""
    inputs.existing_file(model, "--model")
    inputs.output_dir(out_dir, "--out")
    for option, files in (("--views", file_list(views)), ("--masks", file_list(masks))):
        for f in files:
            inputs.existing_file(f, option)
    inputs.existing_file(poses, "--poses")
    inputs.data_source(data, "--data")
    inputs.device(device)
    from ebmkit.tasks import novel_view as nv

    method, step = load(model, device, "novel-view", supported=("nerf_lebm",))
    gen = generator(method.device, seed)
    with progress("inferring latents", infer_steps or method.preset.inference.test_steps, as_json) as advance:
        done = (nv.from_set(method, data, shots, objects, infer_steps, gen, advance) if data is not None else
                nv.from_files(method, file_list(views), file_list(masks), poses, turntable, infer_steps, gen, advance))
    # the grid; and each render as a PNG (with --data the grid also holds the given and the true views)
    written = write_images(2 * done.rendered - 1, out_dir / "views.png", None if data else out_dir,
                           nrow=done.report.pop("row"))
    report = {"model": str(model), "step": step, **done.report, "written": written}
    psnr = (f"PSNR {report['psnr']:.2f} dB on novel views" + (
        f" of {report['objects']} objects ({report['shots']} views given; given views {report['psnr_given_views']:.2f} dB)"
        if "objects" in report else "")) if "psnr" in report else None
    finish(report, as_json, psnr or f"novel views -> {', '.join(written)}", result=psnr is not None)


@app.command("ood-score", epilog=example("ebmkit ood-score --model runs/digits/model.safetensors --in-data digits:test --ood-data shapes:test",
                                         "ebmkit ood-score --model runs/digits/model.safetensors --data my_images/ --csv > scores.csv"))
def ood_score(
    model: Annotated[Path, typer.Option(help="Model file.")],
    data: Annotated[Optional[str], typer.Option(help="Inputs to score: folder, image, .npz (- reads it from standard input) or built-in set NAME[:SPLIT].")] = None,
    in_data: Annotated[Optional[str], typer.Option(help="In-distribution inputs (with --ood-data: print AUROC).")] = None,
    ood_data: Annotated[Optional[str], typer.Option(help="Out-of-distribution inputs.")] = None,
    csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout: index,name,score (with --in-data and --ood-data: set,index,name,score).")] = False,
    level: Annotated[int, typer.Option(min=0, help="Noise level whose energy scores (0 = the lowest, as in sec. 5.4.5).")] = 0,
    draws: Annotated[int, typer.Option(min=1, help="Noise draws averaged per input at that level.")] = 4,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 256,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    old_in: Annotated[Optional[str], old_name("--in")] = None,
    old_out: Annotated[Optional[str], old_name("--out")] = None,
):
    """Out-of-distribution scores: the energy at a noise level (default the lowest, sec. 5.4.5), higher = more
    anomalous.

    Inputs are converted to the model's channels and size. With --in-data and --ood-data: AUROC (OOD = positive)."""
    inputs.existing_file(model, "--model")
    in_data, ood_data = renamed(in_data, "--in-data", old_in, "--in"), renamed(ood_data, "--ood-data", old_out, "--out")
    if (data is None) == (in_data is None and ood_data is None) or (in_data is None) != (ood_data is None):
        raise EbmkitError("give --data PATH, or both --in-data PATH and --ood-data PATH")
    data = from_stdin(data)
    for spec, option in ((data, "--data"), (in_data, "--in-data"), (ood_data, "--ood-data")):
        inputs.data_source(spec, option)
    inputs.device(device)
    from ebmkit.data.files import input_names
    from ebmkit.metrics.auroc import auroc
    from ebmkit.tasks.ood import score

    method, _ = load(model, device, "ood-score", supported=("cdrl",))
    scores, names = {}, {}
    for name, spec in (("data", data), ("in", in_data), ("out", ood_data)):
        if spec is not None:
            with progress(f"scoring {spec}", None, as_json or csv) as advance:
                scores[name] = score(method, spec, level, draws, generator(method.device, seed), batch_size, advance)
            names[name] = input_names(spec, len(scores[name]))
    rows = [(s, i, names[s][i], f"{v:.6g}") for s, values in scores.items() for i, v in enumerate(values)]
    if csv:
        writer = csv_module.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["index", "name", "score"] if data is not None else ["set", "index", "name", "score"])
        return writer.writerows(r[1:] if data is not None else r for r in rows)
    if data is not None:
        if as_json:
            return print_json({"model": str(model), "data": data, "names": names["data"], "scores": scores["data"]})
        table = Table("index", "name", "score (energy)", box=None)
        for _, i, name, v in rows:
            table.add_row(str(i), name, v)
        return out.print(table)
    s_in, s_out = scores["in"], scores["out"]
    report = {"model": str(model), "in": in_data, "out": ood_data, "level": level, "auroc": auroc(s_in, s_out),
              "num_in": len(s_in), "num_out": len(s_out),
              "mean_score_in": sum(s_in) / len(s_in), "mean_score_out": sum(s_out) / len(s_out)}
    finish(report, as_json, f"AUROC {report['auroc']:.4f}  ({len(s_in)} in-distribution from {in_data}, mean score "
                            f"{report['mean_score_in']:.4g}; {len(s_out)} out-of-distribution from {ood_data}, "
                            f"mean score {report['mean_score_out']:.4g})", result=True)
