"""All-pairs Pearson (or cosine) of rows: normalise, then one BLAS product."""

import numpy as np


def unit_rows(a: np.ndarray, center: bool) -> np.ndarray:
    """Rows centred (if `center`) and scaled to unit norm; same dtype as `a`."""
    if center:
        a = a - a.mean(axis=-1, keepdims=True)
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def corr_numpy(a: np.ndarray, b: np.ndarray | None, center: bool = True) -> np.ndarray:
    """a: (Ba, M), b: (Bb, M) or None -> (Ba, Bb) Pearson r (cosine when not `center`).
    """
    za = unit_rows(a, center)
    zb = za if b is None else unit_rows(b, center)
    return np.clip(za @ zb.T, -1.0, 1.0)
