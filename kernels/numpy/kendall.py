"""Kendall tau-b of all pairs with scipy.stats.kendalltau (its O(M log M) merge-sort count)."""

import numpy as np
from scipy import stats


def kendall_numpy(a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """a: (Ba, M), b: (Bb, M) or None -> (Ba, Bb) float64 tau-b."""
    sym = b is None
    if b is None:
        b = a
    out = np.empty((a.shape[0], b.shape[0]))
    for i in range(a.shape[0]):
        for j in range(i if sym else 0, b.shape[0]):
            out[i, j] = 1.0 if (sym and i == j) else stats.kendalltau(a[i], b[j]).statistic
            if sym:
                out[j, i] = out[i, j]
    return out
