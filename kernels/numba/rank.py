"""Average-tie rank transform of many vectors, parallel over rows.

Each row is sorted by an LSD radix sort (11-bit digits) of order-preserving unsigned integer keys
made from the float bits: O(M) per row, exact for float32 and float64.
"""

import numpy as np
from numba import njit, prange

_DIGIT_BITS = 11  # 2048-bin histograms: 3 passes for float32 keys, 6 for float64
_MASK = (1 << _DIGIT_BITS) - 1


@njit(cache=True, inline="always")
def _sortable_key(v, nbits):
    """Float bits -> unsigned key whose order is the float's order (-0.0 sorts just before 0.0)."""
    if nbits == 32:
        u = np.uint64(np.float32(v).view(np.uint32))
        sign = np.uint64(1) << np.uint64(31)
        full = np.uint64(0xFFFFFFFF)
    else:
        u = np.float64(v).view(np.uint64)
        sign = np.uint64(1) << np.uint64(63)
        full = np.uint64(0xFFFFFFFFFFFFFFFF)
    return (u ^ full) if (u & sign) else (u | sign)


@njit(cache=True)
def radix_argsort(row, nbits, order, keys, tmp_keys, tmp_order):
    """order <- indices that sort `row` ascending. keys/tmp_*: work arrays of len(row)."""
    m = row.shape[0]
    for k in range(m):
        keys[k] = _sortable_key(row[k], nbits)
        order[k] = k
    counts = np.empty(_MASK + 1, dtype=np.int64)
    shift = 0
    while shift < nbits:
        counts[:] = 0
        s = np.uint64(shift)
        for k in range(m):
            counts[(keys[k] >> s) & np.uint64(_MASK)] += 1
        total = 0
        for c in range(_MASK + 1):
            here = counts[c]
            counts[c] = total
            total += here
        for k in range(m):
            digit = (keys[k] >> s) & np.uint64(_MASK)
            dst = counts[digit]
            counts[digit] = dst + 1
            tmp_keys[dst] = keys[k]
            tmp_order[dst] = order[k]
        keys, tmp_keys = tmp_keys, keys
        order, tmp_order = tmp_order, order
        shift += _DIGIT_BITS
    return order  # the buffer that holds the result (passes swap buffers)


@njit(parallel=True, cache=True)
def _rank_kernel(x, nbits, out):
    """x: (R, M) float; out: (R, M) float64 <- 1-based ranks, ties get the mean of their ranks."""
    m = x.shape[1]
    for r in prange(x.shape[0]):
        row = x[r]
        order = radix_argsort(
            row,
            nbits,
            np.empty(m, np.int64),
            np.empty(m, np.uint64),
            np.empty(m, np.uint64),
            np.empty(m, np.int64),
        )
        i = 0
        while i < m:
            j = i
            v = row[order[i]]
            while j + 1 < m and row[order[j + 1]] == v:
                j += 1
            avg = 0.5 * (i + j) + 1.0
            for k in range(i, j + 1):
                out[r, order[k]] = avg
            i = j + 1


def rank_numba(x: np.ndarray) -> np.ndarray:
    """x: (R, M) float32/float64 -> float64 ranks (R, M), equal to scipy's rankdata "average".

    Exact for any M below 2**53 (ranks are half-integers held in float64).
    """
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape, dtype=np.float64)
    _rank_kernel(x, 32 if x.dtype == np.float32 else 64, out)
    return out
