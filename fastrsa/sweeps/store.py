"""The sweep store: a zarr (v3) group holding many sources' RDMs, their ranks and the all-pairs
similarity tiles of each layer, with an index and done-markers that make every unit of work
idempotent and resumable.

Layout (keys under the store's root, a folder or an fsspec URL):
    fastrsa.json                  the index (format, n, metric, image-set fingerprint, sources,
                                  labels, layers with their rows and keys, package versions)
    fastrsa.copy.json             its copy, written before it: read when the index is damaged
    rdms/<id>                     (rows, M) condensed RDMs, one chunk per RDM, crc32c-checked
    ranks/<id>                    (rows, M) their average-tie ranks (what Spearman tiles read)
    similarity/<id>/<method>      (rows, rows) float64, one chunk per tile
    features/<id>/<row>           (n, d) features, with keep_features=True
    done/rdm/<id>/<key>           written after an RDM's row and ranks are whole
    done/tile/<id>/<method>/<i>-<j>   written after a tile's two chunks are whole; holds the
                                  tile's content key (the keys of its rows and columns)
Layer <id>s are "0", "1", ... in the order layers were added (layer names may hold any
character). The index is written only by the sweep holding the store's lock; units write
their own chunks and markers, data first, then the marker. A sweep killed at any moment leaves
no half-written result: what has no marker is computed again. Every read checks what it reads
(the arrays' metadata against the index, each chunk's size and checksum, the markers); what is
missing or corrupt is named, loses its marker, and the next sweep computes exactly that again.

Beneath: storage (the folder or URL, small files, the lock), store_index (the index, content
keys), store_arrays (zarr arrays, verified chunk reads), store_checks (the whole store checked:
Store.verify), blocks (tile plan, block comparisons).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._checks import check_choice
from .._memory import budget_for
from ..errors import UserError
from .blocks import RANK_METHODS, TILE_METHODS, array_rows, cross, tile_rows
from .measure_specs import parse_measures
from .rdm_view import RDMView
from .storage import Files, files_for, is_url, writing
from .store_arrays import (
    READ_CONCURRENCY,
    CorruptChunk,
    meta_problem,
    open_array,
    read_chunk_rows,
    read_rows,
    read_similarity,
    zarr_module,
)
from .store_checks import Report, array_wants, check_store, unmark
from .store_index import (
    COPY,
    FORMAT,
    INDEX,
    RANK_FLOAT32_LIMIT,
    VERSION,
    content_key,
    index_problems,
    lost_index,
    new_index,
    rank_dtype,
    read_index,
)
from .store_writes import StoreWrites

__all__ = [
    "FORMAT",
    "INDEX",
    "RANK_FLOAT32_LIMIT",
    "READ_CONCURRENCY",
    "VERSION",
    "RDMView",
    "Report",
    "Store",
    "content_key",
    "create_or_open",
    "existing_store",
    "open_store",
    "rank_dtype",
    "read_chunk_rows",
    "writing",
    "zarr_module",
]


class Store(StoreWrites):
    """A sweep store opened for reading (`fastrsa.open_store`) or by a sweep (under its lock).
    `summary`: what the `fastrsa.sweep` call that returned it computed and reused (else None)."""

    summary: Any = None

    def __init__(self, path: str, files: Files, index: dict) -> None:
        self.path = path
        self.files = files
        self.index = index
        self._meta_ok: set[str] = set()  # arrays whose zarr.json was checked

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

    def layers_of(self, label: str) -> list[str]:
        """The layers that hold `label`, in its source's own order (a model's layers in model
        order, as its sweeps named them; stores made before this was kept: by layer id)."""
        held = [layer for layer in self.layers if label in self.layer_info(layer)["rows"]]
        order = self.index.get("layer_order", {}).get(label, [])
        known = [layer for layer in order if layer in held]
        rest = sorted(set(held) - set(known), key=lambda x: int(self.layer_info(x)["id"]))
        return known + rest

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
        arr = open_array(self.path, f"features/{info['id']}/{row}")
        if arr is None or info["keys"][label] not in self.done_rdms(layer):
            raise ValueError(
                f"store {self.path}: no features kept for {label!r} in layer {layer!r} (sweep "
                "with keep_features=True / --keep-features)"
            )
        return arr

    def array_name(self, kind: str, layer: str, method: str | None = None) -> str:
        """The key of the array `kind` ("rdms", "ranks", "similarity" of `method`) of a layer."""
        return f"{kind}/{self.layer_info(layer)['id']}" + (f"/{method}" if method else "")

    def array(self, kind: str, layer: str, method: str | None = None):
        """The zarr array `kind` ("rdms", "ranks", "similarity") of a layer (the similarity of
        `method`), or None; for writing (reads go through read_rows and similarity)."""
        return open_array(self.path, self.array_name(kind, layer, method))

    def checked_name(self, kind: str, layer: str, method: str | None = None) -> str:
        """array_name, once its zarr.json is checked against the index: UserError naming the
        file when it is missing, not JSON, or not the array the index describes."""
        name = self.array_name(kind, layer, method)
        if name not in self._meta_ok:
            problem = meta_problem(
                self.files.read(f"{name}/zarr.json"), array_wants(self, layer, kind)
            )
            if problem is not None:
                raise UserError(
                    f"store {self.path}: {name}/zarr.json (the metadata of the {method or kind} "
                    f"of layer {layer!r}) is {problem}; run the sweep again to repair it"
                )
            self._meta_ok.add(name)
        return name

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
        name = self.checked_name(kind, layer)
        dtype = info["dtype"] if kind == "rdms" else rank_dtype(self.m)
        try:
            out = read_rows(self.files, name, rows, self.m, dtype)
        except CorruptChunk as bad:
            raise self._corrupt(kind, layer, bad) from None
        return np.asarray(out, dtype=info["dtype"])

    def block(self, layer: str, method: str, rows: Sequence[int]) -> np.ndarray:
        """The rows a comparison by `method` reads: the ranks (blocks.RANK_METHODS) or the
        RDMs of the layer's `rows`."""
        return self.read_rows("ranks" if method in RANK_METHODS else "rdms", layer, list(rows))

    def _corrupt(self, kind: str, layer: str, bad: CorruptChunk) -> UserError:
        """The error for a damaged chunk: names the label and the file, and removes the label's
        done-marker (when the store is writable) so that a sweep's next run recomputes it."""
        info = self.layer_info(layer)
        label = info["rows"][bad.row]
        unmark(self, f"done/rdm/{info['id']}/{info['keys'][label]}")
        return UserError(
            f"store {self.path}: the {kind} chunk of {label!r} in layer {layer!r} is "
            f"{bad.problem} ({bad.key}); run the sweep again to recompute it"
        )

    def similarity(
        self, layer: str | None = None, method: str = "spearman", measure: str = "rsa",
        **options: Any,
    ) -> np.ndarray:  # fmt: skip
        """(B, B) float64 similarity of the layer's sources in label order
        (`rdms(layer).labels`): their RDMs compared by `method` (measure "rsa"), or `measure`
        with fastrsa.similarity's `options` as the sweep computed it (`sweep(measures=...)`),
        assembled from the stored tiles, each chunk checked; ValueError if any tile is not
        computed, UserError naming the tile and its file when one is damaged (its marker is
        removed: the next sweep recomputes it)."""
        if measure != "rsa" or options:  # "cknna:k=3" or ("cknna", k=3) alike
            method = parse_measures([(measure, options) if options else measure], method)[0].key
        layer = self.layer_name(layer)
        info = self.layer_info(layer)
        count = len(info["rows"])
        tiles = self.tile_plan(layer, method)
        missing = self.missing_tiles(layer, method) if tiles else None
        if not tiles or missing:
            done = len(tiles) - len(missing or [])
            lack = " ".join(f"{i},{j}" for i, j, _ in (missing or [])[:5])
            if method in info["methods"]:  # started
                how = f" ({done} of {len(tiles)} tiles done; lacks {lack})" if tiles else ""
            else:
                how = f" (it holds: {', '.join(info['methods']) or 'none yet'})"
            raise ValueError(
                f"store {self.path}: the {method} similarity of layer {layer!r} is not computed"
                f"{how}; run `fastrsa sweep --store {self.path} ... "
                f"{'--method' if method in TILE_METHODS else '--measure'} {method}` (or "
                "fastrsa.sweep) to finish it"
            )
        name, b = self.checked_name("similarity", layer, method), int(info["tile_rows"])
        try:
            return read_similarity(self.files, name, [t[:2] for t in tiles], b, count)
        except CorruptChunk as bad:
            i, j = bad.tile or (0, 0)
            unmark(self, f"done/tile/{info['id']}/{method}/{i}-{j}")
            rows = info["rows"][i * b : (i + 1) * b]
            raise UserError(
                f"store {self.path}: the {method} similarity tile {i},{j} of layer {layer!r} "
                f"(rows {rows[0]!r}..{rows[-1]!r}) is damaged: {bad.key} is {bad.problem}; run "
                "the sweep again to recompute it"
            ) from None

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

    def verify(self, deep: bool = True) -> Report:
        """Check the whole store: the index and its copy, every zarr.json (against what the
        index says each array is), every chunk a done-marker vouches for (deep=True: read, and
        its crc32c checked; deep=False: only its presence and size, as each sweep checks on
        start) and the markers. Whatever is damaged loses its marker (the store being
        writable), so the next run of the sweep computes exactly that again (and rewrites
        damaged metadata from the index). Returns a Report: `.damage` (Damage: file, problem,
        layer, label, tile), `.todo` (what a re-run computes, per layer: RDMs by label, tiles
        by method), `.clean`, `.lines()`. `fastrsa sweep --verify STORE` prints it."""
        return check_store(self, deep=deep)

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


