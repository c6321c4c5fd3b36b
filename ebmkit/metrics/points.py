"""Quality of 2-D models: squared MMD to fresh data beside the data-versus-data baseline, and for the
checkerboard the fraction of samples on its squares."""

import torch

from ebmkit.data import from_config
from ebmkit.data.toy2d import on_checkerboard
from ebmkit.metrics.mmd import BANDWIDTHS, mmd2


def points_report(method, num: int = 5000, seed: int = 0, bandwidths: tuple[float, ...] = BANDWIDTHS,
                  steps: int | None = None) -> dict:
    """Samples of a 2-D model against two fresh draws of its data (the test split, unseen in training).

    Bandwidths are multiplied by the preset's data.scale, so they probe the same structure at any scale.
    """
    cfg = method.preset.data
    bandwidths = tuple(h * cfg.scale for h in bandwidths)
    if len(method.shape) != 1:
        raise ValueError("points_report needs a 2-D model")
    data = from_config(cfg.model_copy(update={"num_points": 2 * num}), "test", seed=seed + 7).x
    ref, second = data[:num], data[num:]
    samples = method.sample(num, torch.Generator(method.device).manual_seed(seed), batch_size=num, steps=steps).cpu()
    model, baseline = mmd2(samples, ref, bandwidths), mmd2(second, ref, bandwidths)
    report = {
        "num": num, "bandwidths": list(bandwidths),
        "mmd2_model": list(model.values()), "mmd2_data": list(baseline.values()),
        "mmd2_model_sum": sum(model.values()), "mmd2_data_sum": sum(baseline.values()),
    }
    report["ratio"] = report["mmd2_model_sum"] / report["mmd2_data_sum"]
    if cfg.name == "checkerboard":
        report["on_squares"] = float(on_checkerboard(samples / cfg.scale).float().mean())
        report["on_squares_data"] = float(on_checkerboard(second / cfg.scale).float().mean())
    return report
