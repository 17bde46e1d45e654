"""Weighted average-tie ranks for bootstrap resamples of condensed vectors (numpy).

A resample of images that draws image i c_i times repeats pair m = (i, j) w_m = c_i c_j times
(w_m = 0 leaves it out). The average-tie rank of every copy of entry m in the resampled vector
is (weight of the strictly smaller entries) + (weight of m's group of equal values + 1) / 2, so a
resample needs no gather and no new sort: one pass over each row's fixed sort order. The sort
comes from `sort_rows`: order (B, M), the stable argsort of each row; new_group (B, M) bool,
True where a sorted position starts a new group of equal values; first, second (B, M): the two
images (i < j) of the pair at each sorted position.
"""

import numpy as np


def sort_rows(rows: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """rows (B, M) real, M = n(n-1)/2 pairs i < j row-major -> (order int64, new_group bool,
    first int32, second int32), each (B, M), as described above."""
    order = np.argsort(rows, axis=1, kind="stable")
    s = np.take_along_axis(rows, order, axis=1)
    new_group = np.ones(order.shape, dtype=bool)
    new_group[:, 1:] = s[:, 1:] != s[:, :-1]
    i, j = np.triu_indices(n, k=1)
    return order, new_group, i.astype(np.int32)[order], j.astype(np.int32)[order]


def weighted_ranks_numpy(
    order: np.ndarray,
    new_group: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    counts: np.ndarray,
    out: np.ndarray,
) -> np.ndarray:
    """out[b, m] = (rank of entry m of row b among the resampled entries - (W + 1) / 2)
    * sqrt(w_m), float64 (B, M); counts (n,) float64, w_m = counts[i] counts[j], W = sum w."""
    b = order.shape[0]
    sw = counts[first] * counts[second]  # (B, M) weights in sorted order
    total = float(sw[0].sum())
    gid = np.cumsum(new_group, axis=1) - 1  # group of each sorted position, per row
    n_groups = gid[:, -1] + 1
    gid += (np.cumsum(n_groups) - n_groups)[:, None]
    gw = np.bincount(gid.ravel(), weights=sw.ravel(), minlength=int(n_groups.sum()))
    row_of_group = np.repeat(np.arange(b), n_groups)
    before = np.cumsum(gw) - gw - row_of_group * total
    value = before + (gw + 1.0) / 2.0 - (total + 1.0) / 2.0
    np.put_along_axis(out, order, value[gid] * np.sqrt(sw), axis=1)
    return out