def open_store(path: str | os.PathLike) -> Store:
    """Open a sweep store (a folder or an fsspec URL) for reading: labels, layers, lazy RDMs,
    similarity matrices, status, verify. UserError naming the path when it is not a store or
    its index (and the index's copy) cannot be read."""
    path = os.fspath(path)
    if not is_url(path) and not os.path.isdir(path):
        what = "does not exist" if not os.path.exists(path) else "is a file, not a store folder"
        raise UserError(f"store {path} {what}")
    files = files_for(path)
    index = read_index(path, files)
    if index is None:
        if lost_index(files):
            raise UserError(
                f"store {path}: its index {INDEX} and the index's copy {COPY} are missing: its "
                "results can no longer be matched to their sources; delete the store and run "
                "the sweep again"
            )
        raise UserError(f"{path} is not a fastrsa sweep store (no {INDEX})")
    return Store(path, files, index)


def existing_store(path: str, n: int, metric: str, images: str | None) -> Store | None:
    """The store at `path`, checked for a sweep of `n` images, `metric` and the image set's
    fingerprint (None for sources without images), or None when there is none yet; reads
    only. UserError when `path` is a file or a folder that is not a store, its index cannot
    be read, or it was made from another n, metric or image set (results never mix)."""
    if not is_url(path) and os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"store {path} is a file, not a store folder: give a folder's path")
    if not is_url(path) and not os.path.exists(path):
        return None
    files = files_for(path)
    index = read_index(path, files)
    if index is None:
        if is_url(path):
            return None
        stray = [e for e in os.listdir(path) if e != ".lock"]
        if lost_index(files):
            open_store(path)  # the error naming the lost index
        if stray:
            raise UserError(
                f"store {path} is a folder that is not a fastrsa store (it holds "
                f"{sorted(stray)[:3]}); choose an empty or new folder"
            )
        return None
    problems = index_problems(index, n, metric, images)
    if problems:
        raise UserError(
            f"store {path} was made with {'; '.join(problems)}: results of different image "
            "sets or metrics never mix; use another store"
        )
    return Store(path, files, index)


def create_or_open(path: str, n: int, metric: str, images: str | None) -> Store:
    """existing_store, else a new store made at `path` (the sweep calls it under the lock)."""
    store = existing_store(path, n, metric, images)
    if store is None:
        zarr_module().open_group(store=path, mode="a", attributes={"fastrsa": FORMAT})
        store = Store(path, files_for(path), new_index(n, metric, images))
        store.save_index()
    elif images is not None and store.index.get("images") is None:
        store.index["images"] = images
    return store
