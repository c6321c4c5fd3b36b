"""AlvinZhuyx/CDRL checkpoints as ebmkit CDRL models: main_uncond.py's (Cifar_10_best.pth.tar, preset
cdrl-cifar10-authors) and main_cond.py's class-conditional ones (cond_best.pth.tar, preset cdrl-imagenet32-authors).

The file is a torch.save dict: `pi_state_dict` (the EBM, models/ebm.py), `p_state_dict` (the initializer U-Net,
models/unet.py), their torch_ema copies `pi_ema_state_dict` / `p_ema_state_dict`, and optimiser and scheduler
states (training state: not converted, listed). Both networks were DDP-wrapped ('module.' keys); the EBM is
spectrally normalised with the old torch API (weight_orig / weight_u / weight_v). The EBM maps onto EBMResNet
one to one; the U-Net onto UNet with init.resample = "resblock" and init.norm_eps = 1e-6. The class-conditional
networks add a one-hot class embedding to the time embedding (`y_map`, `y_mlp`; class 0 is the null class, as
in ebmkit). The EBM's add_q flag is not in the weights: the released models use add_q = False, the EBM of
Eq. 5.10 without a Gaussian term, as ebmkit's.
"""

from pathlib import Path

import torch

from ebmkit.convert.torch_files import (SN_BUFFERS, State, entry, load_into, read_checkpoint, rename, state_dict,
                                       top_level, with_ema)
from ebmkit.errors import EbmkitError
from ebmkit.methods import Method, build_method
from ebmkit.presets import load_preset
from ebmkit.nets.ebm_resnet import EBMResNet
from ebmkit.nets.unet import Attention, ResBlock, UNet

NETWORKS = {"ebm": ("pi_state_dict", "pi_ema_state_dict"), "init": ("p_state_dict", "p_ema_state_dict")}
PRESETS = {False: "cdrl-cifar10-authors", True: "cdrl-imagenet32-authors"}  # by whether the EBM is conditional
TRAINING_STATE = ("pi_optimizer", "p_optimizer", "pi_lr_scheduler", "p_lr_scheduler")


def ebm_mapping(ebm: EBMResNet) -> dict[str, str]:
    """models/ebm.py module names -> EBMResNet's. Its module_list holds the stem conv, then per resolution the
    residual blocks and, between resolutions, an average pooling (no weights)."""
    mapping = {"temb_map1": "temb.dense1", "temb_map2": "temb.dense2", "module_list.0": "stem", "temb_final": "head",
               "y_map": "temb.label_proj"}
    index = 1
    for i, blocks in enumerate(ebm.levels):
        for j in range(len(blocks)):
            ours = f"levels.{i}.{j}"
            mapping[f"module_list.{index}"] = ours  # the block's gain g
            for theirs, name in (("conv1", "conv1"), ("conv2", "conv2"), ("temb_map", "temb_proj"),
                                 ("short_cut", "shortcut")):
                mapping[f"module_list.{index}.{theirs}"] = f"{ours}.{name}"
            index += 1
        index += i < len(ebm.levels) - 1
    return mapping


def _layer(theirs: str, ours: str, layer: torch.nn.Module) -> dict[str, str]:
    if isinstance(layer, ResBlock):
        pairs = (("norm1", "norm1"), ("norm2", "norm2"), ("conv1", "conv1"), ("conv2", "conv2"),
                 ("mlp.1", "temb_proj"), ("res_conv", "skip"))
    else:
        pairs = (("norm", "norm"), ("to_qkv", "qkv"), ("to_out", "proj"))
    return {f"{theirs}.{a}": f"{ours}.{b}" for a, b in pairs}


def _kind(layer: torch.nn.Module) -> str:
    return "attention" if isinstance(layer, Attention) else "resblock" if isinstance(layer, ResBlock) else "conv"


