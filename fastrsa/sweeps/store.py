"""The sweep store: a zarr (v3) group holding many sources' RDMs, their ranks and the all-pairs
similarity tiles of each layer, with an index and done-markers that make every unit of work
idempotent and resumable.

Layout (keys under the store's root, a folder or an fsspec URL):
    fastrsa.json                  the index (format, n, metric, image-set fingerprint, sources,
                                  labels, layers with their rows and keys, package versions)
    rdms/<id>                     (rows, M) condensed RDMs, one chunk per RDM, crc32c-checked
    ranks/<id>                    (rows, M) their average-tie ranks (what Spearman tiles read)
    similarity/<id>/<method>      (rows, rows) float64, one chunk per tile
    features/<id>/<row>           (n, d) features, with keep_features=True
    done/rdm/<id>/<key>           written after an RDM's row and ranks are whole
    done/tile/<id>/<method>/<i>-<j>   written after a tile's two chunks are whole; holds the
                                  tile's content key (the keys of its rows and columns)
Layer <id>s are "0", "1", ... in the order layers were added (layer names may hold any
character). The index is written only by the sweep holding the store's lock; units write
their own chunks and markers. Every file is written whole (a temporary file, then a rename) or
not at all, so a sweep killed at any moment leaves no half-written result: what has no marker
is computed again.

Beneath: storage (the folder or URL, small files, the lock), store_index (the index, content
keys), store_arrays (zarr arrays, verified chunk reads), blocks (tile plan, block comparisons).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._checks import check_choice
from .._memory import budget_for
from ..errors import UserError
from .blocks import RANK_METHODS, TILE_METHODS, array_rows, cross, plan, tile_rows
from .rdm_view import RDMView
from .storage import Files, files_for, is_url, writing
from .store_arrays import (
    READ_CONCURRENCY,
    CorruptChunk,
    ensure_array,
    open_array,
    read_chunk_rows,
    read_rows,
    zarr_module,
)
from .store_index import (
    FORMAT,
    INDEX,
    RANK_FLOAT32_LIMIT,
    VERSION,
    content_key,
    index_problems,
    new_index,
    rank_dtype,
    read_index,
)

__all__ = [
    "FORMAT",
    "INDEX",
    "RANK_FLOAT32_LIMIT",
    "READ_CONCURRENCY",
    "VERSION",
    "RDMView",
    "Store",
    "content_key",
    "create_or_open",
    "open_store",
    "rank_dtype",
    "read_chunk_rows",
    "writing",
    "zarr_module",
]


class Store:
    """A sweep store opened for reading (`fastrsa.open_store`) or by a sweep (under its lock).
    `summary`: what the `fastrsa.sweep` call that returned it computed and reused (else None)."""

    summary: Any = None

    def __init__(self, path: str, files: Files, index: dict) -> None:
        self.path = path
        self.files = files
        self.index = index

    # ----- reading -----
    @property
    def labels(self) -> list[str]:
        """Every source's label, in the order first added."""
        return list(self.index["labels"])

    @property
    def layers(self) -> list[str]:
        return list(self.index["layers"])

    @property
    def n(self) -> int:
        return int(self.index["n"])

    @property
    def m(self) -> int:
        return self.n * (self.n - 1) // 2

    @property
    def metric(self) -> str:
        return str(self.index["metric"])

    @property
    def metadata(self) -> dict:
        """n, metric, the image set's fingerprint, every source ({label: {layer: kind, path,
        fingerprint}}), package versions and creation time, as the index holds them."""
        keep = ("n", "metric", "images", "sources", "versions", "created", "format", "version")
        return {k: self.index.get(k) for k in keep}

    def __repr__(self) -> str:
        return (
            f"<fastrsa store {self.path}: {len(self.labels)} sources x layers {self.layers}, "
            f"n={self.n}, metric={self.metric!r}>"
        )

    def layer_name(self, layer: str | None) -> str:
        """`layer`, checked; None: the store's only layer."""
        names = self.layers
        if layer is None:
            if len(names) != 1:
                raise ValueError(
                    f"store {self.path} has layers {names}: choose one (layer=, --layer)"
                )
            return names[0]
        if layer not in names:
            raise ValueError(f"layer {layer!r} is not in store {self.path}; it has {names}")
        return layer

    def layer_info(self, layer: str) -> dict:
        """The index's entry of a layer: its arrays' "id", "dtype", "rows" (labels in row
        order), "keys" ({label: content key}), "methods" tiled, "tile_rows" (block size)."""
        return self.index["layers"][layer]

    def rdms(self, layer: str | None = None) -> RDMView:
        """The layer's RDMs as a lazy (B, M) view (nothing is read until indexed)."""
        return RDMView(self, self.layer_name(layer))

    def features(self, label: str, layer: str | None = None):
        """The (n, d) features a sweep with keep_features=True kept for `label` in `layer`, as a
        lazy zarr array (index it to read); ValueError if none were kept."""
        layer = self.layer_name(layer)
        info = self.layer_info(layer)
        if label not in info["rows"]:
            raise ValueError(f"store {self.path}: no label {label!r} in layer {layer!r}")
        row = info["rows"].index(label)
        arr = self.array("features", layer, str(row))
        if arr is None or info["keys"][label] not in self.done_rdms(layer):
            raise ValueError(
                f"store {self.path}: no features kept for {label!r} in layer {layer!r} (sweep "
                "with keep_features=True / --keep-features)"
            )
        return arr

    def _name(self, kind: str, layer: str, method: str | None = None) -> str:
        return f"{kind}/{self.layer_info(layer)['id']}" + (f"/{method}" if method else "")

    def array(self, kind: str, layer: str, method: str | None = None):
        """The zarr array `kind` ("rdms", "ranks", "similarity", "features") of a layer (the
        similarity of `method`, the features of row `method`), or None."""
        return open_array(self.path, self._name(kind, layer, method))

    def done_rdms(self, layer: str) -> set[str]:
        return set(self.files.list(f"done/rdm/{self.layer_info(layer)['id']}"))

    def missing_rows(self, layer: str, rows: Sequence[int]) -> list[int]:
        info = self.layer_info(layer)
        done = self.done_rdms(layer)
        return [r for r in rows if info["keys"][info["rows"][r]] not in done]

    def read_rows(self, kind: str, layer: str, rows: Sequence[int]) -> np.ndarray:
        """(len(rows), M) rows of the layer's "rdms" or "ranks" array, in the layer's dtype.
        ValueError naming the label for a row not computed yet; UserError naming it for a
        corrupt chunk (its done-marker is removed, so the next sweep recomputes it)."""
        info = self.layer_info(layer)
        missing = self.missing_rows(layer, rows)
        if missing:
            labels = [info["rows"][r] for r in missing[:5]]
            raise ValueError(
                f"store {self.path}: RDMs of {labels} in layer {layer!r} are not computed yet "
                "(run the sweep again to finish them)"
            )
        arr = self.array(kind, layer)
        if arr is None:
            raise ValueError(f"store {self.path}: layer {layer!r} has no {kind} yet")
        try:
            out = read_rows(self.path, self._name(kind, layer), arr, rows, self.m)
        except CorruptChunk as bad:
            raise self._corrupt(kind, layer, bad.row) from None
        return np.asarray(out, dtype=info["dtype"])

    def block(self, layer: str, method: str, rows: Sequence[int]) -> np.ndarray:
        """The rows a comparison by `method` reads: the ranks (blocks.RANK_METHODS) or the
        RDMs of the layer's `rows`."""
        return self.read_rows("ranks" if method in RANK_METHODS else "rdms", layer, list(rows))

    def _corrupt(self, kind: str, layer: str, row: int | None) -> UserError:
        """The error for a corrupt chunk: names the label, and removes its done-marker (when the
        store is writable) so that a sweep's next run recomputes it."""
        if row is None:
            return UserError(f"store {self.path}: a {kind} chunk of layer {layer!r} is corrupt")
        info = self.layer_info(layer)
        label = info["rows"][row]
        self.files.remove(f"done/rdm/{info['id']}/{info['keys'][label]}")
        return UserError(
            f"store {self.path}: the {kind} chunk of {label!r} in layer {layer!r} is corrupt "
            "(missing, short, or checksum mismatch); run the sweep again to recompute it"
        )

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
                out[name] = data.decode()
        return out

    def missing_tiles(self, layer: str, method: str) -> list[tuple[int, int, str]]:
        done = self.done_tiles(layer, method)
        return [t for t in self.tile_plan(layer, method) if done.get(f"{t[0]}-{t[1]}") != t[2]]

    def similarity(self, layer: str | None = None, method: str = "spearman") -> np.ndarray:
        """(B, B) float64 similarity of the layer's RDMs in label order (`rdms(layer).labels`),
        assembled from the stored tiles; ValueError if any tile is not computed."""
        layer = self.layer_name(layer)
        b = len(self.layer_info(layer)["rows"])
        tiles = self.tile_plan(layer, method)
        missing = self.missing_tiles(layer, method) if tiles else None
        if not tiles or missing:
            done = len(tiles) - len(missing or [])
            raise ValueError(
                f"store {self.path}: the {method} similarity of layer {layer!r} is not computed"
                f"{f' ({done} of {len(tiles)} tiles done)' if tiles else ''}; run `fastrsa "
                f"sweep --store {self.path} ... --method {method}` (or fastrsa.sweep) to finish it"
            )
        arr = self.array("similarity", layer, method)
        return np.asarray(arr[:b, :b], dtype=np.float64)

    def compare(
        self,
        targets: Any,
        layer: str | None = None,
        method: str = "spearman",
        backend: str = "auto",
        memory: int | str | None = None,
        target_layer: str | None = None,
    ) -> np.ndarray:
        """One-vs-many and store-vs-store: targets (T, M) RDMs (array) or another Store ->
        (T, B) float64 similarity to this store's RDMs of `layer`, equal to
        `fastrsa.compare(targets, store.rdms(layer), method)`. Computed a block of each at a
        time: two blocks within the memory budget, plus the (T, B) result."""
        layer = self.layer_name(layer)
        check_choice(method, TILE_METHODS, "method")
        budget = budget_for(memory)
        count_t, read_t, m_t = self._targets(targets, method, target_layer)
        if m_t != self.m:
            raise ValueError(
                f"targets have {m_t} values per RDM; store {self.path} has n={self.n} images "
                f"({self.m} values): RDMs of different image sets cannot be compared"
            )
        info = self.layer_info(layer)
        count = len(info["rows"])
        itemsize = np.dtype(info["dtype"]).itemsize
        b = tile_rows(budget, self.m, max(itemsize, 8), max(count, count_t))

        def read_s(rows: range) -> np.ndarray:
            return self.block(layer, method, rows)

        return cross(read_t, count_t, read_s, count, b, method, backend, budget)

    @staticmethod
    def _targets(targets: Any, method: str, target_layer: str | None):
        """(count, read(rows) -> block, M) of targets: a Store (its layer) or an array (T, M)."""
        if isinstance(targets, Store):
            layer = targets.layer_name(target_layer)
            count = len(targets.layer_info(layer)["rows"])
            return count, lambda rows: targets.block(layer, method, rows), targets.m
        return array_rows(targets, method)

    def status(self) -> dict:
        """{layer: {"rdms": (done, total), "tiles": {method: (done, total)}}}."""
        out = {}
        for layer in self.layers:
            info = self.layer_info(layer)
            done = self.done_rdms(layer)
            keys = [info["keys"][label] for label in info["rows"]]
            tiles = {}
            for method in info.get("methods", []):
                tile_plan = self.tile_plan(layer, method)
                missing = self.missing_tiles(layer, method)
                tiles[method] = (len(tile_plan) - len(missing), len(tile_plan))
            out[layer] = {"rdms": (sum(k in done for k in keys), len(keys)), "tiles": tiles}
        return out

    # ----- writing: the sweep holding the lock (index), or units (their own chunks) -----
    def save_index(self) -> None:
        self.files.write_json(INDEX, self.index)

    def mark(self, key: str, content: str = "") -> None:
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
        rows, m = max(1, len(info["rows"])), self.m
        for kind, dtype in (("rdms", info["dtype"]), ("ranks", rank_dtype(m))):
            name = self._name(kind, layer)
            ensure_array(self.path, name, self.array(kind, layer), (rows, m), (1, m), dtype)

    def allocate_similarity(self, layer: str, method: str) -> None:
        """Create or grow the layer's similarity array of `method`, one chunk per tile."""
        info = self.layer_info(layer)
        rows, b = max(1, len(info["rows"])), int(info["tile_rows"])
        existing = self.array("similarity", layer, method)
        name = self._name("similarity", layer, method)
        ensure_array(self.path, name, existing, (rows, rows), (b, b), "float64")
        if method not in info["methods"]:
            info["methods"].append(method)


