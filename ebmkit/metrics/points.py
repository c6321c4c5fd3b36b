"""Quality of point models: squared MMD of samples to held-out data beside the data-versus-data baseline,
and for the checkerboard the fraction of samples on its squares."""

import torch

from ebmkit.data import from_config
from ebmkit.data.points import read_points
from ebmkit.data.toy2d import on_checkerboard
from ebmkit.errors import EbmkitError
from ebmkit.metrics.mmd import BANDWIDTHS, mmd2_each

REPEATS = 16  # comparisons averaged per report (points_report; `eval mmd --repeats` has the same default).
# Exact draws of 8gaussians read 1.00 +- 0.21 (sd over 40 trials) with 4, +- 0.12 with 16, +- 0.47 with one
# (docs/diagnostics/mmd_noise.py).


def reference_points(method, num: int, seed: int = 0, ref: str | None = None) -> tuple[torch.Tensor, str]:
    """Up to 2 * num held-out points in data units, and where they come from: the file `ref`; else a fresh
    draw of a built-in set's test split; else the training file itself (a file-trained model has no other)."""
    cfg = method.preset.data
    if ref is not None:
        return read_points(ref), ref
    if cfg.name == "points":
        return read_points(cfg.path), f"{cfg.path} (the training data: give --ref for held-out points)"
    return from_config(cfg.model_copy(update={"num_points": 2 * num}), "test", seed=seed + 7).x, f"{cfg.name}:test"


def _mean_over(runs: list[dict[float, float]]) -> list[float]:
    """Per-bandwidth mean of several mmd2() results."""
    return [sum(r[h] for r in runs) / len(runs) for h in runs[0]]


def points_report(method, num: int = 5000, seed: int = 0, bandwidths: tuple[float, ...] = BANDWIDTHS,
                  steps: int | None = None, ref: str | None = None, repeats: int = REPEATS) -> dict:
    """Samples of a point model against two disjoint halves of held-out data (reference_points), in the
    model's space (so in standard units for data.standardize). With n points per half, n samples.

    Bandwidths are multiples of the reference's standard deviation (root mean square over coordinates),
    so they probe the same structure in any units. One such comparison is noisy (the data-versus-data
    baseline is itself a random O(1/n) figure: one model's ratio ranged 0.95-1.96 over four seeds), so the
    report averages both MMD^2 over `repeats` independent comparisons (fresh samples, fresh halves).
    """
    if len(method.shape) != 1:
        raise EbmkitError("points_report needs a point model")
    data, source = reference_points(method, num * repeats, seed, ref)
    if data.shape[1] != method.shape[0]:
        raise EbmkitError(f"{source} holds {data.shape[1]}-D points, the model draws {method.shape[0]}-D ones")
    n = min(num, len(data) // 2)
    data = method.units.to_model(data)
    bandwidths = tuple(h * float(data.double().var(0).mean().sqrt()) for h in bandwidths)
    samples = method.sample(n * repeats, torch.Generator(method.device).manual_seed(seed), batch_size=n, steps=steps).cpu()
    gen, model, baseline = torch.Generator().manual_seed(seed), [], []
    for r in range(repeats):
        halves = data[torch.randperm(len(data), generator=gen)[:2 * n]]
        ref_pts, second = halves[:n], halves[n:]
        to_samples, to_second = mmd2_each([samples[r * n:(r + 1) * n], second], ref_pts, bandwidths)
        model.append(to_samples)
        baseline.append(to_second)
    report = {
        "num": n, "repeats": repeats, "reference": source, "bandwidths": list(bandwidths),
        "mmd2_model": _mean_over(model), "mmd2_data": _mean_over(baseline),
        "ratio_each": [sum(m.values()) / sum(d.values()) for m, d in zip(model, baseline)],
        "finite": bool(torch.isfinite(samples).all()),
    }
    report["mmd2_model_sum"], report["mmd2_data_sum"] = sum(report["mmd2_model"]), sum(report["mmd2_data"])
    report["ratio"] = report["mmd2_model_sum"] / report["mmd2_data_sum"]
    if method.preset.data.name == "checkerboard" and ref is None:
        scale = method.preset.data.toy_scale
        report["on_squares"] = float(on_checkerboard(method.units.to_data(samples) / scale).float().mean())
        report["on_squares_data"] = float(on_checkerboard(method.units.to_data(second) / scale).float().mean())
    return report
