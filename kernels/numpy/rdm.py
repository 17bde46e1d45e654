"""Batched RDMs with numpy: centre, one batched BLAS Gram product, condensed extraction."""

import numpy as np


def rdm_numpy(x: np.ndarray, metric: str) -> np.ndarray:
    """x: (B, n, d) float32/float64 -> condensed RDMs (B, n*(n-1)//2) in x's dtype.

    correlation: 1 - r of rows centred by their own mean; cosine: 1 - cos; euclidean: ||xi - xj||
    (columns are centred first: distances do not change and the Gram is better conditioned).
    """
    if metric == "correlation":
        x = x - x.mean(axis=-1, keepdims=True)
    elif metric == "euclidean":
        x = x - x.mean(axis=-2, keepdims=True)
    gram = np.matmul(x, x.swapaxes(-1, -2))  # (B, n, n)
    i, j = np.triu_indices(x.shape[-2], k=1)
    sq = np.diagonal(gram, axis1=-2, axis2=-1)  # (B, n) squared norms
    if metric == "euclidean":
        d2 = sq[:, i] + sq[:, j] - 2.0 * gram[:, i, j]
        return np.sqrt(np.maximum(d2, 0.0))
    norms = np.sqrt(sq)
    return np.clip(1.0 - gram[:, i, j] / (norms[:, i] * norms[:, j]), 0.0, 2.0)
