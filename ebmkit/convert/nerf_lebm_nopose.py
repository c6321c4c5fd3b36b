"""AlvinZhuyx/NeRF-LEBM checkpoints of Carla_amortized_without_pose/train_nerf_lebm_nopose.py (unknown poses,
amortized inference; preset nerf-lebm-carla-nopose-authors) as ebmkit NeRF-LEBM models. nerf_lebm.convert hands
over the files that hold `pose_estimator_state_dict`.

The file is a torch.save dict: `network_fn_state_dict` (run_nerf_helpers.py TALLSIREN), `pose_estimator_state_dict`
(pose_inference: a ResNet34 `feature_extractor` with its 1000-way fc, then theta_mean, theta_var, phi_mean, phi_var),
`inference_model_state_dict` (inference: `mapping`, then fc_{shape,app}_{mean,logvar}), the latent EBMs
`ebm_shape_state_dict` / `ebm_app_state_dict` (ebm.py EBM), `global_step`, and the optimiser states of the
generator, pose network, inference model and EBMs (training state: not converted, listed). Every network was
DDP-wrapped ('module.' keys); SyncBatchNorm's tensors are BatchNorm's. There is no EMA.

TALLSIREN maps onto FiLMSiren (generator.arch "film-siren") by names alone: mapping_network_{shape,app}.network ->
map_{shape,app}.net, network.i.layer -> film.i.linear, transform_network.i -> sine.i, final_layer -> sigma,
color_layer_sine.layer -> colour_film.linear, color_layer_linear.0 -> colour; their raw2outputs' softplus density and
sigmoid colour are FiLMSiren's. The EBMs map as in nerf_lebm (the output layer negated: f = -E).

The pose network maps onto PoseNetEncoder (inference.heads "posenet"): feature_extractor -> features, and their four
heads become its one pose layer, whose rows are (cos, sin, concentration) of the elevation, then of the azimuth.
Their pose matrix M R_theta R_phi T(radius) (M = [[-1,0,0],[0,0,1],[0,1,0]], R_theta, R_phi rotations about y and x,
T a shift along z) is built from the unit vectors (sin theta, cos theta) = normalize(theta_mean(h)) and
(sin phi, cos phi) = normalize(phi_mean(h)): its camera sits at radius (cos phi sin theta, cos phi cos theta,
-sin phi), looking at the origin, its up vector d position / d(-phi). That is ebmkit's camera (ebmkit.nerf.camera)
at elevation -phi and azimuth 90 degrees - theta, with render.camera_up = "orbit" (past a pole their camera turns
upside down). So ebmkit's (cos, sin) of the elevation are (cos phi, -sin phi): rows (phi_mean[1], -phi_mean[0]); of
the azimuth (sin theta, cos theta): rows (theta_mean[0], theta_mean[1]). These are orthogonal maps of the plane, so
the vMF posteriors themselves (not just their means) correspond exactly. Concentrations: their elevation's
softplus(phi_var(h) + 1) is softplus of the row phi_var with 1 added to its bias (floor 0); their azimuth's
softplus(theta_var(h)) + 1 is the row theta_var (floor 1; posenet.KAPPA_FLOOR). Their KL_pose is the negative
entropy, ebmkit's the KL to the uniform prior (Eq. 3.21): they differ by the constant log 2 pi per angle.

The inference model maps onto PoseNetHeads: mapping -> mapping, and fc_shape_mean, fc_shape_logvar, fc_app_mean,
fc_app_logvar, stacked in that order, become `out`, the log-variance rows halved (log sigma = logvar / 2, exact).
"""

from pathlib import Path

import torch

from ebmkit.convert.nerf_lebm import PRIORS, _load, _prior, checkpoint_notes
from ebmkit.convert.torch_files import State, rename, state_dict
from ebmkit.errors import EbmkitError
from ebmkit.methods import Method, build_method
from ebmkit.presets import load_preset

PRESET = "nerf-lebm-carla-nopose-authors"
GEN, POSE, INFERENCE = "network_fn_state_dict", "pose_estimator_state_dict", "inference_model_state_dict"
TRAINING_STATE = ("optimizer_state_dict", "optimizer_pose_state_dict", "optimizer_inference_state_dict",
                  "optimizer_ebm_state_dict")
FINE = "network_fine_state_dict"


def gen_mapping(depth: int) -> dict[str, str]:
    mapping = {f"mapping_network_{k}.network.{i}": f"map_{k}.net.{i}" for k in ("shape", "app") for i in (0, 2, 4, 6)}
    mapping |= {f"network.{i}.layer": f"film.{i}.linear" for i in range(depth)}
    mapping |= {f"transform_network.{i}": f"sine.{i}" for i in range(depth)}
    return mapping | {"final_layer": "sigma", "color_layer_sine.layer": "colour_film.linear",
                      "color_layer_linear.0": "colour"}


