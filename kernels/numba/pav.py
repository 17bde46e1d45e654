"""Pool adjacent violators (PAV) for the decreasing isotonic regression of many rows, and the
whole soft-rank forward built on it, parallel over rows: the CPU kernels of fastrsa.torch's soft
rank (fastrsa.torch.ops.soft_rank_forward says what it computes).

For each row y (m,), float64: the blocks of argmin_{v_1 >= ... >= v_m} ||v - y||², found by the
sequential PAV with a stack of blocks (each value pushed as a block, then merged with its left
neighbour while the left mean <= the right mean, the rule of scikit-learn's and Blondel et al.'s
`isotonic_l2`). O(m) per row (each merge removes a block). The solution is each position's block
mean; adjacent blocks of the result have strictly decreasing means, so the partition is unique
(the same as fastrsa.torch.ops.pav_blocks's parallel rounds give).
"""

import numpy as np
from numba import njit, prange

from .rank import radix_argsort

__all__ = ["pav_blocks_numba", "soft_rank_numba"]


@njit(cache=True)
def _pav_row(y, sums, counts, out):
    """Block ids (0, 1, ... from the left) of one row y (m,) into out (m,) int64; sums, counts:
    scratch of length m."""
    top = -1
    for k in range(y.shape[0]):
        top += 1
        sums[top] = y[k]
        counts[top] = 1
        while top > 0 and sums[top - 1] / counts[top - 1] <= sums[top] / counts[top]:
            sums[top - 1] += sums[top]
            counts[top - 1] += counts[top]
            top -= 1
    k = 0
    for block in range(top + 1):
        for _ in range(counts[block]):
            out[k] = block
            k += 1


@njit(cache=True, parallel=True)
def _pav_rows(y, out):
    for r in prange(y.shape[0]):
        sums = np.empty(y.shape[1], dtype=np.float64)
        counts = np.empty(y.shape[1], dtype=np.int64)
        _pav_row(y[r], sums, counts, out[r])


def pav_blocks_numba(y: np.ndarray) -> np.ndarray:
    """y (B, m) float64 (C-contiguous or not) -> (B, m) int64 block ids of each row's decreasing
    isotonic regression (module docstring). Holds two (m,) scratch arrays per thread."""
    y = np.ascontiguousarray(y, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"y must be (B, m); got shape {y.shape}")
    out = np.empty(y.shape, dtype=np.int64)
    if y.size:
        _pav_rows(y, out)
    return out


@njit(cache=True, parallel=True)
def _soft_rank_rows(theta, ranks, order, blocks):
    m = theta.shape[1]
    for r in prange(theta.shape[0]):
        row = theta[r]
        neg = np.empty(m, dtype=np.float64)
        for k in range(m):
            neg[k] = -row[k]
        idx = radix_argsort(neg, 64)  # stable: descending θ, ties in their original order
        s = np.empty(m, dtype=np.float64)
        y = np.empty(m, dtype=np.float64)
        for k in range(m):
            s[k] = row[idx[k]]
            y[k] = s[k] - (m - k)
            order[r, k] = idx[k]
        sums = np.empty(m, dtype=np.float64)
        counts = np.empty(m, dtype=np.int64)
        _pav_row(y, sums, counts, blocks[r])
        for k in range(m):
            b = blocks[r, k]
            ranks[r, idx[k]] = s[k] - sums[b] / counts[b]


def soft_rank_numba(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft ranks of the rows of theta (B, m) float64 (already scaled by ±1/regularization): the
    projection onto the permutahedron of (m, ..., 1) as fastrsa.torch.ops.soft_rank_forward, in
    one pass per row: an O(m) radix sort (stable, descending), the sequential PAV, the primal put
    back in the rows' order. Returns (ranks (B, m) float64, order (B, m) int64, blocks (B, m)
    int64), order and blocks as that function's. Holds about six (m,) scratch arrays per thread.
    """
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    if theta.ndim != 2:
        raise ValueError(f"theta must be (B, m); got shape {theta.shape}")
    ranks = np.empty(theta.shape, dtype=np.float64)
    order = np.empty(theta.shape, dtype=np.int64)
    blocks = np.empty(theta.shape, dtype=np.int64)
    if theta.size:
        _soft_rank_rows(theta, ranks, order, blocks)
    return ranks, order, blocks
