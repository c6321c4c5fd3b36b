"""Sanity of the digits domain-FID: a second draw of real digits against blurred digits and noise.

    python benchmarks/domain_fid.py [--quick]    # prints a table, writes benchmarks/results/domain_fid.json

Reference: the 1,500 training digits. Every other set has 297 images (the size of the test split).
"""

import argparse
import json

import torch
from torchvision.transforms.functional import gaussian_blur

from ebmkit.data import load_dataset
from ebmkit.metrics.domain import DomainFeatures
from ebmkit.metrics.fid import stats_of
from ebmkit.metrics.frechet import frechet_distance

from cli import arguments


def main() -> None:
    args = arguments(argparse.ArgumentParser(), "runs/domain-fid")  # --quick: the same, results under --out
    space = DomainFeatures("digits", 8)
    ref = stats_of(space, load_dataset("digits", split="train").x, "digits:train")
    test = load_dataset("digits", split="test").x
    sets = {
        "real digits (test split)": test,
        "real digits, Gaussian blur sigma 0.7": gaussian_blur(test.float(), 3, 0.7).round().to(torch.uint8),
        "real digits, Gaussian blur sigma 1.0": gaussian_blur(test.float(), 3, 1.0).round().to(torch.uint8),
        "uniform noise": torch.randint(0, 256, test.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0)),
    }
    rows = {name: {"domain_fid": frechet_distance(stats_of(space, x, name), ref), "confident": space.confident(x)}
            for name, x in sets.items()}
    print(f"digits classifier test accuracy: {space.test_accuracy:.1%}")
    print(f"{'set (297 images)':40s} {'domain-FID':>10s} {'p>=0.9':>8s}")
    for name, r in rows.items():
        print(f"{name:40s} {r['domain_fid']:10.2f} {r['confident']:8.1%}")
    (args.results / "domain_fid.json").write_text(json.dumps({"classifier_test_accuracy": space.test_accuracy, "reference": "digits:train",
                               "sets": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
