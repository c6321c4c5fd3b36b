"""The method registry, and loading a model file back into its method."""

import json
from pathlib import Path
from unittest import mock

import torch
from torch.nn.utils.parametrizations import _SpectralNorm

from ebmkit import checkpoint, presets
from ebmkit.data.points import PointUnits
from ebmkit.errors import EbmkitError
from ebmkit.methods.base import Batch, Method, OptimSpec
from ebmkit.methods.cdrl import CDRL
from ebmkit.methods.coopflow import CoopFlow
from ebmkit.methods.nerf_lebm import NeRFLEBM

METHODS: dict[str, type[Method]] = {"cdrl": CDRL, "coopflow": CoopFlow, "nerf_lebm": NeRFLEBM}
MAX_SIDE = 4096  # the largest example dimension or image side a model file may claim

__all__ = ["METHODS", "Batch", "Method", "OptimSpec", "build_method", "load_model", "save_model"]


def build_method(preset, shape: tuple[int, ...], device: torch.device | str = "cpu") -> Method:
    return METHODS[preset.method](preset, shape, device)


def save_model(path: str | Path, method: Method, step: int, commit: bool = True, status: str | None = None) -> Path:
    """The model file of `method` at training step `step` (checkpoint.save_model)."""
    stored = {"preset": method.preset.model_dump(mode="json"), "shape": list(method.shape)}
    if method.units is not None:  # point models: the data's units (data.standardize)
        stored["units"] = method.units.to_dict()
    preset_json = json.dumps(stored)
    return checkpoint.save_model(path, method.name, step, preset_json, method.components(), commit, status)


def _stored_shape(value) -> tuple[int, ...]:
    """A model's example shape from its metadata: (D,) points or (C, H, W) images, positive and bounded."""
    if (not isinstance(value, list) or len(value) not in (1, 3)
            or not all(isinstance(n, int) and not isinstance(n, bool) and 0 < n <= MAX_SIDE for n in value)):
        raise ValueError(f"shape {value!r} is not (D,) or (C, H, W) with sizes 1..{MAX_SIDE}")
    return tuple(value)


def check_shapes(preset, shape: tuple[int, ...], tensors: dict[str, torch.Tensor], source: str) -> None:
    """Every network the preset builds has exactly the stored tensors' names and shapes. Built on the meta
    device, which allocates nothing: a file's metadata cannot make ebmkit allocate more than its tensors.
    Spectral norm's start-up power iterations are skipped there: on meta tensors they compute nothing and cost
    about a second per command (torch loads its meta decompositions for them)."""
    with torch.device("meta"), mock.patch.object(_SpectralNorm, "_power_method", lambda *args: None):
        expected = {f"{name}.{k}": tuple(v.shape) for name, module in build_method(preset, shape, "meta").components().items()
                    for k, v in module.state_dict().items()}
    for key, want in expected.items():
        if key not in tensors:
            raise EbmkitError(f"{source}: its preset builds tensor '{key}', which the file lacks; the file is "
                              f"broken or its metadata does not belong to its tensors")
        if tuple(tensors[key].shape) != want:
            raise EbmkitError(f"{source}: tensor '{key}' has shape {tuple(tensors[key].shape)} but its preset "
                              f"builds {want}; the file is broken or its metadata does not belong to its tensors")
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise EbmkitError(f"{source}: tensor '{extra[0]}' (and {len(extra) - 1} more) belongs to no network of its preset")


def load_model(path: str | Path, device: torch.device | str = "cpu", supported: tuple[str, ...] | None = None,
               command: str = "this command", why: str = "") -> tuple[Method, int]:
    """A method with every network (and EMA copy) restored from a model file, and its step; the
    environment's EBMKIT_SPEED adjusts how it samples (presets.speed_overrides). The file is untrusted
    input: its metadata is validated and its tensors checked against it before any network is built.
    `supported`: the methods `command` can use (the one capability gate); `why` explains it to the user."""
    tensors, meta = checkpoint.read_safetensors(path)
    broken = next((k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if broken is not None:
        raise EbmkitError(f"{path}: tensor '{broken}' holds NaN or inf values; the model file is broken")
    name = meta.get("method")
    if name not in METHODS or (supported is not None and name not in supported):
        ok = ", ".join(supported or METHODS)
        raise EbmkitError(f"{path} holds a '{name}' model; {command} supports: {ok}" + (f" ({why})" if why else ""))
    try:
        stored = json.loads(meta["preset"])
        if not isinstance(stored, dict) or not isinstance(stored.get("preset"), dict):
            raise ValueError("no preset object")
        speed = presets.speed_overrides()
        preset = presets.validate(presets.apply_overrides(stored["preset"], speed),
                                  f"stored in {path}" + (" (with EBMKIT_SPEED)" if speed else ""))
        if preset.method != name:
            raise ValueError(f"method '{name}' but a '{preset.method}' preset")
        shape = _stored_shape(stored.get("shape"))
        size = getattr(preset.data, "image_size", None)
        if len(shape) == 3 and size is not None and shape[1:] != (size, size):
            raise ValueError(f"shape {list(shape)} but data.image_size {size}")
        units = PointUnits.from_dict(stored["units"]) if "units" in stored else None
        step = int(meta.get("step", "0"))
        if step < 0:
            raise ValueError(f"step {step}")
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise EbmkitError(f"{path}: unreadable preset metadata ({str(e)[:200]})") from None
    check_shapes(preset, shape, tensors, str(path))
    method = build_method(preset, shape, device)
    if units is not None:
        if method.units is None or len(units.mean) != shape[0]:
            raise EbmkitError(f"{path}: its point units do not fit examples of shape {shape}")
        method.units = units
    method.load_components(checkpoint.split_components(tensors), str(path))
    return method, step