def unet_mapping(unet: UNet, keys: list[str], path: str | Path) -> dict[str, str]:
    """models/unet.py module names -> UNet's. Its `downs` / `ups` lists hold, per resolution, the residual blocks,
    each followed by its attention where there is one, then the resampling residual block; ebmkit's stages
    hold the same layers in the same order, so the two are paired layer by layer (and their kinds checked)."""
    mapping = {"init_conv": "stem", "time_mlp.1": "temb.dense1", "time_mlp.3": "temb.dense2", "norm": "out.0",
               "final_conv": "out.2", "y_mlp.0": "temb.label_proj"}
    for theirs, ours in (("mid_block1", "mid.0"), ("mid_attn", "mid.1"), ("mid_block2", "mid.2")):
        mapping |= _layer(theirs, ours, unet.mid[int(ours[-1])])
    for root, ours_root, stages in (("downs", "down", unet.down), ("ups", "up", unet.up)):
        ours = [(f"{ours_root}.{s}.{i}", layer) for s, stage in enumerate(stages) for i, layer in enumerate(stage)]
        theirs = sorted({tuple(map(int, k.split(".")[1:3])) for k in keys if k.startswith(f"{root}.")})
        if len(theirs) != len(ours):
            raise EbmkitError(f"{path}: the initializer's '{root}' holds {len(theirs)} layers, the preset's U-Net "
                              f"{len(ours)}; wrong --preset?")
        for (i, c), (name, layer) in zip(theirs, ours):
            source = f"{root}.{i}.{c}"
            kind = "attention" if f"{source}.to_qkv.weight" in keys else "resblock"
            if kind != _kind(layer):
                hint = " (the authors resample with residual blocks: init.resample = 'resblock')" \
                    if _kind(layer) == "conv" else ""
                raise EbmkitError(f"{path}: the initializer's '{source}' is a {kind} layer where the preset's U-Net "
                                  f"has a {_kind(layer)} layer{hint}; wrong --preset?")
            mapping |= _layer(source, name, layer)
    return mapping


def _is_buffer(key: str) -> bool:
    return key.rpartition(".")[2] in SN_BUFFERS


def _converted(state: State, method: Method, name: str, path: Path, strict: bool, skipped: list[str]) -> State:
    """One network's source state under ebmkit's names (the EBM's gains reshaped from (1, C, 1, 1) to (C, 1, 1))."""
    net = method.nets[name]
    mapping = ebm_mapping(net) if name == "ebm" else unet_mapping(net, list(state), path)
    out, unmapped = rename(state, mapping, path, "the EBM's" if name == "ebm" else "the initializer's", strict,
                           leaves={"g": "gain"})
    skipped += [f"skipped: {name}: {k}" for k in unmapped]
    return {k: v.reshape(v.shape[1:]) if k.endswith(".gain") and v.dim() == 4 else v for k, v in out.items()}


def convert(path: str | Path, preset_name: str | None, overrides: list[str], ema: bool,
            strict: bool) -> tuple[Method, int, list[str]]:
    """The CDRL model of the preset (default: the authors' configuration, by whether the EBM is conditional)
    holding the checkpoint's weights; its step (the schedulers' count); and notes on what was not converted.
    ema: the EMA copies become the sampling weights (else the live ones do)."""
    path = Path(path)
    checkpoint = read_checkpoint(path)
    notes = top_level(checkpoint, {k for pair in NETWORKS.values() for k in pair}, TRAINING_STATE, path, strict, "CDRL")
    live = {name: state_dict(checkpoint, keys[0], path) for name, keys in NETWORKS.items()}
    conditional = any(k.startswith("y_map.") for k in live["ebm"])
    preset = load_preset(preset_name or PRESETS[conditional], overrides)
    if preset.method != "cdrl":
        raise EbmkitError(f"--preset {preset.name!r} is a {preset.method} preset; --from cdrl needs a cdrl one")
    stem = live["ebm"].get("module_list.0.weight_orig", live["ebm"].get("module_list.0.weight"))
    if stem is None or stem.dim() != 4:
        raise EbmkitError(f"{path}: 'pi_state_dict' has no stem convolution 'module.module_list.0'; not a CDRL EBM")
    size = preset.data.image_size
    method = build_method(preset, (stem.shape[1], size, size))
    skipped: list[str] = []
    for name, (_, ema_key) in NETWORKS.items():
        weights, what = live[name], "the EBM" if name == "ebm" else "the initializer"
        load_into(method.nets[name], _converted(weights, method, name, path, strict, skipped), path, what)
        averaged = with_ema(weights, entry(checkpoint, ema_key, path), _is_buffer, ema_key, path) if ema else weights
        load_into(method.ema[name], _converted(averaged, method, name, path, strict, []), path, f"{what}'s EMA")
    scheduler = checkpoint.get("pi_lr_scheduler")
    step = scheduler.get("last_epoch", 0) if isinstance(scheduler, dict) else 0
    return method, int(step) if isinstance(step, int) and step >= 0 else 0, notes + skipped
