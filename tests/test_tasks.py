"""CDRL tasks (sec. 5.3.5 - 5.4.7): guidance and composition (Eq. 5.9 - 5.12), inpainting, OOD
scoring and fast sampling, in the library and on the command line."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ebmkit, tiny
from ebmkit.data import load_dataset, to_model_space
from ebmkit.data.masks import box_mask, irregular_mask, read_mask
from ebmkit.errors import EbmkitError
from ebmkit.methods import build_method, load_model
from ebmkit.methods.base import Batch
from ebmkit.methods.cdrl import Guide
from ebmkit.presets import load_preset

TINY = tiny("cdrl-shapes-compose")  # the tiny image CDRL (shapes presets share it)


class LabelNet(torch.nn.Module):
    """net(x; c) = (c + 1) * sum(x): distinct, known outputs per label."""

    def forward(self, x, logsnr, label):
        return (label.float() + 1) * x.flatten(1).sum(1)


@pytest.mark.parametrize("labels, w", [([], 2.0), ([3], 0.0), ([3], 0.7), ([1, 4], 3.0)])
def test_guide_is_eq_5_9_and_5_12(labels, w):
    x = torch.randn(5, 2)
    s = x.sum(1)
    guide = Guide([torch.full((5,), c) for c in labels], w, 5, "cpu")
    m = len(labels)
    # (w + 1) sum_i f(x; c_i) - (M (w + 1) - 1) f(x; null), with f(x; c) = (c + 1) s and f(x; null) = s
    expected = (w + 1) * sum((c + 1) * s for c in labels) - (m * (w + 1) - 1) * s
    assert torch.allclose(guide.combine(LabelNet(), x, torch.zeros(5)), expected, atol=1e-5)


def test_attribute_models_label_the_initializer_only_when_asked():
    plain = build_method(load_preset("cdrl-shapes-compose", TINY), (3, 16, 16))        # sec. 5.4.6
    assert not plain.preset.conditioning.init_takes_labels and plain.nets["init"].temb.label_proj is None
    method = build_method(load_preset("cdrl-shapes-compose", TINY + ["conditioning.conditional_init=true"]), (3, 16, 16))
    assert method.nets["init"].temb.label_proj is not None
    x, t = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    labels = method.attribute_labels({0: 1, 1: 2}, 4)
    guide = Guide(labels, 3.0, 4, "cpu")
    g, _ = method.propose(method.nets["init"], x, t, None, guide=guide)  # the initializer means, combined by Eq. 5.12
    assert torch.allclose(g, guide.combine(method.nets["init"], x, method.levels.logsnr[t + 1]))
    with pytest.raises(EbmkitError, match="no labels for a conditional initializer"):
        load_preset("cdrl-points", ["conditioning.conditional_init=true"])

def test_attribute_labels_and_names():
    cond = load_preset("cdrl-shapes-compose").conditioning
    assert cond.num_labels == 4 + 4 + 2
    assert [cond.attribute_label(j, 0) for j in range(3)] == [1, 5, 9]     # 0 is the null label
    assert cond.attribute_index("color=blue") == (1, 2)
    with pytest.raises(EbmkitError, match="color takes red, green, blue, yellow"):
        cond.attribute_index("color=pink")
    with pytest.raises(EbmkitError, match="NAME one of shape, color, size"):
        cond.attribute_index("hue=red")
    celeba = load_preset("cdrl-celeba64-compose").conditioning
    assert celeba.values == [["false", "true"]] * 3 and celeba.num_labels == 6


def test_attribute_weights_set_how_often_each_attribute_labels_an_image():
    method = build_method(load_preset("cdrl-shapes-compose", TINY + ["conditioning.label_dropout=0",
                                                                     "conditioning.attribute_weights=[6, 2, 2]"]),
                          (3, 16, 16))
    n = 20_000
    batch = Batch(torch.zeros(n, 3, 16, 16), attributes=torch.tensor([[3, 2, 1]]).expand(n, 3))
    torch.manual_seed(0)
    label, _ = method._labels(batch)
    cond = method.preset.conditioning
    shares = [float((label == cond.attribute_label(j, v)).float().mean()) for j, v in enumerate([3, 2, 1])]
    assert shares == pytest.approx([0.6, 0.2, 0.2], abs=0.015)     # binomial sd 0.0035
    with pytest.raises(EbmkitError, match="attribute_weights has 2 weights for 3 attributes"):
        load_preset("cdrl-shapes-compose", ["conditioning.attribute_weights=[1, 2]"])


class LabelValue(torch.nn.Module):
    """net(x; c) = c: a known logit per label."""

    def forward(self, x, logsnr, label):
        return label.float() + 0 * x.flatten(1).sum(1)


def test_classifier_loss_is_the_cross_entropy_over_the_labelled_attribute():
    method = build_method(load_preset("cdrl-shapes-compose", TINY + ["conditioning.classifier_loss=0.5"]), (3, 16, 16))
    keep, cand, valid, truth = method.label_candidates(torch.tensor([0, 4, 6, 10]))   # null, cross, green, large
    assert keep.tolist() == [False, True, True, True] and truth.tolist() == [3, 1, 1]
    assert cand[valid].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] and valid.sum(1).tolist() == [4, 4, 2]
    # Every image labelled by its shape (cross, label 4); with net(x; c) = c the logits are 1, 2, 3, 4.
    only_shape = build_method(load_preset("cdrl-shapes-compose", TINY + [
        "conditioning.classifier_loss=0.5", "conditioning.label_dropout=0", "conditioning.attribute_weights=[1, 1e-12, 1e-12]"]),
        (3, 16, 16))
    batch = Batch(torch.zeros(6, 3, 16, 16), attributes=torch.tensor([[3, 2, 1]]).expand(6, 3))
    _, metrics = only_shape.train_step(batch, {"ebm": LabelValue(), "init": only_shape.nets["init"]})
    assert float(metrics["label_ce"]) == pytest.approx(-torch.log_softmax(torch.arange(1.0, 5.0), 0)[3].item(), abs=1e-5)
    classes = build_method(load_preset("cdrl-shapes-cond", TINY + ["conditioning.classifier_loss=1"]), (3, 16, 16))
    keep, cand, valid, truth = classes.label_candidates(torch.tensor([3, 0]))
    assert cand.tolist() == [[1, 2, 3, 4]] and valid.all() and truth.tolist() == [2]


def test_inpainting_keeps_observed_pixels_and_varies(digits_model):
    method, _ = load_model(digits_model)
    x = to_model_space(load_dataset("digits", split="test").x[:3])
    mask = box_mask("2,2,4,4", (8, 8))
    a = method.inpaint(x, mask, 2, torch.Generator().manual_seed(0), steps=1)
    b = method.inpaint(x, mask, 2, torch.Generator().manual_seed(1), steps=1)
    keep = mask.bool().expand(3, 2, 1, 8, 8)
    observed = x[:, None].expand_as(a)
    assert (a - observed)[keep].abs().max() == 0 and (b - observed)[keep].abs().max() == 0
    assert (a - b)[~keep].abs().max() > 1e-3                     # different seeds, different completions
    assert (a[:, 0] - a[:, 1])[~keep[:, 0]].abs().max() > 1e-3   # and different completions per image


def test_masks(tmp_path):
    png = np.zeros((16, 16), np.uint8)
    png[4:8, 0:16] = 255                                         # white = fill
    Image.fromarray(png).save(tmp_path / "m.png")
    m = read_mask(tmp_path / "m.png", (8, 8))
    assert m.shape == (1, 1, 8, 8) and m[0, 0, 2:4].sum() == 0 and m[0, 0, :2].all() and m[0, 0, 4:].all()
    assert box_mask("1,2,3,4", (8, 8))[0, 0].eq(0).sum() == 12
    irr = irregular_mask(4, (16, 16), torch.Generator().manual_seed(0))
    assert torch.equal(irr, irregular_mask(4, (16, 16), torch.Generator().manual_seed(0)))
    assert 0.05 < 1 - irr.mean() < 0.9
    with pytest.raises(EbmkitError, match="inside the 8x8 image"):
        box_mask("6,6,4,4", (8, 8))


def test_energy_is_minus_the_log_density_of_the_noised_input(digits_model):
    method, _ = load_model(digits_model)
    lv = method.levels
    x = to_model_space(load_dataset("digits", split="test").x[:5])
    for level in (0, 2):
        e = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
        by_hand = -method.log_density(lv.alpha_bar[level] * x + lv.sigma_bar[level] * e, level)
        assert torch.allclose(method.energy(x, level, 1, torch.Generator().manual_seed(3)), by_hand)
    with pytest.raises(EbmkitError, match="out of range"):
        method.energy(x, 9)


def test_no_langevin_is_zero_steps(digits_model, tmp_path, cli):
    for flag in (["--no-langevin"], ["--steps", "0"]):
        cli("sample", "--model", digits_model, "--num", 4, "--out", tmp_path / f"{flag[0]}.npz", *flag, check=True)
    a, b = (np.load(tmp_path / f"{f}.npz")["samples"] for f in ("--no-langevin", "--steps"))
    assert np.array_equal(a, b)


def test_guided_sampling_cli(shapes_models, judges, tmp_path, cli, monkeypatch):
    model = shapes_models["cdrl-shapes-cond"]
    monkeypatch.setenv("EBMKIT_CACHE", str(judges))  # the sweep's shape classifier, trained briefly
    r = json.loads(cli("sample", "--model", model, "--num", 8, "--class", "all", "--guidance", 0.7, "--steps", 1,
                       "--out", tmp_path / "g.png", "--json", check=True).stdout)
    assert r["classes"] == [0, 1, 2, 3] and r["guidance"] == 0.7
    r = json.loads(cli("sample", "--model", model, "--num", 3, "--class", "square", "--class", "3", "--steps", 1,
                       "--out", tmp_path / "g.npz", "--json", check=True).stdout)
    assert r["classes"] == [1, 3] and np.load(tmp_path / "g.npz")["samples"].shape == (3, 3, 16, 16)
    sweep = json.loads(cli("eval", "guidance-sweep", "--model", model, "--weights", "0,1", "--num-per-class", 2,
                           "--steps", 1, "--out", tmp_path / "sweep.png", "--json", check=True).stdout)
    assert [r["guidance"] for r in sweep["rows"]] == [0, 1] and all("accuracy" in r for r in sweep["rows"])
    assert (tmp_path / "sweep.png").is_file()


def test_compose_cli(shapes_models, tmp_path, cli):
    r = json.loads(cli("compose", "--model", shapes_models["cdrl-shapes-compose"], "--attr", "shape=circle",
                       "--attr", "color=red", "--num", 4, "--out", tmp_path / "c.png", "--json", check=True).stdout)
    assert r["attributes"] == {"shape": "circle", "color": "red"} and r["guidance"] == 3.0


class RealShapes:
    """A stand-in attribute model whose samples are real training shapes carrying the requested values."""

    def __init__(self):
        from ebmkit.data import from_config

        self.preset = load_preset("cdrl-shapes-compose")
        self.data = from_config(self.preset.data, "train")
        self.shape, self.device = tuple(self.data.shape), torch.device("cpu")
        cond = self.preset.conditioning
        self.columns = [self.data.attribute_names.index(a) for a in cond.attributes]

    def attribute_labels(self, wanted, num):
        return wanted

    def sample(self, num, generator, progress=None, steps=None, guidance=0.0, labels=None):
        match = torch.ones(len(self.data.x), dtype=torch.bool)
        for j, v in labels.items():
            match &= self.data.attributes[:, self.columns[j]] == v
        idx = torch.nonzero(match).flatten()
        return to_model_space(self.data.x[idx[torch.randint(len(idx), (num,), generator=generator)]])


@pytest.fixture(scope="module")
def judges(tmp_path_factory):
    """A cache folder holding the classifiers of 16-pixel shapes (the class one of the guidance sweep and the three
    attribute judges of composition), trained for 2 epochs instead of 30 (at full length they cost minutes; the tests
    here check how they are used, not how good they are)."""
    from ebmkit.metrics import domain

    cache = tmp_path_factory.mktemp("judges")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(domain, "EPOCHS", 2)
        mp.setenv("EBMKIT_CACHE", str(cache))
        for attribute in (None, "shape", "color", "size"):
            domain.DomainFeatures("shapes", 16, target=attribute)
    return cache


def test_the_compose_judge_passes_real_shapes(judges, monkeypatch):
    """Real training images of the requested values: all within the lit-area range (it is theirs), carried at
    about the judges' own accuracy, and `both` never above either share."""
    from ebmkit.metrics.compose import compose_report

    monkeypatch.setenv("EBMKIT_CACHE", str(judges))
    r = compose_report(RealShapes(), num=20)
    assert all(a > 0.8 for a in r["classifier_accuracy"].values())
    assert set(r["single"]) == {"shape", "color", "size"} and set(r["pairs"]) == {"shape+color", "shape+size", "color+size"}
    assert all(v == 1.0 for v in r["lit_area_in_range"].values())
    assert all(v >= min(r["classifier_accuracy"].values()) - 0.1 for v in r["single"].values())
    assert all(r["carried_and_lit_area_in_range"][k] <= min(r["pairs"][k], r["lit_area_in_range"][k]) for k in r["pairs"])


