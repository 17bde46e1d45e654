"""The naive reference: scipy, float64, plain loops: ground truth for tests, benchmark baseline.

Never optimised: it must stay obviously right. Every function takes already-validated numpy
arrays (fastrsa's public API does the checks) and computes in float64.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.spatial import distance

__all__ = [
    "compare_ref",
    "corr_ref",
    "exact_float64",
    "METHODS",
    "METRICS",
    "RANK_METHODS",
    "rank_ref",
    "rdm_ref",
    "UNCORRECTED",
]

METRICS = ("correlation", "cosine", "euclidean")
METHODS = ("spearman", "pearson", "cosine", "kendall", "rho-a", "tau-a")
RANK_METHODS = ("spearman", "kendall", "rho-a", "tau-a")  # depend on the rows' order only
# rsatoolbox's rank measures without tie correction: defined for constant rows, float64 results,
# and a row with ties is less than 1 similar to itself
UNCORRECTED = ("rho-a", "tau-a")


def exact_float64(x: np.ndarray, axis: int | None = None) -> np.ndarray:
    """x as float64. Integers are first shifted by their minimum along `axis` (each row's: -1,
    each column's: -2) in integer arithmetic, exact modulo 2**64, then rounded once: correlation
    is invariant to a row shift and euclidean distance to a column shift, while scipy's own
    float64 centring of integers beyond 2**53 would be inexact."""
    x = np.asarray(x)
    if x.dtype.kind not in "iub" or axis is None:
        return x.astype(np.float64)
    lo = x.min(axis=axis, keepdims=True)
    return (x.astype(np.uint64) - lo.astype(np.uint64)).astype(np.float64)


def rdm_ref(x: np.ndarray, metric: str = "correlation") -> np.ndarray:
    """Condensed RDMs by scipy `pdist`, one model at a time.

    x: (B, n, d) features (floats, or integers taken exactly). Returns (B, n*(n-1)//2) float64,
    pairs i < j in row-major order. correlation = 1 - Pearson r of the rows (each centred by its
    own mean).
    """
    x = exact_float64(x, {"correlation": -1, "euclidean": -2}.get(metric))
    return np.stack([distance.pdist(features, metric=metric) for features in x])


def rank_ref(x: np.ndarray) -> np.ndarray:
    """Average-tie ranks (1-based) along the last axis: scipy.stats.rankdata, float64. Integers
    are ranked as integers (exact beyond 2**53), floats as float64."""
    x = np.asarray(x)
    x = x if x.dtype.kind in "iu" else x.astype(np.float64)
    return np.apply_along_axis(stats.rankdata, -1, x, method="average").reshape(x.shape)


def _tied_pairs(u: np.ndarray) -> int:
    counts = np.unique(u, return_counts=True)[1]
    return int(sum(int(c) * (int(c) - 1) // 2 for c in counts))


def _rho_a(u: np.ndarray, v: np.ndarray) -> float:
    """rsatoolbox's rho-a: 12 x.y / (n^3 - n) - 3 (n + 1) / (n - 1) on the average-tie ranks x,
    y of u and v, n values each (Spearman's formula without a correction for ties)."""
    n = u.shape[0]
    x = stats.rankdata(u, method="average")
    y = stats.rankdata(v, method="average")
    return 12.0 * float(x @ y) / (n**3 - n) - 3.0 * (n + 1) / (n - 1)


def _tau_a(u: np.ndarray, v: np.ndarray) -> float:
    """Kendall's tau-a = (concordant - discordant) / (n (n - 1) / 2), pairs tied in either vector
    counting as neither: scipy's tau-b times its tie-corrected denominator sqrt((n0 - t_u)
    (n0 - t_v)) over n0 (t: pairs tied within a vector); 0 when either vector is constant."""
    n0 = u.shape[0] * (u.shape[0] - 1) // 2
    free_u, free_v = n0 - _tied_pairs(u), n0 - _tied_pairs(v)
    if free_u == 0 or free_v == 0:
        return 0.0
    tau_b = stats.kendalltau(u, v, variant="b").statistic
    return float(tau_b * np.sqrt(float(free_u)) * np.sqrt(float(free_v)) / n0)


def _pair(u: np.ndarray, v: np.ndarray, method: str) -> float:
    if method == "rho-a":
        return _rho_a(u, v)
    if method == "tau-a":
        return _tau_a(u, v)
    if method == "spearman":
        return stats.spearmanr(u, v).statistic
    if method == "pearson":
        return stats.pearsonr(u, v).statistic
    if method == "kendall":
        return stats.kendalltau(u, v, variant="b").statistic
    if method == "cosine":
        return 1.0 - distance.cosine(u, v)
    raise ValueError(f"unknown method {method!r}")


def _exact_rows(v: np.ndarray, method: str) -> np.ndarray:
    v = np.asarray(v)
    if v.dtype.kind in "iub" and method in RANK_METHODS:
        return rank_ref(v)
    return exact_float64(v, -1 if method == "pearson" else None)


def compare_ref(a: np.ndarray, b: np.ndarray | None = None, method: str = "spearman") -> np.ndarray:
    """All-pairs comparison of rows by scipy, one pair at a time.

    a: (Ba, M), b: (Bb, M) or None (then b = a). Returns (Ba, Bb) float64. Integer rows are
    taken exactly: as their ranks for spearman, kendall, rho-a and tau-a (which ranking leaves
    unchanged), shifted by their minimum for pearson. rho-a and tau-a are rsatoolbox's (no tie
    correction; defined for constant rows: 0), computed per pair by their formulas above.
    """
    a = _exact_rows(a, method)
    b = a if b is None else _exact_rows(b, method)
    out = np.empty((a.shape[0], b.shape[0]))
    for i, u in enumerate(a):
        for j, v in enumerate(b):
            out[i, j] = _pair(u, v, method)
    return out


def corr_ref(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """All-pairs Pearson r of rows: (Ba, M), (Bb, M) -> (Ba, Bb) float64."""
    return compare_ref(a, b, "pearson")
