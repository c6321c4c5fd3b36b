"""AUROC of out-of-distribution scores, through scikit-learn. Out-of-distribution is the positive
class and a higher score means more anomalous (the energy E = -f, sec. 5.4.5)."""

import numpy as np
from sklearn.metrics import roc_auc_score

from ebmkit.errors import EbmkitError


def auroc(in_scores, out_scores) -> float:
    """Probability that an out-of-distribution input scores above an in-distribution one."""
    scores = np.concatenate([np.asarray(in_scores, float), np.asarray(out_scores, float)])
    labels = np.concatenate([np.zeros(len(in_scores)), np.ones(len(out_scores))])
    if not len(in_scores) or not len(out_scores):
        raise EbmkitError("AUROC needs in- and out-of-distribution scores")
    return float(roc_auc_score(labels, scores))


def read_scores(path) -> list[float]:
    """Scores from a CSV with a 'score' column (what `ebmkit ood-score --csv` writes) or one per line."""
    import csv
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise EbmkitError(f"score file {path} not found")
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        if lines and "score" in lines[0].split(","):
            return [float(row["score"]) for row in csv.DictReader(lines)]
        return [float(ln) for ln in lines]
    except ValueError as e:  # UnicodeDecodeError included
        raise EbmkitError(f"{path}: not a list of numbers ({str(e)[:80]})") from None
