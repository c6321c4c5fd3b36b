"""The point recipes on every built-in 2-D set, several training seeds each: CDRL, CoopFlow, and
CoopFlow's two baselines (the normalizing flow alone, the Langevin flow alone of Eq. 4.2; Table 4.7),
plus sec. 4.3.3's Langevin flow alone started from N(0, I), each preset left as it is and only the data
changed.

    python benchmarks/toy_matrix.py [--sets rings,spiral] [--seeds 0,1,2]
                                    [--methods cdrl,coopflow,flow,langevin,langevin_n01]
                                    [--jobs 2] [--out runs/toy-matrix] [--resume] [--quick]

Every cell trains with `ebmkit train` as a user would, then `ebmkit eval mmd` (squared-MMD ratio of 5,000
samples to a fresh test draw, against a second draw, averaged over REPEATS such comparisons; 1 is as good
as the data) and `ebmkit sample`. The Langevin-driven methods (CoopFlow, the Langevin flows alone) are
also measured with the first SHORT steps of their chains only: where the flow's initialisation is what
CoopFlow adds (Table 4.9).
Cells merge into benchmarks/results/toy_matrix.json, so the matrix can run in parts; the picture
benchmarks/results/toy_matrix.png (a row per data set: data, then each method's seed-0 samples) is
drawn from the samples in --out. --quick checks that it runs: the checkerboard, seed 0, 20 iterations,
MMD of 200 samples in 2 comparisons, results under --out.
"""

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from cli import arguments, run_ebmkit

SETS = ("checkerboard", "spiral", "8gaussians", "rings", "pinwheel")
PRESETS = {"cdrl": "cdrl-points", "coopflow": "coopflow-points", "flow": "coopflow-points-flow",
           "langevin": "coopflow-points-langevin", "langevin_n01": "coopflow-points-langevin"}
VARIANTS = {"langevin_n01": ['langevin.start="gaussian"', 'ebm.reference="gaussian"']}  # sec. 4.3.3
LABELS = {"cdrl": "CDRL", "coopflow": "CoopFlow", "flow": "flow alone", "langevin": "Langevin flow alone",
          "langevin_n01": "Langevin flow alone from N(0, I)"}
LANGEVIN_DRIVEN = ("coopflow", "langevin", "langevin_n01")
BARS = {"cdrl": 1.5, "coopflow": 2.0}  # squared-MMD ratio at most this, on every set and seed
SHORT = 10  # test-time Langevin steps of the short-chain comparison (a third of the recipes' T = 30; Table 4.9)
REPEATS = 16  # comparisons per MMD ratio: exact draws of 8gaussians read 1.00 +- 0.12 (+- 0.21 with 4)
QUICK = {"coopflow": ["train.pretrain_iterations=5", "train.warmup_iterations=5"]}  # --quick: phases within 20 iterations


def resumable(run_dir: Path, preset: str, sets: list[str]) -> bool:
    """Whether run_dir holds a run (finished or not) of exactly this preset, to continue rather than redo."""
    from ebmkit.presets import load_preset

    saved = run_dir / "preset.json"
    return (run_dir / "train_state.safetensors").is_file() and saved.is_file() and \
        json.loads(saved.read_text()) == load_preset(preset, sets).model_dump(mode="json")


