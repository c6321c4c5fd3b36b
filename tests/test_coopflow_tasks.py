"""CoopFlow as a latent-variable generator (sec. 4.4.3, 4.4.4): reconstruction, inpainting, interpolation."""

import json

import numpy as np
import pytest
import torch

from conftest import in_process, tiny
from ebmkit.methods import load_model
from test_coopflow import digits_like, method_of


def initialised(mode="coopflow"):
    name = "coopflow-digits" + ("" if mode == "coopflow" else f"-{mode}")
    m = method_of(name, tiny(name), (1, 8, 8))
    if "flow" in m.nets:
        m.initialize_flow(digits_like(8).x)
    return m


@pytest.mark.parametrize("mode", ["coopflow", "langevin"])
def test_reconstruction_lowers_the_error_and_encodes_through_the_inverse_flow(mode):
    m = initialised(mode)
    x = digits_like(4, seed=1).x
    done = m.infer(x, steps=30, lr=0.05, generator=torch.Generator().manual_seed(0))
    assert done.curve.shape == (4, 31)
    assert done.curve[:, -1].mean() < 0.5 * done.curve[:, 0].mean()
    assert torch.allclose(done.x, m.generate(done.x_hat), atol=1e-5)  # F(x_hat*) is the reconstruction
    assert torch.allclose(m.decode(done.z), done.x, atol=1e-4)        # z = g^{-1}(x_hat*) decodes back to it


def test_flow_alone_reconstructs_by_its_inverse():
    m = initialised("flow")
    x = digits_like(4, seed=2).x.clamp(-0.99, 0.99)
    done = m.infer(x, steps=200, lr=0.05)
    assert done.curve[:, -1].max() < 1e-6
    assert torch.allclose(m.decode(done.z), x, atol=1e-3)


def test_inpainting_fits_only_the_observed_pixels():
    m = initialised()
    x = digits_like(2, seed=3).x
    mask = torch.ones(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 0
    gen = torch.Generator().manual_seed(0)
    filled = m.inpaint(x, mask, 3, gen, infer_steps=30)
    assert filled.shape == (2, 3, 1, 8, 8)
    assert not torch.allclose(filled[:, 0], filled[:, 1])  # different flow initialisations
    nothing = m.infer(x, torch.zeros(1, 1, 8, 8), steps=5, generator=torch.Generator().manual_seed(0))
    start = m.propose(m.ema, 2, torch.Generator().manual_seed(0))
    assert torch.equal(nothing.x_hat, start.clamp(-1, 1))  # no observed pixel, no gradient: the start stays
    assert torch.equal(nothing.curve, torch.zeros(2, 6))


def test_cli_reconstruct_inpaint_interpolate(coopflow_digits, tmp_path):
    r = in_process("reconstruct", "--model", coopflow_digits, "--images", "digits:test", "--limit", "5",
                   "--infer-steps", "4", "--out", tmp_path / "rec.png", "--curve", tmp_path / "curve.json", "--json",
                   check=True)
    report = json.loads(r.stdout)
    assert report["images"] == 5 and report["mse"] <= report["mse_start"]
    assert len(json.loads((tmp_path / "curve.json").read_text())["mse_per_step"]) == 5
    r = in_process("inpaint", "--model", coopflow_digits, "--image", "digits:test", "--limit", "2", "--box", "2,2,4,4",
                   "--num", "2", "--infer-steps", "3", "--out", tmp_path / "fill.npz", "--json", check=True)
    report = json.loads(r.stdout)
    filled = np.load(tmp_path / "fill.npz")["samples"]
    assert filled.shape == (2, 2, 1, 8, 8) and report["observed_mse"] > 0
    assert "--infer-steps" in in_process("inpaint", "--model", coopflow_digits, "--image", "digits:test", "--box",
                                         "2,2,4,4", "--steps", "3", "--out", tmp_path / "x.png").stderr
    r = in_process("interpolate", "--model", coopflow_digits, "--start", "digits:test", "--end", "digits:train",
                   "--points", "5", "--infer-steps", "2", "--out", tmp_path / "row.npz", "--json", check=True)
    assert np.load(tmp_path / "row.npz")["samples"].shape == (7, 1, 8, 8)


def test_interpolate_and_reconstruct_say_what_cdrl_cannot(digits_model, tmp_path):
    r = in_process("interpolate", "--model", digits_model, "--start", "digits:test", "--end", "digits:train",
                   "--out", tmp_path / "row.png")
    assert r.returncode == 2 and "no latent to infer" in r.stderr and "Traceback" not in r.stderr
    r = in_process("reconstruct", "--model", digits_model, "--images", "digits:test", "--out", tmp_path / "r.png")
    assert r.returncode == 2 and "supports: coopflow" in r.stderr


def test_loaded_model_infers_like_the_trained_one(coopflow_digits):
    m, _ = load_model(coopflow_digits)
    x = digits_like(2).x
    a = m.infer(x, steps=2, generator=torch.Generator().manual_seed(0))
    b = m.infer(x, steps=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.x, b.x)
