"""All-pairs Pearson (or cosine) of rows: normalise, then one BLAS product."""

import numpy as np

__all__ = ["corr_numpy", "unit_rows"]


def unit_rows(a: np.ndarray, centre: bool) -> np.ndarray:
    """Rows centred (if `centre`) and scaled to unit norm, in float64 (so large offsets cost no
    accuracy), returned in a's dtype."""
    z = a.astype(np.float64)
    if centre:
        z -= z.mean(axis=-1, keepdims=True)
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    return z.astype(a.dtype, copy=False)


def corr_numpy(a: np.ndarray, b: np.ndarray | None, centre: bool = True) -> np.ndarray:
    """a: (Ba, M), b: (Bb, M) or None -> (Ba, Bb) Pearson r (cosine when not `centre`); the
    product in a's dtype."""
    za = unit_rows(a, centre)
    zb = za if b is None else unit_rows(b, centre)
    return np.clip(za @ zb.T, -1.0, 1.0)