def cell(data: str, method: str, seed: int, out: Path, quick: bool, threads: int, resume: bool) -> dict:
    """Train one preset on one data set with one seed (or continue its run, with resume) and measure it."""
    run_dir = out / data / method / f"seed{seed}"
    sets = VARIANTS.get(method, []) + [f'data.name="{data}"', f"train.seed={seed}"] + \
        (["train.iterations=20", *QUICK.get(method, [])] if quick else [])
    resumed = resume and resumable(run_dir, PRESETS[method], sets)
    tic = time.time()
    trained = run_ebmkit(["train", "--resume", run_dir, "--quiet"] if resumed else
                         ["train", "--preset", PRESETS[method], "--run-dir", run_dir, "--overwrite", "--quiet",
                          *[a for s in sets for a in ("--set", s)]], threads)
    seconds = time.time() - tic
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()] \
        if (run_dir / "metrics.jsonl").is_file() else []
    result = {"preset": PRESETS[method], "train_seconds": round(seconds, 1), "resumed": resumed,
              "exit_code": trained.returncode,
              "guard_events": [e["step"] for e in events if e.get("event") == "guard"],
              "run_seconds": max([e["time"] for e in events if "time" in e], default=None),  # over resumes too
              "error": trained.stderr.strip().splitlines()[-1] if trained.returncode else None}
    model = run_dir / "model.safetensors"
    if model.is_file():
        measure = ["eval", "mmd", "--model", model, "--num", 200 if quick else 5000, "--seed", seed,
                   "--repeats", 2 if quick else REPEATS, "--json"]
        report = run_ebmkit(measure, threads)
        if report.returncode == 0:
            r = json.loads(report.stdout)
            result.update(step=r["step"], ratio=round(r["ratio"], 4), repeats=r["repeats"],
                          **({"on_squares": round(r["on_squares"], 4)} if "on_squares" in r else {}))
        else:
            result["error"] = report.stderr.strip()
        if method in LANGEVIN_DRIVEN:
            short = run_ebmkit([*measure, "--steps", SHORT], threads)
            if short.returncode == 0:
                result["ratio_short"] = round(json.loads(short.stdout)["ratio"], 4)
        if seed == 0:
            run_ebmkit(["sample", "--model", model, "--num", 2000, "--seed", 0, "--out", run_dir / "samples.npz"], threads)
    return result


def summary(cells: dict) -> list[str]:
    """Markdown table: mean and spread over seeds of each method's MMD ratio per data set; Table 4.7's ordering
    (CoopFlow below both baselines), and CoopFlow against the Langevin flow alone from N(0, I) at the full
    chain and at its first SHORT steps."""
    lines = ["| data | " + " | ".join(LABELS.values()) + " | CoopFlow below both baselines | "
             f"CoopFlow below the Langevin flow from N(0, I) | the two, {SHORT} steps | CoopFlow below it, {SHORT} steps |",
             "| --- |" + " --- |" * (len(LABELS) + 4)]
    for data in SETS:
        row, seeds, short = [data], {}, {}
        for method in LABELS:
            got = {k.split("/")[2]: v for k, v in cells.items() if k.startswith(f"{data}/{method}/")}
            ratios = [v["ratio"] for v in got.values() if "ratio" in v]
            seeds[method] = {s: v["ratio"] for s, v in got.items() if "ratio" in v}
            short[method] = {s: v["ratio_short"] for s, v in got.items() if "ratio_short" in v}
            if not ratios:
                row.append("-")
                continue
            spread = f" ± {statistics.stdev(ratios):.2f}" if len(ratios) > 1 else ""
            failed = sum(v["exit_code"] != 0 for v in got.values())
            squares = [v["on_squares"] for v in got.values() if "on_squares" in v]
            extra = f" ({100 * min(squares):.0f}%+ on squares)" if squares and method == "cdrl" else ""
            row.append(f"{statistics.mean(ratios):.2f}{spread}{extra}" + (f", {failed} failed" if failed else ""))
        row.append(_below(seeds, ("flow", "langevin")))
        row.append(_below(seeds, ("langevin_n01",)))
        row.append(" / ".join(f"{statistics.mean(short[m].values()):.2f}" if short[m] else "-"
                              for m in ("coopflow", "langevin_n01")))
        row.append(_below(short, ("langevin_n01",)))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _below(ratios: dict, baselines: tuple[str, ...]) -> str:
    """In how many seeds CoopFlow's ratio is below every baseline's."""
    common = [s for s in ratios["coopflow"] if all(s in ratios[m] for m in baselines)]
    holds = sum(ratios["coopflow"][s] < min(ratios[m][s] for m in baselines) for s in common)
    return f"{holds} of {len(common)} seeds" if common else "-"


