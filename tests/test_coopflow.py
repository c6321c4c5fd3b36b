"""CoopFlow (thesis ch. 4) against Algorithm 3, Eq. 4.2 as coded, Eq. 4.9, Eq. 4.14 and Table 4.4."""

import json
import math
from pathlib import Path

import pytest
import torch

from conftest import ebmkit, in_process, set_args, tiny
from ebmkit import checkpoint
from ebmkit.data import Dataset
from ebmkit.errors import EbmkitError
from ebmkit.methods import Batch, build_method
from ebmkit.methods.coopflow import noise_decay
from ebmkit.nets import count_parameters
from ebmkit.nets.coopflow_ebm import CoopFlowEBM
from ebmkit.nets.flow_layers import ActNorm
from ebmkit.presets import list_presets, load_preset, validate
from ebmkit.runtime import Ranks
from ebmkit.training import Trainer, train

THESIS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "thesis.md"
TINY_2D, TINY_IMAGE = tiny("coopflow-points"), tiny("coopflow-digits")

# Table 4.4, transcribed: (T, step size train, step size test, epochs pretrain / warm-up / CoopFlow).
TABLE_4_4 = {
    ("CoopFlow(T=30)", "CIFAR-10"): (30, 0.03, 0.04, (0, 0, 100)),
    ("CoopFlow(T=30)", "SVHN"): (30, 0.03, 0.035, (0, 0, 100)),
    ("CoopFlow(T=30)", "CelebA"): (30, 0.03, 0.035, (0, 0, 100)),
    ("CoopFlow(T=200)", "CIFAR-10"): (200, 0.01, 0.012, (0, 0, 100)),
    ("CoopFlow(T=200)", "SVHN"): (200, 0.011, 0.0125, (0, 0, 100)),
    ("CoopFlow(T=200)", "CelebA"): (200, 0.011, 0.013, (0, 0, 100)),
    ("CoopFlow(Pre)", "CIFAR-10"): (30, 0.03, 0.04, (300, 25, 75)),
    ("CoopFlow(Pre)", "SVHN"): (30, 0.03, 0.035, (200, 10, 90)),
    ("CoopFlow(Pre)", "CelebA"): (30, 0.03, 0.035, (80, 10, 90)),
}
PAPER = {  # preset: (Table 4.4 row, batch size of sec. 4.5.2, training images)
    "coopflow-cifar10": (("CoopFlow(T=30)", "CIFAR-10"), 28, 50_000),
    "coopflow-svhn": (("CoopFlow(T=30)", "SVHN"), 28, 73_257),
    "coopflow-celeba": (("CoopFlow(T=30)", "CelebA"), 28, 162_770),
    "coopflow-200-cifar10": (("CoopFlow(T=200)", "CIFAR-10"), 32, 50_000),
    "coopflow-200-svhn": (("CoopFlow(T=200)", "SVHN"), 32, 73_257),
    "coopflow-200-celeba": (("CoopFlow(T=200)", "CelebA"), 32, 162_770),
    "coopflow-pre-cifar10": (("CoopFlow(Pre)", "CIFAR-10"), 28, 50_000),
    "coopflow-pre-svhn": (("CoopFlow(Pre)", "SVHN"), 28, 73_257),
    "coopflow-pre-celeba": (("CoopFlow(Pre)", "CelebA"), 28, 162_770),
}


def method_of(name, overrides=(), shape=(2,)):
    torch.manual_seed(0)
    return build_method(load_preset(name, list(overrides)), shape)


def points(n=32, seed=0):
    return Batch(x=torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)))


