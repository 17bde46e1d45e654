"""All-pairs tiles of the measures beyond RSA: tile (i, j) of a layer, i <= j, computed from the
stored states of its two blocks of rows (fastrsa.measures.from_grams.tile) and written to the
layer's similarity array of the measure's key, with its done-marker, like the RDM tiles
(fastrsa.sweeps.tiles): same blocks, same plan and content keys, same resuming.

An asymmetric measure (cknna) gets both orientations of an off-diagonal tile computed; a
symmetric one is computed once and mirrored. When a block's states do not fit the budget the tile
is computed a piece of rows at a time (two pieces' states at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._memory import budget_for
from ..errors import UserError
from ..measures.from_grams import tile
from ..similarity import MEASURES, similarity
from .measure_specs import MeasureSpec, kind_of
from .measure_states import features_bytes, read_features, read_states, state_bytes
from .storage import writing
from .store import Store, open_store
from .tiles import tile_rows

__all__ = [
    "ASYMMETRIC",
    "MeasureTileUnit",
    "measure_tile_units",
    "pair_block",
    "piece_rows",
    "read_kind",
]

ASYMMETRIC = ("cknna", "pwcca", "ridge")

# a state read and its working copies in a tile: the state, its centred / weighted copy, and
# the products (measured for "gram", the largest); features: float64 copies, centred copies,
# SVD or ridge work arrays
_COPIES = 3
_FEATURE_COPIES = 6


def piece_rows(budget: int, kind: str, n: int, unit_bytes: int | None = None) -> int:
    """Rows per piece so that two pieces' states and their working copies fit `budget`
    (`unit_bytes`: a "features" unit's float64 size, the largest of the layer's)."""
    if kind == "features":
        return max(1, budget // (2 * _FEATURE_COPIES * (unit_bytes or 8)))
    return max(1, budget // (2 * _COPIES * state_bytes(kind, n)))


def read_kind(store: Store, layer: str, kind: str, rows: Sequence[int]) -> list:
    """What a tile reads of `rows`: their states (dicts), or their kept features (arrays)."""
    if kind == "features":
        return read_features(store, layer, rows)
    return read_states(store, layer, kind, rows)


def pair_block(
    measure: str, options: dict, kind: str, a: list, b: list | None, na: list[str], nb: list[str]
) -> np.ndarray:
    """(len(a), len(b)) float64 of a measure from two pieces' states or features (b None: a's
    all pairs, with fastrsa.similarity's conventions)."""
    if kind != "features":
        return tile(measure, a, b, options, na, nb)
    other = None if b is None else dict(zip(nb, b, strict=True))
    out = similarity(dict(zip(na, a, strict=True)), measure, other=other, **options)
    return np.asarray(out, dtype=np.float64)


@dataclass
class MeasureTileUnit:
    """Tile (i, j) of a layer's similarity by a measure (not RSA), from the blocks' states."""

    store_path: str
    layer: str
    measure: str
    options: dict[str, Any] = field(default_factory=dict)
    key: str = ""  # the measure's key in the store
    i: int = 0
    j: int = 0
    tile_key: str = ""
    memory: int | None = None
    gpu: bool = False

    @property
    def name(self) -> str:
        return f"tile {self.layer} {self.key} {self.i},{self.j}"

    def run(self) -> dict:
        store = open_store(self.store_path)
        info = store.layer_info(self.layer)
        b, count = int(info["tile_rows"]), len(info["rows"])
        rows_i = range(self.i * b, min(count, (self.i + 1) * b))
        rows_j = range(self.j * b, min(count, (self.j + 1) * b))
        kind = kind_of(self.measure, self.options)
        size = features_bytes(store, self.layer, [*rows_i, *rows_j]) if kind == "features" else 0
        step = piece_rows(self.memory or budget_for(None), kind, store.n, size)
        try:
            sim, back = self._computed(store, kind, rows_i, rows_j, step)
        except ValueError as err:
            raise UserError(
                f"store {store.path}, layer {self.layer!r}, {self.key}: {err}"
            ) from None
        arr = store.array("similarity", self.layer, self.key)
        with writing(store.path):
            arr[rows_i.start : rows_i.stop, rows_j.start : rows_j.stop] = sim
            if self.i != self.j:
                arr[rows_j.start : rows_j.stop, rows_i.start : rows_i.stop] = back
            store.mark(f"done/tile/{info['id']}/{self.key}/{self.i}-{self.j}", self.tile_key)
        return {"computed": 1}

    def _pair(
        self, kind: str, sa: list, sb: list | None, na: list[str], nb: list[str]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(a x b, and b x a) of two pieces' states (sb None: a's all pairs, no b x a)."""
        if sb is None:
            return pair_block(self.measure, self.options, kind, sa, None, na, []), None
        ab = pair_block(self.measure, self.options, kind, sa, sb, na, nb)
        if self.measure in ASYMMETRIC:
            return ab, pair_block(self.measure, self.options, kind, sb, sa, nb, na)
        return ab, ab.T

    def _computed(
        self, store: Store, kind: str, rows_i: range, rows_j: range, step: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The tile (rows_i x rows_j) and its transpose side (rows_j x rows_i), a piece of
        `step` rows of each at a time (each piece of rows_i read once)."""
        labels = store.layer_info(self.layer)["rows"]
        same = rows_i == rows_j
        sim = np.empty((len(rows_i), len(rows_j)))
        back = np.empty((len(rows_j), len(rows_i)))
        for i0 in range(rows_i.start, rows_i.stop, step):
            pi = range(i0, min(rows_i.stop, i0 + step))
            sa, na = read_kind(store, self.layer, kind, pi), [labels[r] for r in pi]
            for j0 in range(pi.start if same else rows_j.start, rows_j.stop, step):
                pj = range(j0, min(rows_j.stop, j0 + step))
                one = same and pi == pj
                sb = None if one else read_kind(store, self.layer, kind, pj)
                ab, ba = self._pair(kind, sa, sb, na, [labels[r] for r in pj])
                si = slice(i0 - rows_i.start, pi.stop - rows_i.start)
                sj = slice(j0 - rows_j.start, pj.stop - rows_j.start)
                sim[si, sj] = ab
                if ba is not None and same:
                    sim[sj, si] = ba
                elif ba is not None:
                    back[sj, si] = ba
                del sb
        return sim, back


def measure_tile_units(
    store: Store, layer: str, spec: MeasureSpec, memory: int
) -> tuple[list[MeasureTileUnit], int]:
    """(units of the layer's tiles of `spec` still to compute, tiles already done); allocates
    the similarity array and lists its key in the layer's "methods" (the caller saves the
    index)."""
    if spec.measure not in MEASURES:
        raise ValueError(f"unknown measure {spec.measure!r}")
    info = store.layer_info(layer)
    if not info.get("tile_rows"):
        itemsize = np.dtype(info["dtype"]).itemsize
        info["tile_rows"] = tile_rows(memory, store.m, itemsize, len(info["rows"]))
    store.allocate_similarity(layer, spec.key)
    todo = store.missing_tiles(layer, spec.key)
    total = len(store.tile_plan(layer, spec.key))
    units = [
        MeasureTileUnit(store.path, layer, spec.measure, spec.options, spec.key, i, j, key, memory)
        for i, j, key in todo
    ]
    return units, total - len(todo)
