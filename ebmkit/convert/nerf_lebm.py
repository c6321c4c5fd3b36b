"""AlvinZhuyx/NeRF-LEBM checkpoints as ebmkit NeRF-LEBM models: those of Carla_MCMC_with_pose/train_nerf_lebm.py
(known poses, MCMC inference; e.g. logs/carla/ckpts/best.tar, preset nerf-lebm-carla-mcmc-authors) and of
Carla_amortize_inference/train_nerf_lebm_amortize.py (known poses, amortized inference; preset
nerf-lebm-carla-amortized-authors, the default when the file holds an inference model).

The file is a torch.save dict: `network_fn_state_dict` (run_nerf_helpers.py NeRF, use_viewdirs), the mapping MLPs
`encoder_shape_state_dict` / `encoder_app_state_dict` (EnCoder, applied to 30 normalize(z)), the latent EBMs
`ebm_shape_state_dict` / `ebm_app_state_dict` (ebm.py EBM), `global_step`, and the optimiser states
`optimizer_state_dict` / `optimizer_ebm_state_dict` (training state: not converted, listed). The amortized code
adds `network_fine_state_dict` (the fine NeRF of hierarchical sampling, N_importance > 0) and
`inference_model_state_dict` (their `inference`: a ResNet34 `feature_extractor` with its 1000-way classifier, then
Linear heads `fc_{shape,app}_{mean,logvar}`). Every network was DDP-wrapped ('module.' keys). There is no EMA: the
live weights are also written as the EMA copy.

NeRF maps onto ConditionalNeRF (pts_linears -> trunk, alpha_linear -> sigma, feature_linear -> feature,
views_linears.0 / rgb_linear -> colour.0 / colour.2; the fine NeRF likewise under `fine.`), EnCoder's `f` onto
MappingNetwork's `net`, EBM's `ebm` onto SwishMLP's `net`, `inference` onto Encoder (feature_extractor -> features,
inference.heads = "linear", encoder_input = "imagenet") and LinearGaussianHeads (fc_shape_mean -> shape_mean, ...),
with these exact re-parametrisations:
- their positional encoding interleaves per frequency (x, sin 2^0 x, cos 2^0 x, sin 2^1 x, ...), ebmkit's puts all
  sines before all cosines: the input columns of the first trunk layer, the skip layer and colour.0 are permuted;
- their skip layer reads [input, h], ebmkit's [h, input]: its columns are swapped (their skips [4] is ebmkit's
  generator.skip = 5: the input joins the 6th layer);
- their EBM returns the energy (the prior is exp(-E)), ebmkit's prior network f = -E: the last layer is negated.
The checkpoints of Carla_amortized_without_pose (pi-GAN's TALLSIREN generator, an S-VAE pose network; they hold
`pose_estimator_state_dict`) convert in nerf_lebm_nopose.
"""

from pathlib import Path

import torch

from ebmkit.convert.torch_files import State, load_into, read_checkpoint, rename, state_dict, top_level
from ebmkit.errors import EbmkitError
from ebmkit.methods import Method, build_method
from ebmkit.nets.nerf import ConditionalNeRF
from ebmkit.presets import load_preset

PRESETS = {"mcmc": "nerf-lebm-carla-mcmc-authors", "amortized": "nerf-lebm-carla-amortized-authors"}
GEN, MAP_S, MAP_A = "network_fn_state_dict", "encoder_shape_state_dict", "encoder_app_state_dict"
FINE, INFERENCE = "network_fine_state_dict", "inference_model_state_dict"
PRIORS = {"prior_s": "ebm_shape_state_dict", "prior_a": "ebm_app_state_dict"}
TRAINING_STATE = ("optimizer_state_dict", "optimizer_ebm_state_dict")
OTHER = ("global_step",)
NOPOSE = "pose_estimator_state_dict"  # what the files of Carla_amortized_without_pose hold
HEADS = ("shape_mean", "shape_logvar", "app_mean", "app_logvar")  # their fc_NAME -> LinearGaussianHeads.NAME


def encoding_order(num_freqs: int) -> list[int]:
    """Column j of ebmkit's positional encoding of 3-vectors (x, all sines, all cosines) is column order[j] of the
    authors' (x, then sin and cos per frequency)."""
    sines = [3 + 6 * k + c for k in range(num_freqs) for c in range(3)]
    return [0, 1, 2] + sines + [s + 3 for s in sines]


