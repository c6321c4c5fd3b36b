"""Frechet distance between Gaussians fitted to two feature sets: the quantity behind FID.

    d^2 = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

computed in float64 with the safeguards clean-fid uses: a product S_1 S_2 too near singular for a finite
square root gets 1e-6 I added to both covariances, and the root's imaginary round-off is dropped. (Not
clean-fid's own function: it passes `disp` to scipy's sqrtm, which newer scipy no longer accepts.)
"""

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg


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


def _sqrtm(m: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's LinAlgWarning for rank-deficient covariances
        return scipy.linalg.sqrtm(m)


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """d^2 of the module docstring between the two fitted Gaussians."""
    root = _sqrtm(a.sigma @ b.sigma)
    if not np.isfinite(root).all():
        offset = 1e-6 * np.eye(len(a.mu))
        root = _sqrtm((a.sigma + offset) @ (b.sigma + offset))
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * np.trace(root.real))
