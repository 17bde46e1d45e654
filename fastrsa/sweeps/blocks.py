"""All-pairs similarity a block of RDMs at a time: the methods a store tiles, the block size that
fits a memory budget, the plan of a layer's tiles with their content keys, and
`fastrsa.compare` of two blocks (used by the tiles of a layer and by `Store.compare`).

Spearman blocks are the stored ranks, compared by Pearson (Spearman is Pearson of average-tie
ranks: the same numbers `fastrsa.compare(rdms, method="spearman")` computes); rho-a blocks are
the ranks too (rho-a is a function of the ranks only, which ranking leaves unchanged); the other
methods read the RDMs themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._arrays import check_values
from ..compare import compare, rank_transform
from .store_index import content_key

__all__ = [
    "MAX_TILE_ROWS",
    "RANK_METHODS",
    "TILE_METHODS",
    "array_rows",
    "compared",
    "cross",
    "plan",
    "tile_rows",
]

TILE_METHODS = ("spearman", "pearson", "cosine", "kendall", "rho-a", "tau-a")
RANK_METHODS = ("spearman", "rho-a")  # blocks read from the stored ranks

MAX_TILE_ROWS = 4096  # beyond this a tile is no faster, and resuming loses more


def tile_rows(budget: int, m: int, itemsize: int, rows: int) -> int:
    """Rows per block so that one tile fits `budget` bytes: two blocks as read (itemsize) and
    the comparison's working copies (float64, two per block: the rows made float64, then
    centred and scaled; measured with tracemalloc), plus the (b, b) result."""
    per_row = m * (2 * itemsize + 32) + 8 * min(rows, MAX_TILE_ROWS)
    return int(max(1, min(MAX_TILE_ROWS, rows, budget // per_row)))


def plan(keys: list[str], b: int, method: str) -> list[tuple[int, int, str]]:
    """[(i, j, tile key)] for blocks i <= j of `b` rows; a tile's key hashes the method and the
    content keys of its rows and columns, so a tile whose blocks changed is computed again."""
    blocks = [keys[s : s + b] for s in range(0, len(keys), b)]
    return [
        (i, j, content_key(method, blocks[i], blocks[j]))
        for i in range(len(blocks))
        for j in range(i, len(blocks))
    ]


def compared(
    a: np.ndarray, b: np.ndarray | None, method: str, backend: str, memory: Any
) -> np.ndarray:
    """(len(a), len(b)) float64 fastrsa.compare of two blocks (b None: a with itself); Spearman
    as Pearson of the stored ranks, rho-a of the stored ranks (ranked again by compare: ranks of
    ranks are the ranks, exactly)."""
    how = "pearson" if method == "spearman" else method
    return np.asarray(compare(a, b, method=how, backend=backend, memory=memory), dtype=np.float64)


Reader = Callable[[range], np.ndarray]


def cross(
    read_a: Reader, count_a: int, read_b: Reader, count_b: int, b: int, method: str,
    backend: str, memory: int,
) -> np.ndarray:  # fmt: skip
    """(count_a, count_b) float64: every row of A against every row of B, a block of `b` rows
    of each at a time (read_a(rows), read_b(rows) -> the rows' RDMs, or ranks for
    RANK_METHODS)."""
    out = np.empty((count_a, count_b))
    for a0 in range(0, count_a, b):
        rows_a = range(a0, min(count_a, a0 + b))
        block_a = read_a(rows_a)
        for b0 in range(0, count_b, b):
            rows_b = range(b0, min(count_b, b0 + b))
            out[a0 : rows_a.stop, b0 : rows_b.stop] = compared(
                block_a, read_b(rows_b), method, backend, memory
            )
    return out


def array_rows(targets: Any, method: str) -> tuple[int, Reader, int]:
    """(T, read(rows) -> block, M) of an array of targets (T, M) condensed RDMs (or one, (M,)):
    ranked first for RANK_METHODS, as a store's rows are."""
    arr = np.asarray(targets)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2:
        raise ValueError(f"targets must be (T, M) condensed RDMs or a Store; got shape {arr.shape}")
    check_values(arr, "targets")  # named as the caller wrote it, before ranking
    if method in RANK_METHODS:  # compared as ranks, like the store's rows
        arr = np.asarray(rank_transform(arr), dtype=arr.dtype if arr.dtype.kind == "f" else None)
    return arr.shape[0], lambda rows: arr[rows.start : rows.stop], arr.shape[1]