def digits_like(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(x=torch.randint(0, 256, (n, 1, 8, 8), generator=g).float() / 127.5 - 1)


class Quadratic(torch.nn.Module):
    """f(x) = -c |x - m|^2 per example, for checks by hand."""

    def __init__(self, c=1.0, m=0.5):
        super().__init__()
        self.c, self.m = c, m

    def forward(self, x):
        return -self.c * (x - self.m).pow(2).flatten(1).sum(1)


# ---------------------------------------------------------------------------- presets
def test_presets_validate_and_errors_name_the_field():
    names = {n for n, _ in list_presets() if n.startswith("coopflow")}
    assert {"coopflow-points", "coopflow-points-flow", "coopflow-points-langevin", "coopflow-digits"} | set(PAPER) <= names
    for name in names:
        assert load_preset(name).method == "coopflow"
    bad = {
        "langevin.step_size=-1": r"langevin\.step_size: Input should be greater than 0",
        "train.mode=gan": r"train\.mode: Input should be 'coopflow', 'flow' or 'langevin'",
        "ebm.hidden=0": r"ebm\.hidden: Input should be greater than 0",
        "flow.hidden=big": r"flow\.hidden: .*integer",
        "train.warmup_iterations=4500": r"train: .*leave no cooperative iterations",
        "langevin.clamp=[1.0, -1.0]": r"langevin: .*clamp needs low < high",
    }
    for override, message in bad.items():
        with pytest.raises(EbmkitError, match=message):
            load_preset("coopflow-points", [override])
    with pytest.raises(EbmkitError, match=r"langevin: .*noise_decay_K decays the training noise"):
        load_preset("coopflow-points", ["langevin.noise=false", "langevin.noise_decay_K=30"])
    with pytest.raises(EbmkitError, match=r"flow: .*num_channels 96 is not divisible by num_heads 5"):
        load_preset("coopflow-cifar10", ["flow.num_heads=5"])
    with pytest.raises(EbmkitError, match=r"train\.mode 'coopflow' needs a \[ebm\] section"):
        load_preset("coopflow-points-flow", ["train.mode=coopflow"])
    with pytest.raises(EbmkitError, match=r"train: .*phases of mode 'coopflow', not of mode 'flow'"):
        load_preset("coopflow-points-flow", ["train.pretrain_iterations=10"])


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_presets_pin_table_4_4(name):
    row, batch, n = PAPER[name]
    T, s_train, s_test, (pre, warm, coop) = TABLE_4_4[row]
    p = load_preset(name)
    per_epoch = n // batch  # ebmkit drops an epoch's incomplete last batch
    assert (p.langevin.steps, p.langevin.step_size, p.langevin.step_size_test) == (T, s_train, s_test)
    assert (p.train.batch_size, p.train.pretrain_iterations, p.train.warmup_iterations, p.train.iterations) == (
        batch, pre * per_epoch, warm * per_epoch, (pre + warm + coop) * per_epoch)
    assert (p.train.lr_ebm, p.train.lr_flow, p.train.betas_ebm, p.train.betas_flow) == (1e-4, 1e-4, (0.5, 0.5), (0.9, 0.999))
    assert (p.train.grad_clip, p.train.flow_warmup) == (1.0, 200)                          # implementation notes
    assert not p.langevin.noise and p.langevin.drift_clamp == 0.1 and p.langevin.clamp == (-1.0, 1.0)
    assert p.data.hflip == (row[1] == "CIFAR-10")                                          # sec. 4.5.2
    assert p.ebm.channels == [128, 256, 512, 1024] and p.ebm.head_channels == 100          # Table 4.3
    assert (p.flow.num_channels, p.flow.num_blocks, p.flow.num_components, p.flow.dropout) == (96, 10, 32, 0.2)


@pytest.mark.skipif(not THESIS.is_file(), reason="thesis text not beside the checkout")
def test_table_4_4_transcription_matches_thesis_text():
    text = THESIS.read_text()
    table = text[text.index("| Model               | Dataset"):text.index("Table 4.4:")]
    rows, model = {}, None
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        model = cells[0].replace("<br>", "") or model
        pre, warm, coop, T, s_train, s_test = cells[2:]
        rows[(model, cells[1])] = (int(T), float(s_train), float(s_test), (int(pre), int(warm), int(coop)))
    assert rows == TABLE_4_4


def test_table_4_3_ebm_size_matches_table_4_8():
    """Flow++ (28.8M) + the EBM: 45.9M in Table 4.8 with the authors' 4x4 head, 45.2M with Table 4.3's."""
    flowpp = 28_784_776
    assert round((flowpp + count_parameters(CoopFlowEBM(head="authors"))) / 1e6, 1) == 45.9
    assert round((flowpp + count_parameters(CoopFlowEBM(head="thesis"))) / 1e6, 1) == 45.2
    assert CoopFlowEBM()(torch.zeros(2, 3, 32, 32)).shape == (2,)


# ---------------------------------------------------------------------------- Algorithm 3
@pytest.mark.parametrize("case", ["points", "images"])
def test_train_step_is_finite_and_the_networks_do_not_share_gradients(case):
    if case == "points":
        m, batch = method_of("coopflow-points", TINY_2D), points()
    else:
        m, batch = method_of("coopflow-digits", TINY_IMAGE, (1, 8, 8)), digits_like()
    losses, metrics = m.train_step(batch, dict(m.nets.items()))
    assert set(losses) == {"ebm", "flow"} and {"energy_data", "energy_sample", "energy_flow_sample"} <= set(metrics)
    assert all(torch.isfinite(v) for v in [*losses.values(), *metrics.values()])
    losses["flow"].backward(retain_graph=True)                               # step 7 touches only alpha
    assert all(p.grad is None for p in m.nets["ebm"].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.nets["flow"].parameters())
    m.nets.zero_grad(set_to_none=True)
    losses["ebm"].backward()                                                 # step 8 touches only theta
    assert all(p.grad is None for p in m.nets["flow"].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.nets["ebm"].parameters())


def test_losses_are_eq_4_5_and_eq_2_2(monkeypatch):
    m = method_of("coopflow-points", TINY_2D)
    batch = points()
    x_tilde = torch.randn(32, 2)
    monkeypatch.setattr(m, "langevin_flow", lambda ebm, x_hat, training: x_tilde)
    losses, _ = m.train_step(batch, dict(m.nets.items()))
    ebm, flow = m.nets["ebm"], m.nets["flow"]
    assert torch.allclose(losses["ebm"], ebm(x_tilde).mean() - ebm(batch.x).mean())
    assert torch.allclose(losses["flow"], -flow.log_prob(x_tilde).mean())


def test_one_langevin_step_by_hand():
    """x <- clamp(x + clamp(s^2/2 grad log p, -0.1, 0.1), -1, 1) with no noise (implementation notes);
    with the Gaussian reference of Eq. 4.9, log p = f - |x|^2 / 2."""
    x0 = torch.tensor([[-0.9, 0.45], [0.99, -1.5], [0.2, 0.8]], dtype=torch.float64)
    s, c = 0.5, 0.1
    for reference in ("uniform", "gaussian"):
        m = method_of("coopflow-points", TINY_2D + [f"langevin.step_size={s}", "langevin.clamp=[-1.0, 1.0]",
                                                    "langevin.noise=false", f"ebm.reference={reference}"])
        out = m.langevin_flow(Quadratic(c=1.0, m=0.5), x0, step=0, steps=1)
        grad = -2 * (x0 - 0.5) - (x0 if reference == "gaussian" else 0)
        drift = (s**2 / 2 * grad).clamp(-c, c)
        assert (drift.abs() == c).any() and (drift.abs() < c).any()  # both branches of the drift clamp
        assert torch.allclose(out, (x0 + drift).clamp(-1, 1))
        assert out[1, 1] == -1.0                                      # the clamp to [-1, 1]


def test_noise_decay_is_eq_4_14():
    K = 30
    for epoch in (0, 1, 7, 15, 29):
        assert noise_decay(epoch, K) == pytest.approx(max((1.0 - epoch / K) ** 20, 0.0))
    assert noise_decay(0, K) == 1.0 and noise_decay(15, K) == pytest.approx(0.5**20)
    assert noise_decay(30, K) == noise_decay(70, K) == 0.0  # Eq. 4.14 taken literally would regrow after 2K


def test_noise_weight_schedule_counts_epochs_of_the_langevin_flow():
    m = method_of("coopflow-points", TINY_2D + ["langevin.noise=true", "langevin.noise_decay_K=4",
                                                "langevin.noise_test=false", "train.pretrain_iterations=10",
                                                "train.iterations=100"])
    m.use_data(Dataset("spiral", "points", torch.zeros(320, 2)))  # 320 // 32 = 10 iterations per epoch
    for step, epoch in ((0, 0), (10, 0), (19, 0), (20, 1), (35, 2), (60, 5)):
        assert m.epoch(step) == epoch
        assert m.noise_weight(step) == pytest.approx(noise_decay(epoch, 4))
        assert m.noise_weight(None) == 0.0  # sec. 4.9: no noise when sampling
    noiseless = method_of("coopflow-points", TINY_2D + ["langevin.noise=false"])  # sec. 4.5.2, as for images
    assert noiseless.noise_weight(0) == 0.0
    recipe = method_of("coopflow-points", TINY_2D)  # the points recipe keeps the noise in training and sampling
    assert recipe.noise_weight(0) == recipe.noise_weight(None) == 1.0


# ---------------------------------------------------------------------------- phases and modes
def flat(module):
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


def test_phases_pretrain_flow_then_warm_up_ebm_then_both(tmp_path):
    preset = load_preset("coopflow-points", TINY_2D + ["train.pretrain_iterations=2", "train.warmup_iterations=2",
                                                       "train.iterations=6", "train.flow_warmup=0"])
    trainer = Trainer(preset, tmp_path, Ranks(), resume=False, quiet=True)
    nets = trainer.method.nets
    expected = ["pretrain", "pretrain", "warmup", "warmup", "coop", "coop"]
    for step, phase in enumerate(expected):
        assert trainer.step == step
        flow, ebm = flat(nets["flow"]), flat(nets["ebm"])
        values = trainer.train_step()
        assert trainer.method.phase(step) == phase
        assert ("loss_flow" in values, "loss_ebm" in values) == (phase != "warmup", phase != "pretrain")
        assert (not torch.equal(flow, flat(nets["flow"]))) == (phase != "warmup")
        assert (not torch.equal(ebm, flat(nets["ebm"]))) == (phase != "pretrain")


def test_the_flow_pretrains_at_its_own_rate():
    """train.lr_flow_pretrain: the flow's rate while it learns from data; lr_flow from the warm-up on."""
    spec = method_of("coopflow-points", TINY_2D + ["train.pretrain_iterations=5", "train.warmup_iterations=2",
                                                   "train.iterations=9", "train.flow_warmup=0",
                                                   "train.lr_flow_pretrain=1e-3", "train.lr_flow=1e-4"]).optim_specs()
    assert [spec["flow"].lr_at(s) for s in (0, 4, 5, 8)] == [1e-3, 1e-3, 1e-4, 1e-4]
    assert spec["ebm"].lr_at(0) == spec["ebm"].lr_at(8) == load_preset("coopflow-points").train.lr_ebm


def test_training_can_start_from_a_flow_trained_elsewhere(tmp_path):
    """CoopFlow(Pre) from a given pre-trained flow: train.flow_from copies a flow run's flow and its EMA."""
    train(load_preset("coopflow-points-flow", tiny("coopflow-points-flow", "train.iterations=3")), tmp_path / "flow",
          quiet=True)
    source = tmp_path / "flow" / "model.safetensors"
    stored = checkpoint.read_safetensors(source)[0]
    trainer = Trainer(load_preset("coopflow-points", TINY_2D + ["train.iterations=2", f"train.flow_from='{source}'"]),
                      tmp_path / "coop", Ranks(), resume=False, quiet=True)
    for name in ("flow", "flow_ema"):
        state = trainer.method.components()[name].state_dict()
        assert all(torch.equal(v, stored[f"{name}.{k}"]) for k, v in state.items())
    with pytest.raises(EbmkitError, match="train.flow_from.*'flow' does not match"):
        Trainer(load_preset("coopflow-points", TINY_2D + ["flow.hidden=8", f"train.flow_from='{source}'"]),
                tmp_path / "bad", Ranks(), resume=False, quiet=True)


def test_actnorm_initialises_on_the_first_batch_deterministically():
    x = digits_like(8).x
    a = method_of("coopflow-digits", TINY_IMAGE, (1, 8, 8))
    b = method_of("coopflow-digits", TINY_IMAGE, (1, 8, 8))
    torch.randn(100)  # a different global RNG state must not matter
    for m in (a, b):
        assert not m.flow_initialized()
        m.train_step(Batch(x=x), dict(m.nets.items()))
        assert m.flow_initialized()
    sa, sb = a.nets["flow"].state_dict(), b.nets["flow"].state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert all(torch.equal(sa[k], v) for k, v in a.ema["flow"].state_dict().items())  # the EMA starts there
    norm = next(m for m in a.nets["flow"].modules() if isinstance(m, ActNorm))
    assert norm.log_scale.abs().sum() > 0  # set from the data, not the identity


def test_resume_keeps_the_initialisation_and_is_exact(tmp_path):
    base = TINY_2D + ["train.ckpt_every=2"]
    train(load_preset("coopflow-points", base + ["train.iterations=4"]), tmp_path / "straight", quiet=True)
    train(load_preset("coopflow-points", base + ["train.iterations=2"]), tmp_path / "resumed", quiet=True)
    train(load_preset("coopflow-points", base + ["train.iterations=4"]), tmp_path / "resumed", resume=True, quiet=True)
    a = checkpoint.read_safetensors(tmp_path / "straight" / "model.safetensors")[0]
    b = checkpoint.read_safetensors(tmp_path / "resumed" / "model.safetensors")[0]
    assert a.keys() == b.keys() and any(k.endswith("initialized") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("mode", ["flow", "langevin"])
def test_baseline_modes_build_only_what_they_need(mode):
    m = method_of(f"coopflow-points-{mode}", tiny(f"coopflow-points-{mode}"))
    need = {"flow": {"flow"}, "langevin": {"ebm"}}[mode]
    assert set(m.nets) == need and set(m.optim_specs()) == need
    losses, metrics = m.train_step(points(), dict(m.nets.items()))
    assert set(losses) == need and any(k.startswith("energy") for k in metrics)  # the guard watches energy*
    levels = m.sample_levels(64, torch.Generator().manual_seed(0))
    x = m.sample(64, torch.Generator().manual_seed(0), batch_size=50)
    assert x.shape == (64, 2) and torch.isfinite(x).all()
    if mode == "langevin":  # chains start from the uniform p_0 of Eq. 4.2 over the clamp box [-4, 4]^2
        assert torch.equal(levels[0], -4 + 8 * torch.rand(64, 2, generator=torch.Generator().manual_seed(0)))
        assert m.preset.ebm.reference == "uniform" and m.preset.langevin.clamp == (-4.0, 4.0)


def test_the_langevin_flow_alone_can_start_from_the_gaussian_reference():
    """Sec. 4.3.3's short-run EBM: Eq. 4.9 with q_0 = N(0, I), its chains started from q_0."""
    m = method_of("coopflow-points-langevin", tiny("coopflow-points-langevin", 'langevin.start="gaussian"',
                                                   'ebm.reference="gaussian"'))
    levels = m.sample_levels(64, torch.Generator().manual_seed(0))
    assert torch.equal(levels[0], torch.randn(64, 2, generator=torch.Generator().manual_seed(0)))


def test_a_uniform_start_is_for_the_langevin_flow_alone_and_needs_a_box():
    with pytest.raises(EbmkitError, match="langevin.start is p_0 of the Langevin flow alone"):
        load_preset("coopflow-points", ['langevin.start="uniform"'])  # CoopFlow's chains start from its flow
    raw = load_preset("coopflow-points-langevin").model_dump(mode="json")
    raw["langevin"]["clamp"] = None
    with pytest.raises(EbmkitError, match="start 'uniform' draws from the clamp box"):
        validate(raw, "test")


def test_sample_steps_zero_returns_the_flow_proposals():
    m = method_of("coopflow-points", TINY_2D)
    x_hat, x_tilde = m.sample_levels(16, torch.Generator().manual_seed(1))
    assert torch.equal(m.sample(16, torch.Generator().manual_seed(1), steps=0), x_hat)
    assert torch.equal(m.sample(16, torch.Generator().manual_seed(1)), x_tilde)


# ---------------------------------------------------------------------------- end to end
def test_cli_train_sample_eval(tmp_path):
    run = tmp_path / "run"
    in_process("train", "--preset", "coopflow-points", "--run-dir", run, "--quiet",
               *set_args(TINY_2D + ["train.iterations=4"]), check=True)
    out = tmp_path / "x.png"
    in_process("sample", "--model", run / "model.safetensors", "--num", 200, "--out", out, check=True)
    assert out.is_file() and (tmp_path / "x_levels.png").is_file()  # Fig. 4.3 layout: flow, then EBM
    proc = in_process("eval", "mmd", "--model", run / "model.safetensors", "--num", 100, "--json", check=True)
    assert math.isfinite(json.loads(proc.stdout)["ratio"])


def test_paper_preset_builds_and_steps_at_batch_2():
    m = method_of("coopflow-cifar10", ["langevin.steps=1"], (3, 32, 32))
    losses, metrics = m.train_step(Batch(x=torch.rand(2, 3, 32, 32) * 2 - 1), dict(m.nets.items()))
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in [*losses.values(), *metrics.values()])
    assert m.sample(1, torch.Generator().manual_seed(0), steps=1).shape == (1, 3, 32, 32)


@pytest.mark.slow
def test_paper_pretraining_preset_steps_in_each_phase():
    m = method_of("coopflow-pre-cifar10", ["langevin.steps=1"], (3, 32, 32))
    x = torch.randint(0, 256, (2, 3, 32, 32)).float() / 127.5 - 1
    t = m.preset.train
    for step, need in ((0, {"flow"}), (t.pretrain_iterations, {"ebm"}), (t.pretrain_iterations + t.warmup_iterations, {"flow", "ebm"})):
        losses, metrics = m.train_step(Batch(x=x), dict(m.nets.items()), step)
        assert set(losses) == need and all(torch.isfinite(v) for v in [*losses.values(), *metrics.values()])


def test_ddp_averages_flow_gradients_in_every_phase(tmp_path):
    """torchrun with 2 CPU ranks through pre-training (dequantised flow MLE), warm-up and Algorithm 3:
    the ranks see different data, yet every checkpoint finds identical parameters on both."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    run = tmp_path / "ddp"
    overrides = TINY_IMAGE + ["train.pretrain_iterations=2", "train.warmup_iterations=2", "train.iterations=6",
                              "train.ckpt_every=2", "train.batch_size=8", "train.log_every=1"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "ebmkit",
           "train", "--preset", "coopflow-digits", "--run-dir", str(run), "--quiet", "--device", "cpu",
           *set_args(overrides)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    syncs = [e for e in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if e.get("event") == "checkpoint"]
    assert [e["step"] for e in syncs] == [2, 4, 6]
    for e in syncs:
        assert len(e["rank_checksums"]) == 2 and len(set(e["rank_checksums"])) == 1, e
