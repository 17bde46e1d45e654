"""The naive reference: scipy, float64, plain loops: ground truth for tests, benchmark baseline.

Never optimised: it must stay obviously right. Every function takes already-validated numpy
arrays (fastrsa's public API does the checks) and computes in float64.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.spatial import distance

METRICS = ("correlation", "cosine", "euclidean")
METHODS = ("spearman", "pearson", "cosine", "kendall")


def rdm_ref(x: np.ndarray, metric: str = "correlation") -> np.ndarray:
    """Condensed RDMs by scipy `pdist`, one model at a time.

    x: (B, n, d) features. Returns (B, n*(n-1)//2) float64, pairs i < j in row-major order.
    correlation = 1 - Pearson r of the rows (each centred by its own mean).
    """
    x = np.asarray(x, dtype=np.float64)
    return np.stack([distance.pdist(features, metric=metric) for features in x])


def rank_ref(x: np.ndarray) -> np.ndarray:
    """Average-tie ranks (1-based) along the last axis: scipy.stats.rankdata, float64. Integers
    are ranked as integers (exact beyond 2**53), floats as float64."""
    x = np.asarray(x)
    x = x if x.dtype.kind in "iu" else x.astype(np.float64)
    return np.apply_along_axis(stats.rankdata, -1, x, method="average").reshape(x.shape)


def _pair(u: np.ndarray, v: np.ndarray, method: str) -> float:
    if method == "spearman":
        return stats.spearmanr(u, v).statistic
    if method == "pearson":
        return stats.pearsonr(u, v).statistic
    if method == "kendall":
        return stats.kendalltau(u, v, variant="b").statistic
    if method == "cosine":
        return 1.0 - distance.cosine(u, v)
    raise ValueError(f"unknown method {method!r}")


def compare_ref(a: np.ndarray, b: np.ndarray | None = None, method: str = "spearman") -> np.ndarray:
    """All-pairs comparison of rows by scipy, one pair at a time.

    a: (Ba, M), b: (Bb, M) or None (then b = a). Returns (Ba, Bb) float64.
    """
    a = np.asarray(a, dtype=np.float64)
    b = a if b is None else np.asarray(b, dtype=np.float64)
    out = np.empty((a.shape[0], b.shape[0]))
    for i, u in enumerate(a):
        for j, v in enumerate(b):
            out[i, j] = _pair(u, v, method)
    return out


def corr_ref(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """All-pairs Pearson r of rows: (Ba, M), (Bb, M) -> (Ba, Bb) float64."""
    return compare_ref(a, b, "pearson")
