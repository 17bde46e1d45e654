"""Kendall tau-b (or tau-a) of all pairs with scipy.stats.kendalltau (its O(M log M) merge-sort
count)."""

import numpy as np
from scipy import stats

__all__ = ["kendall_numpy"]


def _tied_pairs(x: np.ndarray) -> np.ndarray:
    """x: (R, M) -> (R,) int64 number of pairs tied within each row."""
    counts = [np.unique(row, return_counts=True)[1] for row in x]
    return np.array([int((c * (c - 1) // 2).sum()) for c in counts], dtype=np.int64)


def kendall_numpy(a: np.ndarray, b: np.ndarray | None, variant: str = "b") -> np.ndarray:
    """a: (Ba, M), b: (Bb, M) or None -> (Ba, Bb) float64 Kendall tau.

    variant "b": tau-b (scipy's); "a": tau-a = (concordant - discordant) / n0, n0 = M(M-1)/2,
    the integer count recovered from scipy's tau-b as round(tau_b * sqrt((n0 - ties_a)
    (n0 - ties_b))) (exact for M below ~4e7), then one division; 0 against a constant
    row. b None: symmetric, the diagonal 1 for tau-b and (n0 - ties) / n0 for tau-a.
    """
    if variant not in ("a", "b"):
        raise ValueError(f"variant must be 'a' or 'b'; got {variant!r}")
    sym = b is None
    if b is None:
        b = a
    m = a.shape[1]
    n0 = m * (m - 1) // 2
    if variant == "a":
        free_a = n0 - _tied_pairs(a)  # pairs untied in the row
        free_b = free_a if sym else n0 - _tied_pairs(b)
    out = np.empty((a.shape[0], b.shape[0]))
    for i in range(a.shape[0]):
        for j in range(i if sym else 0, b.shape[0]):
            if variant == "b":
                tau = 1.0 if (sym and i == j) else stats.kendalltau(a[i], b[j]).statistic
            elif sym and i == j:
                tau = free_a[i] / n0
            elif free_a[i] == 0 or free_b[j] == 0:  # a constant row: no pair is concordant
                tau = 0.0
            else:
                tau_b = stats.kendalltau(a[i], b[j]).statistic
                # concordant - discordant is an integer: recovered exactly (M below ~4e7)
                count = np.rint(tau_b * np.sqrt(float(free_a[i])) * np.sqrt(float(free_b[j])))
                tau = count / n0
            out[i, j] = tau
            if sym:
                out[j, i] = tau
    return out
