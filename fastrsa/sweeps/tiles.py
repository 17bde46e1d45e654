"""All-pairs similarity of a store's RDMs in tiles: blocks of rows sized by the memory budget,
each tile (i, j), i <= j, computed by `fastrsa.compare` on two blocks and written when done.

Spearman tiles read the stored ranks and take their Pearson correlation (Spearman is Pearson of
average-tie ranks: the same numbers `fastrsa.compare(rdms, method="spearman")` computes); rho-a
tiles read the stored ranks too (rho-a is a function of the ranks only, which ranking leaves
unchanged); the other methods read the RDMs themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import get_backend
from .._memory import budget_for
from ..compare import compare
from ..errors import UserError
from ..reference import UNCORRECTED
from .store import Store, content_key, writing

TILE_METHODS = ("spearman", "pearson", "cosine", "kendall", "rho-a", "tau-a")
_FROM_RANKS = ("spearman", "rho-a")  # tiles computed from the stored ranks

MAX_TILE_ROWS = 4096  # beyond this a tile is no faster, and resuming loses more


def tile_rows(budget: int, m: int, itemsize: int, rows: int) -> int:
    """Rows per block so that one tile fits `budget` bytes: two blocks as read (itemsize) and
    the comparison's working copies (float64, two blocks), plus the (b, b) result."""
    per_row = m * (2 * itemsize + 16) + 8 * min(rows, MAX_TILE_ROWS)
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


def uses_gpu(backend: str) -> bool:
    """True when `backend` computes on a CUDA GPU here (Ray then gives its units a GPU)."""
    return get_backend(backend).kind == "torch" and _cuda()


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _block(store: Store, layer: str, method: str, rows: range) -> np.ndarray:
    kind = "ranks" if method in _FROM_RANKS else "rdms"
    return store.read_rows(kind, layer, list(rows))


_last_block: dict[tuple, np.ndarray] = {}  # the row block of the previous tile, per process


def _row_block(store: Store, layer: str, method: str, rows: range) -> np.ndarray:
    """The tile's row block, kept for the next tile: tiles run row by row ((0,0), (0,1), ...),
    so the local executor reads each row block once. Keyed by the rows' content keys; at most
    one block is kept (dropped before another is read, so two blocks never become three)."""
    info = store._layer_info(layer)
    keys = tuple(info["keys"][info["rows"][r]] for r in rows)
    key = (store.path, layer, method, rows.start, rows.stop, keys)
    if key not in _last_block:
        _last_block.clear()
        _last_block[key] = _block(store, layer, method, rows)
    return _last_block[key]


def _compared(a: np.ndarray, b: np.ndarray | None, method: str, backend: str, memory) -> Any:
    """fastrsa.compare of two blocks; Spearman as Pearson of the stored ranks, rho-a of the
    stored ranks (ranked again by compare: ranks of ranks are the ranks, exactly)."""
    how = "pearson" if method == "spearman" else method
    return np.asarray(compare(a, b, method=how, backend=backend, memory=memory), dtype=np.float64)


@dataclass
class TileUnit:
    """Tile (i, j) of a layer's similarity for `method`: rows i*b.., columns j*b.."""

    store_path: str
    layer: str
    method: str
    i: int
    j: int
    key: str
    backend: str = "auto"
    memory: int | None = None
    gpu: bool = False

    @property
    def name(self) -> str:
        return f"tile {self.layer} {self.method} {self.i},{self.j}"

    def run(self) -> dict:
        from .store import open_store

        store = open_store(self.store_path)
        info = store._layer_info(self.layer)
        b, count = int(info["tile_rows"]), len(info["rows"])
        rows_i = range(self.i * b, min(count, (self.i + 1) * b))
        rows_j = range(self.j * b, min(count, (self.j + 1) * b))
        itemsize = np.dtype(info["dtype"]).itemsize
        step = tile_rows(self.memory or budget_for(None), store.m, itemsize, b)
        try:
            if step >= b:  # the usual case: the whole tile at once
                a = _row_block(store, self.layer, self.method, rows_i)
                same = self.i == self.j
                other = None if same else _block(store, self.layer, self.method, rows_j)
                sim = _compared(a, other, self.method, self.backend, self.memory)
            else:  # a budget smaller than the one the blocks were sized for: sub-blocks
                sim = self._in_pieces(store, rows_i, rows_j, step)
        except ValueError as err:
            raise UserError(f"store {store.path}, layer {self.layer!r}: {err}") from None
        arr = store.array("similarity", self.layer, self.method)
        with writing(store.path):
            arr[rows_i.start : rows_i.stop, rows_j.start : rows_j.stop] = sim
            if self.i != self.j:
                arr[rows_j.start : rows_j.stop, rows_i.start : rows_i.stop] = sim.T
            store.mark(f"done/tile/{info['id']}/{self.method}/{self.i}-{self.j}", self.key)
        return {"computed": 1}

    def _in_pieces(self, store: Store, rows_i: range, rows_j: range, step: int) -> np.ndarray:
        """The tile a (step x step) piece at a time (two pieces within the budget)."""
        sim = np.empty((len(rows_i), len(rows_j)))
        for i0 in range(rows_i.start, rows_i.stop, step):
            part_i = range(i0, min(rows_i.stop, i0 + step))
            a = _block(store, self.layer, self.method, part_i)
            for j0 in range(rows_j.start, rows_j.stop, step):
                part_j = range(j0, min(rows_j.stop, j0 + step))
                other = a if part_j == part_i else _block(store, self.layer, self.method, part_j)
                block = _compared(a, other, self.method, self.backend, self.memory)
                sim[i0 - rows_i.start : part_i.stop - rows_i.start,
                    j0 - rows_j.start : part_j.stop - rows_j.start] = block  # fmt: skip
        if rows_i == rows_j:  # the diagonal tile: symmetric (with exact ones), as compare gives
            sim = (sim + sim.T) / 2
            if self.method not in UNCORRECTED:  # rho-a, tau-a: their own diagonal
                np.fill_diagonal(sim, 1.0)
        return sim


