"""Weighted average-tie ranks for bootstrap resamples of condensed vectors (numpy).

A resample of images that draws image i c_i times repeats pair m = (i, j) w_m = c_i c_j times
(w_m = 0 leaves it out). The average-tie rank of every copy of entry m in the resampled vector
is (weight of the strictly smaller entries) + (weight of m's group of equal values + 1) / 2, so a
resample needs no gather and no new sort: one pass over each row's fixed sort order. The sort
comes from `sort_rows`: order (B, M), the stable argsort of each row; new_group (B, M) bool,
True where a sorted position starts a new group of equal values; first, second (B, M): the two
images (i < j) of the pair at each sorted position.
"""

from collections.abc import Callable

import numpy as np

__all__ = ["sort_rows", "weighted_ranker_numpy", "weighted_ranks_numpy"]


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
    * sqrt(w_m), float64 (B, M); counts (n,) float64, w_m = counts[i] counts[j], W = sum w.
    Group sums come from a cumulative sum at each group's first and last sorted position
    (exact: integer-valued float64 below 2**53)."""
    m = order.shape[1]
    sw = counts[first] * counts[second]  # (B, M) weights in sorted order
    total = float(sw[0].sum())
    cs = np.cumsum(sw, axis=1)
    pos = np.arange(m)
    start = np.maximum.accumulate(np.where(new_group, pos, 0), axis=1)
    last = np.ones(new_group.shape, dtype=bool)
    last[:, :-1] = new_group[:, 1:]
    end = np.minimum.accumulate(np.where(last, pos, m)[:, ::-1], axis=1)[:, ::-1]
    before = np.take_along_axis(cs, start, 1) - np.take_along_axis(sw, start, 1)
    weight = np.take_along_axis(cs, end, 1) - before
    value = before + (weight + 1.0) / 2.0 - (total + 1.0) / 2.0
    np.put_along_axis(out, order, value * np.sqrt(sw), axis=1)
    return out


def weighted_ranker_numpy(
    rows: np.ndarray, n: int
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The backend's op: rows (B, M) float64 are sorted once (`sort_rows`); returns
    ranks(counts, out) -> out, `weighted_ranks_numpy` for one resample (counts (n,) float64,
    out (B, M) float64)."""
    order, new_group, first, second = sort_rows(rows, n)
    return lambda counts, out: weighted_ranks_numpy(order, new_group, first, second, counts, out)
