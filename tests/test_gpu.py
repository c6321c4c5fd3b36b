"""CUDA checks; skipped where no GPU is present."""

import pytest
import torch

from ebmkit.langevin import langevin
from ebmkit.presets import load_preset
from ebmkit.train import train

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


def test_train_and_sample_on_cuda(tmp_path):
    preset = load_preset("cdrl-checkerboard", ["train.iterations=20", "train.ckpt_every=10", "train.sample_every=20"])
    model = train(preset, tmp_path / "run", device="cuda", quiet=True)
    from ebmkit.methods import load_model

    method, step = load_model(model, "cuda")
    x = method.sample(100, torch.Generator("cuda").manual_seed(0))
    assert step == 20 and x.shape == (100, 2) and torch.isfinite(x).all()
