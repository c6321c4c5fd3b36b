"""NeRF-LEBM (thesis ch. 3): the generator's structure, the priors of Eq. 3.4-3.13, Algorithms 1 and 2,
and the commands, on tiny configurations of the procedural scenes."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import in_process, set_args, tiny, write_celeba
from ebmkit.data import load_dataset
from ebmkit.errors import EbmkitError
from ebmkit.methods import build_method, load_model
from ebmkit.metrics.poses import model_pose_report
from ebmkit.nets.nerf import ConditionalNeRF, FiLMNeRF, positional_encoding
from ebmkit.presets import load_preset
from ebmkit.tasks.novel_view import posed_set



def method_of(name, extra=()):
    torch.manual_seed(0)
    preset = load_preset(name, tiny(name, *extra))
    data = load_dataset("scenes", split="train", image_size=32, views=3, num_objects=6)
    m = build_method(preset, (3, 32, 32))
    m.use_data(data)
    return m, data


def test_positional_encoding_is_nerfs():
    x = torch.tensor([[0.3, -1.0, 2.0]])
    enc = positional_encoding(x, 2)
    expected = [0.3, -1.0, 2.0] + [math.sin(f * v) for f in (1, 2) for v in (0.3, -1.0, 2.0)] \
        + [math.cos(f * v) for f in (1, 2) for v in (0.3, -1.0, 2.0)]
    assert torch.allclose(enc, torch.tensor([expected]))


@pytest.mark.parametrize("net", [ConditionalNeRF(4, 16, 3, 1, 2, 1, 16, 8), FiLMNeRF(4, 16, 2, 16)])
def test_density_ignores_appearance_and_colours_lie_in_0_1(net):
    """Eq. 3.2's decomposition: sigma = g3(g1(x, z_s)) does not see z_a; colours 0.5 (tanh + 1)."""
    x, d = torch.randn(2, 5, 3), torch.nn.functional.normalize(torch.randn(2, 5, 3), dim=-1)
    zs, za = torch.randn(2, 4), torch.randn(2, 4, requires_grad=True)
    sigma, rgb = net(x, d, zs, za)
    assert sigma.shape == (2, 5) and rgb.shape == (2, 5, 3) and (sigma >= 0).all()
    assert ((rgb >= 0) & (rgb <= 1)).all()
    (g,) = torch.autograd.grad(sigma.sum(), za, allow_unused=True)
    assert g is None or torch.equal(g, torch.zeros_like(za))
    sigma2, _ = net(x, d, zs, torch.randn(2, 4))
    assert torch.equal(sigma, sigma2)
    assert torch.allclose(net(x, d, 5 * zs, za)[0], sigma, atol=1e-5)  # the mapping reads normalize(z)


def test_log_prior_is_eq_3_4_with_gaussian_reference():
    m, _ = method_of("nerf-lebm-scenes")
    z = torch.randn(3, 2, 4)
    f = m.nets["prior_s"](z[:, 0]) + m.nets["prior_a"](z[:, 1])
    assert torch.allclose(m.log_prior(z, m.nets), f - z.pow(2).flatten(1).sum(1) / 2)
    g, _ = method_of("nerf-lebm-scenes-gaussian")
    assert torch.allclose(g.log_prior(z, g.nets), -z.pow(2).flatten(1).sum(1) / 2)


def test_prior_langevin_is_eq_3_10_as_coded(monkeypatch):
    """One noiseless prior step: z + s^2/2 (grad f(z) - z / sigma^2) (authors' step rule)."""
    m, _ = method_of("nerf-lebm-scenes", ["latents.prior_noise=0.0", "latents.prior_steps=1"])
    torch.manual_seed(3)
    z = m.prior_samples(5, nets=m.nets)
    torch.manual_seed(3)
    z0 = torch.randn(5, 2, 4).requires_grad_(True)
    (grad,) = torch.autograd.grad(m.log_prior(z0, m.nets).sum(), z0)
    assert torch.allclose(z, z0.detach() + 0.5 * 0.5**2 * grad, atol=1e-6)