def gen_mapping(gen: ConditionalNeRF) -> dict[str, str]:
    nerf = {f"pts_linears.{i}": f"trunk.{i}" for i in range(len(gen.trunk))}
    nerf |= {"alpha_linear": "sigma", "feature_linear": "feature", "views_linears.0": "colour.0",
             "rgb_linear": "colour.2"}
    mapping = nerf | ({f"fine.{k}": f"fine.{v}" for k, v in nerf.items()} if gen.fine is not None else {})
    mapping |= {f"map_shape.f.{i}": f"map_shape.net.{i}" for i in (0, 2, 4, 6)}
    return mapping | {f"map_app.f.{i}": f"map_app.net.{i}" for i in (0, 2, 4, 6)}


def _prepared(state: State, gen: ConditionalNeRF, path: Path, what: str = "the NeRF") -> State:
    """A NeRF's input columns in ebmkit's order (module docstring), still under the source's names."""
    state = dict(state)
    if "output_linear.weight" in state:
        raise EbmkitError(f"{path}: {what} has 'output_linear' (trained without use_viewdirs); ebmkit's "
                          f"generator always reads the view direction")
    xyz, dirs = encoding_order(gen.freqs_xyz), encoding_order(gen.freqs_dir)
    d_pe = len(xyz)
    first = state.get("pts_linears.0.weight")
    if first is None or first.dim() != 2:
        raise EbmkitError(f"{path}: {what} has no first layer 'pts_linears.0'; not a NeRF-LEBM checkpoint")
    width = first.shape[0]
    d_in = first.shape[1]
    if d_in < d_pe:
        raise EbmkitError(f"{path}: {what}'s first layer reads {d_in} inputs, fewer than the {d_pe} of the "
                          f"preset's positional encoding (generator.freqs_xyz {gen.freqs_xyz}); wrong --preset?")
    inp = xyz + list(range(d_pe, d_in))                    # positional encoding, then the mapped z_s
    state["pts_linears.0.weight"] = first[:, inp]
    skips = [i for i in range(1, len(gen.trunk)) if state.get(f"pts_linears.{i}.weight", first).shape[1] != width]
    for i in skips:
        if i != gen.skip:
            raise EbmkitError(f"{path}: {what}'s input joins layer {i} (their skips [{i - 1}]), the preset's "
                              f"generator.skip is {gen.skip}; set generator.skip={i}")
        w = state[f"pts_linears.{i}.weight"]
        if w.shape[1] != width + d_in:
            raise EbmkitError(f"{path}: {what}'s layer {i} reads {w.shape[1]} inputs, expected {width + d_in}")
        state[f"pts_linears.{i}.weight"] = torch.cat([w[:, d_in:], w[:, :d_in][:, inp]], 1)  # [input, h] -> [h, input]
    views = state.get("views_linears.0.weight")
    if views is not None and views.shape[1] >= width + len(dirs):
        cols = list(range(width)) + [width + j for j in dirs] + list(range(width + len(dirs), views.shape[1]))
        state["views_linears.0.weight"] = views[:, cols]
    return state


def _prior(state: State, name: str, key: str, method: Method, path: Path, strict: bool,
           skipped: list[str]) -> State | None:
    """An EBM's state under SwishMLP's names, the output layer negated (f = -E); None for a Gaussian prior."""
    if name not in method.nets:
        if set(state) - {"ebm.W"}:
            raise EbmkitError(f"{path}: '{key}' holds an EBM where the preset's prior is Gaussian; wrong --preset?")
        return None
    net = method.nets[name].net
    linears = [i for i, m in enumerate(net) if isinstance(m, torch.nn.Linear)]
    out, unmapped = rename(state, {f"ebm.{i}": f"net.{i}" for i in linears}, path, f"'{key}'", strict)
    skipped += [f"skipped: {name}: {k}" for k in unmapped]
    last = f"net.{linears[-1]}"
    for leaf in ("weight", "bias"):
        if f"{last}.{leaf}" in out:
            out[f"{last}.{leaf}"] = -out[f"{last}.{leaf}"]
    return out


def _check_preset(preset, checkpoint: dict, path: Path) -> None:
    """The preset builds the networks the file holds: an encoder iff it has one, a fine NeRF iff it has one."""
    name = preset.name
    if preset.method != "nerf_lebm":
        raise EbmkitError(f"--preset {name!r} is a {preset.method} preset; --from nerf-lebm needs a nerf_lebm one")
    inf, render = preset.inference, preset.render
    if preset.generator.arch != "nerf":
        raise EbmkitError(f"--preset {name!r} has generator.arch {preset.generator.arch!r}; their NeRF is 'nerf'")
    if INFERENCE in checkpoint and (inf.kind, inf.heads) != ("amortized", "linear"):
        raise EbmkitError(f"{path}: '{INFERENCE}' holds the authors' encoder; --preset {name!r} does not build it "
                          f"(inference.kind 'amortized', heads 'linear': e.g. {PRESETS['amortized']})")
    if INFERENCE not in checkpoint and inf.kind != "mcmc":
        raise EbmkitError(f"{path}: no '{INFERENCE}' entry, so a model with MCMC inference; --preset {name!r} has "
                          f"inference.kind {inf.kind!r}")
    if (FINE in checkpoint) != (render.importance_samples > 0):
        has = f"holds '{FINE}'" if FINE in checkpoint else f"has no '{FINE}'"
        raise EbmkitError(f"{path}: the file {has}, --preset {name!r} has render.importance_samples "
                          f"{render.importance_samples} (a fine NeRF iff > 0)")