def tile_units(
    store: Store, layer: str, method: str, backend: str, memory: int
) -> tuple[list[TileUnit], int]:
    """(units of the layer's tiles still to compute, tiles already done). Sets the layer's
    block size on first use (kept for later runs so finished tiles stay valid)."""
    info = store._layer_info(layer)
    if not info.get("tile_rows"):
        itemsize = np.dtype(info["dtype"]).itemsize
        info["tile_rows"] = tile_rows(memory, store.m, itemsize, len(info["rows"]))
    store.allocate_similarity(layer, method)
    store.save_index()
    todo = store.missing_tiles(layer, method)
    total = len(store.tile_plan(layer, method))
    gpu = uses_gpu(backend)
    units = [
        TileUnit(store.path, layer, method, i, j, key, backend, memory, gpu) for i, j, key in todo
    ]
    return units, total - len(todo)


def _target_rows(targets: Any, method: str, target_layer: str | None):
    """(count, read(rows) -> block) of targets: a Store (its layer) or an array (T, M)."""
    if isinstance(targets, Store):
        layer = targets.layer_name(target_layer)
        count = len(targets._layer_info(layer)["rows"])
        return count, lambda rows: _block(targets, layer, method, rows), targets.m
    from ..compare import rank_transform

    arr = np.asarray(targets)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2:
        raise ValueError(f"targets must be (T, M) condensed RDMs or a Store; got shape {arr.shape}")
    if method in _FROM_RANKS:  # compared as ranks, like the store's rows
        arr = np.asarray(rank_transform(arr), dtype=arr.dtype if arr.dtype.kind == "f" else None)
    return arr.shape[0], lambda rows: arr[rows.start : rows.stop], arr.shape[1]


def cross(
    store: Store,
    layer: str,
    targets: Any,
    method: str,
    backend: str,
    memory: int | str | None,
    target_layer: str | None = None,
) -> np.ndarray:
    """(T, B) float64: targets (array or Store) against the store's RDMs of `layer`, a block of
    each at a time within the memory budget."""
    if method not in TILE_METHODS:
        raise ValueError(f"method must be one of {TILE_METHODS}; got {method!r}")
    budget = budget_for(memory)
    count_t, read_t, m_t = _target_rows(targets, method, target_layer)
    if m_t != store.m:
        raise ValueError(
            f"targets have {m_t} values per RDM; store {store.path} has n={store.n} images "
            f"({store.m} values): RDMs of different image sets cannot be compared"
        )
    count = len(store._layer_info(layer)["rows"])
    itemsize = np.dtype(store._layer_info(layer)["dtype"]).itemsize
    b = tile_rows(budget, store.m, max(itemsize, 8), max(count, count_t))
    out = np.empty((count_t, count))
    for t0 in range(0, count_t, b):
        rows_t = range(t0, min(count_t, t0 + b))
        block_t = read_t(rows_t)
        for s0 in range(0, count, b):
            rows_s = range(s0, min(count, s0 + b))
            block_s = _block(store, layer, method, rows_s)
            out[t0 : rows_t.stop, s0 : rows_s.stop] = _compared(
                block_t, block_s, method, backend, budget
            )
    return out


def spill_dir() -> str:
    """Where features that exceed the memory budget spill (FASTRSA_SPILL_DIR, else the
    system's temporary folder)."""
    import tempfile

    return os.environ.get("FASTRSA_SPILL_DIR") or tempfile.gettempdir()
