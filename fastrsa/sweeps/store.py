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
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import MissingPackage, UserError
from .files import Files, files_for, is_url

FORMAT = "fastrsa-sweep"
VERSION = 1
INDEX = "fastrsa.json"
READ_CONCURRENCY = 64  # chunks read at once (about 32 MB in flight for n = 500)
RANK_FLOAT32_LIMIT = 2**23  # average-tie ranks (halves) of up to this many values are exact


@contextlib.contextmanager
def writing(store_path: str) -> Iterator[None]:
    """A full disk (or quota) while writing to the store: one clear error. Files are written
    whole or not at all, so nothing is left half written; the next run redoes this unit."""
    try:
        yield
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(
                f"store {store_path}: no space left on the device ({err.strerror}); nothing was "
                "half written: free some space and run the sweep again to continue"
            ) from None
        raise


def read_chunk_rows(
    folder: str, rows: Sequence[int], m: int, dtype: np.dtype
) -> tuple[np.ndarray, int | None]:
    """(len(rows), m) rows of a zarr v3 array of (1, m) chunks stored as little-endian bytes plus
    a crc32c checksum (the v3 spec's codecs), each chunk file read straight into its row and
    checked: (rows, None), or (partial, the first row whose chunk is missing, short or fails its
    checksum). Faster than zarr's general path for many small reads (benchmarks/bench_sweep.py,
    case read)."""
    import google_crc32c

    out = np.empty((len(rows), m), dtype=dtype.newbyteorder("<"))
    size = m * out.itemsize
    for k, r in enumerate(rows):
        row = memoryview(out[k]).cast("B")
        try:
            with open(os.path.join(folder, "c", str(r), "0"), "rb", buffering=0) as f:
                got = f.readinto(row)
                tail = f.read(5)
        except FileNotFoundError:
            return out, r
        stored = int.from_bytes(tail, "little") if len(tail) == 4 else None
        if got != size or stored != google_crc32c.value(out[k]):
            return out, r
    return out, None


def zarr_module():
    try:
        import zarr
    except ImportError:
        raise MissingPackage("sweep stores need zarr 3: `pip install 'zarr>=3'`") from None
    return zarr


