"""Batched RDMs with numpy: centre, one batched BLAS Gram product, condensed extraction."""

import numpy as np

from .._euclidean import refine_ratio, refine_step


def rdm_numpy(x: np.ndarray, metric: str, chunk_bytes: int = 1 << 30) -> np.ndarray:
    """x: (B, n, d) float32/float64 -> condensed RDMs (B, n*(n-1)//2) in x's dtype.

    correlation: 1 - r of rows centred by their own mean (what rounding leaves of the mean is
    removed from the Gram, so large offsets cost no accuracy); cosine: 1 - cos; products in
    x's dtype. euclidean: see `euclidean_numpy`. The batch is computed in chunks whose
    temporaries (centred rows, Gram matrices, condensed intermediates, ~(n*d + 3*n*n) * 8 bytes
    per matrix) take about `chunk_bytes`, at least one matrix at a time.
    """
    nb, n, d = x.shape
    step = max(1, chunk_bytes // ((n * d + 3 * n * n) * 8))
    if step >= nb:
        return _rdm_chunk(x, metric, chunk_bytes)
    out = np.empty((nb, n * (n - 1) // 2), dtype=x.dtype)
    for b0 in range(0, nb, step):
        out[b0 : b0 + step] = _rdm_chunk(x[b0 : b0 + step], metric, chunk_bytes)
    return out


def _rdm_chunk(x: np.ndarray, metric: str, chunk_bytes: int) -> np.ndarray:
    if metric == "euclidean":
        return euclidean_numpy(x, chunk_bytes)
    if metric == "correlation":
        mean = x.mean(axis=-1, keepdims=True, dtype=np.float64)
        x = x - mean.astype(x.dtype)
        left = (mean - mean.astype(x.dtype))[..., 0]  # the mean's rounding: what y still holds
    gram = np.matmul(x, x.swapaxes(-1, -2))  # (B, n, n)
    if metric == "correlation":
        _remove_offset(gram, left, x.shape[-1])
    i, j = np.triu_indices(x.shape[-2], k=1)
    norms = np.sqrt(np.diagonal(gram, axis1=-2, axis2=-1))  # (B, n)
    return np.clip(1.0 - gram[:, i, j] / (norms[:, i] * norms[:, j]), 0.0, 2.0)


def _remove_offset(gram: np.ndarray, left: np.ndarray, d: int) -> None:
    """gram (B, n, n) of rows y (B, n, d) whose mean is still `left` (B, n) -> in place, the Gram
    of the exactly centred rows: sum (y - l)(y' - l') = sum y y' - d l l'. Skipped where it
    cannot matter (d l^2 below 1e-10 of each row's sum of squares: ordinary data)."""
    sq = np.diagonal(gram, axis1=-2, axis2=-1)
    if (d * left * left > 1e-10 * sq).any():
        gram -= (d * left[:, :, None] * left[:, None, :]).astype(gram.dtype)


def euclidean_numpy(x: np.ndarray, chunk_bytes: int = 1 << 30) -> np.ndarray:
    """x: (B, n, d) -> ||xi - xj|| (B, n*(n-1)//2) in x's dtype, relative error < ~1e-7 (float32
    results) or ~1e-11 (float64) of each distance, near-duplicates included.

    Columns are centred (distances do not change, the Gram is better conditioned) and the Gram
    is taken in float64; pairs the Gram formula cannot resolve are recomputed directly, their
    float64 differences a quarter of `chunk_bytes` at a time.
    """
    y = x.astype(np.float64)
    y -= y.mean(axis=-2, keepdims=True)
    gram = np.matmul(y, y.swapaxes(-1, -2))
    i, j = np.triu_indices(x.shape[-2], k=1)
    sq = np.diagonal(gram, axis1=-2, axis2=-1)  # (B, n) squared norms
    total = sq[:, i] + sq[:, j]
    d2 = np.maximum(total - 2.0 * gram[:, i, j], 0.0)
    b, p = np.nonzero(d2 < refine_ratio(x.shape[-1], x.dtype == np.float64) * total)
    step = refine_step(x.shape[-1], chunk_bytes // 4)
    for s in range(0, len(b), step):
        bb, pp = b[s : s + step], p[s : s + step]
        diff = x[bb, i[pp]].astype(np.float64) - x[bb, j[pp]]
        d2[bb, pp] = np.einsum("kd,kd->k", diff, diff)
    return np.sqrt(d2).astype(x.dtype, copy=False)
