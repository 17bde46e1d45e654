"""Weighted average-tie ranks for bootstrap resamples (numba), parallel over rows (see
kernels/numpy/resample.py for the definition). Two passes per row: the ranks in sorted order
(sequential reads of new_group, first and second; counts stay in L1), then the row in its own
order through the inverse sort permutation (a random read, cheaper than a random write)."""

from collections.abc import Callable

import numpy as np
from numba import njit, prange

from ..numpy.resample import sort_rows

__all__ = ["weighted_ranker_numba", "weighted_ranks_numba"]


@njit(cache=True, parallel=True)
def weighted_ranks_numba(
    new_group, first, second, inverse, pair_i, pair_j, counts, work, out
):  # pragma: no cover - compiled
    """out[b, m] = (weighted average-tie rank - (W + 1) / 2) * sqrt(w_m), float64 (B, M).

    new_group, first, second: (B, M) from sort_rows; inverse (B, M) int: the sorted position of
    each entry; pair_i, pair_j (M,): the images of pair m; counts (n,) float64, w_m =
    counts[i] counts[j]; work (B, M): scratch for the ranks in sorted order (float32 is exact
    while 2 W < 2**24, else float64)."""
    b, m = new_group.shape
    root = np.sqrt(counts)
    total = 0.0
    for t in range(m):
        total += counts[pair_i[t]] * counts[pair_j[t]]
    centre = (total + 1.0) / 2.0
    for r in prange(b):
        g, f, s, v = new_group[r], first[r], second[r], work[r]
        before = 0.0
        t = 0
        while t < m:
            weight = counts[f[t]] * counts[s[t]]
            e = t + 1
            while e < m and not g[e]:
                weight += counts[f[e]] * counts[s[e]]
                e += 1
            value = before + (weight + 1.0) / 2.0 - centre
            for u in range(t, e):
                v[u] = value
            before += weight
            t = e
        inv, o = inverse[r], out[r]
        for k in range(m):
            o[k] = v[inv[k]] * root[pair_i[k]] * root[pair_j[k]]
    return out


def weighted_ranker_numba(
    rows: np.ndarray, n: int
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The backend's op: rows (B, M) float64 are sorted once (`sort_rows`; the kernel reads the
    inverse of the sort order); returns ranks(counts, out) -> out, `weighted_ranks_numba` for one
    resample (counts (n,) float64, out (B, M) float64). Run a loop of calls under
    `one_blas_thread` when BLAS products follow each call."""
    order, new_group, first, second = sort_rows(rows, n)
    inverse = np.empty(order.shape, dtype=np.int32)
    np.put_along_axis(inverse, order, np.arange(order.shape[1], dtype=np.int32)[None], 1)
    i, j = (v.astype(np.int32) for v in np.triu_indices(n, k=1))
    # ranks are half-integers of size <= W <= n(n-1)/2: exact in float32 while 2 W < 2^24
    work = np.empty(order.shape, dtype=np.float32 if n * n < 1 << 23 else np.float64)
    return lambda counts, out: weighted_ranks_numba(
        new_group, first, second, inverse, i, j, counts, work, out
    )
