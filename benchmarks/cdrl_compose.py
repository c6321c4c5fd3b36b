"""How often composed samples carry the requested attributes (sec. 5.4.6, Fig. 5.6), measured by
classifiers trained on the real shapes, one per attribute.

    python benchmarks/cdrl_compose.py runs/cdrl-shapes-compose/model.safetensors [--num 24] [--guidance 3] [--steps K]

Single attributes: every value of every attribute alone. Pairs: every (shape, colour), (shape, size)
and (colour, size) combination. A second, hand-made judge asks whether a sample looks like one shape on
black at all: its lit area (pixels whose brightest channel exceeds 1/4) lies within the range of the
training images (4% to 41% of the frame). A frame filled with colour can fool the attribute classifiers,
never this. Prints the tables, writes benchmarks/results/cdrl_compose.json (--out) and a
picture in the manner of Fig. 5.6 (one row per composition) to benchmarks/results/cdrl-shapes-compose.png (--figure).
"""

import argparse
import itertools
import json
from pathlib import Path

import torch

from ebmkit.data import from_config, from_model_space
from ebmkit.methods import load_model
from ebmkit.metrics.domain import DomainFeatures
from ebmkit.viz import save_grid

RESULTS = Path(__file__).parent / "results"
LIT = 64  # a pixel is lit when its brightest channel exceeds this (uint8)
FIGURE_ROWS = [["shape=circle"], ["color=red"], ["shape=circle", "color=red"], ["shape=square", "color=blue"],
               ["shape=triangle", "size=large"], ["shape=cross", "color=yellow", "size=small"]]


def lit_area(x: torch.Tensor) -> torch.Tensor:
    """(N,) share of the frame lit in uint8 images (N, C, H, W)."""
    return (x.amax(1) > LIT).float().flatten(1).mean(1)


def carried(method, judges, area: tuple[float, float], wanted: dict[int, int], num: int, seed: int,
            **sampling) -> tuple[torch.Tensor, torch.Tensor]:
    """(num, len(wanted)) bool: which requested attributes each composed sample carries; (num,) bool:
    whether its lit area lies in the training images' range `area`. `sampling`: guidance, steps."""
    labels = method.attribute_labels(wanted, num)
    x = from_model_space(method.sample(num, torch.Generator().manual_seed(seed), labels=labels, **sampling))
    lit = lit_area(x)
    return torch.stack([judges[j].classify(x) == v for j, v in wanted.items()], 1), (lit >= area[0]) & (lit <= area[1])


def share(ok: torch.Tensor) -> float:
    return float(ok.float().mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--num", type=int, default=24, help="samples per attribute setting")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=None, help="Langevin steps per level (default: as trained)")
    parser.add_argument("--out", type=Path, default=RESULTS / "cdrl_compose.json")
    parser.add_argument("--figure", type=Path, default=RESULTS / "cdrl-shapes-compose.png")
    args = parser.parse_args()
    method, step = load_model(args.model)
    cond = method.preset.conditioning
    size = method.shape[-1]
    judges = [DomainFeatures(method.preset.data.name, size, target=a) for a in cond.attributes]
    for a, judge in zip(cond.attributes, judges):
        print(f"{a} classifier: {judge.test_accuracy:.1%} test accuracy")
    real = lit_area(from_config(method.preset.data, "train").x)
    area = (float(real.min()), float(real.max()))
    seed = iter(range(10_000))
    sampling = {"guidance": args.guidance, "steps": args.steps}
    settings = {a: [{j: v} for v in range(len(cond.values[j]))] for j, a in enumerate(cond.attributes)}
    for j, k in itertools.combinations(range(len(cond.attributes)), 2):
        settings[f"{cond.attributes[j]}+{cond.attributes[k]}"] = [
            {j: u, k: v} for u, v in itertools.product(range(len(cond.values[j])), range(len(cond.values[k])))]
    carry, shape_like, both = {}, {}, {}
    for name, wanted in settings.items():
        ok, like = map(torch.cat, zip(*[carried(method, judges, area, w, args.num, next(seed), **sampling) for w in wanted]))
        carry[name], shape_like[name], both[name] = share(ok.all(1)), share(like), share(ok.all(1) & like)
    singles = {a: carry.pop(a) for a in cond.attributes}
    pairs = carry
    steps = method.preset.sampler.steps if args.steps is None else args.steps
    print(f"guidance w = {args.guidance}, {steps} Langevin steps per level, {args.num} samples per setting, model step {step}")
    print("single attribute: share carrying it     ", "  ".join(f"{a} {v:.1%}" for a, v in singles.items()))
    print("two attributes: share carrying both     ", "  ".join(f"{a} {v:.1%}" for a, v in pairs.items()))
    print(f"lit area in the training range {area[0]:.1%}-{area[1]:.1%}:",
          "  ".join(f"{a} {v:.1%}" for a, v in shape_like.items()))
    print("carrying all requested and lit area in range:", "  ".join(f"{a} {v:.1%}" for a, v in both.items()))
    rows = []
    for i, items in enumerate(FIGURE_ROWS):
        labels = method.attribute_labels(dict(cond.attribute_index(a) for a in items), 8)
        rows.append(method.sample(8, torch.Generator().manual_seed(100 + i), labels=labels, **sampling))
    save_grid(torch.cat(rows), args.figure, nrow=8)
    print("figure rows:", " | ".join(" ".join(r) for r in FIGURE_ROWS))
    result = {"model": args.model, "step": step, "guidance": args.guidance, "steps": steps, "num_per_setting": args.num,
              "classifier_accuracy": {a: j.test_accuracy for a, j in zip(cond.attributes, judges)},
              "single": singles, "pairs": pairs, "lit_area_range": area, "lit_area_in_range": shape_like,
              "carried_and_lit_area_in_range": both}
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
