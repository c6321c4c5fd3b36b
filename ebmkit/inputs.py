"""The names of the built-in data sets, and checks of the paths a command is given. Nothing here imports
torch: commands run these checks first, so a bad argument fails in a fraction of a second, and an output
path that cannot be written fails before the work rather than after it."""

import os
import re
from pathlib import Path

from ebmkit.errors import EbmkitError

TOY_2D: tuple[str, ...] = ("checkerboard", "spiral", "8gaussians", "rings", "pinwheel")
IMAGE_SETS: tuple[str, ...] = ("digits", "shapes", "scenes")  # generated, no files needed
BUILTIN: tuple[str, ...] = TOY_2D + IMAGE_SETS
POINT_SETS: tuple[str, ...] = TOY_2D + ("points",)  # "points": an (N, D) array from a file (data/points.py)


def existing_file(path: Path | str | None, option: str) -> None:
    """`option` (e.g. --model) names a file that exists."""
    if path is None:
        return
    path = Path(path).expanduser()
    if path.is_dir():
        raise EbmkitError(f"{option} {path} is a folder; give a file")
    if not path.is_file():
        raise EbmkitError(f"{option} {path} not found")


def data_source(spec: str | Path | None, option: str, builtin: tuple[str, ...] = IMAGE_SETS) -> None:
    """`option` names an existing file or folder, or a built-in set NAME[:SPLIT]."""
    if spec is None or Path(spec).expanduser().exists():
        return
    if str(spec).partition(":")[0] not in builtin:
        sets = f", and not a built-in set ({', '.join(builtin)}, optionally NAME:SPLIT)" if builtin else ""
        raise EbmkitError(f"{option} {spec} not found: no such file or folder{sets}")


def _writable_parent(path: Path, option: str) -> None:
    parent = next(p for p in path.parents if p.exists())
    if not parent.is_dir():
        raise EbmkitError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EbmkitError(f"{option} {path}: cannot write to {parent} (permission denied)")


def output_file(path: Path | None, option: str, suffixes: tuple[str, ...]) -> None:
    """`option` names a file with one of `suffixes` that this process can create or replace, or is "-"
    (standard output) where an array format (.npz, .csv) is among them."""
    if path is None or (str(path) == "-" and {".npz", ".csv"} & set(suffixes)):
        return
    if path.suffix not in suffixes:
        raise EbmkitError(f"{option} {path}: use a {', '.join(suffixes[:-1])}{' or ' if suffixes[1:] else ''}{suffixes[-1]} file name")
    if path.is_dir():
        raise EbmkitError(f"{option} {path} is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise EbmkitError(f"{option} {path}: cannot replace it (permission denied)")
    _writable_parent(path, option)


def output_dir(path: Path | None, option: str) -> None:
    """`option` names a folder this process can write, or one it can create."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise EbmkitError(f"{option} {path} is a file; give a folder")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise EbmkitError(f"{option} {path}: cannot write to it (permission denied)")
    if not path.exists():
        _writable_parent(path, option)


def device(name: str) -> None:
    """--device is auto, cpu, cuda or cuda:N (whether that device exists is checked when torch is loaded)."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise EbmkitError(f"--device {name}: use auto, cpu, cuda or cuda:N")