def test_samples_are_in_model_space():
    """`sample` returns [-1, 1] like every method (renders are [0, 1]): eval fid, --eval-every and
    `ebmkit sample` convert with from_model_space, so [0, 1] samples would be scored washed out."""
    m, _ = method_of("nerf-lebm-scenes")
    x = m.sample(3, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    z, poses = m.prior_samples(3, generator=g), m.random_poses(3, g)
    assert torch.allclose(x, 2 * m.render_images(z, poses)[0][:, 0] - 1, atol=1e-6)


@pytest.mark.parametrize("name,extra", [("nerf-lebm-scenes", ["inference.kind=mcmc", "inference.steps=2"]),
                                        ("nerf-lebm-scenes", []), ("nerf-lebm-scenes-gaussian", []),
                                        ("nerf-vae-scenes", []),
                                        ("nerf-vae-scenes", ["inference.poses=unknown", "generator.arch=film"]),
                                        ("nerf-lebm-scenes-nopose", []),
                                        ("nerf-lebm-scenes-ends-nopose", [])])
def test_train_step_losses_are_finite_and_priors_learn_only_from_eq_3_7(name, extra):
    m, data = method_of(name, extra)
    batch = m.make_batch(data, torch.arange(4))
    assert batch.x.shape == (4, 2, 3, 32, 32) and batch.poses.shape == (4, 2, 2)  # train.views = 2
    losses, metrics = m.train_step(batch, m.nets)
    assert all(torch.isfinite(v) for v in list(losses.values()) + list(metrics.values()))
    losses["gen"].backward()
    for name_ in ("prior_s", "prior_a"):
        if name_ in m.nets:  # the generator's loss leaves the priors alone (their f is evaluated frozen)
            assert all(p.grad is None or not p.grad.any() for p in m.nets[name_].parameters())
    assert any(p.grad is not None and p.grad.any() for p in m.nets["gen"].parameters())


def test_prior_sample_energies_are_logged_for_the_guard(monkeypatch):
    """energy_neg_* = -f(z^-): runaway prior chains show up as an energy spike the guard acts on."""
    m, data = method_of("nerf-lebm-scenes")
    z_neg = 50 * torch.randn(4, 2, 4)
    monkeypatch.setattr(m, "prior_samples", lambda *a, **k: z_neg)
    _, metrics = m.train_step(m.make_batch(data, torch.arange(4)), m.nets)
    for i, name in enumerate(("prior_s", "prior_a")):
        assert torch.allclose(metrics[f"energy_neg_{name}"], -m.nets[name](z_neg[:, i]).mean())


def test_persistent_chains_move_only_for_the_batch_objects():
    m, data = method_of("nerf-lebm-scenes")
    before = m.nets["latents"].z.detach().clone()
    batch = m.make_batch(data, torch.tensor([0, 3]))  # objects 0 and 1 (3 views each)
    losses, _ = m.train_step(batch, m.nets)
    losses["gen"].backward()
    grad = m.nets["latents"].z.grad
    moved = grad.flatten(1).abs().sum(1) > 0
    assert moved.tolist() == [True, True, False, False, False, False]
    assert torch.equal(before, m.nets["latents"].z.detach())


def test_views_per_iteration_share_an_object():
    m, data = method_of("nerf-lebm-scenes", ["train.views=2"])
    batch = m.make_batch(data, torch.arange(6))
    assert batch.x.shape[:2] == (6, 2)
    first, second = batch.poses[:, 0], batch.poses[:, 1]
    objects = data.objects[torch.arange(6)]
    for o, p in zip(objects.tolist(), second):  # the second view is one of the same object's poses
        assert any(torch.equal(p, q) for q in data.poses[data.objects == o])
    assert first.shape == second.shape


def test_ramp_and_prior_start():
    m, _ = method_of("nerf-lebm-scenes", ["train.prior_start=10", "train.ramp=20"])
    assert m.steps_now(60, 5) == 0
    assert m.steps_now(60, 20) == 30
    assert m.steps_now(60, 100) == 60


@pytest.fixture(scope="module")
def views(tmp_path_factory):
    """a.png (a black view), b.png (a.png with a grey square where m.png, a mask, hides it) and poses.json."""
    folder = tmp_path_factory.mktemp("views")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "a.png")
    other = np.zeros((32, 32, 3), np.uint8)
    other[8:24, 8:24] = 200
    Image.fromarray(other).save(folder / "b.png")
    mask = np.zeros((32, 32, 3), np.uint8)
    mask[8:24, 8:24] = 255  # white: not observed
    Image.fromarray(mask).save(folder / "m.png")
    (folder / "poses.json").write_text(json.dumps({"views": {"a.png": [20, 0], "b.png": [20, 0]},
                                                   "targets": [[20, 90], [30, 180]]}))
    return folder