def figure(out: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from ebmkit.data import load_dataset

    rows = [d for d in SETS if (out / d).is_dir()]
    if not rows:
        return
    fig, axes = plt.subplots(len(rows), 1 + len(LABELS), figsize=(2.2 * (1 + len(LABELS)), 2.2 * len(rows)), squeeze=False)
    for i, data in enumerate(rows):
        truth = load_dataset(data, split="test", num_points=2000).x
        lim = 1.1 * float(truth.abs().max())
        panels = [("data", truth)] + [(LABELS[m], torch.from_numpy(np.load(f)["samples"]) if (f := out / data / m / "seed0" /
                                       "samples.npz").is_file() else None) for m in LABELS]
        for j, (title, pts) in enumerate(panels):
            ax = axes[i, j]
            if pts is not None:
                ax.scatter(*pts.T.numpy(), s=0.3, alpha=0.4)
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
            if i == 0:
                ax.set_title(title, fontsize=9)
        axes[i, 0].set_ylabel(data)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default=None, help=f"Default: {','.join(SETS)} (--quick: checkerboard).")
    parser.add_argument("--seeds", default=None, help="Default: 0,1,2 (--quick: 0).")
    parser.add_argument("--methods", default=",".join(PRESETS))
    parser.add_argument("--jobs", type=int, default=2, help="Cells trained at once.")
    parser.add_argument("--threads", type=int, default=None, help="Threads per cell (default: CPU cores / jobs).")
    parser.add_argument("--resume", action="store_true",
                        help="Continue the runs in --out made with the same preset (finished ones are only re-measured).")
    args = arguments(parser, "runs/toy-matrix")
    out = Path(args.out)
    sets = (args.sets or ("checkerboard" if args.quick else ",".join(SETS))).split(",")
    seeds = (args.seeds or ("0" if args.quick else "0,1,2")).split(",")
    methods = args.methods.split(",")
    unknown = [s for s in sets if s not in SETS] + [m for m in methods if m not in PRESETS]
    if unknown:
        sys.exit(f"unknown data set or method: {', '.join(unknown)} (sets: {', '.join(SETS)}; methods: {', '.join(PRESETS)})")
    todo = [(d, m, int(s)) for d in sets for s in seeds for m in methods]
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    json_path = args.results / "toy_matrix.json"
    results = json.loads(json_path.read_text()) if json_path.is_file() else {"cells": {}}
    tic = time.time()
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(cell, d, m, s, out, args.quick, threads, args.resume): (d, m, s) for d, m, s in todo}
        for future, (d, m, s) in futures.items():
            r = future.result()
            results["cells"][f"{d}/{m}/{s}"] = r
            print(f"{d:12s} {LABELS[m]:20s} seed {s}: ratio {r.get('ratio', float('nan')):6.2f}"
                  + (f"  on squares {r['on_squares']:.1%}" if "on_squares" in r else "")
                  + f"  guard {r['guard_events'] or '-'}  {r['train_seconds']:.0f} s" + (" (resumed)" if r["resumed"] else "") + (f"  {r['error']}" if r["error"] else ""),
                  flush=True)
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"{len(todo)} cells in {time.time() - tic:.0f} s with {args.jobs} jobs of {threads} threads")
    print("\n".join(summary(results["cells"])))
    failures = [f"{k}: ratio {v.get('ratio')}" for k, v in results["cells"].items()
                if v["preset"] in (PRESETS["cdrl"], PRESETS["coopflow"]) and not (v.get("ratio", 1e9) <= BARS[k.split("/")[1]])]
    print("bars met in every cell" if not failures else "above the bar: " + "; ".join(failures))
    figure(out, args.results / "toy_matrix.png")


if __name__ == "__main__":
    main()
