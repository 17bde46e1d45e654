"""All-pairs similarity of a store's RDMs in tiles: blocks of rows sized by the memory budget,
each tile (i, j), i <= j, computed by `fastrsa.compare` on two blocks and written when done.

What a tile reads and how blocks are compared (ranks for Spearman and rho-a, RDMs otherwise)
is in .blocks, with the block size (`tile_rows`) and the plan of tiles (`plan`), re-exported
here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._backend import get_backend
from .._memory import budget_for
from ..errors import UserError
from ..reference import UNCORRECTED
from .blocks import MAX_TILE_ROWS, TILE_METHODS, compared, plan, tile_rows
from .spill import spill_dir
from .storage import writing
from .store import Store, open_store

__all__ = [
    "MAX_TILE_ROWS",
    "TILE_METHODS",
    "TileUnit",
    "plan",
    "spill_dir",
    "tile_rows",
    "tile_units",
    "uses_gpu",
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


_last_block: dict[tuple, np.ndarray] = {}  # the row block of the previous tile, per process


def _row_block(store: Store, layer: str, method: str, rows: range) -> np.ndarray:
    """The tile's row block, kept for the next tile: tiles run row by row ((0,0), (0,1), ...),
    so the local executor reads each row block once. Keyed by the rows' content keys; at most
    one block is kept (dropped before another is read, so two blocks never become three)."""
    info = store.layer_info(layer)
    keys = tuple(info["keys"][info["rows"][r]] for r in rows)
    key = (store.path, layer, method, rows.start, rows.stop, keys)
    if key not in _last_block:
        _last_block.clear()
        _last_block[key] = store.block(layer, method, rows)
    return _last_block[key]


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
        store = open_store(self.store_path)
        info = store.layer_info(self.layer)
        b, count = int(info["tile_rows"]), len(info["rows"])
        rows_i = range(self.i * b, min(count, (self.i + 1) * b))
        rows_j = range(self.j * b, min(count, (self.j + 1) * b))
        itemsize = np.dtype(info["dtype"]).itemsize
        step = tile_rows(self.memory or budget_for(None), store.m, itemsize, b)
        try:
            if step >= b:  # the usual case: the whole tile at once
                a = _row_block(store, self.layer, self.method, rows_i)
                same = self.i == self.j
                other = None if same else store.block(self.layer, self.method, rows_j)
                sim = compared(a, other, self.method, self.backend, self.memory)
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
            a = store.block(self.layer, self.method, part_i)
            for j0 in range(rows_j.start, rows_j.stop, step):
                part_j = range(j0, min(rows_j.stop, j0 + step))
                other = a if part_j == part_i else store.block(self.layer, self.method, part_j)
                block = compared(a, other, self.method, self.backend, self.memory)
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
    info = store.layer_info(layer)
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
