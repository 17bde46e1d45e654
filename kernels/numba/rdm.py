"""Batched RDMs: a centring kernel, the Gram product by BLAS syrk (upper triangle only: half the
FLOPs of a full product), and a fused kernel that normalises by the Gram's diagonal and writes the
condensed distances.

Thread pools: after a multithreaded BLAS call, OpenBLAS's threads keep spinning for a while, and
numba's OpenMP threads then wait for a core (measured on 2 cores: a floor of ~8 ms on every small
pipeline, and 2x the time at 10 x 500 x 128). So for Grams up to _SMALL_GRAM multiply-adds each
batch's syrk runs on one BLAS thread, the batches spread over numba's thread count by a Python
thread pool (BLAS releases the GIL); larger Grams keep BLAS's own threads, which were faster
there (20 x 500 x 2048: rdms 116 ms against 145 ms, the pipeline the same).
"""

import contextlib
import functools
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit, prange
from scipy.linalg import blas

from .._euclidean import cosine_limit, refine_ratio

__all__ = ["one_blas_thread", "rdm_numba"]

_SMALL_GRAM = 2**28  # n * n * d up to which each Gram runs on one BLAS thread

# Sums may be re-associated (so they vectorise); inputs are validated finite, and each row is
# summed by one thread, so results stay independent of the thread count.
_FAST = {"reassoc", "contract"}


@njit(parallel=True, cache=True, fastmath=_FAST)
def _centre_rows_kernel(x, out):
    """correlation: out[b, i] = x[b, i] - mean(x[b, i]); x, out (B, n, d), mean in float64."""
    nb, n, d = x.shape
    for r in prange(nb * n):
        b = r // n
        i = r % n
        mu = 0.0
        for k in range(d):
            mu += x[b, i, k]
        mu /= d
        for k in range(d):
            out[b, i, k] = x[b, i, k] - mu


@njit(parallel=True, cache=True, fastmath=_FAST)
def _centre_columns_kernel(x, out):
    """euclidean: subtract the mean row of each batch (distances unchanged, Gram better
    conditioned); x, out (B, n, d), means in float64."""
    nb, n, d = x.shape
    for b in prange(nb):
        mean = np.zeros(d)
        for i in range(n):
            for k in range(d):
                mean[k] += x[b, i, k]
        mean /= n
        for i in range(n):
            for k in range(d):
                out[b, i, k] = x[b, i, k] - mean[k]


@njit(cache=True)
def _unit_sqdist(x, b, i, j):
    """1 - cos of rows i, j of x[b] as |u - v|^2 / 2 of their unit rows, in float64 (accurate
    relative to the distance itself)."""
    d = x.shape[2]
    si = 0.0
    sj = 0.0
    for k in range(d):
        si += np.float64(x[b, i, k]) ** 2
        sj += np.float64(x[b, j, k]) ** 2
    ri = 1.0 / np.sqrt(si)
    rj = 1.0 / np.sqrt(sj)
    s = 0.0
    for k in range(d):
        diff = np.float64(x[b, i, k]) * ri - np.float64(x[b, j, k]) * rj
        s += diff * diff
    return 0.5 * s


@njit(parallel=True, cache=True)
def _condense_kernel(gram, x, euclidean, refine, out):
    """gram: (B, n, n) with the upper triangle valid -> out (B, n*(n-1)//2), in float64.

    Unit rows: 1 - g[i, j] / sqrt(g[i, i] g[j, j]) (the diagonal division removes the rounding of
    the normalisation), recomputed from the raw rows x (B, n, d) as |u - v|^2 / 2 of the float64
    unit rows where below `refine` (> 0: cosine). Euclidean: sqrt(g[i, i] + g[j, j] - 2 g[i, j]),
    recomputed as sqrt(sum((x_i - x_j)^2)) where that is below refine times g[i, i] + g[j, j]
    (the Gram formula cannot resolve it).
    """
    nb, n, _ = gram.shape
    d = x.shape[2]
    for r in prange(nb * n):
        b = r // n
        i = r % n
        base = i * n - (i * (i + 1)) // 2 - i - 1  # condensed index of (i, j) is base + j
        gii = np.float64(gram[b, i, i])
        for j in range(i + 1, n):
            gij = np.float64(gram[b, i, j])
            gjj = np.float64(gram[b, j, j])
            if euclidean:
                d2 = gii + gjj - 2.0 * gij
                if d2 < refine * (gii + gjj):
                    d2 = 0.0
                    for k in range(d):
                        diff = np.float64(x[b, i, k]) - np.float64(x[b, j, k])
                        d2 += diff * diff
                out[b, base + j] = np.sqrt(max(d2, 0.0))
            else:
                v = 1.0 - gij / np.sqrt(gii * gjj)
                if refine > 0.0 and v < refine:
                    v = _unit_sqdist(x, b, i, j)
                out[b, base + j] = min(max(v, 0.0), 2.0)


