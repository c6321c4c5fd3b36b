"""Table 4.7 on the 2-D spiral: CoopFlow against the normalizing flow alone and the short-run Langevin
flow alone, same networks and budget, trained and measured in one run.

    python benchmarks/coopflow_spiral.py [--seed 0] [--out runs/coopflow-spiral-compare]

Prints squared-MMD ratios to a second data draw (lower is better; 1 is as good as the data itself)
and writes benchmarks/results/coopflow_spiral.json.
"""

import argparse
import json
import time
from pathlib import Path

from ebmkit.methods import load_model
from ebmkit.metrics.points import points_report
from ebmkit.presets import load_preset
from ebmkit.train import train

PRESETS = {"CoopFlow": "coopflow-spiral", "normalizing flow alone": "coopflow-spiral-flow",
           "Langevin flow alone": "coopflow-spiral-langevin"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/coopflow-spiral-compare")
    args = parser.parse_args()
    rows = {}
    for label, name in PRESETS.items():
        tic = time.time()
        model = train(load_preset(name, [f"train.seed={args.seed}"]), Path(args.out) / name, overwrite=True, quiet=True)
        method, _ = load_model(model)
        report = points_report(method, 5000, args.seed)
        rows[label] = {"preset": name, "mmd2_ratio": report["ratio"], "train_seconds": round(time.time() - tic, 1)}
        print(f"{label:24s} MMD^2 ratio {report['ratio']:6.2f}   ({rows[label]['train_seconds']:.0f} s)", flush=True)
    best = min(rows, key=lambda k: rows[k]["mmd2_ratio"])
    print(f"best: {best}")
    out = Path(__file__).parent / "results" / "coopflow_spiral.json"
    out.write_text(json.dumps({"seed": args.seed, "num_samples": 5000, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
