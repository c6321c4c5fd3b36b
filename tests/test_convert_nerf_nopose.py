"""`ebmkit convert --from nerf-lebm` of an authors' unknown-pose checkpoint (Carla_amortized_without_pose: TALLSIREN
generator, ResNet34 pose network with vMF heads, inference heads, latent EBMs): the converted model reproduces their
code's outputs. The fixture (tests/fixtures/authors/, made by make_nerf_lebm_nopose_fixture.py from their own code,
the generator and EBMs at reduced widths, the pose and inference networks at full size) holds a checkpoint in
train_nerf_lebm_nopose.py's format and their code's outputs."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from conftest import authors_checkpoint, in_process, modified_checkpoint, one_line_error, set_args
from ebmkit.convert import nerf_lebm_nopose
from ebmkit.errors import EbmkitError
from ebmkit.methods import load_model
from ebmkit.methods.base import Batch
from ebmkit.nerf import vmf
from ebmkit.nerf.camera import pose_rays
from ebmkit.nerf.render import render_rays

FIXTURES = Path(__file__).parent / "fixtures" / "authors"
# The fixture's widths on the preset of the authors' configuration (make_nerf_lebm_nopose_fixture.py builds the same)
TINY = ["generator.width=32", "generator.map_hidden=32", "latents.dim=16", "latents.shape.hidden=32",
        "latents.appearance.hidden=16", "render.num_samples=8", "latents.prior_steps=2"]
PIXELS = torch.tensor([[0, 0], [31, 20], [32, 40], [63, 10]])  # (row, column) of the fixture's rays in 64 x 64 images
EXACT = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture(scope="module")
def reference():
    ref = load_file(FIXTURES / "nerf_lebm_nopose_tiny_outputs.safetensors")
    ref["images"] = F.interpolate(ref["cells"], size=(64, 64), mode="bilinear")  # the fixture's smooth_images
    return ref


@pytest.fixture(scope="module")
def checkpoint():
    return authors_checkpoint("nerf_lebm_nopose_tiny.tar")


@pytest.fixture(scope="module")
def converted(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("convert") / "nopose.safetensors"
    proc = in_process("convert", "--from", "nerf-lebm", checkpoint, "--out", out, *set_args(TINY), check=True)
    assert "hold no EMA weights" in proc.stderr and "global step 4321" in proc.stderr
    assert ("optimizer_state_dict, optimizer_pose_state_dict, optimizer_inference_state_dict, "
            "optimizer_ebm_state_dict") in proc.stderr
    return out


@pytest.fixture(scope="module")
def model(converted):
    method, step = load_model(converted)
    assert step == 4321 and method.preset.name == "nerf-lebm-carla-nopose-authors"
    return method


def field_of(gen, z):
    """The radiance field of objects z (B, 2, dim) on points (B, R, N, 3), as render_rays calls it."""
    def field(points, dirs):
        b, r, n = points.shape[:3]
        sigma, rgb = gen(points.flatten(1, 2), dirs.flatten(1, 2), z[:, 0], z[:, 1])
        return sigma.view(b, r, n), rgb.view(b, r, n, 3)
    return field


def test_generator_and_priors_reproduce_the_authors_code(model, reference):
    """TALLSIREN's raw outputs as raw2outputs reads them (softplus density, sigmoid colour); the EBMs' E = -f."""
    gen = model.ema["gen"]
    with torch.no_grad():
        sigma, rgb = gen(reference["points"], reference["dirs"], reference["z_shape"], reference["z_app"])
        torch.testing.assert_close(sigma, reference["sigma"], **EXACT)
        torch.testing.assert_close(rgb, reference["rgb"], **EXACT)
        for name, key in (("prior_s", "en_s"), ("prior_a", "en_a")):
            torch.testing.assert_close(model.ema[name](reference["z_ebm"]), -reference[key], **EXACT)
            torch.testing.assert_close(model.nets[name](reference["z_ebm"]), -reference[key], **EXACT)


def test_renders_reproduce_the_authors_rays(model, reference):
    """Their render() of 8 rays (perturb 0, and 1 with the same uniform draws), by render_rays with quadrature
    "nerf", and by the method at the same cameras: pose_spherical(theta, phi) is elevation -phi, azimuth 90 - theta."""
    gen = model.ema["gen"]
    z = torch.stack([reference["z_shape"], reference["z_app"]], 1)                    # (2, 2, 16)
    field = field_of(gen, z)
    with torch.no_grad():
        for stratified, key in ((False, "render_rgb"), (True, "render_rgb_strat")):
            out = render_rays(field, reference["rays_o"], reference["rays_d"], 8, 7.5, 12.5, quadrature="nerf",
                              stratified=stratified, generator=torch.Generator().manual_seed(3))
            torch.testing.assert_close(out.rgb, reference[key], rtol=0, atol=1e-5)
            if not stratified:
                torch.testing.assert_close(out.opacity, reference["render_acc"], rtol=0, atol=1e-5)
        poses = torch.tensor([[[20.0, 60.0]], [[35.0, -160.0]]]).deg2rad()                # (B, V, 2)
        pixels = (PIXELS[:, 0] * 64 + PIXELS[:, 1]).expand(2, 1, -1)                      # (B, V, R)
        rgb, _ = model.render(gen, z, poses, pixels)
    torch.testing.assert_close(rgb[:, 0], reference["render_rgb"], rtol=0, atol=1e-5)


def test_pose_network_and_inference_heads_reproduce_the_authors_code(model, reference):
    """pose_inference (use_sample=False): the vMF means and concentrations it hands to VonMisesFisher, mapped as the
    converter's docstring says; its pose matrices, as the rays their get_rays() casts; inference's means and
    log-variances; their KL terms; and their render at the inferred poses and latents."""
    images = reference["images"]
    with torch.no_grad():
        h, mu, kappa, flip = model.ema["encoder"](images)
        torch.testing.assert_close(h, reference["h"], **EXACT)
        phi_mu, theta_mu = reference["phi_mu"], reference["theta_mu"]                    # (sin, cos) each
        torch.testing.assert_close(mu[:, 0], torch.stack([phi_mu[:, 1], -phi_mu[:, 0]], 1), **EXACT)
        torch.testing.assert_close(mu[:, 1], theta_mu, **EXACT)
        torch.testing.assert_close(kappa, torch.cat([reference["phi_kappa"], reference["theta_kappa"]], 1), **EXACT)
        assert flip is None
        poses = model.infer_poses(images)                                                # (4, 2) elevation, azimuth
        torch.testing.assert_close(poses[:, 0], -reference["phi"], **EXACT)
        torch.testing.assert_close(vmf.unit_of(poses[:, 1]), vmf.unit_of(math.pi / 2 - reference["theta"]),
                                   rtol=0, atol=1e-6)
        assert (poses[:, 0].cos() < 0).any() and (poses[:, 0].cos() > 0).any()  # cameras past the pole too
        origins, dirs = pose_rays(poses[:, 0], poses[:, 1], 64, 30.0, 10.0, unit=False, centres=False, up="orbit")
        torch.testing.assert_close(origins[:, None].expand(-1, 4, -1), reference["pose_rays_o"], rtol=0, atol=1e-5)
        torch.testing.assert_close(dirs[:, PIXELS[:, 0], PIXELS[:, 1]], reference["pose_rays_d"], rtol=0, atol=1e-6)
        mu_s, log_sigma_s, mu_a, log_sigma_a = model.ema["heads"](h)
        for ours, key in ((mu_s, "z_shape_mu"), (2 * log_sigma_s, "z_shape_logvar"), (mu_a, "z_app_mu"),
                          (2 * log_sigma_a, "z_app_logvar")):
            torch.testing.assert_close(ours, reference[key], **EXACT)
        # ebmkit's KL (Eq. 3.21 and the Gaussian's) is theirs plus the uniform prior's log 2 pi, per angle
        _, kl, _, _ = model.amortized(model.ema, Batch(x=images[:, None]))
        torch.testing.assert_close(kl.mean(), reference["kl_z"] + reference["kl_pose"] + 2 * math.log(2 * math.pi),
                                   rtol=1e-5, atol=1e-5)
        z = model.infer_objects(images[:, None], poses[:, None])
        pixels = (PIXELS[:, 0] * 64 + PIXELS[:, 1]).expand(4, 1, -1)
        rgb, _ = model.render(model.ema["gen"], z, poses[:, None], pixels)
    torch.testing.assert_close(rgb[:, 0], reference["render_pose_rgb"], rtol=0, atol=1e-5)


def test_converted_model_samples_and_renders_novel_views(converted, model, reference, tmp_path):
    in_process("sample", "--model", converted, "--num", 2, "--out", tmp_path / "s.npz", check=True)
    x = np.load(tmp_path / "s.npz")["samples"]
    assert x.shape == (2, 3, 64, 64) and x.min() >= -1 and x.max() <= 1
    view = tmp_path / "view.png"
    Image.fromarray((reference["images"][0] * 255).round().byte().permute(1, 2, 0).numpy()).save(view)
    r = in_process("novel-view", "--model", converted, "--views", view, "--turntable", 2, "--infer-steps", 1,
                   "--out", tmp_path / "nv", "--json", check=True)
    seen = torch.from_numpy(np.array(Image.open(view))).permute(2, 0, 1)[None].float() / 255
    assert np.allclose(json.loads(r.stdout)["inferred_poses_deg"], model.infer_poses(seen).rad2deg(), atol=1e-3)
    assert len(list((tmp_path / "nv").glob("0*.png"))) == 2


def test_bad_nopose_checkpoints_are_one_line_errors(checkpoint, tmp_path):
    out = tmp_path / "m.safetensors"
    extra = modified_checkpoint(tmp_path, checkpoint, lambda s: s["pose_estimator_state_dict"].update(
        {"module.extra.weight": torch.zeros(1)}))
    one_line_error(in_process("convert", "--from", "nerf-lebm", extra, "--out", out, *set_args(TINY)), 2,
                   "the pose network's key 'extra.weight' (and 0 more) maps to no ebmkit tensor")
    assert not out.exists()
    source = torch.load(checkpoint, weights_only=True)

    def refused(change, message, overrides=TINY):
        state = {k: dict(v) if isinstance(v, dict) else v for k, v in source.items()}
        change(state)
        with pytest.raises(EbmkitError, match=message) as e:
            nerf_lebm_nopose.convert(state, checkpoint, None, overrides, strict=True)
        assert "\n" not in str(e.value)

    refused(lambda s: s["inference_model_state_dict"].pop("module.fc_app_logvar.bias"),
            "'inference_model_state_dict' lacks 'fc_app_logvar.bias'")
    refused(lambda s: s["pose_estimator_state_dict"].pop("module.feature_extractor.layer4.2.bn2.running_var"),
            "the pose network lacks 'features.layer4.2.bn2.running_var'")
    refused(lambda s: s["network_fn_state_dict"].pop("module.transform_network.3.bias"),
            "the generator lacks 'sine.3.bias'")
    refused(lambda s: s["pose_estimator_state_dict"].update({"module.theta_var.weight": torch.zeros(2, 1000)}),
            "'theta_var.weight' has shape \\(2, 1000\\), the preset's network needs \\(1, 1000\\)")
    refused(lambda s: None, "the generator 'film.0.linear.weight' has shape", TINY[1:])
    refused(lambda s: s.update(network_fine_state_dict={}), "a fine TALLSIREN")
    refused(lambda s: None, "does not build the networks of a Carla_amortized_without_pose checkpoint",
            ["generator.arch=film"])


def test_converted_model_takes_an_amortized_training_step(model, reference):
    """Algorithm 2 with vMF pose posteriors (Eq. 3.20, 3.21) runs on the converted networks."""
    losses, metrics = model.train_step(Batch(x=reference["images"][:2, None]), model.nets)
    assert set(losses) == {"gen", "prior_s", "prior_a"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.nets["encoder"].pose.weight.grad.abs().sum() > 0 and torch.isfinite(metrics["kl"])
    model.nets.zero_grad(set_to_none=True)