def rdm_numba(x: np.ndarray, metric: str, chunk_bytes: int = 1 << 30) -> np.ndarray:
    """x: (B, n, d) float32/float64 -> condensed RDMs (B, n*(n-1)//2) in x's dtype.

    Means in float64 (large offsets cost no accuracy). correlation/cosine: products in x's dtype
    (BLAS), normalised in float64; cosine distances below `cosine_limit` (too small for the
    Gram's rounding) recomputed from float64 unit rows. euclidean: columns centred,
    products in float64, and pairs the Gram formula cannot resolve recomputed directly:
    relative error < ~1e-7 (float32 results) or ~1e-11 (float64) of each distance. The batch is
    computed in chunks whose temporaries (prepared rows and Gram matrices, ~(n*d + n*n) * 8
    bytes per matrix) take about `chunk_bytes`, at least one matrix at a time.
    """
    x = np.ascontiguousarray(x)
    nb, n, d = x.shape
    step = max(1, chunk_bytes // ((n * d + n * n) * 8))
    if step >= nb:
        return _rdm_chunk(x, metric)
    out = np.empty((nb, n * (n - 1) // 2), dtype=x.dtype)
    for b0 in range(0, nb, step):
        out[b0 : b0 + step] = _rdm_chunk(x[b0 : b0 + step], metric)
    return out


def _rdm_chunk(x: np.ndarray, metric: str) -> np.ndarray:
    nb, n, d = x.shape
    euclidean = metric == "euclidean"
    prepared = x  # cosine: the Gram of the raw rows
    if metric != "cosine":
        prepared = np.empty(x.shape, dtype=np.float64 if euclidean else x.dtype)
        kernel = _centre_columns_kernel if euclidean else _centre_rows_kernel
        kernel(x, prepared)
    gram = _gram(prepared)
    out = np.empty((nb, n * (n - 1) // 2), dtype=x.dtype)
    wide = x.dtype == np.float64
    refine = {"euclidean": refine_ratio, "cosine": cosine_limit}.get(metric)
    _condense_kernel(gram, x, euclidean, 0.0 if refine is None else refine(d, wide), out)
    return out


def _gram(prepared: np.ndarray) -> np.ndarray:
    """(B, n, d) -> (B, n, n) Gram matrices in prepared's dtype, upper triangles valid."""
    nb, n, d = prepared.shape
    syrk = blas.dsyrk if prepared.dtype == np.float64 else blas.ssyrk
    gram = np.empty((nb, n, n), dtype=prepared.dtype)

    def one(b):
        # prepared[b].T is Fortran-ordered (d, n), so BLAS reads it without a copy; with
        # trans=1 syrk forms (d, n)^T (d, n) = x x^T, and fills [i, j] for i <= j only.
        gram[b] = syrk(1.0, prepared[b].T, trans=1, lower=0)

    threads = numba.get_num_threads()
    limit = _blas_limiter()
    if limit is not None and n * n * d <= _SMALL_GRAM:
        with limit(limits=1, user_api="blas"):
            list(_pool(threads).map(one, range(nb)))
    else:
        for b in range(nb):
            one(b)
    return gram


def one_blas_thread():
    """A context manager that limits the loaded BLAS libraries to one thread (threadpoolctl;
    a no-op without it): for numba kernels that call BLAS from their own threads, or that
    alternate with BLAS calls, so BLAS worker threads do not spin beside numba's."""
    limit = _blas_limiter()
    return contextlib.nullcontext() if limit is None else limit(limits=1, user_api="blas")


@functools.cache
def _blas_limiter():
    """threadpoolctl's limit() for the loaded BLAS libraries, or None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController().limit


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="fastrsa-blas")
