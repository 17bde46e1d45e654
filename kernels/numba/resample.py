"""Weighted average-tie ranks for bootstrap resamples (numba), parallel over rows (see
kernels/numpy/resample.py for the definition). Two passes per row: the ranks in sorted order
(sequential reads of new_group, first and second; counts stay in L1), then the row in its own
order through the inverse sort permutation (a random read, cheaper than a random write)."""

import numpy as np
from numba import njit, prange


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