def _linear(state: State, key: str, shape: tuple[int, int], path: Path, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias of their linear layer `key`, which must have `shape`; taken out of `state`."""
    weight, bias = state.pop(f"{key}.weight", None), state.pop(f"{key}.bias", None)
    if weight is None or bias is None:
        raise EbmkitError(f"{path}: {what} lacks '{key}.{'weight' if weight is None else 'bias'}'; wrong --preset?")
    if tuple(weight.shape) != shape or tuple(bias.shape) != shape[:1]:
        raise EbmkitError(f"{path}: {what} '{key}.weight' has shape {tuple(weight.shape)}, the preset's network "
                          f"needs {shape}; wrong --preset?")
    return weight, bias


def pose_layer(state: State, features: int, path: Path) -> State:
    """Their theta/phi heads as PoseNetEncoder's `pose` (module docstring); taken out of `state`."""
    what = f"'{POSE}'"
    (tm, tm_b), (tv, tv_b), (pm, pm_b), (pv, pv_b) = (
        _linear(state, key, (rows, features), path, what)
        for key, rows in (("theta_mean", 2), ("theta_var", 1), ("phi_mean", 2), ("phi_var", 1)))
    weight = torch.stack([pm[1], -pm[0], pv[0], tm[0], tm[1], tv[0]])
    bias = torch.stack([pm_b[1], -pm_b[0], pv_b[0] + 1, tm_b[0], tm_b[1], tv_b[0]])
    return {"pose.weight": weight, "pose.bias": bias}


def heads_layer(state: State, dim: int, hidden: int, path: Path) -> State:
    """Their fc_* heads as PoseNetHeads' `out` (module docstring); taken out of `state`."""
    parts = [_linear(state, f"fc_{key}", (dim, hidden), path, f"'{INFERENCE}'")
             for key in ("shape_mean", "shape_logvar", "app_mean", "app_logvar")]
    scales = (1.0, 0.5, 1.0, 0.5)
    return {"out.weight": torch.cat([s * w for (w, _), s in zip(parts, scales)]),
            "out.bias": torch.cat([s * b for (_, b), s in zip(parts, scales)])}


def _check_preset(preset) -> None:
    if preset.method != "nerf_lebm":
        raise EbmkitError(f"--preset {preset.name!r} is a {preset.method} preset; --from nerf-lebm needs a "
                          f"nerf_lebm one")
    if preset.generator.arch != "film-siren" or preset.inference.heads != "posenet":
        raise EbmkitError(f"--preset {preset.name!r} does not build the networks of a Carla_amortized_without_pose "
                          f"checkpoint (generator.arch 'film-siren', inference.heads 'posenet': e.g. {PRESET})")


def convert(checkpoint: dict, path: Path, preset_name: str | None, overrides: list[str],
            strict: bool) -> tuple[Method, int, list[str]]:
    """The NeRF-LEBM model of the preset (default: nerf-lebm-carla-nopose-authors) holding the checkpoint's
    weights; its step (global_step); and notes on what was not converted. Live weights go to both copies."""
    if FINE in checkpoint:
        raise EbmkitError(f"{path}: '{FINE}' holds a fine TALLSIREN (N_importance > 0), which ebmkit's film-siren "
                          f"generator does not build")
    notes, step = checkpoint_notes(checkpoint, {GEN, POSE, INFERENCE, *PRIORS.values()}, TRAINING_STATE, path, strict)
    preset = load_preset(preset_name or PRESET, overrides)
    _check_preset(preset)
    size = preset.data.image_size
    method = build_method(preset, (3, size, size))
    encoder, heads = method.nets["encoder"], method.nets["heads"]
    skipped = []

    def mapped(state: State, mapping: dict[str, str], net: str, what: str) -> State:
        out, unmapped = rename(state, mapping, path, what, strict)
        skipped.extend(f"skipped: {net}: {k}" for k in unmapped)
        return out

    gen = mapped(state_dict(checkpoint, GEN, path), gen_mapping(preset.generator.depth), "gen", "the generator's")
    _load(method, "gen", gen, path, "the generator")
    pose = state_dict(checkpoint, POSE, path)
    layer = pose_layer(pose, encoder.dim, path)
    resnet = {f"feature_extractor.{n}": f"features.{n}" for n, _ in encoder.features.named_modules() if n}
    _load(method, "encoder", mapped(pose, resnet, "encoder", "the pose network's") | layer, path, "the pose network")
    inference = state_dict(checkpoint, INFERENCE, path)
    layer = heads_layer(inference, preset.latents.dim, heads.mapping.out_features, path)
    _load(method, "heads", mapped(inference, {"mapping": "mapping"}, "heads", "the inference model's") | layer, path,
          "the inference model")
    for name, key in PRIORS.items():
        prior = _prior(state_dict(checkpoint, key, path), name, key, method, path, strict, skipped)
        if prior is not None:
            _load(method, name, prior, path, "the shape prior" if name == "prior_s" else "the appearance prior")
    return method, step, notes + skipped
