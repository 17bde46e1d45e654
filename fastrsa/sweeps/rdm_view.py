"""A layer's RDMs in a sweep store, read lazily: rows are read only when indexed.

view = store.rdms("block4")        # an RDMView: nothing read yet
view["taskA"], view[2:5], np.asarray(view)
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["RDMView"]


class RDMView:
    """A layer's RDMs in a store, read lazily: `view[i]`, `view[i:j]`, `view[[i, k]]`,
    `view["label"]` or `np.asarray(view)` read just those rows. shape (B, M), dtype as stored
    (float32 for encoders' layers, float64 otherwise), labels in row order. `store`: the
    Store it reads (its layer_info, m and read_rows)."""

    def __init__(self, store: Any, layer: str) -> None:
        info = store.layer_info(layer)
        self._store = store
        self.layer = layer
        self.labels: list[str] = list(info["rows"])
        self.shape = (len(self.labels), store.m)
        self.dtype = np.dtype(info["dtype"])

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<RDMs of layer {self.layer!r}: {self.shape[0]} x {self.shape[1]} {self.dtype}>"

    def _rows(self, item: Any) -> tuple[list[int] | slice, bool]:
        if isinstance(item, str):
            if item not in self.labels:
                raise KeyError(f"no label {item!r} in layer {self.layer!r}")
            return [self.labels.index(item)], True
        if isinstance(item, slice):
            return item, False
        if isinstance(item, (int, np.integer)):
            i = int(item) + (len(self) if item < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"row {item} out of range for {len(self)} RDMs")
            return [i], True
        rows = [
            self.labels.index(r) if isinstance(r, str) else int(r) for r in np.asarray(item).ravel()
        ]
        return rows, False

    def __getitem__(self, item: Any) -> np.ndarray:
        rows, single = self._rows(item)
        if isinstance(rows, slice):
            rows = list(range(len(self)))[rows]
        out = self._store.read_rows("rdms", self.layer, rows)
        return out[0] if single else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)
