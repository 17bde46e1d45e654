"""Kendall tau-b of all pairs of rows by Knight's O(M log M) algorithm (as scipy.stats.kendalltau).

Per row, once: the sort order and the count of tied pairs. Per pair (i, j): b_j is read in the
order of a_i, ties of a_i are sorted by b_j, and a merge sort counts the discordant pairs.
"""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def _row_stats(x, order, tied):
    """x: (R, M) -> order (R, M) argsort of each row, tied (R,) number of tied pairs."""
    m = x.shape[1]
    for r in prange(x.shape[0]):
        o = np.argsort(x[r], kind="mergesort")
        order[r] = o
        t = 0
        run = 1
        for k in range(1, m):
            if x[r, o[k]] == x[r, o[k - 1]]:
                run += 1
            else:
                t += run * (run - 1) // 2
                run = 1
        tied[r] = t + run * (run - 1) // 2


@njit(cache=True)
def _count_inversions(y, buf):
    """Sort y in place (bottom-up merge sort) and return the number of pairs k < l, y[k] > y[l]."""
    m = y.shape[0]
    swaps = 0
    width = 1
    src = y
    dst = buf
    while width < m:
        for lo in range(0, m, 2 * width):
            mid = min(lo + width, m)
            hi = min(lo + 2 * width, m)
            i = lo
            j = mid
            k = lo
            while i < mid and j < hi:
                if src[i] <= src[j]:
                    dst[k] = src[i]
                    i += 1
                else:
                    dst[k] = src[j]
                    swaps += mid - i
                    j += 1
                k += 1
            while i < mid:
                dst[k] = src[i]
                i += 1
                k += 1
            while j < hi:
                dst[k] = src[j]
                j += 1
                k += 1
        src, dst = dst, src
        width *= 2
    if src is not y:
        y[:] = src
    return swaps


@njit(parallel=True, cache=True)
def _kendall_pairs(a, order_a, tied_a, b, tied_b, pi, pj, out):
    """tau-b for each pair (pi[p], pj[p]) of rows of a and b -> out[pi[p], pj[p]]."""
    m = a.shape[1]
    n0 = m * (m - 1) // 2
    for p in prange(pi.shape[0]):
        i = pi[p]
        j = pj[p]
        o = order_a[i]
        y = np.empty(m, dtype=b.dtype)
        for k in range(m):
            y[k] = b[j, o[k]]
        joint = 0  # pairs tied in both a and b
        k = 0
        while k < m:
            e = k + 1
            while e < m and a[i, o[e]] == a[i, o[k]]:
                e += 1
            if e - k > 1:  # a run of ties in a: order it by b, count ties in b inside it
                y[k:e] = np.sort(y[k:e])
                run = 1
                for q in range(k + 1, e):
                    if y[q] == y[q - 1]:
                        run += 1
                    else:
                        joint += run * (run - 1) // 2
                        run = 1
                joint += run * (run - 1) // 2
            k = e
        swaps = _count_inversions(y, np.empty_like(y))
        num = float(n0 - tied_a[i] - tied_b[j] + joint - 2 * swaps)
        tau = num / (np.sqrt(float(n0 - tied_a[i])) * np.sqrt(float(n0 - tied_b[j])))
        out[i, j] = min(max(tau, -1.0), 1.0)


def _stats(x):
    order = np.empty(x.shape, dtype=np.int64)
    tied = np.empty(x.shape[0], dtype=np.int64)
    _row_stats(x, order, tied)
    return order, tied


def kendall_numba(a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """a: (Ba, M), b: (Bb, M) or None -> (Ba, Bb) float64 Kendall tau-b; rows must not be constant.

    b None: only pairs i < j are computed; the result is symmetric with ones on the diagonal.
    """
    a = np.ascontiguousarray(a)
    order_a, tied_a = _stats(a)
    if b is None:
        b, tied_b = a, tied_a
        pi, pj = np.triu_indices(a.shape[0], k=1)
    else:
        b = np.ascontiguousarray(b, dtype=a.dtype)
        tied_b = _stats(b)[1]
        pi, pj = np.indices((a.shape[0], b.shape[0])).reshape(2, -1)
    out = np.empty((a.shape[0], b.shape[0]))
    _kendall_pairs(a, order_a, tied_a, b, tied_b, pi.astype(np.int64), pj.astype(np.int64), out)
    if b is a:
        out = np.triu(out, 1)
        out = out + out.T
        np.fill_diagonal(out, 1.0)
    return out
