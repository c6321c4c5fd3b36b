"""AUROC of out-of-distribution scores, through scikit-learn. Out-of-distribution is the positive
class and a higher score means more anomalous (the energy E = -f, sec. 5.4.5)."""

import csv
import math
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from ebmkit.errors import EbmkitError


def auroc(in_scores, out_scores) -> float:
    """Probability that an out-of-distribution input scores above an in-distribution one."""
    a, b = np.asarray(in_scores, float).ravel(), np.asarray(out_scores, float).ravel()
    if not len(a) or not len(b):
        raise EbmkitError("AUROC needs in- and out-of-distribution scores")
    for name, s in (("in-distribution", a), ("out-of-distribution", b)):
        bad = np.flatnonzero(~np.isfinite(s))
        if len(bad):
            raise EbmkitError(f"AUROC needs finite scores: {len(bad)} of the {len(s)} {name} scores are NaN or "
                              f"inf (first at position {bad[0] + 1})")
    return float(roc_auc_score(np.r_[np.zeros(len(a)), np.ones(len(b))], np.r_[a, b]))


def _cell(line: str, column: int) -> str:
    row = next(csv.reader([line]))
    return row[column] if column < len(row) else ""


def read_scores(path) -> list[float]:
    """Finite scores from a CSV with a 'score' column (what `ebmkit ood-score --csv` writes) or one per
    line; blank lines are skipped. A bad file is an EbmkitError naming it and the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise EbmkitError(f"score file {path} not found")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        text = None
    if text is None or "\0" in text:
        raise EbmkitError(f"score file {path} is not a list of numbers (binary data, not text)")
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    header = [c.strip() for c in next(csv.reader([lines[0][1]]))] if lines else []
    if "score" in header:  # a CSV: the 'score' cell of each line after the header
        lines = [(n, _cell(ln, header.index("score"))) for n, ln in lines[1:]]
    scores = []
    for n, cell in lines:
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise EbmkitError(f"score file {path}, line {n}: {cell.strip()[:40]!r} is not a finite number")
        scores.append(value)
    if not scores:
        raise EbmkitError(f"score file {path} holds no scores (give a CSV with a 'score' column or one number "
                          "per line)")
    return scores
