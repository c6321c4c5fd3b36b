"""`ebmkit convert --from nerf-lebm`: an authors' NeRF-LEBM checkpoint (Carla, known poses, MCMC or amortized inference)
becomes an ebmkit model whose generator, renderer, latent EBMs and encoder reproduce their code's outputs. The fixtures
(tests/fixtures/authors/, made by make_nerf_lebm_fixture.py and make_nerf_lebm_amortized_fixture.py from
AlvinZhuyx/NeRF-LEBM's own code at reduced widths with random weights) hold checkpoints in train_nerf_lebm.py's and
train_nerf_lebm_amortize.py's formats and their code's outputs."""

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import authors_checkpoint, ebmkit, in_process, modified_checkpoint, one_line_error, set_args
from ebmkit.methods import load_model
from ebmkit.methods.base import Batch
from ebmkit.nerf.render import render_rays

FIXTURES = Path(__file__).parent / "fixtures" / "authors"
NERF = FIXTURES / "nerf_lebm_tiny.tar"
# The fixture's widths on the preset of the authors' configuration (make_nerf_lebm_fixture.py builds the same)
TINY = ["generator.width=32", "generator.freqs_xyz=3", "generator.freqs_dir=2", "generator.map_hidden=32",
        "generator.map_out=16", "latents.dim=16", "latents.shape.hidden=32", "latents.appearance.hidden=32",
        "render.num_samples=8", "latents.prior_steps=2"]
PIXELS = [[0, 0], [31, 20], [32, 40], [63, 10]]  # (row, column) of the fixture's rays in 64 x 64 images
# Their cameras pose_spherical(theta, phi) for (30, -20) and (-110, -35): elevation -phi, azimuth 90 - theta degrees
POSES = torch.tensor([[[20.0, 60.0]], [[35.0, -160.0]]]) * math.pi / 180     # (B, V, 2)
# make_nerf_lebm_amortized_fixture.py's widths on nerf-lebm-carla-amortized-authors
TINY_AMORTIZED = ["generator.width=16", "generator.freqs_xyz=3", "generator.freqs_dir=2", "generator.map_hidden=16",
                  "generator.map_out=8", "latents.dim=8", "latents.shape.hidden=16", "latents.appearance.hidden=16",
                  "render.num_samples=8", "render.importance_samples=6", "inference.encoder_width=2",
                  "latents.prior_steps=2"]


@pytest.fixture(scope="module")
def reference():
    return load_file(FIXTURES / "nerf_lebm_tiny_outputs.safetensors")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("convert") / "nerf.safetensors"
    proc = ebmkit("convert", "--from", "nerf-lebm", NERF, "--out", out, *set_args(TINY), check=True)
    assert "hold no EMA weights" in proc.stderr and "global step 1234" in proc.stderr
    assert "optimizer_state_dict, optimizer_ebm_state_dict" in proc.stderr
    return out


