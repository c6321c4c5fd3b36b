"""The method registry, and loading a model file back into its method."""

import json
from pathlib import Path

import torch

from ebmkit import checkpoint, presets
from ebmkit.data.points import PointUnits
from ebmkit.errors import EbmkitError
from ebmkit.methods.base import Batch, Method, OptimSpec
from ebmkit.methods.cdrl import CDRL
from ebmkit.methods.coopflow import CoopFlow
from ebmkit.methods.nerf_lebm import NeRFLEBM

METHODS: dict[str, type[Method]] = {"cdrl": CDRL, "coopflow": CoopFlow, "nerf_lebm": NeRFLEBM}

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


def load_model(path: str | Path, device: torch.device | str = "cpu",
               supported: tuple[str, ...] | None = None, command: str = "this command") -> tuple[Method, int]:
    """A method with every network (and EMA copy) restored from a model file, and its step; the
    environment's EBMKIT_SPEED adjusts how it samples (presets.speed_overrides)."""
    tensors, meta = checkpoint.read_safetensors(path)
    broken = next((k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if broken is not None:
        raise EbmkitError(f"{path}: tensor '{broken}' holds NaN or inf values; the model file is broken")
    name = meta.get("method")
    if name not in METHODS or (supported is not None and name not in supported):
        ok = ", ".join(supported or METHODS)
        raise EbmkitError(f"{path} holds a '{name}' model; {command} supports: {ok}")
    try:
        stored = json.loads(meta["preset"])
        speed = presets.speed_overrides()
        preset = presets.validate(presets.apply_overrides(stored["preset"], speed),
                                  f"stored in {path}" + (" (with EBMKIT_SPEED)" if speed else ""))
        shape = tuple(stored["shape"])
        units = PointUnits.from_dict(stored["units"]) if "units" in stored else None
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise EbmkitError(f"{path}: unreadable preset metadata ({e})") from None
    method = build_method(preset, shape, device)
    if units is not None:
        if method.units is None or len(units.mean) != shape[0]:
            raise EbmkitError(f"{path}: its point units do not fit examples of shape {shape}")
        method.units = units
    method.load_components(checkpoint.split_components(tensors), str(path))
    return method, int(meta.get("step", 0))
