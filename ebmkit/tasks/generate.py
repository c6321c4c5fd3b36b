"""Sampling requests: class-conditional (Eq. 5.9, 5.10) and compositional (Eq. 5.11, 5.12) labels,
NeRF-LEBM's grids of Fig. 3.4, and the per-level picture of a 2-D model (Fig. 5.5)."""

import math
from pathlib import Path

import torch

from ebmkit import viz
from ebmkit.errors import EbmkitError


def langevin_steps(steps: int | None, no_langevin: bool) -> int | None:
    """--steps, or 0 for --no-langevin (the initializer alone, Fig. 5.9 a)."""
    if no_langevin and steps not in (None, 0):
        raise EbmkitError("--no-langevin and --steps contradict each other")
    return 0 if no_langevin else steps


def class_request(method, classes: list[str], guidance: float | None, num: int) -> tuple[dict, int | None, dict]:
    """For `--class C ... [--guidance w]`: the keyword arguments of method.sample (labels, guidance), the
    grid's row length (one row per class) and the request as reported. Empty without --class/--guidance."""
    if not classes and guidance is None:
        return {}, None, {}
    cond = method.preset.conditioning
    if cond.kind != "class":
        hint = " (attribute models: use `ebmkit compose`)" if cond.kind == "attributes" else ""
        raise EbmkitError(f"--class and --guidance need a class-conditional model; this one is not{hint}")
    if not classes:
        raise EbmkitError("--guidance needs --class (a number or name, repeatable, or 'all')")
    ids = list(range(cond.num_classes)) if classes == ["all"] else [cond.class_index(c) for c in classes]
    nrow = -(-num // len(ids))
    labels = method.class_labels(torch.tensor(ids).repeat_interleave(nrow)[:num])
    return {"labels": labels, "guidance": guidance or 0.0}, nrow, {"guidance": guidance or 0.0, "classes": ids}


def attribute_request(method, attrs: list[str], guidance: float, num: int) -> tuple[dict, dict]:
    """For `compose --attr NAME=VALUE ...`: the keyword arguments of method.sample and the attribute values
    by name, as reported."""
    cond = method.preset.conditioning
    if cond.kind != "attributes":
        raise EbmkitError(f"the model is not attribute-conditional (conditioning.kind = {cond.kind!r}); "
                          "compose needs a model trained with attributes")
    wanted = dict(cond.attribute_index(a) for a in attrs)
    if len(wanted) != len(attrs):
        raise EbmkitError("each attribute may be given once")
    named = {cond.attributes[j]: cond.values[j][v] for j, v in wanted.items()}
    return {"labels": method.attribute_labels(wanted, num), "guidance": guidance}, named


def scene_grid(method, num: int, kind: str | None, generator: torch.Generator,
               use_ema: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """NeRF-LEBM's grids of Fig. 3.4 with about `num` images: images and inverse depths in model space
    [-1, 1], and the row length."""
    nrow = math.isqrt(num - 1) + 1
    x, inv_depth = method.grid(kind or "random", nrow, nrow, generator, use_ema=use_ema)
    return 2 * x.cpu() - 1, 2 * inv_depth.cpu() - 1, nrow


def levels_figure(method, path: Path, generator: torch.Generator, steps: int | None, use_ema: bool) -> Path:
    """Fig. 5.5 for a 2-D model beside its scatter `path`, in model space: data, learned density and samples
    at every noise level. A model trained on a file shows no data row: no file its metadata names is read."""
    from ebmkit.metrics.points import reference_points

    data = None
    if method.preset.data.name != "points":  # a built-in set: a fresh draw
        data = method.units.to_model(reference_points(method, 1000, method.preset.train.seed)[0][:2000])
        data = data.to(method.device)
    levels = method.sample_levels(2000, generator, steps=steps, use_ema=use_ema)
    figure = path.with_name(path.stem + "_levels.png")
    viz.levels_figure_2d(method, data, levels, figure, generator)
    return figure