def open_store(path: str | os.PathLike) -> Store:
    """Open a sweep store (a folder or an fsspec URL) for reading: labels, layers, lazy RDMs,
    similarity matrices, status. ValueError naming the path when it is not a store."""
    path = os.fspath(path)
    if not is_url(path) and not os.path.isdir(path):
        what = "does not exist" if not os.path.exists(path) else "is not a folder"
        raise UserError(f"store {path} {what}")
    files = files_for(path)
    index = read_index(path, files)
    if index is None:
        raise UserError(f"{path} is not a fastrsa sweep store (no {INDEX})")
    return Store(path, files, index)


def create_or_open(path: str, n: int, metric: str, images: str | None) -> Store:
    """The store at `path` for a sweep of `n` images, `metric` and the image set's fingerprint
    (None for sources without images), made when absent. UserError when the store was made
    from another n, metric or image set: results never mix."""
    if not is_url(path) and os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"store {path} exists and is not a folder")
    files = files_for(path)
    index = read_index(path, files)
    if index is None:
        if not is_url(path) and os.path.isdir(path):
            stray = [e for e in os.listdir(path) if e not in (".lock",)]
            if stray:
                raise UserError(
                    f"store {path} is a folder that is not a fastrsa store (it holds "
                    f"{sorted(stray)[:3]}); choose an empty or new folder"
                )
        zarr_module().open_group(store=path, mode="a", attributes={"fastrsa": FORMAT})
        store = Store(path, files, new_index(n, metric, images))
        store.save_index()
        return store
    problems = index_problems(index, n, metric, images)
    if problems:
        raise UserError(
            f"store {path} was made with {'; '.join(problems)}: results of different image "
            "sets or metrics never mix; use another store"
        )
    if images is not None and index.get("images") is None:
        index["images"] = images
    return Store(path, files, index)
