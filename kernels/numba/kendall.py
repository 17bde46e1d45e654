"""Kendall tau-b or tau-a of all pairs of rows by Knight's O(M log M) algorithm (tau-b as
scipy.stats.kendalltau, tau-a as rsatoolbox's compare method "tau-a").

Per row, once: the sort order, dense integer ranks (equal values, equal ranks), the count of
tied pairs and whether the row has ties. Per pair (i, j): the ranks of b_j are read in the order
of a_i (int32), ties of a_i (if any) are sorted by b_j, and a merge sort (blocks of 4 sorted by
a network, then bottom-up branchless merges, equal runs from both ends at once) counts the
discordant pairs; the count concordant - discordant (exact, int64) is divided by
sqrt((n0 - ties_a)(n0 - ties_b)) for tau-b, by n0 = M(M-1)/2 for tau-a.
"""

import numpy as np
from numba import get_num_threads, njit, prange

__all__ = ["kendall_numba"]

_BLOCK = 4  # sorted block size before the merges (sorting network; a short tail: insertion)


@njit(parallel=True, cache=True)
def _row_stats(x, order, rank, tied, has_ties):
    """x: (R, M) -> order (R, M) stable argsort of each row, rank (R, M) dense ranks (0, 1, ...,
    equal values equal ranks), tied (R,) number of tied pairs, has_ties (R,) tied > 0."""
    m = x.shape[1]
    for r in prange(x.shape[0]):
        o = np.argsort(x[r], kind="mergesort")
        order[r] = o
        t = 0
        run = 1
        d = 0
        rank[r, o[0]] = 0
        for k in range(1, m):
            if x[r, o[k]] == x[r, o[k - 1]]:
                run += 1
            else:
                t += run * (run - 1) // 2
                run = 1
                d += 1
            rank[r, o[k]] = d
        tied[r] = t + run * (run - 1) // 2
        has_ties[r] = tied[r] > 0


@njit(cache=True, inline="always")
def _count_inversions(y, buf):
    """Sort y (y or buf holds the result) and return the number of pairs k < l, y[k] > y[l]:
    blocks of 4 counted by comparisons and sorted by a network (the tail by insertion), then
    bottom-up merges ping-ponging y and buf."""
    m = y.shape[0]
    swaps = 0
    full = m - m % 4
    for lo in range(0, full, 4):  # blocks of 4: count by comparisons, sort by a network
        a0 = y[lo]
        a1 = y[lo + 1]
        a2 = y[lo + 2]
        a3 = y[lo + 3]
        swaps += (
            np.int64(a0 > a1)
            + np.int64(a0 > a2)
            + np.int64(a0 > a3)
            + np.int64(a1 > a2)
            + np.int64(a1 > a3)
            + np.int64(a2 > a3)
        )
        a0, a1 = min(a0, a1), max(a0, a1)
        a2, a3 = min(a2, a3), max(a2, a3)
        a0, a2 = min(a0, a2), max(a0, a2)
        a1, a3 = min(a1, a3), max(a1, a3)
        a1, a2 = min(a1, a2), max(a1, a2)
        y[lo] = a0
        y[lo + 1] = a1
        y[lo + 2] = a2
        y[lo + 3] = a3
    for lo in range(full, m, _BLOCK):
        hi = min(lo + _BLOCK, m)
        for k in range(lo + 1, hi):
            v = y[k]
            q = k
            while q > lo and y[q - 1] > v:
                y[q] = y[q - 1]
                q -= 1
            y[q] = v
            swaps += k - q
    width = _BLOCK
    src = y
    dst = buf
    while width < m:
        for lo in range(0, m, 2 * width):
            mid = min(lo + width, m)
            hi = min(lo + 2 * width, m)
            i = lo
            j = mid
            k = lo
            if mid < hi and src[mid - 1] > src[mid] and hi - mid == width:
                # equal runs: merge from both ends at once (two independent chains); the front
                # outputs the width smallest, the back the width largest (stable, ties: left
                # first), neither can run out of a run before its last step
                ib = mid - 1
                jb = hi - 1
                kb = hi - 1
                for _ in range(width):
                    vi = src[i]
                    vj = src[j]
                    t = vj < vi
                    dst[k] = vj if t else vi
                    swaps += (mid - i) if t else 0  # left values > vj: all left not yet output
                    j += t
                    i += 1 - t
                    k += 1
                    ui = src[ib]
                    uj = src[jb]
                    tb = ui > uj
                    dst[kb] = ui if tb else uj
                    swaps += 0 if tb else (mid - 1 - ib)  # left values > uj: left output by back
                    ib -= tb
                    jb -= 1 - tb
                    kb -= 1
                i = mid
                j = hi
            elif mid < hi and src[mid - 1] > src[mid]:
                while i < mid and j < hi:
                    vi = src[i]
                    vj = src[j]
                    t = vj < vi
                    dst[k] = vj if t else vi
                    swaps += (mid - i) if t else 0
                    j += t
                    i += 1 - t
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
    return swaps


