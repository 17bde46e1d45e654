"""Permutation-test kernels (numba): the condensed rows of square RDMs with their images
relabelled, and the products of many gathered rows with fixed rows.

Relabelling by p (D'[i, j] = D[p_i, p_j]) reads D's rows in memory order u = p_i (so the rows
stream through the cache) and writes each row's segment i of the condensed output. A task
takes four RDMs (they share each index load) and a block of rounds (each row read is used by
all of them while it sits in L1). Parallel over (group of RDMs, block of rounds).
`permuted_products_numba` is the backend's op: both kernels per batch of rounds.
"""

from collections.abc import Iterator

import numba
import numpy as np
from numba import njit, prange

from .rdm import one_blas_thread

__all__ = ["permuted_products_numba", "products_numba", "relabelled_rows_numba", "square_rows"]

_GROUP = 4  # RDMs gathered together (they share the permutation's index loads)
_ROUNDS = 4  # rounds per task (they share each row of the square RDMs)


@njit(cache=True, parallel=True)
def relabelled_rows_numba(square, perms, inverse, out):  # pragma: no cover - compiled
    """out[k, a, m] = square[a, p[i], p[j]] for pair m = (i < j) (condensed, row-major) and
    p = perms[k]. square (B, n, n); perms, inverse (K, n) int (`inverse[k][perms[k][i]] = i`;
    unsigned types spare numba's negative-index checks); out (K, B, n(n-1)/2) in square's
    dtype."""
    kc, n = perms.shape
    ba = square.shape[0]
    groups = (ba + _GROUP - 1) // _GROUP
    blocks = (kc + _ROUNDS - 1) // _ROUNDS
    for t in prange(groups * blocks):
        g = t // blocks
        a0 = g * _GROUP
        k0 = (t - g * blocks) * _ROUNDS
        k1 = min(kc, k0 + _ROUNDS)
        if a0 + _GROUP <= ba:
            s0, s1, s2, s3 = square[a0], square[a0 + 1], square[a0 + 2], square[a0 + 3]
            for u in range(n):
                r0, r1, r2, r3 = s0[u], s1[u], s2[u], s3[u]
                for k in range(k0, k1):
                    i = inverse[k, u]
                    if i == n - 1:
                        continue
                    p = perms[k]
                    o0, o1, o2, o3 = out[k, a0], out[k, a0 + 1], out[k, a0 + 2], out[k, a0 + 3]
                    base = i * (2 * n - i - 1) // 2 - i - 1
                    for j in range(i + 1, n):
                        q = p[j]
                        o0[base + j] = r0[q]
                        o1[base + j] = r1[q]
                        o2[base + j] = r2[q]
                        o3[base + j] = r3[q]
        else:
            for a in range(a0, ba):
                s = square[a]
                for u in range(n):
                    r = s[u]
                    for k in range(k0, k1):
                        i = inverse[k, u]
                        if i == n - 1:
                            continue
                        p, o = perms[k], out[k, a]
                        base = i * (2 * n - i - 1) // 2 - i - 1
                        for j in range(i + 1, n):
                            o[base + j] = r[p[j]]


@njit(cache=True, parallel=True)
def products_numba(rows, fixed_t, parts, out):  # pragma: no cover - compiled
    """out = rows @ fixed_t: rows (R, M), fixed_t (M, Bb), out (R, Bb) of one dtype; `parts`
    BLAS calls in parallel, each on its share of the rows (run with the BLAS library limited to
    one thread, so no BLAS worker threads spin beside numba's)."""
    r = rows.shape[0]
    parts = min(r, parts)
    for q in prange(parts):
        lo = q * r // parts
        hi = (q + 1) * r // parts
        out[lo:hi] = np.dot(rows[lo:hi], fixed_t)


def square_rows(rows: np.ndarray, n: int) -> np.ndarray:
    """(B, M) condensed rows (pairs i < j row-major) -> (B, n, n) symmetric, zero diagonal."""
    out = np.zeros((rows.shape[0], n, n), dtype=rows.dtype)
    i, j = np.triu_indices(n, k=1)
    out[:, i, j] = rows
    out[:, j, i] = rows
    return out


def permuted_products_numba(
    ra: np.ndarray, rb: np.ndarray, perms: np.ndarray, n: int, rounds: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Yields (k0, null) per batch of at most `rounds` rounds: null (c, Ba, Bb) with
    null[k, x, y] = sum_m ra[x, g_k(m)] rb[y, m], g_k the pair index of perms[k0 + k]
    (kernels/numpy/permute.py), from `relabelled_rows_numba` then `products_numba`, with BLAS on
    one thread. ra (Ba, M), rb (Bb, M) of one float dtype; perms (K, n) int permutations of
    0..n-1. Holds a's square RDMs (Ba, n, n) and one batch of relabelled rows (c, Ba, M) and
    products, reused: each yielded null is overwritten by the next batch (consume it first)."""
    ba, m = ra.shape
    rbt = np.ascontiguousarray(rb.T)  # (M, Bb): BLAS-fast
    square = square_rows(ra, n)
    threads = numba.get_num_threads()
    kc = min(rounds, perms.shape[0])
    buf = np.empty((kc, ba, m), dtype=ra.dtype)  # reused: fresh pages cost more than a gather
    prod = np.empty((kc * ba, rbt.shape[1]), dtype=ra.dtype)
    for k0 in range(0, perms.shape[0], kc):
        chunk = perms[k0 : k0 + kc]
        c = chunk.shape[0]
        with one_blas_thread():
            # unsigned indices spare numba's negative-index checks (~7% of the gather)
            inverse = np.argsort(chunk, axis=1).astype(np.uint32)
            relabelled_rows_numba(square, chunk.astype(np.uint32), inverse, buf[:c])
            products_numba(buf[:c].reshape(c * ba, m), rbt, threads, prod[: c * ba])
        yield k0, prod[: c * ba].reshape(c, ba, -1)