def test_sample_grids_with_depth(nerf_model, tmp_path):
    r = in_process("sample", "--model", nerf_model, "--num", 4, "--grid", "pose", "--depth", "--out", tmp_path / "g.png",
                   "--json", check=True)
    assert json.loads(r.stdout)["num"] == 4 and (tmp_path / "g_depth.png").is_file()


def test_samples_are_images_in_model_space(nerf_model, tmp_path):
    in_process("sample", "--model", nerf_model, "--num", 3, "--out", tmp_path / "s.npz", check=True)
    x = np.load(tmp_path / "s.npz")["samples"]
    assert x.shape == (3, 3, 32, 32) and x.min() >= -1 and x.max() <= 1


def test_novel_views_of_a_posed_set_score_the_unseen_views(nerf_model, tmp_path):
    r = in_process("novel-view", "--model", nerf_model, "--data", "scenes:test", "--objects", 2, "--shots", 2,
                   "--out", tmp_path / "nv", "--json", check=True)
    report = json.loads(r.stdout)
    assert report["objects"] == 2 and report["novel_views"] == 6 and math.isfinite(report["psnr"])
    assert (tmp_path / "nv" / "views.png").is_file()


def test_novel_views_render_the_poses_asked_for(nerf_model, views, tmp_path):
    r = in_process("novel-view", "--model", nerf_model, "--views", views / "a.png", "--poses", views / "poses.json",
                   "--out", tmp_path / "out", "--json", check=True)
    assert np.allclose(json.loads(r.stdout)["poses_deg"], [[20, 90], [30, 180]], atol=1e-4)
    assert len(list((tmp_path / "out").glob("0*.png"))) == 2


def test_a_model_trained_with_poses_needs_the_views_poses(nerf_model, views, tmp_path):
    r = in_process("novel-view", "--model", nerf_model, "--views", views / "a.png", "--out", tmp_path / "out")
    assert r.returncode == 2 and "--poses" in r.stderr and "Traceback" not in r.stderr


def test_what_a_mask_hides_cannot_change_the_renders(nerf_model, views, tmp_path):
    """a.png and b.png differ only where m.png says the view is not observed (sec. 3.5.7)."""
    for name in ("a", "b"):
        in_process("novel-view", "--model", nerf_model, "--views", views / f"{name}.png", "--masks", views / "m.png",
                   "--poses", views / "poses.json", "--out", tmp_path / name, check=True)
    renders = [np.asarray(Image.open(tmp_path / n / "000000.png")) for n in ("a", "b")]
    assert np.array_equal(*renders)


def test_one_mask_per_view(nerf_model, views, tmp_path):
    r = in_process("novel-view", "--model", nerf_model, "--views", views / "a.png", "--masks", views / "m.png",
                   "--masks", views / "m.png", "--poses", views / "poses.json", "--out", tmp_path / "out")
    assert r.returncode == 2 and "one mask per view" in r.stderr and "Traceback" not in r.stderr