@njit(cache=True)
def _pair_num(ra, o, has_ties_a, rb, n0, tied_a, tied_b, y, buf):
    """concordant - discordant of rows with dense ranks ra, rb (o: ra's stable argsort), exact."""
    m = o.shape[0]
    for k in range(m):
        y[k] = rb[o[k]]
    joint = 0  # pairs tied in both a and b
    if has_ties_a:
        k = 0
        while k < m:
            e = k + 1
            rk = ra[o[k]]
            while e < m and ra[o[e]] == rk:
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
    swaps = _count_inversions(y, buf)
    return n0 - tied_a - tied_b + joint - 2 * swaps


@njit(parallel=True, cache=True)
def _kendall_pairs(ra, order_a, tied_a, ties_a, rb, tied_b, pi, pj, tau_a, nchunks, out):
    """tau-b (tau-a when `tau_a`) for each pair (pi[p], pj[p]) of rows (dense ranks ra of a, rb
    of b) -> out[pi[p], pj[p]]; pairs dealt round-robin to nchunks chunks, buffers per chunk."""
    m = ra.shape[1]
    n0 = m * (m - 1) // 2
    npairs = pi.shape[0]
    for c in prange(nchunks):
        y = np.empty(m, dtype=rb.dtype)
        buf = np.empty(m, dtype=rb.dtype)
        for p in range(c, npairs, nchunks):
            i = pi[p]
            j = pj[p]
            num = float(
                _pair_num(ra[i], order_a[i], ties_a[i], rb[j], n0, tied_a[i], tied_b[j], y, buf)
            )
            if tau_a:  # no tie correction: pairs tied in either row count as neither
                out[i, j] = num / n0
            else:
                tau = num / (np.sqrt(float(n0 - tied_a[i])) * np.sqrt(float(n0 - tied_b[j])))
                out[i, j] = min(max(tau, -1.0), 1.0)


def _stats(x):
    rdt = np.int32 if x.shape[1] < 2**31 else np.int64
    order = np.empty(x.shape, dtype=np.int64)
    rank = np.empty(x.shape, dtype=rdt)
    tied = np.empty(x.shape[0], dtype=np.int64)
    has_ties = np.empty(x.shape[0], dtype=np.bool_)
    _row_stats(x, order, rank, tied, has_ties)
    return order, rank, tied, has_ties


def kendall_numba(a: np.ndarray, b: np.ndarray | None, variant: str = "b") -> np.ndarray:
    """a: (Ba, M), b: (Bb, M) or None -> (Ba, Bb) float64 Kendall tau.

    variant "b": tau-b, rows must not be constant; "a": tau-a = (concordant - discordant) / n0,
    n0 = M(M-1)/2, defined for every row (0 against a constant row). Exact counts in int64, one
    float64 division (tau-a is within one rounding of the exact ratio).
    b None: only pairs i < j are computed; the result is symmetric, its diagonal 1 for tau-b and
    (n0 - tied pairs of the row) / n0 for tau-a (< 1 when the row has ties).
    """
    if variant not in ("a", "b"):
        raise ValueError(f"variant must be 'a' or 'b'; got {variant!r}")
    a = np.ascontiguousarray(a)
    order_a, rank_a, tied_a, ties_a = _stats(a)
    sym = b is None
    if sym:
        rank_b, tied_b = rank_a, tied_a
        pi, pj = np.triu_indices(a.shape[0], k=1)
        nb = a.shape[0]
    else:
        b = np.ascontiguousarray(b, dtype=a.dtype)
        _, rank_b, tied_b, _ = _stats(b)
        pi, pj = np.indices((a.shape[0], b.shape[0])).reshape(2, -1)
        nb = b.shape[0]
    out = np.empty((a.shape[0], nb))
    pi, pj = pi.astype(np.int64), pj.astype(np.int64)
    nchunks = max(1, min(get_num_threads(), pi.shape[0]))
    _kendall_pairs(
        rank_a, order_a, tied_a, ties_a, rank_b, tied_b, pi, pj, variant == "a", nchunks, out
    )
    if sym:
        out = np.triu(out, 1)
        out = out + out.T
        n0 = a.shape[1] * (a.shape[1] - 1) // 2
        np.fill_diagonal(out, 1.0 if variant == "b" else (n0 - tied_a) / n0)
    return out
