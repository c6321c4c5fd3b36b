"""How often composed samples carry the requested attributes (sec. 5.4.6, Fig. 5.6), measured by
classifiers trained on the real shapes, one per attribute.

    python benchmarks/cdrl_compose.py runs/cdrl-shapes-compose/model.safetensors [--num 24] [--guidance 3]

Single attributes: every value of every attribute alone. Pairs: every (shape, colour), (shape, size)
and (colour, size) combination. Prints the tables, writes benchmarks/results/cdrl_compose.json (--out) and a
picture in the manner of Fig. 5.6 (one row per composition) to benchmarks/results/cdrl-shapes-compose.png (--figure).
"""

import argparse
import itertools
import json
from pathlib import Path

import torch

from ebmkit.data import from_model_space
from ebmkit.methods import load_model
from ebmkit.metrics.domain import DomainFeatures
from ebmkit.viz import save_grid

RESULTS = Path(__file__).parent / "results"
FIGURE_ROWS = [["shape=circle"], ["color=red"], ["shape=circle", "color=red"], ["shape=square", "color=blue"],
               ["shape=triangle", "size=large"], ["shape=cross", "color=yellow", "size=small"]]


def carried(method, judges, wanted: dict[int, int], num: int, guidance: float, seed: int) -> torch.Tensor:
    """(num, len(wanted)) bool: which requested attributes each composed sample carries."""
    labels = method.attribute_labels(wanted, num)
    x = from_model_space(method.sample(num, torch.Generator().manual_seed(seed), labels=labels, guidance=guidance))
    return torch.stack([judges[j].classify(x) == v for j, v in wanted.items()], 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--num", type=int, default=24, help="samples per attribute setting")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "cdrl_compose.json")
    parser.add_argument("--figure", type=Path, default=RESULTS / "cdrl-shapes-compose.png")
    args = parser.parse_args()
    method, step = load_model(args.model)
    cond = method.preset.conditioning
    size = method.shape[-1]
    judges = [DomainFeatures(method.preset.data.name, size, target=a) for a in cond.attributes]
    for a, judge in zip(cond.attributes, judges):
        print(f"{a} classifier: {judge.test_accuracy:.1%} test accuracy")
    seed = iter(range(10_000))
    singles = {}
    for j, values in enumerate(cond.values):
        ok = torch.cat([carried(method, judges, {j: v}, args.num, args.guidance, next(seed)) for v in range(len(values))])
        singles[cond.attributes[j]] = float(ok.float().mean())
    pairs = {}
    for j, k in itertools.combinations(range(len(cond.attributes)), 2):
        ok = torch.cat([carried(method, judges, {j: u, k: v}, args.num, args.guidance, next(seed))
                        for u, v in itertools.product(range(len(cond.values[j])), range(len(cond.values[k])))])
        pairs[f"{cond.attributes[j]}+{cond.attributes[k]}"] = float(ok.all(1).float().mean())
    print(f"guidance w = {args.guidance}, {args.num} samples per setting, model step {step}")
    print("single attribute: share carrying it     ", "  ".join(f"{a} {v:.1%}" for a, v in singles.items()))
    print("two attributes: share carrying both     ", "  ".join(f"{a} {v:.1%}" for a, v in pairs.items()))
    rows = []
    for i, items in enumerate(FIGURE_ROWS):
        labels = method.attribute_labels(dict(cond.attribute_index(a) for a in items), 8)
        rows.append(method.sample(8, torch.Generator().manual_seed(100 + i), labels=labels, guidance=args.guidance))
    save_grid(torch.cat(rows), args.figure, nrow=8)
    print("figure rows:", " | ".join(" ".join(r) for r in FIGURE_ROWS))
    result = {"model": args.model, "step": step, "guidance": args.guidance, "num_per_setting": args.num,
              "classifier_accuracy": {a: j.test_accuracy for a, j in zip(cond.attributes, judges)},
              "single": singles, "pairs": pairs}
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
