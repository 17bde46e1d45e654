"""Batched RDMs with numpy: centre, one batched BLAS Gram product, condensed extraction.

The Gram -> condensed steps (`rdm_from_gram`, `sqdist_from_gram`, `sqdist_of_pairs`) are ops of
their own: the sweep's spilled features (fastrsa.sweeps.feature_buffer) accumulate a float64
Gram a block of columns at a time and finish it with the same steps.
"""

import numpy as np

from .._euclidean import cosine_limit, refine_ratio, refine_step

__all__ = [
    "cosine_of_pairs",
    "euclidean_numpy",
    "pair_rows",
    "rdm_from_gram",
    "rdm_numpy",
    "refine_cosine",
    "sqdist_from_gram",
    "sqdist_of_pairs",
]


def rdm_numpy(x: np.ndarray, metric: str, chunk_bytes: int = 1 << 30) -> np.ndarray:
    """x: (B, n, d) float32/float64 -> condensed RDMs (B, n*(n-1)//2) in x's dtype.

    correlation: 1 - r of rows centred by their own mean (what rounding leaves of the mean is
    removed from the Gram, so large offsets cost no accuracy); cosine: 1 - cos, products in
    x's dtype, and distances too small for the Gram's rounding recomputed from float64 unit
    rows (`refine_cosine`: accurate relative to themselves). euclidean: see `euclidean_numpy`.
    The batch is computed in chunks whose temporaries (centred rows, Gram matrices, condensed
    intermediates, ~(n*d + 3*n*n) * 8 bytes per matrix) take about `chunk_bytes`, at least one
    matrix at a time.
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
    out = rdm_from_gram(gram)
    if metric == "cosine":
        refine_cosine(x, out, chunk_bytes // 4)
    return out


def rdm_from_gram(gram: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """gram (..., n, n) of rows (centred by their own mean: correlation; as they are: cosine),
    only its upper triangle read -> the condensed RDMs 1 - G_ij / sqrt(G_ii G_jj), clipped to
    [0, 2], pairs i < j row-major, (..., n*(n-1)//2) written into `out` (its dtype; default a
    new array in gram's dtype). A row of pairs at a time: no (m,) index arrays."""
    n = gram.shape[-1]
    if out is None:
        out = np.empty((*gram.shape[:-2], n * (n - 1) // 2), dtype=gram.dtype)
    norms = np.sqrt(np.diagonal(gram, axis1=-2, axis2=-1))  # (..., n)
    pos = 0
    for i in range(n - 1):
        r = gram[..., i, i + 1 :] / (norms[..., i, None] * norms[..., i + 1 :])
        out[..., pos : pos + n - 1 - i] = np.clip(1.0 - r, 0.0, 2.0)
        pos += n - 1 - i
    return out


def pair_rows(p: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Condensed indices p (pairs i < j row-major of n rows) -> their rows (i, j), exactly."""
    rows = np.arange(n - 1)
    starts = rows * n - rows * (rows + 1) // 2  # condensed index of (i, i + 1)
    i = np.searchsorted(starts, p, side="right") - 1
    return i, p - starts[i] + i + 1


def cosine_of_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(p,) float64 1 - cos of each pair of rows of a, b (p, d) (nonzero), as |u - v|^2 / 2 of
    their unit rows in float64: accurate relative to the distance itself."""
    u = a.astype(np.float64)
    v = b.astype(np.float64)
    u /= np.sqrt(np.einsum("kd,kd->k", u, u))[:, None]
    v /= np.sqrt(np.einsum("kd,kd->k", v, v))[:, None]
    u -= v
    return np.minimum(0.5 * np.einsum("kd,kd->k", u, u), 2.0)


def refine_cosine(x: np.ndarray, out: np.ndarray, chunk_bytes: int) -> None:
    """out (B, m) condensed cosine distances of rows x (B, n, d) from a Gram in x's dtype -> in
    place, those below `cosine_limit` recomputed by `cosine_of_pairs` (their float64 rows taking
    about `chunk_bytes` at a time)."""
    n, d = x.shape[-2:]
    b, p = np.nonzero(out < cosine_limit(d, x.dtype == np.float64))
    step = max(1, refine_step(d, chunk_bytes) // 2)
    for s in range(0, len(b), step):
        bb, pp = b[s : s + step], p[s : s + step]
        i, j = pair_rows(pp, n)
        out[bb, pp] = cosine_of_pairs(x[bb, i], x[bb, j])


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
    d2, where, i, j = sqdist_from_gram(gram, x.shape[-1], x.dtype == np.float64)
    b = where[0]
    step = refine_step(x.shape[-1], chunk_bytes // 4)
    for s in range(0, len(b), step):
        bb, part = b[s : s + step], slice(s, s + step)
        d2[bb, where[1][part]] = sqdist_of_pairs(x[bb, i[part]], x[bb, j[part]])
    return np.sqrt(d2).astype(x.dtype, copy=False)


def sqdist_from_gram(
    gram: np.ndarray, d: int, wide: bool
) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """gram (..., n, n) float64 of column-centred rows of d features, only its upper triangle
    read -> (d2, where, i, j): d2 (..., n*(n-1)//2) float64 squared distances
    max(G_ii + G_jj - 2 G_ij, 0), pairs i < j row-major; and the pairs the Gram's rounding
    cannot resolve for a result of float32 (wide False) or float64 (wide True) precision, those
    with d2 < refine_ratio * (G_ii + G_jj): `d2[where]` are they, rows i and j of their
    matrices. Recompute them directly (`sqdist_of_pairs`). A row of pairs at a time."""
    n = gram.shape[-1]
    d2 = np.empty((*gram.shape[:-2], n * (n - 1) // 2))
    sq = np.diagonal(gram, axis1=-2, axis2=-1)  # (..., n) squared norms
    ratio = refine_ratio(d, wide)
    found: list[tuple[np.ndarray, ...]] = []
    pos = 0
    for i in range(n - 1):
        total = sq[..., i, None] + sq[..., i + 1 :]
        row = np.maximum(total - 2.0 * gram[..., i, i + 1 :], 0.0)
        d2[..., pos : pos + n - 1 - i] = row
        close = np.nonzero(row < ratio * total)
        if len(close[-1]):
            k = close[-1]
            found.append((*close[:-1], pos + k, np.full(len(k), i), i + 1 + k))
        pos += n - 1 - i
    parts = [np.concatenate(c) for c in zip(*found, strict=True)] if found else None
    if parts is None:
        empty = np.empty(0, dtype=np.intp)
        parts = [empty] * (gram.ndim - 2 + 3)
    return d2, tuple(parts[:-2]), parts[-2], parts[-1]


def sqdist_of_pairs(
    a: np.ndarray, b: np.ndarray, scale: float = 1.0, work: np.ndarray | None = None
) -> np.ndarray:
    """(p,) float64 sum(((a_k - b_k) * scale) ** 2) of each pair of rows of a, b (p, w) of any
    real dtype: differences taken in float64 (into `work` (p, w) float64 when given), so exact
    for float32 rows; `scale` a power of two keeps them exact."""
    diff = np.subtract(a, b, dtype=np.float64, out=work)
    if scale != 1.0:
        diff *= scale
    return np.einsum("kd,kd->k", diff, diff)
