"""How noisy the squared-MMD ratio of `ebmkit eval mmd` is for a perfect model: exact draws of a built-in 2-D
set scored against its own held-out draws, as metrics/points.py scores a model, over many trials.

    python docs/diagnostics/mmd_noise.py 8gaussians [--num 1000] [--trials 40]

Prints, for 1, 4, 8 and 16 comparisons per ratio, the mean, standard deviation, range and how many trials
read above 1.5 (the CDRL bar of the toy matrix).
"""

import argparse
import statistics

import torch

from ebmkit.data.toy2d import sample_toy
from ebmkit.metrics.mmd import BANDWIDTHS, mmd2_each


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", help="a built-in 2-D set, e.g. 8gaussians")
    parser.add_argument("--num", type=int, default=1000, help="samples, and reference points in each half")
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()
    n, most = args.num, 16
    sums = []  # per trial: (model MMD^2, data MMD^2) of each of `most` comparisons, summed over bandwidths
    for trial in range(args.trials):
        data = sample_toy(args.data, 2 * n * most, torch.Generator().manual_seed(trial + 100))
        samples = sample_toy(args.data, n * most, torch.Generator().manual_seed(trial + 1000))  # the "model"
        bandwidths = tuple(h * float(data.double().var(0).mean().sqrt()) for h in BANDWIDTHS)
        gen, rows = torch.Generator().manual_seed(trial), []
        for r in range(most):
            halves = data[torch.randperm(len(data), generator=gen)[:2 * n]]
            model, baseline = mmd2_each([samples[r * n:(r + 1) * n], halves[n:]], halves[:n], bandwidths)
            rows.append((sum(model.values()), sum(baseline.values())))
        sums.append(rows)
    for repeats in (1, 4, 8, 16):
        ratios = [sum(m for m, _ in rows[:repeats]) / sum(d for _, d in rows[:repeats]) for rows in sums]
        print(f"{args.data}, {n} points, {repeats:2d} comparisons: mean {statistics.mean(ratios):.2f}, "
              f"sd {statistics.stdev(ratios):.2f}, {min(ratios):.2f} to {max(ratios):.2f}, "
              f"{sum(r > 1.5 for r in ratios)} of {len(ratios)} above 1.5")


if __name__ == "__main__":
    main()