def _encoder(state: State, method: Method, path: Path, strict: bool, skipped: list[str]) -> dict[str, State]:
    """Their inference model's state as ebmkit's `encoder` and `heads` states."""
    features = method.nets["encoder"].features
    mapping = {f"feature_extractor.{n}": f"encoder.features.{n}" for n, _ in features.named_modules() if n}
    mapping |= {f"fc_{k}": f"heads.{k}" for k in HEADS}
    out, unmapped = rename(state, mapping, path, "the inference model's", strict)
    skipped += [f"skipped: encoder: {k}" for k in unmapped]
    return {net: {k.removeprefix(f"{net}."): v for k, v in out.items() if k.startswith(f"{net}.")}
            for net in ("encoder", "heads")}


def checkpoint_notes(checkpoint: dict, known: set[str], training: tuple[str, ...], path: Path,
                     strict: bool) -> tuple[list[str], int]:
    """The notes on what is not converted (torch_files.top_level) and the file's global step."""
    notes = top_level(checkpoint, known | set(OTHER), training, path, strict, "NeRF-LEBM")
    step = checkpoint.get("global_step")
    step = int(step) if isinstance(step, int) and step >= 0 else 0
    notes.append(f"NeRF-LEBM checkpoints hold no EMA weights: the live weights are written as the EMA copy too; "
                 f"the file ends global step {step}")
    return notes, step


def _load(method: Method, name: str, state: State, path: Path, label: str) -> None:
    """Load a network and its EMA copy (the checkpoints keep no EMA)."""
    load_into(method.nets[name], state, path, label)
    load_into(method.ema[name], state, path, f"{label}'s EMA copy")


def convert(path: str | Path, preset_name: str | None, overrides: list[str], ema: bool,
            strict: bool) -> tuple[Method, int, list[str]]:
    """The NeRF-LEBM model of the preset (default: nerf-lebm-carla-amortized-authors for a file with an inference
    model, nerf-lebm-carla-mcmc-authors otherwise; a file with a pose network goes to nerf_lebm_nopose) holding the
    checkpoint's weights; its step (global_step); and notes on what was not converted. The checkpoints keep no EMA,
    so `ema` changes nothing: the live weights are written to both copies."""
    path = Path(path)
    checkpoint = read_checkpoint(path)
    if NOPOSE in checkpoint:
        from ebmkit.convert import nerf_lebm_nopose

        return nerf_lebm_nopose.convert(checkpoint, path, preset_name, overrides, strict)
    known = {GEN, FINE, INFERENCE, MAP_S, MAP_A, *PRIORS.values()}
    notes, step = checkpoint_notes(checkpoint, known, TRAINING_STATE, path, strict)
    preset = load_preset(preset_name or PRESETS["amortized" if INFERENCE in checkpoint else "mcmc"], overrides)
    _check_preset(preset, checkpoint, path)
    size = preset.data.image_size
    method = build_method(preset, (3, size, size))
    gen = method.nets["gen"]
    live = _prepared(state_dict(checkpoint, GEN, path), gen, path)
    if FINE in checkpoint:
        live |= {f"fine.{k}": v for k, v in _prepared(state_dict(checkpoint, FINE, path), gen, path,
                                                       "the fine NeRF").items()}
    for prefix, key in (("map_shape", MAP_S), ("map_app", MAP_A)):
        live |= {f"{prefix}.{k}": v for k, v in state_dict(checkpoint, key, path).items()}
    out, unmapped = rename(live, gen_mapping(gen), path, "the generator's", strict)
    skipped = [f"skipped: gen: {k}" for k in unmapped]
    _load(method, "gen", out, path, "the generator")
    if INFERENCE in checkpoint:
        encoder = _encoder(state_dict(checkpoint, INFERENCE, path), method, path, strict, skipped)
        _load(method, "encoder", encoder["encoder"], path, "the encoder")
        _load(method, "heads", encoder["heads"], path, "the encoder's heads")
    for name, key in PRIORS.items():
        prior = _prior(state_dict(checkpoint, key, path), name, key, method, path, strict, skipped)
        if prior is not None:
            _load(method, name, prior, path, "the shape prior" if name == "prior_s" else "the appearance prior")
    return method, step, notes + skipped