def test_nerf_networks_reproduce_the_authors_code(converted, reference):
    """EnCoder(30 normalize(z)) = the mapping MLPs; run_network's raw outputs as raw2outputs reads them (softplus
    density, 0.5 (tanh + 1) colour); the EBMs' energies E = -f."""
    method, step = load_model(converted)
    assert step == 1234
    gen = method.ema["gen"].eval()
    with torch.no_grad():
        torch.testing.assert_close(gen.map_shape(reference["z_shape"]), reference["map_s"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gen.map_app(reference["z_app"]), reference["map_a"], rtol=1e-5, atol=1e-5)
        sigma, rgb = gen(reference["points"], reference["dirs"], reference["z_shape"], reference["z_app"])
        torch.testing.assert_close(sigma, reference["sigma"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(rgb, reference["rgb"], rtol=1e-5, atol=1e-6)
        for name, key in (("prior_s", "en_s"), ("prior_a", "en_a")):
            torch.testing.assert_close(method.ema[name](reference["z_ebm"]), -reference[key], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(method.nets[name](reference["z_ebm"]), -reference[key], rtol=1e-5, atol=1e-6)


def test_nerf_renders_reproduce_the_authors_rays(converted, reference):
    """Their render() of 8 rays (get_rays directions, not normalised; 8 samples in [7.5, 12.5], perturb 0 and 1 with
    the same uniform draws), by render_rays with quadrature "nerf", and by the method's render at the same cameras
    (POSES) and pixels."""
    method, _ = load_model(converted)
    gen = method.ema["gen"].eval()
    z = torch.stack([reference["z_shape"], reference["z_app"]], 1)  # (2, 2, 16)

    def field(points, dirs):  # (B, R, N, 3)
        b, r, n = points.shape[:3]
        sigma, rgb = gen(points.flatten(1, 2), dirs.flatten(1, 2), z[:, 0], z[:, 1])
        return sigma.view(b, r, n), rgb.view(b, r, n, 3)

    with torch.no_grad():
        out = render_rays(field, reference["rays_o"], reference["rays_d"], 8, 7.5, 12.5, quadrature="nerf")
        torch.testing.assert_close(out.rgb, reference["render_rgb"], rtol=0, atol=1e-5)
        torch.testing.assert_close(out.opacity, reference["render_acc"], rtol=0, atol=1e-5)
        out = render_rays(field, reference["rays_o"], reference["rays_d"], 8, 7.5, 12.5, quadrature="nerf",
                          stratified=True, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(out.rgb, reference["render_rgb_strat"], rtol=0, atol=1e-5)
        pixels = torch.tensor([r * 64 + c for r, c in PIXELS]).expand(2, 1, -1)       # (B, V, R)
        rgb, _ = method.render(gen, z, POSES, pixels)
        torch.testing.assert_close(rgb[:, 0], reference["render_rgb"], rtol=0, atol=1e-5)
        default = render_rays(field, reference["rays_o"], reference["rays_d"] / reference["rays_d"].norm(
            dim=-1, keepdim=True), 8, 7.5, 12.5)  # ebmkit's own quadrature renders otherwise: the option matters
    assert (default.rgb - reference["render_rgb"]).abs().max() > 1e-3


def test_converted_model_is_an_ordinary_model_file(converted, tmp_path):
    info = ebmkit("info", converted, check=True).stdout
    assert "nerf-lebm-carla-mcmc-authors" in info and "converted by `ebmkit convert` from nerf_lebm_tiny.tar" in info
    ebmkit("sample", "--model", converted, "--num", 2, "--out", tmp_path / "s.png", check=True)
    assert (tmp_path / "s.png").is_file()


def test_bad_nerf_checkpoints_are_one_line_errors(tmp_path, cli):
    out = tmp_path / "m.safetensors"

    def convert(source, *extra):
        return cli("convert", "--from", "nerf-lebm", source, "--out", out, *set_args(TINY), *extra)

    extra = modified_checkpoint(tmp_path, NERF, lambda s: s["network_fn_state_dict"].update(
        {"module.extra.weight": torch.zeros(1)}))
    one_line_error(convert(extra), 2, "the generator's key 'extra.weight' (and 0 more) maps to no ebmkit tensor")
    proc = ebmkit("convert", "--from", "nerf-lebm", extra, "--out", tmp_path / "lenient.safetensors", *set_args(TINY),
                  "--no-strict", check=True)
    assert "skipped: gen: extra.weight" in proc.stderr
    lacking = modified_checkpoint(tmp_path, NERF, lambda s: s["ebm_app_state_dict"].pop("module.ebm.8.bias"))
    one_line_error(convert(lacking), 2, "the appearance prior lacks 'net.8.bias'")
    one_line_error(convert(NERF, "--set", "latents.shape.hidden=64"), 2, "has shape")
    one_line_error(convert(NERF, "--set", "generator.skip=4"), 2, "set generator.skip=5")
    one_line_error(convert(modified_checkpoint(tmp_path, NERF, lambda s: s.pop("encoder_app_state_dict"))), 2,
                   "no 'encoder_app_state_dict' entry")
    fine = modified_checkpoint(tmp_path, NERF, lambda s: s.update(network_fine_state_dict=s["network_fn_state_dict"]))
    one_line_error(convert(fine), 2, "holds 'network_fine_state_dict', --preset 'nerf-lebm-carla-mcmc-authors' has "
                                     "render.importance_samples 0")
    one_line_error(cli("convert", "--from", "nerf-lebm", NERF, "--out", out, "--preset", "cdrl-cifar10-authors"), 2,
                   "is a cdrl preset")
    assert not out.exists()  # no failed conversion wrote a model


# ---------------------------------------------------------------------------- Carla_amortize_inference
@pytest.fixture(scope="module")
def amortized_source():
    return authors_checkpoint("nerf_lebm_amortized_tiny.tar")


@pytest.fixture(scope="module")
def amortized_reference():
    return load_file(FIXTURES / "nerf_lebm_amortized_tiny_outputs.safetensors")


@pytest.fixture(scope="module")
def amortized(amortized_source, tmp_path_factory):
    """The converted model file (default preset: the file holds an inference model) and the model."""
    out = tmp_path_factory.mktemp("convert") / "amortized.safetensors"
    proc = in_process("convert", "--from", "nerf-lebm", amortized_source, "--out", out, *set_args(TINY_AMORTIZED),
                      check=True)
    assert "global step 4321" in proc.stderr and "optimizer_state_dict, optimizer_ebm_state_dict" in proc.stderr
    return out, load_model(out)[0]


def test_amortized_networks_reproduce_the_authors_code(amortized, amortized_reference):
    """Their mapping MLPs, coarse and fine NeRFs (raw outputs as raw2outputs reads them), EBM energies E = -f, and
    inference model (eval mode): posterior means, log-variances (2 log sigma) and KL to N(0, I) (Eq. 3.20)."""
    method, ref = amortized[1], amortized_reference
    gen = method.ema["gen"]
    with torch.no_grad():
        torch.testing.assert_close(gen.map_shape(ref["z_shape"]), ref["map_s"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(gen.map_app(ref["z_app"]), ref["map_a"], rtol=1e-5, atol=1e-6)
        for suffix, fine in (("", False), ("_fine", True)):
            sigma, rgb = gen(ref["points"], ref["dirs"], ref["z_shape"], ref["z_app"], fine=fine)
            torch.testing.assert_close(sigma, ref[f"sigma{suffix}"], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(rgb, ref[f"rgb{suffix}"], rtol=1e-5, atol=1e-6)
        for name, key in (("prior_s", "en_s"), ("prior_a", "en_a")):
            torch.testing.assert_close(method.ema[name](ref["z_ebm"]), -ref[key], rtol=1e-5, atol=1e-6)
        images = ref["pixel_values"] / 255
        mu_s, log_s, mu_a, log_a = method.ema["heads"](method.ema["encoder"](images)[0])
        for got, key in ((mu_s, "mu_shape"), (mu_a, "mu_app"), (2 * log_s, "logvar_shape"), (2 * log_a, "logvar_app")):
            torch.testing.assert_close(got, ref[key], rtol=1e-5, atol=1e-5)
        _, kl, _, _ = method.amortized(method.ema, Batch(x=images[:, None]))
        torch.testing.assert_close(kl.mean(), ref["kl"], rtol=1e-5, atol=0)
        z = method.infer_objects(images[:, None], torch.zeros(3, 1, 2))           # the posterior means
        torch.testing.assert_close(z, torch.stack([ref["mu_shape"], ref["mu_app"]], 1), rtol=1e-5, atol=1e-5)


def test_amortized_renders_reproduce_the_authors_hierarchical_sampling(amortized, amortized_reference):
    """Their render() of 8 rays with 8 coarse and 6 importance samples: the fine pass (rgb_map, acc_map) and the coarse
    one (rgb0, acc0), with perturb 0 (sample_pdf's fixed quantiles) and perturb 1 (the same uniform draws, for the
    depths and for sample_pdf); pictures show the coarse pass (render.image_pass, their render_path)."""
    method, ref = amortized[1], amortized_reference
    gen = method.ema["gen"]
    z = torch.stack([ref["z_shape"], ref["z_app"]], 1)  # (2, 2, 8) as (z_s, z_a)
    pixels = torch.tensor([r * 64 + c for r, c in PIXELS]).expand(2, 1, -1)
    with torch.no_grad():
        coarse, fine = method.render_passes(gen, z, POSES, pixels)
        torch.testing.assert_close(fine.rgb[:, 0], ref["render_rgb"], rtol=0, atol=1e-5)
        torch.testing.assert_close(fine.opacity[:, 0], ref["render_acc"], rtol=0, atol=1e-5)
        torch.testing.assert_close(coarse.rgb[:, 0], ref["render_rgb0"], rtol=0, atol=1e-5)
        torch.testing.assert_close(coarse.opacity[:, 0], ref["render_acc0"], rtol=0, atol=1e-5)
        coarse, fine = method.render_passes(gen, z, POSES, pixels, stratified=True,
                                            generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(fine.rgb[:, 0], ref["render_rgb_strat"], rtol=0, atol=1e-5)
        torch.testing.assert_close(coarse.rgb[:, 0], ref["render_rgb0_strat"], rtol=0, atol=1e-5)
        torch.testing.assert_close(method.render(gen, z, POSES, pixels)[0][:, 0], ref["render_rgb0"], rtol=0, atol=1e-5)
    assert (ref["render_rgb"] - ref["render_rgb0"]).abs().max() > 0.1  # the passes differ: each one is checked


def test_amortized_model_samples_renders_novel_views_and_trains(amortized, amortized_reference, tmp_path):
    path, method = amortized
    assert "nerf-lebm-carla-amortized-authors" in in_process("info", path, check=True).stdout
    in_process("sample", "--model", path, "--num", 2, "--out", tmp_path / "s.png", check=True)
    view = tmp_path / "view.png"
    Image.fromarray(amortized_reference["pixel_values"][0].permute(1, 2, 0).numpy()).save(view)
    (tmp_path / "poses.json").write_text(json.dumps({"views": {"view.png": [20, 60]}, "targets": [[30, 90]]}))
    in_process("novel-view", "--model", path, "--views", view, "--poses", tmp_path / "poses.json", "--out",
               tmp_path / "nv", check=True)
    assert (tmp_path / "s.png").is_file() and len(list((tmp_path / "nv").glob("0*.png"))) == 1
    images = amortized_reference["pixel_values"][:2, None] / 255                            # (B, V, 3, 64, 64)
    losses, _ = method.train_step(Batch(x=images, poses=POSES), method.nets)
    sum(losses.values()).backward()                                   # the likelihood scores both passes
    assert all(torch.isfinite(v) for v in losses.values())
    assert method.nets["gen"].fine.sigma.weight.grad.abs().sum() > 0


def test_bad_amortized_checkpoints_are_one_line_errors(amortized_source, tmp_path, cli):
    def convert(source, *extra):
        return cli("convert", "--from", "nerf-lebm", source, "--out", tmp_path / "m.safetensors",
                   *set_args(TINY_AMORTIZED), *extra)

    def modified(change):
        return modified_checkpoint(tmp_path, amortized_source, change)

    one_line_error(convert(modified(lambda s: s["inference_model_state_dict"].pop("module.fc_app_logvar.bias"))), 2,
                   "the encoder's heads lacks 'app_logvar.bias'")
    one_line_error(convert(modified(lambda s: s["inference_model_state_dict"].update(
        {"module.fc_pose.weight": torch.zeros(1)}))), 2, "the inference model's key 'fc_pose.weight'")
    one_line_error(convert(modified(lambda s: s.pop("network_fine_state_dict"))), 2,
                   "has no 'network_fine_state_dict', --preset 'nerf-lebm-carla-amortized-authors' has "
                   "render.importance_samples 6")
    mcmc = [o for o in TINY_AMORTIZED if not o.startswith("inference.")]
    one_line_error(cli("convert", "--from", "nerf-lebm", amortized_source, "--out", tmp_path / "m.safetensors",
                       "--preset", "nerf-lebm-carla-mcmc-authors", *set_args(mcmc)), 2,
                   "'inference_model_state_dict' holds the authors' encoder")
    one_line_error(convert(amortized_source, "--set", "inference.encoder_width=4"), 2, "has shape")
    assert not (tmp_path / "m.safetensors").exists()
