"""ebmkit: energy-based generative models (CDRL, CoopFlow, NeRF-LEBM) of Zhu, UCLA 2024.

    import ebmkit
    model = ebmkit.load("runs/mine/model.safetensors")     # sample, energy, inpaint, ...
    model = ebmkit.train("cdrl-points", "runs/mine", ["train.iterations=2000"])
    preset = ebmkit.load_preset("cdrl-digits")

See docs/python-api.md. The names load lazily: `import ebmkit` alone imports no torch.
"""

__version__ = "0.2.0"
__all__ = ["Model", "load", "train", "load_preset", "__version__"]


def __getattr__(name: str):
    if name in ("Model", "load", "train", "load_preset"):
        from ebmkit import api

        return getattr(api, name)
    raise AttributeError(f"module 'ebmkit' has no attribute {name!r}")
