"""CUDA checks; skipped where no GPU is present."""

import pytest
import torch

from conftest import tiny

from ebmkit.langevin import langevin
from ebmkit.methods import load_model
from ebmkit.presets import load_preset
from ebmkit.training import train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_langevin_matches_cpu_in_float64():
    g = torch.Generator().manual_seed(0)
    x0, anchor = torch.randn(64, 8, generator=g, dtype=torch.float64), torch.randn(64, 8, generator=g, dtype=torch.float64)
    f = lambda x: -(x**3).abs().sum(1)  # noqa: E731
    kw = dict(step_size=torch.linspace(0.01, 0.2, 64, dtype=torch.float64), steps=5, noise_weight=0.0,
              anchor_precision=2.0)
    cpu = langevin(f, x0, anchor=anchor, **kw).x
    gpu = langevin(f, x0.cuda(), anchor=anchor.cuda(), **{**kw, "step_size": kw["step_size"].cuda()}).x
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-10)


@pytest.mark.parametrize("name, overrides", [
    ("cdrl-points", []),
    ("cdrl-shapes-cond", tiny("cdrl-shapes-cond")),
    ("coopflow-points", tiny("coopflow-points")),
    ("nerf-lebm-scenes", tiny("nerf-lebm-scenes")),
    ("nerf-lebm-scenes-nopose", tiny("nerf-lebm-scenes-nopose")),
    ("nerf-lebm-scenes-ends-nopose", tiny("nerf-lebm-scenes-ends-nopose")),
    ("nerf-vae-scenes", tiny("nerf-vae-scenes"))])
def test_every_method_trains_previews_and_samples_on_cuda(tmp_path, name, overrides):
    """A few iterations on CUDA with the preview (CUDA generators throughout), then sampling a stored model."""
    preset = load_preset(name, overrides + ["train.iterations=4", "train.ckpt_every=2", "train.sample_every=4",
                                            "train.log_every=1"])
    model = train(preset, tmp_path / "run", device="cuda", quiet=True)
    method, step = load_model(model, "cuda")
    x = method.sample(8, torch.Generator("cuda").manual_seed(0))
    assert step == 4 and method.device.type == "cuda" and len(x) == 8 and torch.isfinite(x).all()
    assert (tmp_path / "run" / "samples").is_dir()
