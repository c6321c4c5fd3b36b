"""Frechet distance between Gaussians fitted to two feature sets: the quantity behind FID.

    d^2 = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

The matrix square root and its numerical safeguards are clean-fid's (`cleanfid.fid.frechet_distance`).
"""

import contextlib
import sys
import warnings
from dataclasses import dataclass

import numpy as np
from cleanfid.fid import frechet_distance as _cleanfid_frechet


@dataclass
class FeatureStats:
    """Mean and covariance of a feature set, with what they were computed from."""

    mu: np.ndarray        # (D,) float64
    sigma: np.ndarray     # (D, D) float64
    num: int              # number of images
    features: str         # feature space name, e.g. "inception" or "domain-digits"
    source: str           # the reference set, e.g. "digits:train" or a folder


def feature_stats(feats: np.ndarray, features: str, source: str) -> FeatureStats:
    """Stats of (N, D) features, in float64 (N >= 2)."""
    feats = np.asarray(feats, dtype=np.float64)
    return FeatureStats(feats.mean(0), np.cov(feats, rowvar=False), len(feats), features, source)


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """clean-fid's computation; its note on near-singular covariances goes to stderr, not into --json output."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")  # scipy's LinAlgWarning for rank-deficient covariances
        return float(_cleanfid_frechet(a.mu, a.sigma, b.mu, b.sigma))
