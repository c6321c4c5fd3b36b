"""`ebmkit eval ...`: sample quality (MMD, FID, a guidance sweep), reference statistics, PSNR, pose error
and AUROC."""

import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ebmkit import inputs
from ebmkit.cli.common import (BatchOpt, DeviceOpt, JsonOpt, SeedOpt, StepsOpt, eval_app, example, finish,
                               from_stdin, load, old_name, out, print_json, progress, renamed)
from ebmkit.errors import EbmkitError

FeaturesOpt = Annotated[str, typer.Option(help="auto (domain for built-in image sets, else Inception), inception or domain.")]
InceptionOpt = Annotated[Optional[Path], typer.Option(help="TorchScript Inception file (inception-2015-12-05.pt)  [env EBMKIT_INCEPTION_WEIGHTS].")]


@eval_app.command("mmd", epilog=example("ebmkit eval mmd --model runs/mine/model.safetensors --num 5000",
                                        "ebmkit eval mmd --model runs/mine/model.safetensors --ref held_out.npy --json"))
def eval_mmd(
    model: Annotated[Path, typer.Option(help="Model file of a point model.")],
    ref: Annotated[Optional[Path], typer.Option(help="Held-out points (.npy, .npz, .csv; - reads standard input) in the data's units; default: a fresh draw of a built-in set, or the training file.")] = None,
    num: Annotated[int, typer.Option(min=10, help="Samples, and reference points in each half.")] = 5000,
    repeats: Annotated[int, typer.Option(min=1, help="Independent comparisons averaged (one alone is noisy).")] = 16,
    seed: SeedOpt = 0,
    steps: StepsOpt = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Squared MMD (RBF kernels) of samples to held-out data, beside a second half of that data's."""
    inputs.existing_file(model, "--model")
    ref = from_stdin(ref)
    inputs.existing_file(ref, "--ref")
    inputs.device(device)
    from ebmkit.metrics.points import points_report

    method, step = load(model, device, "eval mmd")
    if len(method.shape) != 1:
        raise EbmkitError(f"{model} is an image model; eval mmd is for point models")
    report = {"model": str(model), "step": step,
              **points_report(method, num, seed, steps=steps, ref=None if ref is None else str(ref), repeats=repeats)}
    if not report["finite"]:
        raise EbmkitError(f"{model} draws non-finite samples (NaN or inf): the model is broken", exit_code=1)
    if as_json:
        return print_json(report)
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


@eval_app.command("fid", epilog=example("ebmkit eval fid --model runs/digits/model.safetensors",
                                        "ebmkit eval fid --samples samples/ --ref cifar10_train/ --inception-weights inception-2015-12-05.pt"))
def eval_fid(
    model: Annotated[Optional[Path], typer.Option(help="Model file to sample from.")] = None,
    samples: Annotated[Optional[str], typer.Option(help="Score these images instead (folder, .npz or built-in set NAME[:SPLIT]).")] = None,
    ref: Annotated[Optional[str], typer.Option(help="Reference: image folder, statistics .npz, or built-in set NAME[:SPLIT]  [default: the model's training data]")] = None,
    num: Annotated[Optional[int], typer.Option(min=2, help="Samples to draw  [default: 50000 (the thesis's figure); for domain features, the size of the held-out split]")] = None,
    batch_size: BatchOpt = 256,
    features: FeaturesOpt = "auto",
    inception_weights: InceptionOpt = None,
    seed: SeedOpt = 0,
    steps: StepsOpt = None,
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
    from ebmkit.metrics import fid
    from ebmkit.runtime import setup_ranks

    method = None if model is None else load(model, device, "eval fid")[0]
    if method is not None and len(method.shape) == 1:
        raise EbmkitError(f"{model} draws 2-D points: use `ebmkit eval mmd`")
    dev = setup_ranks(device).device if method is None else method.device
    with progress("sampling", None, as_json) as advance:
        report = fid.evaluate(method, samples, ref, num, features, inception_weights, dev, batch_size, steps, seed,
                              advance)
    report = {"model" if model else "samples": str(model or samples), **report}
    if as_json:
        return print_json(report)
    out.print(f"{report['metric']}: [bold]{report['fid']:.3f}[/bold]  ({report['num']} samples vs {report['ref']}, "
              f"{report['ref_num']} images)")
    if "baseline_fid" in report:
        out.print(f"real-data baseline: {report['baseline_fid']:.3f}  ({report['baseline']}, {report['baseline_num']} images, "
                  f"same reference)")
        out.print(f"domain classifier: {report['classifier_test_accuracy']:.1%} test accuracy; recognises "
                  f"{report['confident_samples']:.1%} of samples with p >= 0.9 (held-out real data: "
                  f"{report['confident_real']:.1%}); classes {report['class_histogram']}")


@eval_app.command("guidance-sweep", epilog=example("ebmkit eval guidance-sweep --model runs/cdrl-shapes-cond/model.safetensors --weights 0,0.5,1,2 --out sweep.png"))
def eval_guidance_sweep(
    model: Annotated[Path, typer.Option(help="Class-conditional model file.")],
    weights: Annotated[str, typer.Option(help="Comma-separated guidance weights w.")] = "0,0.5,1,2,4",
    num_per_class: Annotated[int, typer.Option(min=2, help="Samples per class and weight.")] = 50,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Plot of the metrics against w (.png).")] = None,
    ref: Annotated[Optional[str], typer.Option(help="FID reference (as in `eval fid`)  [default: the model's training data].")] = None,
    features: FeaturesOpt = "auto",
    inception_weights: InceptionOpt = None,
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
    try:
        ws = [float(w) for w in weights.split(",")]
    except ValueError:
        raise EbmkitError(f"--weights {weights!r}: expected comma-separated numbers, e.g. 0,0.5,1,2") from None
    from ebmkit.metrics.guidance import guidance_sweep

    method, step = load(model, device, "eval guidance-sweep", supported=("cdrl",))
    with progress("sampling", None, as_json) as advance:
        sweep = guidance_sweep(method, ws, num_per_class, ref, features, inception_weights, seed, batch_size, steps,
                               advance, plot=out_path)
    report = {"model": str(model), "step": step, **sweep, "written": [str(out_path)] if out_path else []}
    if as_json:
        return print_json(report)
    rows = sweep["rows"]
    table = Table("w", sweep["metric"].split(" (")[0], *(["accuracy"] if "accuracy" in rows[0] else []), box=None)
    for r in rows:
        table.add_row(f"{r['guidance']:g}", f"{r['fid']:.3f}", *([f"{r['accuracy']:.1%}"] if "accuracy" in r else []))
    out.print(table)
    out.print(f"{num_per_class} samples per class and weight, against {sweep['ref']}")


@eval_app.command("compose", epilog=example("ebmkit eval compose --model runs/cdrl-shapes-compose/model.safetensors --num 24 --out compose.png"))
def eval_compose(
    model: Annotated[Path, typer.Option(help="Attribute-conditional model of a built-in set (e.g. cdrl-shapes-compose).")],
    num: Annotated[int, typer.Option(min=1, help="Samples per request (each value alone, each pair of values).")] = 24,
    guidance: Annotated[float, typer.Option(min=0, help="Guidance weight w of Eq. 5.12.")] = 3.0,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Also draw a figure in the manner of Fig. 5.6 (.png), a row per --row.")] = None,
    rows: Annotated[list[str], typer.Option("--row", help="A row of the figure: NAME=VALUE[,NAME=VALUE...] (repeatable; default: each attribute's first value alone, then all together).")] = [],
    seed: SeedOpt = 0,
    steps: StepsOpt = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
):
    """Share of composed samples carrying the requested attributes (sec. 5.4.6), judged by a classifier per
    attribute trained on the real images; and of samples whose lit area lies in the training images' range."""
    inputs.existing_file(model, "--model")
    inputs.output_file(out_path, "--out", (".png",))
    inputs.device(device)
    from ebmkit.metrics.compose import compose_figure, compose_report

    method, step = load(model, device, "eval compose", supported=("cdrl",))
    with progress("composing", None, as_json) as advance:
        report = {"model": str(model), "step": step, **compose_report(method, num, guidance, steps, seed, advance)}
    if out_path is not None:
        cond = method.preset.conditioning
        rows = [r.split(",") for r in rows] or [[f"{a}={v[0]}"] for a, v in zip(cond.attributes, cond.values)] + \
            [[f"{a}={v[0]}" for a, v in zip(cond.attributes, cond.values)]]
        compose_figure(method, rows, out_path, guidance, steps)
        report["written"] = [str(out_path)]
    share = lambda d: "  ".join(f"{a} {v:.1%}" for a, v in d.items())  # noqa: E731
    finish(report, as_json, f"w = {guidance}, {report['steps']} Langevin steps per level, {num} samples per request\n"
                            f"carrying it, single attributes: {share(report['single'])}\n"
                            f"carrying both, pairs: {share(report['pairs'])}\n"
                            f"lit area in the training range: {share(report['lit_area_in_range'])}\n"
                            f"both: {share(report['carried_and_lit_area_in_range'])}", result=True)


@eval_app.command("fid-stats", epilog=example("ebmkit eval fid-stats --data cifar10_train/ --out cifar10_stats.npz --inception-weights inception-2015-12-05.pt"))
def eval_fid_stats(
    data: Annotated[str, typer.Option(help="Built-in set NAME[:SPLIT], image folder or .npz of images.")],
    out_path: Annotated[Path, typer.Option("--out", help="Statistics file to write (.npz with mu, sigma).")],
    features: FeaturesOpt = "auto",
    image_size: Annotated[Optional[int], typer.Option(min=1, help="Resize images to this size first.")] = None,
    inception_weights: InceptionOpt = None,
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
    from ebmkit.runtime import setup_ranks

    with progress("features", None, as_json) as advance:
        stats = fid.write_stats(data, out_path, features, image_size, inception_weights, setup_ranks(device).device,
                                batch_size, advance)
    report = {"out": str(out_path), "features": stats.features, "num": stats.num, "source": stats.source}
    finish(report, as_json, f"{stats.features} statistics of {stats.num} images of {stats.source} -> {out_path}")


@eval_app.command("psnr", epilog=example("ebmkit eval psnr --images views/ --ref truth/ --json"))
def eval_psnr(
    images: Annotated[Optional[Path], typer.Option(help="Images (folder, image file or .npz).")] = None,
    ref: Annotated[Optional[Path], typer.Option(help="The images to compare with, in the same order (sorted file names).")] = None,
    as_json: JsonOpt = False,
    a: Annotated[Optional[Path], old_name("--a")] = None,
    b: Annotated[Optional[Path], old_name("--b")] = None,
):
    """PSNR (dB, peak 255) of image pairs: one per pair and their mean (identical pairs: infinite; null in --json)."""
    images, ref = renamed(images, "--images", a, "--a"), renamed(ref, "--ref", b, "--b")
    if images is None or ref is None:
        raise EbmkitError("give --images PATH and --ref PATH")
    inputs.data_source(images, "--images", ())
    inputs.data_source(ref, "--ref", ())
    from ebmkit.metrics.psnr import psnr_of_files

    values = psnr_of_files(images, ref)
    report = {"psnr_mean": sum(values) / len(values), "num": len(values), "psnr": values,
              "identical": sum(v == math.inf for v in values)}  # infinite PSNR: null in --json
    finish(report, as_json, f"PSNR {report['psnr_mean']:.2f} dB (mean of {len(values)} pairs)", result=True)


@eval_app.command("poses", epilog=example("ebmkit eval poses --model runs/nerf-lebm-scenes-nopose/model.safetensors --data scenes:test"))
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
    from ebmkit.metrics.poses import model_pose_report
    from ebmkit.tasks.novel_view import posed_set

    method, step = load(model, device, "eval poses", supported=("nerf_lebm",))
    report = {"model": str(model), "step": step, "data": data,
              **model_pose_report(method, posed_set(method, data), limit)}
    raw, al, a = report["azimuth_error_deg"], report["aligned_azimuth_error_deg"], report["alignment"]
    finish(report, as_json,
           f"azimuth error over {report['num']} images: mean {raw['mean']:.1f} deg, median {raw['median']:.1f} "
           f"(chance: mean 90); aligned (offset {a['offset_deg']:.0f} deg{', reflected' if a['reflected'] else ''}): "
           f"mean {al['mean']:.1f}, median {al['median']:.1f}, {100 * al['within_30deg']:.0f}% within 30 deg; "
           f"explained (R^2): view axis (azimuth mod 180) {report['view_axis_r2']:.2f}, "
           f"azimuth {report['azimuth_r2']:.2f}", result=True)


@eval_app.command("auroc", epilog=example("ebmkit eval auroc --in-scores in.csv --ood-scores ood.csv",
                                            "ebmkit ood-score --model runs/digits/model.safetensors --data digits:test --csv | ebmkit eval auroc --in-scores - --ood-scores ood.csv"))
def eval_auroc(
    in_scores: Annotated[Path, typer.Option("--in-scores", help="Scores of in-distribution inputs (CSV with a 'score' column, or one number per line; - reads standard input).")],
    ood_scores: Annotated[Optional[Path], typer.Option(help="Scores of out-of-distribution inputs (same format).")] = None,
    as_json: JsonOpt = False,
    out_scores: Annotated[Optional[Path], old_name("--out-scores")] = None,
):
    """AUROC of OOD scores (higher = more anomalous; out-of-distribution is the positive class)."""
    ood_scores = renamed(ood_scores, "--ood-scores", out_scores, "--out-scores")
    if ood_scores is None:
        raise EbmkitError("give --ood-scores FILE")
    if str(in_scores) == str(ood_scores) == "-":
        raise EbmkitError("standard input (-) can feed one of --in-scores and --ood-scores, not both")
    in_scores, ood_scores = from_stdin(in_scores), from_stdin(ood_scores)
    inputs.existing_file(in_scores, "--in-scores")
    inputs.existing_file(ood_scores, "--ood-scores")
    from ebmkit.metrics.auroc import auroc, read_scores

    a, b = read_scores(in_scores), read_scores(ood_scores)
    report = {"auroc": auroc(a, b), "num_in": len(a), "num_out": len(b)}
    finish(report, as_json, f"AUROC {report['auroc']:.4f} ({len(a)} in-distribution, {len(b)} out-of-distribution)",
           result=True)
