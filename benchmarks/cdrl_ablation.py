"""CDRL without each of its parts (thesis sec. 5.4.11, Table 5.9) and with other numbers of noise levels T and
Langevin steps K (sec. 5.4.12, Table 5.10), at CPU scale: every row trained with its base preset's budget and
seeds, differing from the full model only in the row's --set overrides (ROWS, the one place they are listed).

    python benchmarks/cdrl_ablation.py [--table 5.9|5.10] [--sets checkerboard,digits] [--seeds 0,1]
                                       [--rows "DRL,CDRL (full)"] [--iterations N] [--jobs 2]
                                       [--out runs/cdrl-ablation] [--resume] [--quick]
    python benchmarks/cdrl_ablation.py --preset cdrl-cifar10 --data ~/data/cifar10 --jobs 1   # the paper's table, GPUs

Bases: 2-D sets train cdrl-points with data.name set, `digits` trains cdrl-digits (with --iterations, a reduced
budget; say so), --preset any other CDRL preset. Measured: 2-D, `ebmkit eval mmd` (MMD^2 ratio of 5,000 samples,
16 comparisons; 1 is as good as the data); images, `ebmkit eval fid` (domain-FID for digits; a CIFAR-10 model
needs --inception). Results merge into benchmarks/results/cdrl_ablation.json (runs can be split); the script
prints the table and whether Table 5.9's main orderings hold: the full model below DRL, below "without
cooperative training" and below "without noise variance reduction", seed by seed.
DRL's step size: b^2 = 2e-4 where CDRL has 4e-4, each over its schedule's sbar_0 (Eq. 5.14's form, as in
ruiqigao/recovery_likelihood and the authors' CDRL code), so a row with DRL's sampler halves the base's
coefficient (and rescales it by sbar_0 where the schedule changes); under the 2-D presets' rule
s_t^2 = c sigma_{t+1}^2 only the halving applies.
--quick checks that it runs: the checkerboard, seed 0, three rows, 20 iterations, results under --out.
"""

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cli import arguments, run_ebmkit

SETS_2D = ("checkerboard", "spiral", "8gaussians", "rings", "pinwheel")
DRL_LANGEVIN = ['init={arch="none"}', "diffusion.variance_reduction=false", "sampler.steps=30", "sampler.tweedie_coef=0"]
ORDERINGS = ("DRL", "without cooperative training", "without noise variance reduction")  # full CDRL below each


def rows(table: str, base) -> dict[str, list[str]]:
    """Each row's --set overrides of the base preset (a validated CDRL preset)."""
    if table == "5.10":
        return {f"T = {t}, K = {k}": [f"diffusion.num_levels={t}", f"sampler.steps={k}"]
                for t, k in ((4, 15), (5, 15), (6, 10), (6, 15), (6, 30))}
    return {
        "DRL": [*DRL_LANGEVIN, "diffusion.schedule=drl", "ebm.noise_input=index",
                f"sampler.step_coef={step_coef(base, 0.5, 'drl')}"],
        "without cooperative training": [*DRL_LANGEVIN, f"sampler.step_coef={step_coef(base, 0.5, 'cosine')}"],
        "without noise variance reduction": ["diffusion.variance_reduction=false"],
        "initializer predicts x0": ["init.predicts=x0"],
        "initializer predicts eps": ["init.predicts=eps"],
        "DRL's schedule, T = 8": ["diffusion.schedule=drl", "diffusion.num_levels=8", "diffusion.drl_spacing=100",
                                  f"sampler.step_coef={step_coef(base, 1.0, 'drl', 8, 100)}"],
        "initializer learns from y_t": ["train.init_target=data"],
        "CDRL (full)": [],
    }


def step_coef(base, b2_ratio: float, schedule: str, levels: int | None = None, spacing: int | None = None) -> float:
    """The base's step coefficient with b^2 scaled by b2_ratio and, under Eq. 5.14's rule, moved to the sbar_0 of
    `schedule` (c = b^2 / sbar_0)."""
    coef = base.sampler.step_coef * b2_ratio
    d = base.diffusion
    if base.sampler.step_rule == "eq5.14":
        coef *= sbar0(base, d.schedule, d.num_levels, d.drl_spacing) / sbar0(base, schedule, levels or d.num_levels, spacing)
    return round(coef, 6)


def sbar0(base, schedule: str, levels: int, spacing: int | None) -> float:
    """sbar at the lowest noise level of a schedule."""
    import torch

    from ebmkit.schedules import logsnr_drl

    lam = torch.tensor(base.diffusion.logsnr_max) if schedule == "cosine" else logsnr_drl(levels, spacing)[0]
    return float(torch.sigmoid(-lam).sqrt())


def base_preset(data: str, preset: str | None) -> tuple[str, list[str]]:
    if preset:
        return preset, []
    return ("cdrl-points", [f'data.name="{data}"']) if data in SETS_2D else ("cdrl-digits", [])


