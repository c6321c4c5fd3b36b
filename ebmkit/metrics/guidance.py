"""A metric across classifier-free guidance weights (Fig. 5.3 c, d): for each weight w, samples of
every class; FID (domain or Inception) and, where the feature space is a classifier over the model's
classes, the share of samples recognised as the requested class."""

from pathlib import Path

import torch

from ebmkit import viz
from ebmkit.data import from_model_space
from ebmkit.errors import EbmkitError
from ebmkit.metrics import fid
from ebmkit.metrics.frechet import frechet_distance


def guidance_sweep(method, weights: list[float], num_per_class: int, ref: str | None = None, features: str = "auto",
                   inception_weights: str | Path | None = None, seed: int = 0, batch_size: int = 256,
                   steps: int | None = None, progress=None, plot: Path | None = None) -> dict:
    """For each weight: FID against `ref` (default the model's training data) and, where the feature space
    classifies the model's classes, accuracy on the requested class. {"metric", "ref", "rows"}; the curves
    against w are drawn into `plot` (.png) if given."""
    cond = method.preset.conditioning
    if cond.kind != "class":
        raise EbmkitError("the model is not class-conditional; a guidance sweep needs conditioning.kind = 'class'")
    reference = fid.resolve_reference(ref, method.preset.data, method.shape[-1])
    space = fid.feature_space(features, reference.builtin, method.shape[-1], method.device, inception_weights)
    ref_stats = fid.reference_stats(space, reference, batch_size)
    classes = torch.arange(cond.num_classes).repeat_interleave(num_per_class)   # (K * n,)
    names = cond.class_names or [str(i) for i in range(cond.num_classes)]
    can_classify = hasattr(space, "classify") and list(space.class_names) == names
    rows = []
    for w in weights:
        gen = torch.Generator(method.device).manual_seed(seed)  # the same noise for every weight
        x = from_model_space(method.sample(len(classes), gen, batch_size=batch_size, steps=steps,
                                           labels=method.class_labels(classes), guidance=w, progress=progress))
        row = {"guidance": w, "num": len(x), "fid": frechet_distance(fid.stats_of(space, x, f"w={w}"), ref_stats)}
        if can_classify:
            row["accuracy"] = float((space.classify(x) == classes).float().mean())
        rows.append(row)
    if plot is not None:
        curves = {space.label.split(" (")[0]: [r["fid"] for r in rows]}
        if can_classify:
            curves["accuracy on the requested class"] = [r["accuracy"] for r in rows]
        viz.save_curves(weights, curves, plot, "guidance weight w")
    return {"metric": space.label, "ref": ref_stats.source, "rows": rows}
