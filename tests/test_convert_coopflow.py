"""`ebmkit convert --from coopflow`: an authors' CoopFlow checkpoint becomes an ebmkit model whose EBM, Flow++ and
sampler reproduce their code's outputs. The fixture (tests/fixtures/authors/, made by make_coopflow_fixture.py from
AlvinZhuyx/CoopFlow's own code at reduced widths with random weights) holds a checkpoint in main_cifar.py's format
and their code's outputs."""

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import AUTHORS, authors_checkpoint, in_process, modified_checkpoint, one_line_error, set_args
from ebmkit.methods import load_model

COOPFLOW = authors_checkpoint("coopflow_tiny.pth.tar")
# The fixture's widths on the preset of the authors' configuration (make_coopflow_fixture.py builds the same)
TINY = ["flow.num_channels=8", "flow.num_blocks=1", "flow.num_components=4", "flow.num_dequant_blocks=1",
        "ebm.channels=[4,8,16,32]"]
D = 3 * 32 * 32


@pytest.fixture(scope="module")
def reference():
    return load_file(AUTHORS / "coopflow_tiny_outputs.safetensors")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("convert") / "coopflow.safetensors"
    proc = in_process("convert", "--from", "coopflow", COOPFLOW, "--out", out, "--ema", *set_args(TINY), check=True)
    assert "hold no EMA weights" in proc.stderr and "ends epoch 3" in proc.stderr
    return out


