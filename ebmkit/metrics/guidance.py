"""A metric across classifier-free guidance weights (Fig. 5.3 c, d): for each weight w, samples of
every class; FID (domain or Inception) and, where the feature space is a classifier over the model's
classes, the share of samples recognised as the requested class."""

import torch

from ebmkit.data import from_model_space
from ebmkit.metrics.fid import stats_of
from ebmkit.metrics.frechet import FeatureStats, frechet_distance


def guidance_sweep(method, weights: list[float], num_per_class: int, space, ref_stats: FeatureStats,
                   seed: int = 0, batch_size: int = 256, steps: int | None = None, progress=None) -> list[dict]:
    cond = method.preset.conditioning
    classes = torch.arange(cond.num_classes).repeat_interleave(num_per_class)   # (K * n,)
    names = cond.class_names or [str(i) for i in range(cond.num_classes)]
    can_classify = hasattr(space, "classify") and list(space.class_names) == names
    rows = []
    for w in weights:
        gen = torch.Generator(method.device).manual_seed(seed)  # the same noise for every weight
        x = from_model_space(method.sample(len(classes), gen, batch_size=batch_size, steps=steps,
                                           labels=method.class_labels(classes), guidance=w, progress=progress))
        row = {"guidance": w, "num": len(x), "fid": frechet_distance(stats_of(space, x, f"w={w}"), ref_stats)}
        if can_classify:
            row["accuracy"] = float((space.classify(x) == classes).float().mean())
        rows.append(row)
    return rows
