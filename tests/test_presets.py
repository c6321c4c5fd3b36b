"""Presets: every shipped file validates, paper numbers match the thesis, overrides and errors."""

import re
import tomllib
from pathlib import Path

import pytest

from ebmkit.errors import EbmkitError
from ebmkit.presets import list_presets, load_preset, to_toml, validate

THESIS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "thesis.md"

# Table 5.7, transcribed: (downsample blocks, N res blocks, channels per resolution).
TABLE_5_7 = {
    "CDRL ( $32 \\times 32$ )": (4, 8, (128, 256, 256, 256)),
    "CDRL-large ( $32 \\times 32$ )": (4, 8, (256, 512, 512, 512)),
    "Compositionality Experiment": (5, 2, (128, 256, 256, 256, 256)),
    "Inpainting Experiment": (5, 8, (128, 256, 256, 256, 256)),
}
PRESET_ROW = {
    "cdrl-cifar10": "CDRL ( $32 \\times 32$ )",
    "cdrl-imagenet32": "CDRL ( $32 \\times 32$ )",
    "cdrl-imagenet32-uncond": "CDRL ( $32 \\times 32$ )",
    "cdrl-large-cifar10": "CDRL-large ( $32 \\times 32$ )",
    "cdrl-celeba64-compose": "Compositionality Experiment",
    "cdrl-celeba64-inpaint": "Inpainting Experiment",
}
# sec. 5.4.8.1 - 5.4.8.3 and Eq. 5.13, 5.14, 5.17, 5.18.
SHARED = {
    ("train", "lr"): 1e-4, ("train", "init_lr"): 1e-5, ("train", "warmup"): 10_000,
    ("train", "init_warmup_lead"): 500, ("train", "betas"): (0.9, 0.999), ("train", "weight_decay"): 0.0,
    ("train", "ema"): 0.9999, ("train", "grad_clip"): 1.0,
    ("diffusion", "num_levels"): 6, ("diffusion", "logsnr_max"): 9.8, ("diffusion", "logsnr_min"): -5.1,
    ("diffusion", "variance_reduction"): True,
    ("sampler", "steps"): 15, ("sampler", "step_coef"): 0.054, ("sampler", "tweedie_coef"): 2.0,
    ("init", "base_channels"): 64, ("init", "attn_resolutions"): [16, 8], ("init", "temb_dim"): 256,
    ("init", "dropout"): 0.1,
}


@pytest.mark.parametrize("name", [n for n, _ in list_presets()])
def test_every_preset_validates_and_round_trips(name):
    preset = load_preset(name)
    assert preset.name == name
    again = validate(tomllib.loads(to_toml(preset.model_dump(mode="json"))))
    assert again == preset


@pytest.mark.parametrize("name", sorted(PRESET_ROW))
def test_paper_presets_pin_the_thesis(name):
    p = load_preset(name)
    blocks, n, channels = TABLE_5_7[PRESET_ROW[name]]
    assert (len(p.ebm.channels), p.ebm.num_res_blocks, tuple(p.ebm.channels)) == (blocks, n, channels)
    assert p.ebm.spectral_norm
    assert p.ebm.temb_dim == (1024 if "large" in name else 512)
    for (section, key), value in SHARED.items():
        got = getattr(getattr(p, section), key)
        assert (tuple(got) if isinstance(value, tuple) else got) == value, f"{name}: {section}.{key}"
    assert p.init.num_res_blocks == (2 if "imagenet" in name else 3)  # implementation notes
    assert p.init.channel_mult == ([1, 1, 1, 1] if "celeba64" in name else [1, 1, 1])


def test_conditional_presets():
    assert load_preset("cdrl-imagenet32").conditioning.num_classes == 1000
    assert load_preset("cdrl-imagenet32-uncond").conditioning.kind == "none"  # Table 5.3
    compose = load_preset("cdrl-celeba64-compose").conditioning
    assert compose.kind == "attributes" and compose.attributes == ["Male", "Smiling", "Young"]
    assert load_preset("cdrl-points").diffusion.num_levels == 5  # Fig. 5.5


