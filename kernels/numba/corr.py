"""All-pairs Pearson (or cosine) of rows: a fused normalising kernel, then one BLAS product."""

import numpy as np
from numba import njit, prange

__all__ = ["corr_numba", "unit_rows_numba"]


@njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})  # inputs validated finite
def _unit_rows_kernel(a, centre, out):
    """a: (R, M) -> out (R, M) in out's dtype: rows centred (if `centre`), unit norm; sums in
    float64."""
    m = a.shape[1]
    for r in prange(a.shape[0]):
        mu = 0.0
        if centre:
            for k in range(m):
                mu += a[r, k]
            mu /= m
        ss = 0.0
        for k in range(m):
            v = a[r, k] - mu
            ss += v * v
        inv = 1.0 / np.sqrt(ss)
        for k in range(m):
            out[r, k] = (a[r, k] - mu) * inv


def unit_rows_numba(a: np.ndarray, centre: bool, dtype=None) -> np.ndarray:
    """(R, M) -> (R, M) unit rows in `dtype` (default: a's dtype)."""
    a = np.ascontiguousarray(a)
    out = np.empty(a.shape, dtype=dtype or a.dtype)
    _unit_rows_kernel(a, centre, out)
    return out


def corr_numba(a: np.ndarray, b: np.ndarray | None, centre: bool = True, dtype=None) -> np.ndarray:
    """a: (Ba, M), b: (Bb, M) or None -> (Ba, Bb) Pearson r (cosine when not `centre`).

    The product runs in `dtype` (default a's).
    """
    za = unit_rows_numba(a, centre, dtype)
    zb = za if b is None else unit_rows_numba(b, centre, dtype)
    return np.clip(za @ zb.T, -1.0, 1.0)
