"""`ebmkit convert`: the authors' released checkpoints as ordinary ebmkit model files.

Each source has a converter that maps every tensor of the authors' checkpoint onto the networks of an ebmkit
preset (strictly: a key that maps nowhere, a tensor the preset needs and the file lacks, or a shape mismatch
is an error) and a default preset that pins the authors' code's configuration. The checkpoints are pickle
files: torch_files reads them with weights_only=True and is the only place in ebmkit that reads that format.
"""

from pathlib import Path

from ebmkit.errors import EbmkitError

# --from NAME: (converter module, what the source is)
SOURCES = {"cdrl": ("ebmkit.convert.cdrl", "AlvinZhuyx/CDRL checkpoint"),
           "coopflow": ("ebmkit.convert.coopflow", "AlvinZhuyx/CoopFlow checkpoint"),
           "nerf-lebm": ("ebmkit.convert.nerf_lebm", "AlvinZhuyx/NeRF-LEBM checkpoint")}


def convert(source: str, path: str | Path, out: str | Path, preset_name: str | None = None,
            overrides: list[str] = (), ema: bool = True, strict: bool = True) -> tuple[Path, list[str]]:
    """Write the ebmkit model file `out` from the authors' checkpoint `path` of kind `source`; returns its path and
    the notes on what was not converted."""
    import importlib

    from ebmkit.methods import save_model

    if source not in SOURCES:
        raise EbmkitError(f"--from {source!r}: not one of {', '.join(SOURCES)}")
    module, label = SOURCES[source]
    method, step, notes = importlib.import_module(module).convert(path, preset_name, list(overrides), ema, strict)
    weights = "EMA" if ema else "live (not EMA)"
    status = f"converted by `ebmkit convert` from {Path(path).name} ({label}), {weights} weights"
    return save_model(out, method, step, status=status), notes