def test_eval_compose_cli(shapes_models, judges, tmp_path):
    r = json.loads(ebmkit("eval", "compose", "--model", shapes_models["cdrl-shapes-compose"], "--num", 2, "--steps", 1,
                          "--out", tmp_path / "f.png", "--row", "shape=circle,color=red", "--json", check=True,
                          env={"EBMKIT_CACHE": str(judges)}).stdout)
    assert r["num_per_request"] == 2 and r["steps"] == 1 and (tmp_path / "f.png").is_file()
    assert all(0 <= r["carried_and_lit_area_in_range"][k] <= r["pairs"][k] for k in r["pairs"])


def test_inpaint_and_ood_cli(digits_model, tmp_path, cli):
    r = json.loads(cli("inpaint", "--model", digits_model, "--image", "digits:test", "--limit", 2, "--box", "0,0,4,8",
                       "--num", 3, "--steps", 1, "--out", tmp_path / "i.npz", "--json", check=True).stdout)
    assert r["observed_fraction"] == 0.5 and np.load(tmp_path / "i.npz")["samples"].shape == (2, 3, 1, 8, 8)
    csv = cli("ood-score", "--model", digits_model, "--data", "digits:test", "--csv", check=True).stdout.splitlines()
    assert csv[0] == "index,name,score" and csv[1].startswith("0,digits:test#0,") and len(csv) == 298
    folder = tmp_path / "mine, too"
    (folder / "sub").mkdir(parents=True)
    for i, name in enumerate(("b.png", "a.png", "sub/c.png")):
        Image.fromarray(np.full((8, 8), 60 * i, np.uint8)).save(folder / name)
    r = json.loads(cli("ood-score", "--model", digits_model, "--data", folder, "--json", check=True).stdout)
    assert r["names"] == ["a.png", "b.png", "sub/c.png"] and len(r["scores"]) == 3
    csv = cli("ood-score", "--model", digits_model, "--data", folder / "a.png", "--csv", check=True).stdout
    assert csv.splitlines()[1:] == [f"0,a.png,{float(csv.splitlines()[1].split(',')[2]):.6g}"]
    quoted = cli("ood-score", "--model", digits_model, "--in-data", folder, "--ood-data", folder / "a.png", "--csv",
                 check=True).stdout.splitlines()
    assert quoted[0] == "set,index,name,score" and quoted[1].startswith("in,0,a.png,") and quoted[-1].startswith("out,0,a.png,")
    r = json.loads(cli("ood-score", "--model", digits_model, "--in-data", "digits:test", "--ood-data", "shapes:test",
                       "--json", check=True).stdout)
    assert 0 <= r["auroc"] <= 1 and (r["num_in"], r["num_out"]) == (297, 2000)


