"""Presets: pydantic schemas (a shared base and one module per method, chosen by `method`), TOML loading,
`--set` overrides.

A preset pins every hyperparameter of a run. Unknown keys, wrong types and out-of-range values are
errors that name the field. Paper presets cite the thesis table or section each number comes from.
"""

import json
import os
import sys
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from ebmkit.errors import EbmkitError
from ebmkit.presets.base import Strict
from ebmkit.presets.cdrl import CDRLPreset
from ebmkit.presets.coopflow import CoopFlowPreset
from ebmkit.presets.nerf_lebm import NeRFLEBMPreset

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

PRESET_DIR = Path(__file__).resolve().parent / "files"  # a link to the top-level presets/; in a wheel, the files
SCHEMAS: dict[str, type[BaseModel]] = {"cdrl": CDRLPreset, "coopflow": CoopFlowPreset, "nerf_lebm": NeRFLEBMPreset}
Preset = CDRLPreset | CoopFlowPreset | NeRFLEBMPreset  # the union of all method schemas


def list_presets() -> list[tuple[str, str]]:
    """(name, description) of every preset shipped with ebmkit (presets/ in a checkout)."""
    out = []
    for f in sorted(PRESET_DIR.glob("*.toml")):
        raw = tomllib.loads(f.read_text())
        out.append((f.stem, raw.get("description", "")))
    return out


def _read(source: str) -> tuple[dict, str]:
    """Raw dict from a preset name, a .toml file, a .json file (e.g. a run's preset.json) or a model file."""
    path = Path(source)
    if path.suffix == ".safetensors" and path.is_file():
        from ebmkit.checkpoint import read_metadata

        try:
            return json.loads(read_metadata(path)["preset"])["preset"], str(path)
        except (KeyError, TypeError, json.JSONDecodeError):
            raise EbmkitError(f"{path}: unreadable preset metadata") from None
    if path.suffix in (".toml", ".json") and path.is_file():
        text = path.read_text()
        try:
            raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise EbmkitError(f"cannot parse preset file {path}: {e}") from None
        if not isinstance(raw, dict):
            raise EbmkitError(f"preset file {path} holds a {type(raw).__name__}, not a table of settings")
        return raw, str(path)
    named = PRESET_DIR / f"{source}.toml"
    if not named.is_file():
        names = ", ".join(n for n, _ in list_presets())
        raise EbmkitError(f"unknown preset '{source}' (known: {names}; or give a .toml/.json path)")
    return tomllib.loads(named.read_text()), source


def parse_override(item: str) -> tuple[list[str], Any]:
    """'train.lr=2e-4' -> (['train', 'lr'], 2e-4). Values use TOML syntax; bare words are strings."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise EbmkitError(f"bad override '{item}': expected KEY=VALUE, e.g. train.lr=2e-4")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return key.strip().split("."), value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for item in overrides:
        keys, value = parse_override(item)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise EbmkitError(f"bad override '{item}': '{k}' is not a section")
        node[keys[-1]] = value
    return raw


def _arch_tags(cls: type = Strict) -> set[str]:
    """The tags of the discriminated unions (each member's required `arch`), left out of error paths."""
    arch = getattr(cls, "model_fields", {}).get("arch")
    tags = set(get_args(arch.annotation)) if arch is not None and arch.is_required() else set()
    return tags.union(*(_arch_tags(sub) for sub in cls.__subclasses__()))


_UNION_TAGS = _arch_tags()


def _describe(error: ValidationError) -> str:
    parts = []
    for err in error.errors():
        loc = ".".join(str(p) for p in err["loc"] if p not in _UNION_TAGS) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        if err["type"] not in ("missing", "extra_forbidden") and "input" in err and not isinstance(err["input"], dict):
            msg += f" (got {err['input']!r})"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def validate(raw: dict, source: str = "preset") -> Preset:
    method = raw.get("method")
    if method not in SCHEMAS:
        raise EbmkitError(f"{source}: unknown method {method!r} (known: {', '.join(SCHEMAS)})")
    try:
        return SCHEMAS[method].model_validate(raw)
    except ValidationError as e:
        raise EbmkitError(f"invalid preset {source}: {_describe(e)}") from None


def load_preset(source: str, overrides: list[str] = ()) -> Preset:
    """A validated preset from a name or file, with `--set KEY=VALUE` overrides applied first."""
    raw, label = _read(source)
    return validate(apply_overrides(raw, list(overrides)), label)


def with_data(preset: Preset, path: str) -> Preset:
    """`ebmkit train --data PATH`: a point preset trains on the point file PATH (data.name = "points"); a
    preset of a local image or scene set reads it from PATH (data.path). A preset of a built-in set
    cannot use a path, and says so."""
    from ebmkit.inputs import BUILTIN, POINT_SETS
    from ebmkit.data.points import POINT_EXTS

    data = preset.data
    if data.name in POINT_SETS:
        if Path(path).suffix.lower() not in POINT_EXTS:
            raise EbmkitError(f"--data {path}: preset {preset.name!r} learns points, so --data takes a point file "
                              f"({', '.join(POINT_EXTS)}) holding an (N, D) array")
        update = {"name": "points", "path": path}
    elif data.name in BUILTIN:
        raise EbmkitError(f"--data {path}: preset {preset.name!r} trains on the built-in {data.name!r} set, which "
                          f"reads no files (--data is for presets of point files and local data sets)")
    else:
        update = {"path": path}
    raw = preset.model_dump(mode="json")
    raw["data"].update(update)
    return validate(raw, f"{preset.name} with --data {path}")


def resolve(name: str | None, overrides: list[str], data: str | None, run_dir: Path | None,
            resume: Path | None) -> tuple[Preset, Path]:
    """The preset and run directory of `ebmkit train`: preset `name` (with --data, --set) into `run_dir`
    (default runs/NAME), or on --resume the run's own preset.json (with --set) in that run directory."""
    if resume is not None:
        if name is not None:
            raise EbmkitError("--resume continues a run with its own preset; drop --preset")
        if not (resume / "preset.json").is_file():
            raise EbmkitError(f"cannot resume: {resume / 'preset.json'} not found")
        preset, run_dir = load_preset(str(resume / "preset.json"), overrides), resume
    else:
        if name is None:
            raise EbmkitError("give --preset NAME (see `ebmkit presets list`) or --resume RUN_DIR")
        preset = load_preset(name, overrides)
        run_dir = run_dir or Path("runs") / preset.name
    return (preset if data is None else with_data(preset, data)), run_dir


def speed_overrides() -> list[str]:
    """EBMKIT_SPEED="autocast=bf16,cuda_graphs=false": [speed] settings for a stored model, whose other
    settings are fixed (`--set speed.KEY=VALUE` does the same for a run being trained)."""
    text = os.environ.get("EBMKIT_SPEED", "")
    return [f"speed.{item.strip()}" for item in text.replace(" ", ",").split(",") if item.strip()]


def to_toml(data: dict) -> str:
    """Serialise a fully expanded preset (nested dicts of scalars and lists) as TOML."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    def table(d: dict, prefix: str) -> list[str]:
        lines = [f"{k} = {value(v)}" for k, v in d.items() if not isinstance(v, dict) and v is not None]
        for k, v in d.items():
            if isinstance(v, dict):
                name = f"{prefix}.{k}" if prefix else k
                lines += ["", f"[{name}]"] + table(v, name)
        return lines

    return "\n".join(table(data, "")) + "\n"
