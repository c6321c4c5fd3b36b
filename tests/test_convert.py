"""`ebmkit convert`: an authors' checkpoint becomes an ebmkit model whose networks and sampler reproduce their
code's outputs. The fixture (tests/fixtures/authors/, made by make_cdrl_fixture.py from AlvinZhuyx/CDRL's own
code at reduced widths with random weights) holds a checkpoint in their format and their code's outputs."""

import argparse
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import AUTHORS, authors_checkpoint, in_process, modified_checkpoint, one_line_error, set_args
from ebmkit.methods import load_model

CDRL = authors_checkpoint("cdrl_tiny.pth.tar")
# The fixture's widths on the preset of the authors' configuration (make_cdrl_fixture.py builds the same)
TINY_CDRL = ["ebm.channels=[8,16]", "ebm.num_res_blocks=1", "ebm.temb_dim=32", "init.base_channels=32",
             "init.channel_mult=[1,1]", "init.num_res_blocks=1", "init.attn_resolutions=[4]", "init.temb_dim=128",
             "data.image_size=8"]


@pytest.fixture(scope="module")
def reference():
    return load_file(AUTHORS / "cdrl_tiny_outputs.safetensors")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The fixture converted twice: EMA weights for sampling (the default) and live weights (--no-ema)."""
    out = tmp_path_factory.mktemp("convert")
    for name, flag in (("ema", "--ema"), ("live", "--no-ema")):
        proc = in_process("convert", "--from", "cdrl", CDRL, "--out", out / f"{name}.safetensors", flag,
                          *set_args(TINY_CDRL), check=True)
        assert "not converted (training state): pi_optimizer" in proc.stderr
    return out


@pytest.mark.parametrize("weights", ["ema", "live"])
def test_cdrl_networks_reproduce_the_authors_code(converted, reference, weights):
    """EBM and initializer outputs at all 7 log-SNRs of their schedule (T = 6), with the weights each file samples with."""
    method, _ = load_model(converted / f"{weights}.safetensors")
    x = reference["x"]
    with torch.no_grad():
        energy = torch.stack([method.ema["ebm"].eval()(x, lam.repeat(len(x))) for lam in reference["logsnr"]])
        init = torch.stack([method.ema["init"].eval()(x, lam.repeat(len(x))) for lam in reference["logsnr"]])
    torch.testing.assert_close(energy, reference[f"ebm_{weights}"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(init, reference[f"init_{weights}"], rtol=1e-4, atol=1e-5)
    other = "live" if weights == "ema" else "ema"
    assert (energy - reference[f"ebm_{other}"]).abs().max() > 1e-2  # the two weight sets do differ
    if weights == "ema":  # the training copy holds the live weights
        with torch.no_grad():
            live = method.nets["ebm"].eval()(x, reference["logsnr"][0].repeat(len(x)))
        torch.testing.assert_close(live, reference["ebm_live"][0], rtol=1e-5, atol=1e-5)


def test_class_conditional_cdrl_reproduces_the_authors_code(tmp_path):
    """main_cond.py's networks (ImageNet 32x32's, at reduced widths, 3 classes): the class embedding of both networks,
    labels 0 (the null class of guidance), 1 and 3, through the default preset chosen for a conditional EBM."""
    reference = load_file(AUTHORS / "cdrl_cond_tiny_outputs.safetensors")
    out = tmp_path / "cond.safetensors"
    tiny = ["ebm.channels=[8,16]", "ebm.num_res_blocks=1", "ebm.temb_dim=32", "init.base_channels=32",
            "init.channel_mult=[1]", "init.num_res_blocks=1", "init.attn_resolutions=[4]", "init.temb_dim=128",
            "data.image_size=4", "conditioning.num_classes=3"]
    in_process("convert", "--from", "cdrl", authors_checkpoint("cdrl_cond_tiny.pth.tar"), "--out", out,
               *[arg for item in tiny for arg in ("--set", item)], check=True)
    method, _ = load_model(out)
    assert method.preset.name == "cdrl-imagenet32-authors"
    x, labels = reference["x"], reference["labels"]
    with torch.no_grad():
        energy = torch.stack([method.ema["ebm"].eval()(x, lam.repeat(3), labels) for lam in reference["logsnr"]])
        init = torch.stack([method.ema["init"].eval()(x, lam.repeat(3), labels) for lam in reference["logsnr"]])
    torch.testing.assert_close(energy, reference["ebm_ema"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(init, reference["init_ema"], rtol=1e-4, atol=1e-5)


def test_cdrl_sampler_reproduces_the_authors_langevin_step(tmp_path, reference):
    """ebmkit's energy f_hat(y_scale x) / s_t^2 and one noiseless Langevin step of its sampler (Eq. 5.3) at every
    level equal their main_uncond.py's; the fixture's step sizes are the code's (step_coef 4e-4 / sbar(lambda_max))."""
    out = tmp_path / "m.safetensors"
    in_process("convert", "--from", "cdrl", CDRL, "--out", out, *set_args([*TINY_CDRL, "sampler.noise_weight=0"]),
               check=True)
    method, _ = load_model(out)
    x, y0, lv = reference["x"], reference["y0"], method.levels
    for t in range(lv.num_levels):
        # their float32 1 - sigmoid(9.8) loses digits at t = 0: relative 1e-3 there
        torch.testing.assert_close(method.log_density(x, t), reference["energy_ema"][t], rtol=1e-3, atol=1e-4)
        y1 = method.refine(method.ema["ebm"], y0, x, torch.full((len(x),), t), None, steps=1)
        torch.testing.assert_close(y1 / lv.y_scale[t], reference["langevin_step_ema"][t], rtol=1e-4, atol=1e-5)