@pytest.mark.parametrize("args, pattern", [
    (["sample", "--model", "{digits}", "--num", "2", "--out", "x.png", "--guidance", "1"], "need a class-conditional model"),
    (["sample", "--model", "{cond}", "--num", "2", "--out", "x.png", "--class", "blob"], "unknown class 'blob'; valid: circle"),
    (["sample", "--model", "{cond}", "--num", "2", "--out", "x.png", "--guidance", "1"], "--guidance needs --class"),
    (["compose", "--model", "{cond}", "--attr", "shape=circle", "--out", "x.png"], "not attribute-conditional"),
    (["compose", "--model", "{comp}", "--attr", "size=huge", "--out", "x.png"], "size takes small, large"),
    (["inpaint", "--model", "{digits}", "--image", "digits", "--out", "x.png"], "exactly one of --mask"),
    (["ood-score", "--model", "{digits}", "--in-data", "digits"], "both --in-data PATH and --ood-data PATH"),
    (["sample", "--model", "{digits}", "--out", "x.png", "--no-langevin", "--steps", "3"], "contradict"),
])
def test_task_errors(args, pattern, digits_model, shapes_models, tmp_path, cli):
    paths = {"digits": digits_model, "cond": shapes_models["cdrl-shapes-cond"], "comp": shapes_models["cdrl-shapes-compose"]}
    proc = cli(*[a.format(**paths) for a in args])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and pattern in proc.stderr, proc.stderr
