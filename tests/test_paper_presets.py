"""The paper-scale presets build and take a training step and a sampling pass (tiny batch, 1 Langevin step)."""

import pytest
import torch

from ebmkit.methods import Batch, build_method
from ebmkit.presets import load_preset

CASES = {  # preset: (example shape, conditioning of the batch)
    "cdrl-cifar10": ((3, 32, 32), None),
    "drl-cifar10": ((3, 32, 32), None),
    "cdrl-imagenet32": ((3, 32, 32), "labels"),
    "cdrl-imagenet32-uncond": ((3, 32, 32), None),
    "cdrl-celeba64-compose": ((3, 64, 64), "attributes"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_paper_preset_step_and_sample(name):
    torch.manual_seed(0)
    shape, cond = CASES[name]
    method = build_method(load_preset(name, ["sampler.steps=1"]), shape)
    batch = Batch(x=torch.rand(2, *shape) * 2 - 1)
    if cond == "labels":
        batch.labels = torch.tensor([3, 999])
    elif cond == "attributes":
        batch.attributes = torch.tensor([[True, False, True], [False, False, True]])
    losses, metrics = method.train_step(batch, dict(method.nets.items()))
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in [*losses.values(), *metrics.values()])
    assert all(p.grad is not None for p in method.nets["ebm"].parameters() if p.requires_grad)
    x = method.sample(1, torch.Generator().manual_seed(0))
    assert x.shape == (1, *shape) and torch.isfinite(x).all()
