"""Point data from files, and the per-coordinate standardisation a point recipe applies.

A point file holds an (N, D) array of real numbers: a `.npy`, a `.npz` (one array, or the one named
`points` / `samples`), or a `.csv` (comma-separated numbers, with or without a header line). Every
problem is a one-line error naming the file; nothing is cleaned or dropped silently.
"""

import csv
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ebmkit.errors import EbmkitError

POINT_EXTS = (".npy", ".npz", ".csv")
MIN_ROWS = 256  # fewer points than this cannot train or evaluate a density honestly
NPZ_KEYS = ("points", "samples")


def _from_npz(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.keys())
        named = [k for k in NPZ_KEYS if k in keys]
        if not keys:
            raise EbmkitError(f"{path} holds no arrays")
        if len(keys) > 1 and not named:
            raise EbmkitError(f"{path} holds arrays {keys}: name the points 'points' (or 'samples')")
        return z[named[0] if named else keys[0]]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _from_csv(path: Path) -> np.ndarray:
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f) if row and any(c.strip() for c in row)]
    if rows and not all(_is_number(c) for c in rows[0]):
        rows = rows[1:]  # a header line
    if not rows:
        raise EbmkitError(f"{path} holds no rows of numbers")
    width = len(rows[0])
    values = []
    for i, row in enumerate(rows):
        if len(row) != width:
            raise EbmkitError(f"{path}: data row {i + 1} has {len(row)} columns, the first has {width}")
        for j, cell in enumerate(row):
            if not _is_number(cell):
                raise EbmkitError(f"{path}: column {j + 1} of data row {i + 1} is not a number ({cell.strip()!r})")
        values.append([float(c) for c in row])
    return np.asarray(values, dtype=np.float64)


def read_points(path: str | Path, min_rows: int = MIN_ROWS) -> torch.Tensor:
    """float32 (N, D) from a point file, or a one-line EbmkitError naming the file and the problem."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise EbmkitError(f"point file {path} not found (give a .npy, .npz or .csv holding an (N, D) array)")
    suffix = path.suffix.lower()
    if suffix not in POINT_EXTS:
        raise EbmkitError(f"{path}: point files are {', '.join(POINT_EXTS)}, not {suffix or 'a file without suffix'}")
    try:
        array = _from_csv(path) if suffix == ".csv" else _from_npz(path) if suffix == ".npz" else \
            np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, UnicodeDecodeError, zipfile.BadZipFile) as e:
        raise EbmkitError(f"{path} is not a readable {suffix} array ({type(e).__name__}: {e})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        kind = getattr(array, "dtype", type(array).__name__)
        raise EbmkitError(f"{path}: expected an array of real numbers, got {kind}")
    if array.ndim != 2:
        hint = "; reshape 1-D data to (N, 1)" if array.ndim == 1 else ""
        raise EbmkitError(f"{path}: expected an (N, D) array, got shape {tuple(array.shape)}{hint}")
    n, d = array.shape
    if d < 1:
        raise EbmkitError(f"{path}: the array has no columns")
    bad = ~np.isfinite(array.astype(np.float64)).all(1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise EbmkitError(f"{path}: {int(bad.sum())} of {n} rows hold NaN or inf (first: row {first}); "
                          f"remove them, nothing is dropped silently")
    if n < min_rows:
        raise EbmkitError(f"{path}: {n} points are too few (at least {min_rows})")
    return torch.from_numpy(array.astype(np.float32))


def write_points(x: torch.Tensor, path) -> None:
    """(N, D) points to a .npz (array `samples`) or a .csv with a header x0, x1, ... (also to an open text
    stream such as standard output)."""
    values = x.detach().cpu().numpy()
    if hasattr(path, "write"):
        return _write_csv(values, path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".npz":
        np.savez(path, samples=values)
        return
    with open(path, "w", newline="") as f:
        _write_csv(values, f)


def _write_csv(values: np.ndarray, f) -> None:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow([f"x{j}" for j in range(values.shape[1])])
    writer.writerows([[repr(float(v)) for v in row] for row in values])


@dataclass(frozen=True)
class PointUnits:
    """Model space of a point model: x_model = (x - mean) / std per coordinate, fitted on the training
    data (data.standardize: model-space standard deviation data.scale) or the identity. Stored in the
    model file, so samples go back to the data's own units."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @staticmethod
    def identity(dim: int) -> "PointUnits":
        return PointUnits((0.0,) * dim, (1.0,) * dim)

    @staticmethod
    def fit(x: torch.Tensor, target_std: float = 1.0, source: str = "the data") -> "PointUnits":
        """The units that give each column of x (N, D) mean 0 and standard deviation `target_std` (float64)."""
        x = x.double()
        mean, std = x.mean(0), x.std(0)
        flat = [j for j, s in enumerate(std.tolist()) if not s > 1e-12 * max(1.0, abs(mean[j].item()))]
        if flat:
            raise EbmkitError(f"{source}: column {flat[0] + 1} is constant; it carries nothing to learn")
        return PointUnits(tuple(mean.tolist()), tuple((std / target_std).tolist()))

    @staticmethod
    def from_dict(d: dict) -> "PointUnits":
        mean, std = tuple(map(float, d["mean"])), tuple(map(float, d["std"]))
        if len(mean) != len(std) or not all(math.isfinite(v) for v in mean + std) or min(std, default=1) <= 0:
            raise ValueError("bad point units")
        return PointUnits(mean, std)

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    def _tensors(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.tensor(self.mean, dtype=like.dtype, device=like.device),
                torch.tensor(self.std, dtype=like.dtype, device=like.device))

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._tensors(x)
        return (x - mean) / std

    def to_data(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._tensors(x)
        return x * std + mean
