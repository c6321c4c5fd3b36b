"""How often composed samples carry the requested attributes (sec. 5.4.6, Fig. 5.6), judged by classifiers
trained on the real images, one per attribute (metrics/domain.py), for models of a built-in attribute set.

Single attributes: every value of every attribute alone. Pairs: every combination of two attributes'
values. A second, hand-made judge asks whether a sample looks like one object on black at all: its lit
area (pixels whose brightest channel exceeds LIT) lies within the range of the training images. A frame
filled with colour can fool the attribute classifiers, never this.
"""

import itertools
from pathlib import Path

import torch

from ebmkit import viz
from ebmkit.data import from_config, from_model_space
from ebmkit.errors import EbmkitError
from ebmkit.metrics.domain import DomainFeatures

LIT = 64  # a pixel is lit when its brightest channel exceeds this (uint8)


def lit_area(x: torch.Tensor) -> torch.Tensor:
    """(N,) share of the frame lit in uint8 images (N, C, H, W)."""
    return (x.amax(1) > LIT).float().flatten(1).mean(1)


def _settings(cond) -> dict[str, list[dict[int, int]]]:
    """Name -> the requests ({attribute: value}) it averages over: each attribute alone, then each pair."""
    out = {a: [{j: v} for v in range(len(cond.values[j]))] for j, a in enumerate(cond.attributes)}
    for j, k in itertools.combinations(range(len(cond.attributes)), 2):
        out[f"{cond.attributes[j]}+{cond.attributes[k]}"] = [
            {j: u, k: v} for u, v in itertools.product(range(len(cond.values[j])), range(len(cond.values[k])))]
    return out


def compose_report(method, num: int = 24, guidance: float = 3.0, steps: int | None = None, seed: int = 0,
                   progress=None) -> dict:
    """Per attribute and pair of attributes: the share of `num` samples per request carrying every requested
    value, the share whose lit area lies in the training images' range, and the share with both."""
    cond = method.preset.conditioning
    if cond.kind != "attributes":
        raise EbmkitError("the model is not attribute-conditional; eval compose needs conditioning.kind = 'attributes'")
    size = method.shape[-1]
    judges = [DomainFeatures(method.preset.data.name, size, method.device, target=a) for a in cond.attributes]
    real = lit_area(from_config(method.preset.data, "train").x)
    area = (float(real.min()), float(real.max()))
    seeds = itertools.count(seed)
    carried, in_range, both = {}, {}, {}
    for name, requests in _settings(cond).items():
        ok, lit = [], []
        for wanted in requests:
            x = from_model_space(method.sample(num, torch.Generator(method.device).manual_seed(next(seeds)),
                                               progress=progress, steps=steps, guidance=guidance,
                                               labels=method.attribute_labels(wanted, num)))
            ok.append(torch.stack([judges[j].classify(x) == v for j, v in wanted.items()], 1).all(1))
            lit.append((lit_area(x) >= area[0]) & (lit_area(x) <= area[1]))
        ok, lit = torch.cat(ok), torch.cat(lit)
        carried[name], in_range[name], both[name] = (float(v.float().mean()) for v in (ok, lit, ok & lit))
    singles = {a: carried.pop(a) for a in cond.attributes}
    return {"guidance": guidance, "steps": method.preset.sampler.steps if steps is None else steps,
            "num_per_request": num, "classifier_accuracy": {a: j.test_accuracy for a, j in zip(cond.attributes, judges)},
            "single": singles, "pairs": carried, "lit_area_range": area, "lit_area_in_range": in_range,
            "carried_and_lit_area_in_range": both}


def compose_figure(method, rows: list[list[str]], path: Path, guidance: float = 3.0, steps: int | None = None,
                   per_row: int = 8, seed: int = 100) -> None:
    """Fig. 5.6's manner: one row of `per_row` samples per composition (a list of NAME=VALUE)."""
    cond = method.preset.conditioning
    x = []
    for i, items in enumerate(rows):
        labels = method.attribute_labels(dict(cond.attribute_index(a) for a in items), per_row)
        x.append(method.sample(per_row, torch.Generator(method.device).manual_seed(seed + i), steps=steps,
                               guidance=guidance, labels=labels))
    viz.save_grid(torch.cat(x), path, nrow=per_row)
