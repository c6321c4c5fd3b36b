"""Few-shot novel-view PSNR (Table 3.5) of several NeRF-LEBM models on the same held-out objects, object
by object, so that two priors can be compared pairwise rather than by two means.

    python benchmarks/nerf_novel_views.py runs/nerf-scenes-compare/nerf-lebm-scenes-noise1/model.safetensors \
        runs/nerf-scenes-compare/nerf-lebm-scenes-gaussian/model.safetensors --objects 100 --shots 2

Every model infers each object's latents from its first `--shots` views (one seed, so the same chain starts, rays and depths
for every model) and renders the others; an object's PSNR is the mean
over its unseen views. Prints each model's mean and, against the first model, the mean paired difference
with its standard error and how many objects the first model wins. With
`--masked` the given views have a rectangle hidden (sec. 3.5.7) and every view is scored against the
complete image. Writes benchmarks/results/nerf_novel_views_{shots}shot[_masked].json, or --report.
"""

import argparse
import json
from pathlib import Path

import torch

from ebmkit.data.scenes import load_scenes
from ebmkit.methods import load_model
from ebmkit.metrics.novel_view import novel_view_psnr
from ebmkit.metrics.psnr import psnr

from cli import arguments


def per_object_psnr(path: str, objects: int, shots: int, steps: int | None, seed: int, masked: bool) -> torch.Tensor:
    """(objects,) mean PSNR (dB) of each held-out object's unseen views."""
    method, _ = load_model(path)
    scenes = load_scenes("test", method.shape[-1], masked=masked)
    r = novel_view_psnr(method, scenes.to_dataset(), shots, objects, steps,
                        torch.Generator(method.device).manual_seed(seed), complete=scenes.complete)
    rendered, images = r["rendered"][:, shots:], r["images"][:, shots:]   # (B, novel, 3, S, S)
    return psnr(rendered.flatten(0, 1), images.flatten(0, 1), peak=1.0).view(len(rendered), -1).mean(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+")
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--shots", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="inference steps (default: each preset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--masked", action="store_true", help="given views with a hidden rectangle (sec. 3.5.7)")
    parser.add_argument("--report", default=None, help="JSON report (default: "
                        "benchmarks/results/nerf_novel_views_{shots}shot[_masked].json)")
    args = arguments(parser, "runs/nerf-novel-views")
    if args.quick:  # one object from one view, 2 inference steps
        args.objects, args.shots, args.steps = 1, 1, 2
    scores = {m: per_object_psnr(m, args.objects, args.shots, args.steps, args.seed, args.masked) for m in args.models}
    first = scores[args.models[0]]
    report = {"objects": len(first), "shots": args.shots, "masked": args.masked, "steps": args.steps, "seed": args.seed,
              "models": {}}
    print(f"{args.shots}-shot novel-view PSNR on {len(first)} held-out objects{' from masked views' if args.masked else ''}")
    for m, s in scores.items():
        row = {"psnr": float(s.mean()), "per_object": s.tolist()}
        line = f"  {m}: {s.mean():.2f} dB"
        if m != args.models[0]:
            d = first - s
            row.update(diff_first_minus_this=float(d.mean()), diff_se=float(d.std() / len(d) ** 0.5),
                       first_wins=int((d > 0).sum()))
            line += (f"   first minus this {d.mean():+.3f} +- {row['diff_se']:.3f} dB (se), "
                     f"first better on {row['first_wins']}/{len(d)}")
        report["models"][m] = row
        print(line, flush=True)
    default = args.results / f"nerf_novel_views_{args.shots}shot{'_masked' if args.masked else ''}.json"
    (Path(args.report) if args.report else default).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
