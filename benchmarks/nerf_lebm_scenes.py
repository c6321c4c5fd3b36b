"""Tables 3.4 and 3.5 on the procedural 3-D cars: NeRF-LEBM (EBM priors, persistent MCMC) against the
Gaussian prior with the same inference (NeRF-Gaussian-MCMC) and NeRF-VAE (Gaussian prior, amortized
inference), the same generator and data, trained and measured in one run.

    python benchmarks/nerf_lebm_scenes.py [--seed 0] [--out runs/nerf-scenes-compare] [--skip-train] [--quick]

The three trainings run in parallel, one CPU thread each. For each model: two-shot novel-view PSNR on
20 held-out objects (`ebmkit novel-view --data scenes:test`, the other 6 views scored) and domain-FID of
random samples against the training images (`ebmkit eval fid`). Writes
benchmarks/results/nerf_lebm_scenes.json and the figures beside it (with --quick: under --out).
"""

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from cli import arguments, ebmkit

PRESETS = {"NeRF-LEBM (persistent MCMC)": "nerf-lebm-scenes", "NeRF-Gaussian-MCMC": "nerf-lebm-scenes-gaussian",
           "NeRF-VAE": "nerf-vae-scenes"}
# --quick: tiny networks and data, 2 iterations, 2 inference steps
QUICK = ["generator.width=16", "generator.depth=2", "generator.skip=1", "generator.freqs_xyz=2", "generator.freqs_dir=1",
         "generator.map_hidden=16", "generator.map_out=8", "render.num_samples=6", "render.rays_per_image=16",
         "latents.dim=4", "latents.prior_steps=2", "latents.prior_samples=4", "latents.shape.hidden=8",
         "latents.appearance.hidden=8", "data.num_objects=6", "data.views=3", "train.batch_size=4", "train.iterations=2",
         "train.sample_every=1000", "inference.steps=2", "inference.test_steps=2"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-train", action="store_true", help="Measure the models already in --out.")
    args = arguments(parser, "runs/nerf-scenes-compare")
    results, tiny = args.results, [a for s in QUICK for a in ("--set", s)] if args.quick else []
    objects = 1 if args.quick else 20
    runs = {name: Path(args.out) / name for name in PRESETS.values()}
    trainings = [["train", "--preset", name, "--run-dir", str(run), "--overwrite", "--quiet",
                  "--set", f"train.seed={args.seed}", *tiny] for name, run in runs.items()]
    if args.skip_train:
        pass
    elif args.quick:  # 2 iterations each: one after another in this process, no start-up
        for command in trainings:
            ebmkit(*command)
    else:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        procs = [subprocess.Popen([sys.executable, "-m", "ebmkit", *command], env=env) for command in trainings]
        if any(p.wait() for p in procs):
            sys.exit("a training run failed")
    rows = {}
    for label, name in PRESETS.items():
        model = runs[name] / "model.safetensors"
        tag = name.removesuffix("-scenes")
        nv = json.loads(ebmkit("novel-view", "--model", model, "--data", "scenes:test", "--objects", objects, "--shots", 2,
                               "--seed", args.seed, "--out", results / f"{tag}-novel-views", "--json"))
        # --quick skips the domain-FID: its scenes classifier trains on 2,000 rendered cars first
        fid = {"fid": math.nan, "baseline_fid": math.nan} if args.quick else \
            json.loads(ebmkit("eval", "fid", "--model", model, "--seed", args.seed, "--json"))
        ebmkit("sample", "--model", model, "--num", 16, "--grid", "shape-appearance", "--seed", args.seed,
               "--out", results / f"{tag}-shape-appearance.png")
        rows[label] = {"preset": name, "novel_view_psnr": nv["psnr"], "given_view_psnr": nv["psnr_given_views"],
                       "objects": nv["objects"], "domain_fid": fid["fid"], "baseline_fid": fid["baseline_fid"]}
        r = rows[label]
        print(f"{label:28s} two-shot novel-view PSNR {r['novel_view_psnr']:6.2f} dB (given views "
              f"{r['given_view_psnr']:.2f})   domain-FID {r['domain_fid']:8.2f} (real {r['baseline_fid']:.2f})", flush=True)
    (results / "nerf_lebm_scenes.json").write_text(json.dumps({"seed": args.seed, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
