"""Tables 4.7 and 4.2 on sklearn's 8x8 digits: CoopFlow against the normalizing flow alone and the
short-run Langevin flow alone, same networks, trained and measured in one run.

    python benchmarks/coopflow_digits.py [--seed 0] [--out runs/coopflow-digits-compare] [--quick]

For each model: domain-FID of `--num-samples` samples against the 1,500 training digits (`ebmkit eval fid`, lower is better;
the real test split scores the baseline), and the per-pixel reconstruction MSE of the held-out digits
(`ebmkit reconstruct`, 200 gradient steps, model space [-1, 1]; `--num-test` of them). Writes
benchmarks/results/coopflow_digits.json and the figures beside it (with --quick: under --out).
"""

import argparse
import json
import time
from pathlib import Path

from cli import arguments, ebmkit

PRESETS = {"CoopFlow": "coopflow-digits", "normalizing flow alone": "coopflow-digits-flow",
           "Langevin flow alone": "coopflow-digits-langevin"}
FLOW = ["flow.num_channels=8", "flow.num_blocks=1", "flow.num_components=2", "flow.num_heads=1", "flow.num_dequant_blocks=1",
        "flow.scales=[[0, 2], [2, 1]]"]
EBM = ["ebm.channels=[8, 16]", "ebm.head_channels=4", "langevin.steps=2"]
RUN = ["train.iterations=3", "train.batch_size=8", "train.sample_every=1000"]
QUICK = {"coopflow-digits": FLOW + EBM + RUN + ["train.pretrain_iterations=1", "train.warmup_iterations=1"],
         "coopflow-digits-flow": FLOW + RUN, "coopflow-digits-langevin": EBM + RUN}  # --quick: tiny networks, 3 steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-train", action="store_true", help="Measure the models already in --out.")
    parser.add_argument("--num-test", type=int, default=297, help="Held-out digits to reconstruct (297: all).")
    parser.add_argument("--num-samples", type=int, default=1500,
                        help="Samples per FID (1500: as many as training digits; fewer inflate FID's bias).")
    args = arguments(parser, "runs/coopflow-digits-compare")
    results = args.results
    if args.quick:
        args.num_test, args.num_samples = 4, 20
    rows = {}
    for label, name in PRESETS.items():
        run = Path(args.out) / name
        tic = time.time()
        if not args.skip_train:
            tiny = [a for s in QUICK[name] for a in ("--set", s)] if args.quick else []
            ebmkit("train", "--preset", name, "--run-dir", run, "--overwrite", "--quiet", "--set", f"train.seed={args.seed}",
                   *tiny)
        model = run / "model.safetensors"
        fid = json.loads(ebmkit("eval", "fid", "--model", model, "--num", args.num_samples,
                                "--ref", "digits:train", "--seed", args.seed, "--json"))
        tag = name.removeprefix("coopflow-digits").lstrip("-") or "coopflow"
        ebmkit("sample", "--model", model, "--num", 64, "--seed", args.seed, "--out", results / f"coopflow-digits-{tag}.png")
        rec = json.loads(ebmkit("reconstruct", "--model", model, "--images", "digits:test", "--limit", args.num_test,
                                "--seed", args.seed, *(["--infer-steps", 2] if args.quick else []),
                                "--out", results / f"coopflow-digits-{tag}-reconstruct.png", "--json"))
        rows[label] = {"preset": name, "domain_fid": fid["fid"], "baseline_fid": fid["baseline_fid"],
                       "recon_mse": rec["mse"], "recon_mse_start": rec["mse_start"], "num_test": rec["images"],
                       "seconds": round(time.time() - tic, 1)}
        r = rows[label]
        print(f"{label:24s} domain-FID {r['domain_fid']:7.2f} (real {r['baseline_fid']:.2f})   "
              f"reconstruction MSE {r['recon_mse']:.4f}   ({r['seconds']:.0f} s)", flush=True)
    (results / "coopflow_digits.json").write_text(json.dumps({"seed": args.seed, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