def test_converted_model_is_an_ordinary_model_file(converted, tmp_path, cli):
    path = converted / "ema.safetensors"

    def ok(*args):
        proc = cli(*args)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    info = ok("info", path)
    assert "cdrl-cifar10-authors" in info and "converted by `ebmkit convert` from cdrl_tiny.pth.tar" in info
    assert "EMA weights" in info
    ok("sample", "--model", path, "--num", 2, "--steps", 1, "--out", tmp_path / "s.png")
    ok("inpaint", "--model", path, "--image", "digits:test", "--limit", 2, "--irregular", "--steps", 1,
       "--out", tmp_path / "i.png")
    assert "auroc" in ok("ood-score", "--model", path, "--in-data", "digits:test", "--ood-data", "shapes:test", "--json")
    assert (tmp_path / "s.png").is_file() and (tmp_path / "i.png").is_file()


def test_bad_checkpoints_are_one_line_errors(tmp_path, cli):
    out = tmp_path / "m.safetensors"

    def convert(source, *extra):
        return cli("convert", "--from", "cdrl", source, "--out", out, *set_args(TINY_CDRL), *extra)

    torch.save({"pi_state_dict": argparse.Namespace()}, tmp_path / "pickle.pth")  # only a full unpickler rebuilds it
    one_line_error(convert(tmp_path / "pickle.pth"), 2, "needs a full unpickler")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    one_line_error(convert(tmp_path / "junk.pth"), 2, "not a torch checkpoint that loads with weights_only=True")
    one_line_error(convert(tmp_path / "missing.pth"), 2, "not found")

    extra = modified_checkpoint(tmp_path, CDRL, lambda s: s["pi_state_dict"].update({"module.extra.weight": torch.zeros(1)}))
    one_line_error(convert(extra), 2, "key 'extra.weight' (and 0 more) maps to no ebmkit tensor")
    proc = in_process("convert", "--from", "cdrl", extra, "--out", tmp_path / "lenient.safetensors", *set_args(TINY_CDRL),
                      "--no-strict", "--no-ema", check=True)
    assert "skipped: ebm: extra.weight" in proc.stderr

    lacking = modified_checkpoint(tmp_path, CDRL, lambda s: s["p_state_dict"].pop("module.final_conv.bias"))
    one_line_error(convert(lacking), 2, "the initializer lacks 'out.2.bias'")
    short_ema = modified_checkpoint(tmp_path, CDRL, lambda s: s["pi_ema_state_dict"]["shadow_params"].pop())
    one_line_error(convert(short_ema), 2, "'pi_ema_state_dict' averages")
    not_cdrl = modified_checkpoint(tmp_path, CDRL, lambda s: s.pop("pi_state_dict"))
    one_line_error(convert(not_cdrl), 2, "no 'pi_state_dict' entry")

    one_line_error(convert(CDRL, "--set", "ebm.channels=[8,32]"), 2, "has shape")
    one_line_error(convert(CDRL, "--set", "init.resample=conv"), 2, "init.resample = 'resblock'")
    one_line_error(cli("convert", "--from", "cdrl", CDRL, "--out", out, "--preset", "coopflow-points"), 2,
                   "is a coopflow preset")
    one_line_error(cli("convert", "--from", "nope", CDRL, "--out", out), 2, "not one of cdrl")
    assert not out.exists()  # no failed conversion wrote a model


def test_ema_pairs_parameters_not_buffers():
    """torch_ema averages parameters() only: the pairing skips the spectral-norm vectors (buffers) and keeps the
    live ones, in state-dict order."""
    from ebmkit.convert.torch_files import with_ema

    live = {"a.weight_orig": torch.zeros(2, 3), "a.weight_u": torch.ones(2), "a.weight_v": torch.ones(3),
            "a.bias": torch.zeros(2)}
    ema = {"shadow_params": [torch.full((2, 3), 5.0), torch.full((2,), 7.0)]}
    out = with_ema(live, ema, lambda k: k.endswith(("weight_u", "weight_v")), "ema", "f")
    assert out["a.weight_orig"].eq(5).all() and out["a.bias"].eq(7).all() and out["a.weight_u"].eq(1).all()
