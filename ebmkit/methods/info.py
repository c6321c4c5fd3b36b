"""`ebmkit info`: what a model file holds, read and validated as `load_model` does."""

from pathlib import Path

import torch

from ebmkit.checkpoint import read_metadata
from ebmkit.methods import load_model


def model_info(path: str | Path) -> dict:
    """Method, step, example shape, networks with their parameter counts, the EMA (its decay, and how far
    each copy has moved from its network: relative L2 distance), the preset, and who wrote the file."""
    method, step = load_model(path)
    meta = read_metadata(path)
    preset = method.preset
    networks = {}
    for name, net in method.nets.items():
        own = torch.cat([p.detach().flatten() for p in net.parameters()])
        ema = torch.cat([p.flatten() for p in method.ema[name].parameters()])
        networks[name] = {"class": type(net).__name__, "parameters": own.numel(),
                          "ema_distance": float((ema - own).norm() / own.norm().clamp_min(1e-12))}
    return {"model": str(path), "method": preset.method, "step": step, "shape": list(method.shape),
            "preset": preset.name, "description": preset.description, "data": preset.data.name,
            "ema_decay": preset.train.ema, "networks": networks,
            "parameters": sum(n["parameters"] for n in networks.values()),
            "point_units": method.units is not None, "status": meta.get("status"),
            "ebmkit_version": meta.get("ebmkit_version"), "file_bytes": Path(path).stat().st_size}