def test_cli_eval_poses(tmp_path):
    """`eval poses` reads the encoder's vMF means of an unknown-pose model; a known-pose model has none."""
    run = tmp_path / "nopose"
    in_process("train", "--preset", "nerf-lebm-scenes-nopose", "--run-dir", run, "--quiet", *set_args(tiny("nerf-lebm-scenes-nopose")),
               check=True)
    r = in_process("eval", "poses", "--model", run / "model.safetensors", "--limit", 12, "--json", check=True)
    report = json.loads(r.stdout)
    method, _ = load_model(run / "model.safetensors")  # the command reports what the library computes
    library = model_pose_report(method, posed_set(method, "scenes:test"), 12)
    assert report["num"] == 12
    assert all(report[k]["mean"] == pytest.approx(library[k]["mean"], abs=1e-3)
               for k in ("azimuth_error_deg", "aligned_azimuth_error_deg"))
    # novel views from the model's own frame: no poses needed, the turntable starts at the inferred pose
    r = in_process("novel-view", "--model", run / "model.safetensors", "--data", "scenes:test", "--objects", 2,
                   "--shots", 1, "--out", tmp_path / "nv", "--json", check=True)
    assert math.isfinite(json.loads(r.stdout)["psnr"])
    from ebmkit import viz

    viz.save_images(torch.zeros(1, 3, 32, 32), tmp_path / "views")
    view = next((tmp_path / "views").iterdir())
    r = in_process("novel-view", "--model", run / "model.safetensors", "--views", view, "--turntable", 4,
                   "--out", tmp_path / "tt", "--json", check=True)
    report = json.loads(r.stdout)
    assert np.allclose(report["poses_deg"][0], report["inferred_poses_deg"][0], atol=1e-4) and len(report["poses_deg"]) == 4
    known = tmp_path / "known"
    in_process("train", "--preset", "nerf-vae-scenes", "--run-dir", known, "--quiet", *set_args(tiny("nerf-vae-scenes")),
               check=True)
    r = in_process("eval", "poses", "--model", known / "model.safetensors")
    assert r.returncode == 2 and "known camera poses" in r.stderr and "Traceback" not in r.stderr


def ends_model():
    return method_of("nerf-lebm-scenes-ends-nopose")


def test_chosen_ends_pose_angles_cover_the_elevation_band_and_half_a_turn():
    m, _ = ends_model()
    lo, hi = m.preset.render.elevation
    angles = torch.tensor([[-math.pi, -math.pi], [0.0, 0.5], [math.pi, math.pi]])
    expected = torch.tensor([[lo, -90.0], [(lo + hi) / 2, math.degrees(0.25)], [hi, 90.0]])
    assert torch.allclose(m.pose_angles(angles).rad2deg(), expected, atol=1e-4)
    plain, _ = method_of("nerf-lebm-scenes-nopose")
    assert torch.equal(plain.pose_angles(angles), angles)  # sec. 3.4.4's angles as they are


