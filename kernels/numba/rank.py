"""Average-tie rank transform of many vectors, parallel over rows.

Each row is sorted by an LSD radix sort (11-bit digits) of order-preserving unsigned integer keys
made from the float bits: O(M) per row, exact for float32 and float64 (float32 rows need
M < 2**32).
"""

import numpy as np
from numba import njit, prange

__all__ = ["radix_argsort", "rank_numba"]

_DIGIT_BITS = 11  # 2048-bin histograms: 3 passes for float32 keys, 6 for float64
_MASK = (1 << _DIGIT_BITS) - 1


# Key kinds (the `nbits` argument): float32 and float64 bits, int64 and uint64 values.
_F32, _F64, _I64, _U64 = 32, 64, 65, 66


@njit(cache=True, inline="always")
def _sortable_key(v, nbits):
    """Value -> unsigned key whose order is the value's order (-0.0 sorts just before 0.0)."""
    if nbits == _I64:  # flipping the sign bit orders two's complement as unsigned
        return np.uint64(np.int64(v)) ^ (np.uint64(1) << np.uint64(63))
    if nbits == _U64:
        return np.uint64(v)
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
def _radix_passes(keys, tmp, order, tmp_order, first_bit, nbits):
    """LSD radix sort of `keys` by bits [first_bit, nbits), carrying `order` along unless it is
    empty. Returns the buffers holding the result (passes swap buffers)."""
    counts = np.empty(_MASK + 1, dtype=np.int64)
    carry = order.shape[0] > 0
    shift = first_bit
    while shift < nbits:
        counts[:] = 0
        s = np.uint64(shift)
        for k in range(keys.shape[0]):
            counts[(keys[k] >> s) & np.uint64(_MASK)] += 1
        total = 0
        for c in range(_MASK + 1):
            here = counts[c]
            counts[c] = total
            total += here
        for k in range(keys.shape[0]):
            digit = (keys[k] >> s) & np.uint64(_MASK)
            dst = counts[digit]
            counts[digit] = dst + 1
            tmp[dst] = keys[k]
            if carry:
                tmp_order[dst] = order[k]
        keys, tmp = tmp, keys
        order, tmp_order = tmp_order, order
        shift += _DIGIT_BITS
    return keys, order


@njit(cache=True)
def radix_argsort(row, nbits):
    """Indices (int64) that sort `row` ascending; nbits = 32 for float32 rows, 64 for float64,
    65 for int64, 66 for uint64.

    float32: key and index share one uint64 (key in the high half), so each pass moves 8 bytes
    per element; float64: keys and indices travel in two arrays.
    """
    m = row.shape[0]
    keys = np.empty(m, np.uint64)
    if nbits == 32:
        for k in range(m):
            keys[k] = (_sortable_key(row[k], 32) << np.uint64(32)) | np.uint64(k)
        none = np.empty(0, np.int64)
        keys, _ = _radix_passes(keys, np.empty(m, np.uint64), none, none, 32, 64)
        order = np.empty(m, np.int64)
        for k in range(m):
            order[k] = np.int64(keys[k] & np.uint64(0xFFFFFFFF))
        return order
    order = np.arange(m)
    for k in range(m):
        keys[k] = _sortable_key(row[k], nbits)
    _, order = _radix_passes(keys, np.empty(m, np.uint64), order, np.empty(m, np.int64), 0, 64)
    return order


@njit(parallel=True, cache=True)
def _rank_kernel(x, nbits, out):
    """x: (R, M) float; out: (R, M) float64 <- 1-based ranks, ties get the mean of their ranks."""
    m = x.shape[1]
    for r in prange(x.shape[0]):
        row = x[r]
        order = radix_argsort(row, nbits)
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
    """x: (R, M) floats or integers -> float64 ranks (R, M), equal to scipy's rankdata "average".

    Exact for any M below 2**53 (ranks are half-integers held in float64); integers are sorted as
    integers (int64 beyond 2**53 too).
    """
    if x.dtype.kind == "u":
        x = x.astype(np.uint64, copy=False)
        nbits = _U64
    elif x.dtype.kind in "ib":
        x = x.astype(np.int64, copy=False)
        nbits = _I64
    else:
        nbits = 32 if x.dtype == np.float32 else 64
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape, dtype=np.float64)
    _rank_kernel(x, nbits, out)
    return out