def content_key(*parts: Any) -> str:
    """A short sha256 hex digest of JSON-serialisable parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def rank_dtype(m: int) -> str:
    return "float32" if m < RANK_FLOAT32_LIMIT else "float64"


class RDMView:
    """A layer's RDMs in a store, read lazily: `view[i]`, `view[i:j]`, `view[[i, k]]`,
    `view["label"]` or `np.asarray(view)` read just those rows. shape (B, M), dtype as stored
    (float32 for encoders' layers, float64 otherwise), labels in row order."""

    def __init__(self, store: Store, layer: str) -> None:
        self._store = store
        self.layer = layer
        self.labels: list[str] = list(store._layer_info(layer)["rows"])
        self._id = store._layer_info(layer)["id"]
        self.shape = (len(self.labels), store.m)
        self.dtype = np.dtype(store._layer_info(layer)["dtype"])

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

    def _layer_info(self, layer: str) -> dict:
        return self.index["layers"][layer]

    def rdms(self, layer: str | None = None) -> RDMView:
        """The layer's RDMs as a lazy (B, M) view (nothing is read until indexed)."""
        return RDMView(self, self.layer_name(layer))

    def features(self, label: str, layer: str | None = None):
        """The (n, d) features a sweep with keep_features=True kept for `label` in `layer`, as a
        lazy zarr array (index it to read); ValueError if none were kept."""
        layer = self.layer_name(layer)
        info = self._layer_info(layer)
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

    def array(self, kind: str, layer: str, method: str | None = None):
        """The zarr array `kind` ("rdms", "ranks", "similarity", "features") of a layer (the
        similarity of `method`, the features of row `method`), or None."""
        zarr = zarr_module()
        path = f"{kind}/{self._layer_info(layer)['id']}" + (f"/{method}" if method else "")
        try:
            return zarr.open_array(store=self.path, path=path, mode="r+")
        except FileNotFoundError:
            return None
        except Exception as err:  # zarr raises its own error for a missing node
            if type(err).__name__ in (
                "ArrayNotFoundError",
                "NodeNotFoundError",
                "GroupNotFoundError",
            ):
                return None
            raise

    def done_rdms(self, layer: str) -> set[str]:
        return set(self.files.list(f"done/rdm/{self._layer_info(layer)['id']}"))

    def missing_rows(self, layer: str, rows: Sequence[int]) -> list[int]:
        info = self._layer_info(layer)
        done = self.done_rdms(layer)
        return [r for r in rows if info["keys"][info["rows"][r]] not in done]

    def read_rows(self, kind: str, layer: str, rows: Sequence[int]) -> np.ndarray:
        """(len(rows), M) rows of the layer's "rdms" or "ranks" array, in the layer's dtype.
        ValueError naming the label for a row not computed yet or a corrupt chunk."""
        info = self._layer_info(layer)
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
        rows = list(rows)
        direct = self._chunk_folder(kind, layer)
        if direct is not None:
            out, bad = read_chunk_rows(direct, rows, self.m, np.dtype(arr.dtype))
            if bad is not None:
                raise self._corrupt_row(kind, layer, bad)
            return np.asarray(out, dtype=info["dtype"])
        try:  # many chunks in flight: zarr's default (10) leaves most of the time in waits
            with zarr_module().config.set({"async.concurrency": READ_CONCURRENCY}):
                if rows and rows == list(range(rows[0], rows[0] + len(rows))):
                    out = arr[rows[0] : rows[0] + len(rows)]
                else:
                    out = np.stack([arr[r] for r in rows]) if rows else np.empty((0, self.m))
        except ValueError as err:
            if "checksum" not in str(err):
                raise
            raise self._corrupt(kind, layer, arr, rows) from None
        return np.asarray(out, dtype=info["dtype"])

    def _chunk_folder(self, kind: str, layer: str) -> str | None:
        """The local folder of a row-chunked array whose chunks can be read straight from their
        files (the layout allocate() makes: one (1, M) chunk per row, codecs bytes (little
        endian) + crc32c, "/"-separated keys), or None (a URL, another layout: read by zarr)."""
        if is_url(self.path):
            return None
        folder = os.path.join(self.path, kind, self._layer_info(layer)["id"])
        try:
            with open(os.path.join(folder, "zarr.json"), "rb") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            return None
        codecs = meta.get("codecs", [])
        plain = (
            [c.get("name") for c in codecs] == ["bytes", "crc32c"]
            and codecs[0].get("configuration", {}).get("endian") == "little"
            and meta["chunk_grid"]["configuration"]["chunk_shape"] == [1, self.m]
            and meta["chunk_key_encoding"]
            == {"name": "default", "configuration": {"separator": "/"}}
        )
        return folder if plain else None

    def _corrupt_row(self, kind: str, layer: str, row: int) -> UserError:
        info = self._layer_info(layer)
        label = info["rows"][row]
        self.files.remove(f"done/rdm/{info['id']}/{info['keys'][label]}")
        return UserError(
            f"store {self.path}: the {kind} chunk of {label!r} in layer {layer!r} is corrupt "
            "(missing, short, or checksum mismatch); run the sweep again to recompute it"
        )

    def _corrupt(self, kind: str, layer: str, arr, rows: Sequence[int]) -> UserError:
        """The error for a chunk that fails its checksum: names the label. A sweep's next run
        recomputes it (its done-marker is removed when the store is writable)."""
        info = self._layer_info(layer)
        for r in rows:
            try:
                arr[r]
            except ValueError:
                label = info["rows"][r]
                self.files.remove(f"done/rdm/{info['id']}/{info['keys'][label]}")
                return UserError(
                    f"store {self.path}: the {kind} chunk of {label!r} in layer {layer!r} is "
                    "corrupt (checksum mismatch); run the sweep again to recompute it"
                )
        return UserError(f"store {self.path}: a {kind} chunk of layer {layer!r} is corrupt")

    def tile_plan(self, layer: str, method: str) -> list[tuple[int, int, str]]:
        """[(i, j, content key)] of the layer's tiles i <= j (block indices) for `method`."""
        from .tiles import plan

        info = self._layer_info(layer)
        b = info.get("tile_rows")
        if not b:
            return []
        keys = [info["keys"][label] for label in info["rows"]]
        return plan(keys, b, method)

    def done_tiles(self, layer: str, method: str) -> dict[str, str]:
        """{"i-j": content key} of the tiles with markers."""
        prefix = f"done/tile/{self._layer_info(layer)['id']}/{method}"
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
        b = len(self._layer_info(layer)["rows"])
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
        from .tiles import cross

        return cross(self, self.layer_name(layer), targets, method, backend, memory, target_layer)

    def status(self) -> dict:
        """{layer: {"rdms": (done, total), "tiles": {method: (done, total)}}}."""
        out = {}
        for layer in self.layers:
            info = self._layer_info(layer)
            done = self.done_rdms(layer)
            keys = [info["keys"][label] for label in info["rows"]]
            tiles = {}
            for method in info.get("methods", []):
                plan = self.tile_plan(layer, method)
                tiles[method] = (len(plan) - len(self.missing_tiles(layer, method)), len(plan))
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
        zarr = zarr_module()
        from zarr.codecs import Crc32cCodec

        info = self._layer_info(layer)
        rows, m = max(1, len(info["rows"])), self.m
        for kind, dtype in (("rdms", info["dtype"]), ("ranks", rank_dtype(m))):
            arr = self.array(kind, layer)
            if arr is None:
                zarr.create_array(
                    store=self.path,
                    name=f"{kind}/{info['id']}",
                    shape=(rows, m),
                    chunks=(1, m),
                    dtype=dtype,
                    compressors=[Crc32cCodec()],
                    fill_value=np.nan,
                )
            elif arr.shape[0] < rows:
                arr.resize((rows, m))

    def allocate_similarity(self, layer: str, method: str) -> None:
        zarr = zarr_module()
        from zarr.codecs import Crc32cCodec

        info = self._layer_info(layer)
        rows, b = max(1, len(info["rows"])), int(info["tile_rows"])
        arr = self.array("similarity", layer, method)
        if arr is None:
            zarr.create_array(
                store=self.path,
                name=f"similarity/{info['id']}/{method}",
                shape=(rows, rows),
                chunks=(b, b),
                dtype="float64",
                compressors=[Crc32cCodec()],
                fill_value=np.nan,
            )
        elif arr.shape[0] < rows:
            arr.resize((rows, rows))
        if method not in info["methods"]:
            info["methods"].append(method)


def _read_index(path: str, files: Files) -> dict | None:
    try:
        data = files.read(INDEX)
    except (IsADirectoryError, NotADirectoryError, PermissionError) as err:
        raise UserError(f"store {path}: cannot read its index ({err})") from None
    if data is None:
        return None
    try:
        index = json.loads(data)
    except ValueError:
        raise UserError(f"store {path}: {INDEX} is not valid JSON") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise UserError(f"store {path}: {INDEX} is not a fastrsa sweep store's index")
    if index.get("version") != VERSION:
        raise UserError(
            f"store {path} has format version {index.get('version')}; this fastrsa reads "
            f"version {VERSION}"
        )
    return index


def open_store(path: str | os.PathLike) -> Store:
    """Open a sweep store (a folder or an fsspec URL) for reading: labels, layers, lazy RDMs,
    similarity matrices, status. ValueError naming the path when it is not a store."""
    path = os.fspath(path)
    if not is_url(path) and not os.path.isdir(path):
        what = "does not exist" if not os.path.exists(path) else "is not a folder"
        raise UserError(f"store {path} {what}")
    files = files_for(path)
    index = _read_index(path, files)
    if index is None:
        raise UserError(f"{path} is not a fastrsa sweep store (no {INDEX})")
    return Store(path, files, index)


def create_or_open(path: str, n: int, metric: str, images: str | None) -> Store:
    """The store at `path` for a sweep of `n` images, `metric` and the image set's fingerprint
    (None for sources without images), made when absent. UserError when the store was made
    from another n, metric or image set: results never mix."""
    from .._versions import package_versions

    if not is_url(path) and os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"store {path} exists and is not a folder")
    files = files_for(path)
    index = _read_index(path, files)
    if index is None:
        if not is_url(path) and os.path.isdir(path):
            stray = [e for e in os.listdir(path) if e not in (".lock",)]
            if stray:
                raise UserError(
                    f"store {path} is a folder that is not a fastrsa store (it holds "
                    f"{sorted(stray)[:3]}); choose an empty or new folder"
                )
        zarr_module().open_group(store=path, mode="a", attributes={"fastrsa": FORMAT})
        index = {
            "format": FORMAT,
            "version": VERSION,
            "n": n,
            "metric": metric,
            "images": images,
            "created": time.strftime("%FT%T%z"),
            "versions": package_versions(),
            "sources": {},
            "labels": [],
            "layers": {},
        }
        store = Store(path, files, index)
        store.save_index()
        return store
    problems = []
    if index["n"] != n:
        problems.append(f"{index['n']} images, not {n}")
    if index["metric"] != metric:
        problems.append(f"metric {index['metric']!r}, not {metric!r}")
    if images is not None and index.get("images") not in (None, images):
        problems.append("another image set (its images' content differs)")
    if problems:
        raise UserError(
            f"store {path} was made with {'; '.join(problems)}: results of different image "
            "sets or metrics never mix; use another store"
        )
    if images is not None and index.get("images") is None:
        index["images"] = images
    return Store(path, files, index)