def test_choose_ends_takes_the_likelier_end_and_trains_the_flip_head_toward_it(monkeypatch):
    """With a likelihood peaked at azimuth 0, views at 170 degrees are turned to 350 and views at 10 kept;
    the head's loss is |gain| BCE(logit, sigmoid(gain)): its gradient in the logit is
    |gain| (sigmoid(logit) - sigmoid(gain)), zero at logit = gain. The chosen poses keep the vMF's gradient.
    (The prior log-odds stay 0 here: end_balance = 0; the next test moves them.)"""
    m, data = method_of("nerf-lebm-scenes-ends-nopose", ["inference.end_balance=0"])
    batch = m.make_batch(data, torch.arange(2))

    def fake_ll(gen, z, batch, pixels, poses=None, generator=None, per_view=False):
        return 10 * poses[..., 1].cos()  # (B, V): likeliest at azimuth 0

    monkeypatch.setattr(m, "log_likelihood", fake_ll)
    poses = torch.tensor([[[0.3, math.radians(170)], [0.3, math.radians(10)]]] * 2, requires_grad=True)
    logit = torch.tensor([[0.0, 3.0], [-1.0, 2.0]], requires_grad=True)
    chosen, head, flip = m.choose_ends(None, None, batch, None, poses, logit)
    assert flip.tolist() == [[True, False], [True, False]]
    assert torch.allclose(chosen[..., 1].rad2deg(), torch.tensor([[350.0, 10.0]] * 2))
    gain = 10 * (torch.tensor([350.0, 190.0]).deg2rad().cos() - torch.tensor([170.0, 10.0]).deg2rad().cos())
    head.sum().backward()
    expected = gain.abs() * (logit.detach().sigmoid() - gain.sigmoid())
    assert torch.allclose(logit.grad, expected, atol=1e-5)
    chosen.sum().backward()
    assert torch.equal(poses.grad, torch.ones_like(poses))
    at_gain = gain.expand(2, 2).clone().requires_grad_(True)
    m.choose_ends(None, None, batch, None, poses.detach(), at_gain)[1].sum().backward()
    assert at_gain.grad.abs().max() < 1e-5


def test_end_prior_keeps_half_the_views_turned(monkeypatch, tmp_path):
    """A likelihood that prefers the turned camera for every view (gains 1..8) turns all at first; the prior
    log-odds b then fall by end_balance x (1/2 - share) x mean |gain| a batch (1/2 x 4.5 x rate at the first)
    until half the views are kept, and stay there. b is a buffer of the encoder: saved and loaded with it."""
    m, data = method_of("nerf-lebm-scenes-ends-nopose", ["inference.end_balance=0.5"])
    batch = m.make_batch(data, torch.arange(4))
    gains = torch.arange(1.0, 9.0).view(4, 2)
    monkeypatch.setattr(m, "log_likelihood", lambda gen, z, batch, pixels, poses, generator=None, per_view=False:
                        gains * (poses[..., 1] > 1.0))  # every view's poses are at azimuth 0, turned at pi
    poses, logit = torch.zeros(4, 2, 2), torch.zeros(4, 2)
    bias = m.nets["encoder"].end_bias
    shares = []
    for _ in range(20):
        shares.append(m.choose_ends(None, None, batch, None, poses, logit)[2].float().mean().item())
        if len(shares) == 1:
            assert bias.item() == pytest.approx(-0.5 * 0.5 * 4.5)
    assert shares[0] == 1.0 and shares[-3:] == [0.5] * 3 and -5.0 < bias.item() < -4.0
    other, _ = ends_model()
    other.load_components({k: v.state_dict() for k, v in m.components().items()}, "test")
    assert other.nets["encoder"].end_bias.item() == bias.item()


def test_inferred_poses_turn_half_round_where_the_flip_head_says_so():
    m, data = ends_model()
    images = data.x[:4].float() / 255
    head = m.ema["encoder"].flip[-1]
    with torch.no_grad():
        head.weight.zero_(), head.bias.fill_(-1.0)
        kept = m.infer_poses(images)
        head.bias.fill_(1.0)
        turned = m.infer_poses(images)
    lo, hi = (math.radians(a) for a in m.preset.render.elevation)
    assert torch.equal(kept[:, 0], turned[:, 0]) and (kept[:, 0] >= lo - 1e-6).all() and (kept[:, 0] <= hi + 1e-6).all()
    assert torch.allclose((turned[:, 1] - kept[:, 1]) % (2 * math.pi), torch.full((4,), math.pi), atol=1e-5)
    with pytest.raises(EbmkitError, match="choose_ends"):
        load_preset("nerf-lebm-scenes", ["inference.choose_ends=true"])