def test_coopflow_networks_reproduce_the_authors_code(converted, reference):
    """EBM_res's f(x); Flow++'s forward with variational dequantisation (the same noise) and without; their log-
    determinants differ from ebmkit's by constants only (theirs is with respect to (x + 1) / 2, and to w / 256 when
    dequantising)."""
    method, _ = load_model(converted)
    ebm, flow = method.ema["ebm"].eval(), method.ema["flow"].eval()
    with torch.no_grad():
        torch.testing.assert_close(ebm(reference["x"]), reference["ebm_x"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ebm(reference["x_cont"]), reference["ebm_cont"], rtol=1e-5, atol=1e-5)
        z, logdet = flow(reference["x_cont"])
        torch.testing.assert_close(z, reference["z_cont"], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(logdet + D * math.log(2), reference["sldj_cont"], rtol=1e-5, atol=1e-3)
        z, logdet = flow(reference["x"], dequantize=True, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(z, reference["z_deq"], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(logdet + D * math.log(256), reference["sldj_deq"], rtol=1e-5, atol=1e-3)
        live = method.nets["ebm"].eval()(reference["x"])  # the training copy holds the same weights
    torch.testing.assert_close(live, reference["ebm_x"], rtol=1e-5, atol=1e-5)


def test_coopflow_sampler_reproduces_the_authors_samples(converted, reference):
    """sample_flow (x_hat = 2 sigmoid(h) - 1 from z ~ N(0, I)) and ebm_sample (30 steps of size 0.04) of main_cifar.py.
    Their inverse runs the mixture CDF in float32 (sigmoid, then bisection on F), which loses digits where F nears 1:
    up to 7.5e-4 on this fixture, hence atol 1e-3."""
    method, _ = load_model(converted)
    x_hat, x_tilde = method.sample_levels(3, torch.Generator().manual_seed(2))
    torch.testing.assert_close(x_hat, reference["x_flow"], rtol=0, atol=1e-3)
    torch.testing.assert_close(x_tilde, reference["x_ebm"], rtol=0, atol=1e-3)
    with torch.no_grad():  # the exact inverse of ebmkit's default preset samples elsewhere: the options matter
        exact = method.ema["flow"].inverse(reference["z"])
    assert (exact - reference["x_flow"]).abs().max() > 1e-2


def test_converted_model_is_an_ordinary_model_file(converted, tmp_path):
    info = in_process("info", converted, check=True).stdout
    assert "coopflow-cifar10-authors" in info and "converted by `ebmkit convert` from coopflow_tiny.pth.tar" in info
    in_process("sample", "--model", converted, "--num", 2, "--out", tmp_path / "s.png", check=True)
    in_process("reconstruct", "--model", converted, "--images", "digits:test", "--limit", 2, "--infer-steps", 2,
               "--out", tmp_path / "r.png", check=True)
    assert (tmp_path / "s.png").is_file() and (tmp_path / "r.png").is_file()


def test_bad_coopflow_checkpoints_are_one_line_errors(tmp_path, cli):
    out = tmp_path / "m.safetensors"

    def convert(source, *extra):
        return cli("convert", "--from", "coopflow", source, "--out", out, *set_args(TINY), *extra)

    extra = modified_checkpoint(tmp_path, COOPFLOW, lambda s: s["flow_net"].update({"module.extra.weight": torch.zeros(1)}))
    one_line_error(convert(extra), 2, "the flow's key 'extra.weight' (and 0 more) maps to no ebmkit tensor")
    proc = in_process("convert", "--from", "coopflow", extra, "--out", tmp_path / "lenient.safetensors", *set_args(TINY),
                      "--no-strict", check=True)
    assert "skipped: flow: extra.weight" in proc.stderr
    lacking = modified_checkpoint(tmp_path, COOPFLOW, lambda s: s["ebm_net"].pop("module.f.5.bias"))
    one_line_error(convert(lacking), 2, "the EBM lacks 'head.bias'")
    one_line_error(convert(COOPFLOW, "--set", "flow.num_channels=16"), 2, "has shape")
    one_line_error(convert(modified_checkpoint(tmp_path, COOPFLOW, lambda s: s.pop("flow_net"))), 2, "no 'flow_net' entry")
    one_line_error(convert(COOPFLOW, "--set", "flow.bound=0.8"), 2, "the flow's logit bound is")
    one_line_error(cli("convert", "--from", "coopflow", COOPFLOW, "--out", out, "--preset", "cdrl-cifar10-authors"), 2,
                   "is a cdrl preset")
    assert not out.exists()  # no failed conversion wrote a model


def test_pretrained_flow_alone_becomes_a_flow_model(tmp_path, converted):
    """A Flow++ file of the pre-training (`net`, `test_loss`, `epoch`) is a model of the flow alone, with the same
    flow weights as the full checkpoint's flow."""
    source = modified_checkpoint(tmp_path, COOPFLOW, lambda s: s.update(net=s.pop("flow_net"), test_loss=3.5) or
                                 [s.pop(k) for k in ("ebm_net", "ebm_optimizer", "flow_optimizer") if k in s])
    out = tmp_path / "flow.safetensors"
    proc = in_process("convert", "--from", "coopflow", source, "--out", out, *set_args(TINY), check=True)
    assert "a pre-trained Flow++ alone" in proc.stderr
    flow_alone, _ = load_model(out)
    full, _ = load_model(converted)
    assert flow_alone.preset.train.mode == "flow" and "ebm" not in flow_alone.nets
    for key, value in full.ema["flow"].state_dict().items():
        torch.testing.assert_close(flow_alone.ema["flow"].state_dict()[key], value, rtol=0, atol=0)



@pytest.mark.parametrize("data", ["svhn", "celeba"])
def test_svhn_and_celeba_files_take_their_presets(tmp_path, converted, data):
    """main_svhn.py and main_celeba.py build the same networks as main_cifar.py; their presets carry their data and
    their test-time step size (0.035)."""
    out = tmp_path / f"{data}.safetensors"
    in_process("convert", "--from", "coopflow", COOPFLOW, "--out", out, "--preset", f"coopflow-{data}-authors",
               *set_args(TINY), check=True)
    model, _ = load_model(out)
    assert (model.preset.data.name, model.preset.langevin.step_size_test) == (data, 0.035)
    for key, value in load_model(converted)[0].ema["ebm"].state_dict().items():
        torch.testing.assert_close(model.ema["ebm"].state_dict()[key], value, rtol=0, atol=0)