@pytest.mark.skipif(not THESIS.is_file(), reason="thesis text not beside the checkout")
def test_transcription_matches_thesis_text():
    text = THESIS.read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in TABLE_5_7:
            rows[cells[0]] = (int(cells[1]), int(cells[2]), tuple(int(c) for c in re.findall(r"\d+", cells[3])))
    assert rows == TABLE_5_7
    assert re.search(r"\\frac\{iter\}\{10000\}\) \\times 1e - 4", text)           # Eq. 5.13, EBM
    assert re.search(r"\\frac\{iter \+ 500\}\{10000\}\) \\times 1e - 5", text)   # Eq. 5.13, initializer
    assert "s_t^2 = 0.054" in text                                                # Eq. 5.14
    assert "\\lambda_{\\max} = 9.8" in text and "\\lambda_{\\min} = -5.1" in text
    assert "decay rate equal to 0.9999" in text and "We use 15 steps of Langevin" in text
    assert "coefficient to be 2.0" in text and "512 for EBM and 256 for the initializer" in text


def test_overrides_are_validated():
    p = load_preset("cdrl-digits", ["train.lr=2e-4", "sampler.steps=10", "data.name=digits"])
    assert p.train.lr == 2e-4 and p.sampler.steps == 10
    with pytest.raises(EbmkitError, match=r"train\.lrr: unknown key"):
        load_preset("cdrl-digits", ["train.lrr=1"])
    with pytest.raises(EbmkitError, match=r"train\.lr: Input should be greater than 0"):
        load_preset("cdrl-digits", ["train.lr=-1"])
    with pytest.raises(EbmkitError, match=r"sampler\.steps: .*integer"):
        load_preset("cdrl-digits", ["sampler.steps=fast"])
    with pytest.raises(EbmkitError, match="expected KEY=VALUE"):
        load_preset("cdrl-digits", ["train.lr"])
    with pytest.raises(EbmkitError, match=r"ebm\.channels"):
        load_preset("cdrl-digits", ["ebm.channels=3"])
    with pytest.raises(EbmkitError, match="logsnr_min must be below logsnr_max"):
        load_preset("cdrl-digits", ["diffusion.logsnr_min=10.0"])
    with pytest.raises(EbmkitError, match="settled_factor 40 must not exceed drift_factor 30"):
        load_preset("cdrl-digits", ["guard.settled_factor=40"])


def test_unknown_preset_and_method(tmp_path):
    with pytest.raises(EbmkitError, match="unknown preset 'nope'"):
        load_preset("nope")
    f = tmp_path / "x.toml"
    f.write_text('method = "gan"\nname = "x"\n')
    with pytest.raises(EbmkitError, match="unknown method 'gan'"):
        load_preset(str(f))
    f.write_text("method = [\n")
    with pytest.raises(EbmkitError, match="cannot parse preset file"):
        load_preset(str(f))


@pytest.mark.parametrize("override", ["train.lr=inf", "train.init_lr=nan", "sampler.step_coef=inf",
                                      "diffusion.logsnr_max=inf", "guard.drift_factor=inf", "guard.gap_floor=nan"])
def test_presets_hold_only_finite_numbers(override):
    with pytest.raises(EbmkitError, match=rf"{override.split('=')[0]}: Input should be a finite number"):
        load_preset("cdrl-points", [override])


def test_learning_rates_are_at_most_one():  # 1e38 overflowed inside Adam as an internal error
    for preset, key in [("cdrl-points", "train.init_lr"), ("coopflow-points", "train.lr_flow_pretrain"),
                        ("nerf-lebm-scenes", "train.lr_heads")]:
        with pytest.raises(EbmkitError, match=rf"{key}: Input should be less than or equal to 1"):
            load_preset(preset, [f"{key}=1e38"])