def test_posed_sets_of_the_commands_keep_the_models_distinct_ends():
    """`eval poses` and `novel-view --data scenes:test` score a distinct-ends model on distinct-ends cars."""
    from ebmkit.data.scenes import load_scenes

    m, _ = method_of("nerf-lebm-scenes-nopose", ["data.distinct_ends=true"])
    assert torch.equal(posed_set(m, "scenes:test").x, load_scenes("test", 32, distinct_ends=True).images)
    plain, _ = method_of("nerf-lebm-scenes-nopose")
    assert torch.equal(posed_set(plain, "scenes:test").x, load_scenes("test", 32).images)


@pytest.mark.parametrize("name,table_3_3", [
    ("nerf-lebm-carla-mcmc", (8, 1, 2e-5, 1e-4, "uniform", 0.1, 60, 0.5, 60, 0.02)),
    ("nerf-lebm-carla-amortized", (8, 1, 7e-6, 1e-4, "gaussian", None, None, 0.5, 60, 1.0)),
    ("nerf-lebm-shapenet", (12, 2, 2e-5, 1e-4, "gaussian", 1e-4, None, 0.5, 40, 0.0)),
    ("nerf-lebm-shapenet-masked", (12, 2, 2e-5, 1e-4, "gaussian", 1e-4, None, 0.5, 40, 0.0)),  # Table 3.6
    ("nerf-lebm-carla-nopose", (16, 1, 7e-6, 3e-5, "gaussian", None, None, 0.5, 60, 0.0))])
def test_paper_presets_pin_tables_3_2_and_3_3(name, table_3_3):
    p = load_preset(name)
    batch, views, eta_alpha, eta_theta, q0, delta_pos, k_pos, delta_neg, k_neg, noise = table_3_3
    assert (p.train.batch_size, p.train.views, p.train.lr_prior, p.train.lr_gen) == (batch, views, eta_alpha, eta_theta)
    assert (p.latents.reference, p.latents.prior_step_size, p.latents.prior_steps, p.latents.prior_noise) == \
        (q0, delta_neg, k_neg, noise)
    if delta_pos is not None:
        assert p.inference.step_size == delta_pos
    if k_pos is not None:
        assert p.inference.steps == k_pos
    assert p.latents.dim == 128 and p.inference.sigma_eps == 0.05  # Table 3.2, sec. 3.5.3
    assert p.inference.likelihood_scale == pytest.approx(1 / (3 * batch), rel=1e-5)
    assert p.data.masked == name.endswith("-masked") and (p.data.num_objects == 500 or not p.data.masked)  # sec. 3.5.7
    r = in_process("train", "--preset", name, "--run-dir", "/nonexistent/run")
    assert r.returncode == 2 and "data.path" in r.stderr


def test_gaussian_prior_models_train_without_energy_metrics(tmp_path):
    """NeRF-VAE has no prior network, so no energy metric: the divergence guard must still run."""
    from ebmkit.training import train

    model = train(load_preset("nerf-vae-scenes", tiny("nerf-vae-scenes")), tmp_path / "vae", quiet=True)
    assert model.is_file()


def test_an_image_set_without_poses_trains_the_unknown_pose_model(tmp_path):
    """Fig. 3.10: CelebA, read from its usual layout, as objects seen once each (nerf-lebm-celeba-nopose)."""
    (tmp_path / "celeba").mkdir()
    write_celeba(tmp_path / "celeba")
    run = tmp_path / "run"
    in_process("train", "--preset", "nerf-lebm-celeba-nopose", "--data", tmp_path / "celeba", "--run-dir", run, "--quiet",
               *set_args(tiny("nerf-lebm-scenes-nopose", "data.image_size=32", "train.batch_size=2")), check=True)
    in_process("sample", "--model", run / "model.safetensors", "--num", 2, "--out", tmp_path / "s.npz", check=True)
    assert np.load(tmp_path / "s.npz")["samples"].shape == (2, 3, 32, 32)