def cell(key: tuple, overrides: list[str], args, threads: int) -> dict:
    """Train one row on one data set with one seed (continued with --resume) and measure it."""
    data, row, seed = key
    preset, sets = base_preset(data, args.preset)
    run_dir = Path(args.out) / data / row.replace(" ", "_").replace(",", "").replace("=", "") / f"seed{seed}"
    budget = ["train.iterations=20"] if args.quick else [f"train.iterations={args.iterations}"] if args.iterations else []
    sets += [*overrides, f"train.seed={seed}", *budget]
    data_arg = ["--data", args.data] if args.data else []
    resumed = args.resume and (run_dir / "train_state.safetensors").is_file()
    tic = time.time()
    trained = run_ebmkit(["train", "--resume", run_dir, "--quiet"] if resumed else
                         ["train", "--preset", preset, "--run-dir", run_dir, "--overwrite", "--quiet", *data_arg,
                          *[a for s in sets for a in ("--set", s)]], threads)
    result = {"preset": preset, "overrides": overrides, "train_seconds": round(time.time() - tic, 1),
              "exit_code": trained.returncode, "error": trained.stderr.strip().splitlines()[-1] if trained.returncode else None}
    model = run_dir / "model.safetensors"
    if model.is_file():
        if data in SETS_2D:
            measure = ["eval", "mmd", "--model", model, "--num", 200 if args.quick else 5000, "--seed", seed,
                       "--repeats", 2 if args.quick else 16, "--json"]
        else:
            measure = ["eval", "fid", "--model", model, "--seed", seed, "--json", *(["--num", 50] if args.quick else []),
                       *(["--inception-weights", args.inception] if args.inception else [])]
        report = run_ebmkit(measure, threads)
        if report.returncode == 0:
            r = json.loads(report.stdout)
            result["score"] = round(r["ratio"] if data in SETS_2D else r["fid"], 4)
        else:
            result["error"] = report.stderr.strip()
    return result


def summary(cells: dict, names: list[str]) -> list[str]:
    """Markdown: mean and spread over seeds per row and data set; then, per data set, in how many seeds the full
    model scores below each row of ORDERINGS (lower is better for both metrics)."""
    sets = sorted({k.split("|")[0] for k in cells})
    lines = ["| row | " + " | ".join(sets) + " |", "| --- |" + " --- |" * len(sets)]
    for row in names:
        out = []
        for data in sets:
            scores = [v["score"] for k, v in cells.items() if k.startswith(f"{data}|{row}|") and "score" in v]
            spread = f" ± {statistics.stdev(scores):.2f}" if len(scores) > 1 else ""
            out.append(f"{statistics.mean(scores):.2f}{spread}" if scores else "-")
        lines.append(f"| {row} | " + " | ".join(out) + " |")
    for data in sets:
        full = {k.split("|")[2]: v["score"] for k, v in cells.items() if k.startswith(f"{data}|CDRL (full)|") and "score" in v}
        for row in ORDERINGS:
            other = {k.split("|")[2]: v["score"] for k, v in cells.items() if k.startswith(f"{data}|{row}|") and "score" in v}
            common = sorted(set(full) & set(other))
            if common:
                holds = sum(full[s] < other[s] for s in common)
                lines.append(f"- {data}: full CDRL below '{row}' in {holds} of {len(common)} seeds")
    return lines


def main() -> None:
    from ebmkit.presets import load_preset

    parser = argparse.ArgumentParser()
    parser.add_argument("--table", choices=("5.9", "5.10"), default="5.9")
    parser.add_argument("--sets", default=None, help="2-D sets and/or digits (default checkerboard,digits).")
    parser.add_argument("--seeds", default=None, help="Default: 0,1 (--quick: 0).")
    parser.add_argument("--rows", default=None, help="Comma-separated row names (default: all of the table).")
    parser.add_argument("--preset", default=None, help="A CDRL preset to ablate instead (e.g. cdrl-cifar10).")
    parser.add_argument("--data", default=None, help="--data for --preset.")
    parser.add_argument("--inception", default=None, help="Inception weights for `eval fid` of natural images.")
    parser.add_argument("--iterations", type=int, default=None, help="Training iterations (default: the preset's).")
    parser.add_argument("--jobs", type=int, default=2, help="Runs trained at once.")
    parser.add_argument("--threads", type=int, default=None, help="Threads per run (default: CPU cores / jobs).")
    parser.add_argument("--resume", action="store_true", help="Continue the runs in --out.")
    args = arguments(parser, "runs/cdrl-ablation")
    sets = (args.sets or ("checkerboard" if args.quick else "checkerboard,digits")).split(",")
    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1")).split(",")]
    todo, names = {}, []
    for data in sets:
        preset, extra = base_preset(data, args.preset)
        table = rows(args.table, load_preset(preset, extra))
        wanted = args.rows.split(",") if args.rows else ["DRL", "initializer predicts eps", "CDRL (full)"] if args.quick else list(table)
        unknown = [r for r in wanted if r not in table]
        if unknown:
            sys.exit(f"unknown row: {', '.join(unknown)} (rows: {', '.join(table)})")
        todo |= {(data, row, seed): table[row] for seed in seeds for row in wanted}  # every row of a seed, then the next
        names += [r for r in table if r not in names]
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    json_path = args.results / "cdrl_ablation.json"
    results = json.loads(json_path.read_text()) if json_path.is_file() else {}
    cells = results.setdefault(args.table, {})
    tic = time.time()
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(cell, key, overrides, args, threads): key for key, overrides in todo.items()}
        for future, (data, row, seed) in futures.items():
            r = future.result()
            cells[f"{data}|{row}|{seed}"] = r
            print(f"{data:12s} {row:34s} seed {seed}: {r.get('score', float('nan')):8.3f}  {r['train_seconds']:.0f} s"
                  + (f"  {r['error']}" if r["error"] else ""), flush=True)
            json_path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"{len(todo)} runs in {time.time() - tic:.0f} s with {args.jobs} jobs of {threads} threads")
    print("\n".join(summary(cells, [r for r in names if any(k.split("|")[1] == r for k in cells)])))


if __name__ == "__main__":
    main()
