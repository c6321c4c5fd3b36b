"""Checkpoints: safetensors only, atomic, exact round trips, clear errors on damaged files."""

import pytest
import torch

from conftest import tiny
from ebmkit import checkpoint
from ebmkit.errors import EbmkitError
from ebmkit.methods import build_method, load_model, save_model
from ebmkit.presets import load_preset



@pytest.fixture
def method():
    torch.manual_seed(0)
    return build_method(load_preset("cdrl-points", tiny("cdrl-points")), (2,))


def test_model_round_trip(tmp_path, method):
    path = tmp_path / "m.safetensors"
    for p in method.ema.parameters():  # make EMA differ from the live weights
        p.data.add_(1.0)
    save_model(path, method, step=7)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left behind
    loaded, step = load_model(path)
    assert step == 7 and loaded.preset == method.preset and loaded.shape == (2,)
    for name, module in method.components().items():
        other = loaded.components()[name].state_dict()
        for k, v in module.state_dict().items():
            assert torch.equal(v, other[k]), f"{name}.{k}"
    tensors, meta = checkpoint.read_safetensors(path)
    assert meta["method"] == "cdrl" and meta["ebmkit_version"] and meta["step"] == "7"
    assert {k.split(".")[0] for k in tensors} == {"ebm", "ebm_ema", "init", "init_ema"}


def test_damaged_and_foreign_files(tmp_path, method):
    path = tmp_path / "m.safetensors"
    save_model(path, method, step=1)
    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(EbmkitError, match="corrupt or truncated"):
        load_model(tmp_path / "trunc.safetensors")
    with pytest.raises(EbmkitError, match="corrupt or truncated"):
        load_model(tmp_path / "junk.safetensors")
    with pytest.raises(EbmkitError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
    checkpoint.atomic_save({"w": torch.zeros(2)}, {}, tmp_path / "plain.safetensors")
    with pytest.raises(EbmkitError, match="not an ebmkit model file"):
        load_model(tmp_path / "plain.safetensors")
    tensors, meta = checkpoint.read_safetensors(path)
    checkpoint.atomic_save(tensors, {**meta, "method": "coopflow"}, tmp_path / "other.safetensors")
    with pytest.raises(EbmkitError, match="holds a 'coopflow' model; sample supports: cdrl"):
        load_model(tmp_path / "other.safetensors", supported=("cdrl",), command="sample")


def test_training_state_round_trip_keeps_optimiser_exact(tmp_path, method):
    net = method.nets["ebm"]
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.9))
    for _ in range(2):
        opt.zero_grad()
        net(torch.randn(8, 2), torch.zeros(8)).sum().backward()
        opt.step()
    state = {"opt": opt.state_dict(), "rng": torch.get_rng_state(), "step": 2, "nested": {"xs": [1, 2.5, "a"]}}
    checkpoint.save_state(tmp_path / "s.safetensors", state)
    back = checkpoint.load_state(tmp_path / "s.safetensors")
    assert back["step"] == 2 and back["nested"] == {"xs": [1, 2.5, "a"]}
    assert torch.equal(back["rng"], state["rng"])
    assert set(back["opt"]["state"]) == set(opt.state_dict()["state"])  # int keys survive JSON
    opt2 = torch.optim.Adam(net.parameters(), lr=1.0)
    opt2.load_state_dict(back["opt"])
    for k, v in opt.state_dict()["state"].items():
        for name, t in v.items():
            assert torch.equal(t, opt2.state_dict()["state"][k][name])
    assert opt2.param_groups[0]["lr"] == 1e-3 and tuple(opt2.param_groups[0]["betas"]) == (0.5, 0.9)
