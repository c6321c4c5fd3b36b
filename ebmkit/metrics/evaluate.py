"""Periodic evaluation during training (`ebmkit train --eval-every N`), for any method that samples.

The figure depends on the data: squared-MMD ratio to fresh draws for 2-D sets, domain-FID for the
built-in image sets, Inception FID (weights from $EBMKIT_INCEPTION_WEIGHTS) for every other set.
References are computed once, when the evaluator is made, so a bad setting fails before training.
"""

from collections.abc import Callable

import torch

from ebmkit.data import Dataset, from_model_space
from ebmkit.metrics.fid import DOMAIN_SETS, feature_space, stats_of
from ebmkit.metrics.frechet import frechet_distance
from ebmkit.metrics.points import points_report


def make_evaluator(method, data: Dataset, num: int, seed: int = 0) -> Callable[[], dict]:
    """A function returning {figure name: value} for the method's current EMA weights."""
    if len(method.shape) == 1:
        def evaluate_points() -> dict:
            report = points_report(method, num, seed)
            return {"mmd2_ratio": report["ratio"], **({"on_squares": report["on_squares"]} if "on_squares" in report else {})}
        return evaluate_points

    name = method.preset.data.name
    space = feature_space("auto", name if name in DOMAIN_SETS else None, data.shape[-1], method.device)
    ref = stats_of(space, data.x, f"{name}:train")  # the training split the model learns
    key = "domain_fid" if name in DOMAIN_SETS else "fid"

    def evaluate_images() -> dict:
        gen = torch.Generator(method.device).manual_seed(seed)
        samples = from_model_space(method.sample(num, gen))
        return {key: frechet_distance(stats_of(space, samples, "samples"), ref), f"{key}_num": num}
    return evaluate_images
