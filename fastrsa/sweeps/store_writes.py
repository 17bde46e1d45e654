"""What a sweep writes to its store, and the done-markers that say what is done
(fastrsa.sweeps.store.Store inherits it): the index (written by the sweep holding the lock), the
arrays made and grown to the index's rows, and the markers units write after their chunks.
Reading results and checking them is in store and store_checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .blocks import plan
from .storage import Files
from .store_arrays import ensure_array
from .store_index import COPY, INDEX, rank_dtype

__all__ = ["StoreWrites"]


class StoreWrites:
    """Store's markers and writes (over its path, files and index; layer_info, array...)."""

    path: str
    files: Files
    index: dict

    def layer_info(self, layer: str) -> dict:  # Store's
        raise NotImplementedError

    def array(self, kind: str, layer: str, method: str | None = None) -> Any:  # Store's
        raise NotImplementedError

    def array_name(self, kind: str, layer: str, method: str | None = None) -> str:  # Store's
        raise NotImplementedError

    # ----- done-markers: what they say is done -----
    def done_rdms(self, layer: str) -> set[str]:
        """The content keys of the layer's RDMs with markers."""
        return set(self.files.list(f"done/rdm/{self.layer_info(layer)['id']}"))

    def missing_rows(self, layer: str, rows: Sequence[int]) -> list[int]:
        """Those of `rows` without a marker."""
        info = self.layer_info(layer)
        done = self.done_rdms(layer)
        return [r for r in rows if info["keys"][info["rows"][r]] not in done]

    def tile_plan(self, layer: str, method: str) -> list[tuple[int, int, str]]:
        """[(i, j, content key)] of the layer's tiles i <= j (block indices) for `method`."""
        info = self.layer_info(layer)
        b = info.get("tile_rows")
        if not b:
            return []
        keys = [info["keys"][label] for label in info["rows"]]
        return plan(keys, b, method)

    def done_tiles(self, layer: str, method: str) -> dict[str, str]:
        """{"i-j": content key} of the tiles with markers."""
        prefix = f"done/tile/{self.layer_info(layer)['id']}/{method}"
        out = {}
        for name in self.files.list(prefix):
            data = self.files.read(f"{prefix}/{name}")
            if data is not None:
                out[name] = data.decode(errors="replace")  # garbage: no key matches
        return out

    def missing_tiles(self, layer: str, method: str) -> list[tuple[int, int, str]]:
        """The plan's tiles without a marker holding their content key."""
        done = self.done_tiles(layer, method)
        return [t for t in self.tile_plan(layer, method) if done.get(f"{t[0]}-{t[1]}") != t[2]]

    # ----- writing: the sweep holding the lock (index), or units (their own chunks) -----
    def save_index(self) -> None:
        """The index, written after its copy (so the copy is never the older)."""
        self.files.write_json(COPY, self.index)
        self.files.write_json(INDEX, self.index)

    def mark(self, key: str, content: str = "") -> None:
        """A done-marker: written after the data it vouches for."""
        self.files.write(key, content.encode())

    def ensure_layer(self, layer: str, dtype: str) -> dict:
        """The layer's index entry, added (with its arrays' id) when new."""
        layers = self.index["layers"]
        if layer not in layers:
            layers[layer] = {
                "id": str(len(layers)),
                "dtype": dtype,
                "rows": [],
                "keys": {},
                "methods": [],
                "tile_rows": None,
            }
        return layers[layer]

    def allocate(self, layer: str) -> None:
        """Create or grow the layer's rdms and ranks arrays to its rows (one chunk per row)."""
        info = self.layer_info(layer)
        n = int(self.index["n"])
        rows, m = max(1, len(info["rows"])), n * (n - 1) // 2
        for kind, dtype in (("rdms", info["dtype"]), ("ranks", rank_dtype(m))):
            name = self.array_name(kind, layer)
            ensure_array(self.path, name, self.array(kind, layer), (rows, m), (1, m), dtype)

    def allocate_similarity(self, layer: str, method: str) -> None:
        """Create or grow the layer's similarity array of `method`, one chunk per tile."""
        info = self.layer_info(layer)
        rows, b = max(1, len(info["rows"])), int(info["tile_rows"])
        existing = self.array("similarity", layer, method)
        name = self.array_name("similarity", layer, method)
        ensure_array(self.path, name, existing, (rows, rows), (b, b), "float64")
        if method not in info["methods"]:
            info["methods"].append(method)
