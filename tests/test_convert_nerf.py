"""`ebmkit convert --from nerf-lebm`: an authors' NeRF-LEBM checkpoint (Carla, known poses, MCMC) becomes an ebmkit
model whose generator, renderer and latent EBMs reproduce their code's outputs. The fixture (tests/fixtures/authors/,
made by make_nerf_lebm_fixture.py from AlvinZhuyx/NeRF-LEBM's own code at reduced widths with random weights) holds a
checkpoint in train_nerf_lebm.py's format and their code's outputs."""

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ebmkit, modified_checkpoint, one_line_error, set_args
from ebmkit.methods import load_model
from ebmkit.nerf.render import render_rays

FIXTURES = Path(__file__).parent / "fixtures" / "authors"
NERF = FIXTURES / "nerf_lebm_tiny.tar"
# The fixture's widths on the preset of the authors' configuration (make_nerf_lebm_fixture.py builds the same)
TINY = ["generator.width=32", "generator.freqs_xyz=3", "generator.freqs_dir=2", "generator.map_hidden=32",
        "generator.map_out=16", "latents.dim=16", "latents.shape.hidden=32", "latents.appearance.hidden=32",
        "render.num_samples=8", "latents.prior_steps=2"]
PIXELS = [[0, 0], [31, 20], [32, 40], [63, 10]]  # (row, column) of the fixture's rays in 64 x 64 images


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
    (their pose_spherical(theta, phi) is elevation -phi, azimuth theta + 90 degrees) and pixels."""
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
        poses = torch.tensor([[[20.0, 60.0]], [[35.0, -160.0]]]) * math.pi / 180     # (B, V, 2)
        pixels = torch.tensor([r * 64 + c for r, c in PIXELS]).expand(2, 1, -1)       # (B, V, R)
        rgb, _ = method.render(gen, z, poses, pixels)
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
    one_line_error(convert(fine), 2, "a fine NeRF for hierarchical sampling")
    one_line_error(cli("convert", "--from", "nerf-lebm", NERF, "--out", out, "--preset", "cdrl-cifar10-authors"), 2,
                   "is a cdrl preset")
    assert not out.exists()  # no failed conversion wrote a model
