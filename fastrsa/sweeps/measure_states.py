"""Per-unit states in a store: what the measures beyond RSA need of each (source, layer), computed
in the pass that builds its RDM and kept so that the all-pairs stage never needs features.

During the pass, each layer's features go to a file in the spill folder (`FeatureFiles`, on disk,
not in memory, not mapped); once the pass is done, its Grams are accumulated from that file a
block of rows at a time (from_grams.grams_by_rows) and each requested state is made
(fastrsa.measures.from_grams) and written:

    states/{layer id}/{kind}/{part}   (rows, *shape), one chunk per row, crc32c-checked
    done/state/{layer id}/{kind}/{content key of the unit}   written after the chunks

kinds: "gram" (the centred Gram, n x n float64: CKA), "eig" (its eigenvectors n x n and
eigenvalues n, float64: NBS, Procrustes, CCA, SVCCA), "knn{k}" (each image's k nearest images
n x k int64 and their cosines n x k float64: mutual kNN, Jaccard kNN, CKNNA), and "features"
(no arrays of its own: the unit's features kept in the store, features/{layer id}/{row}, for
PWCCA, ridge, DDS and CKA's laplacian kernel or minibatch). `--verify` reads every state.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import UserError
from ..measures.from_grams import grams_by_rows, make_state, needs_plain, state_bytes
from .store import Store
from .store_arrays import open_array, zarr_module
from .store_index import content_key

__all__ = [
    "FeatureFiles",
    "done_states",
    "ensure_state_arrays",
    "features_bytes",
    "read_features",
    "read_states",
    "state_bytes",
    "state_marker",
    "state_parts",
    "write_states",
]


def state_parts(kind: str, n: int) -> dict[str, tuple[tuple[int, ...], str]]:
    """{part: (shape per unit, dtype)} of a state kind for n images."""
    if kind == "gram":
        return {"gram": ((n, n), "float64")}
    if kind == "eig":
        return {"u": ((n, n), "float64"), "lam": ((n,), "float64")}
    if kind.startswith("knn"):
        k = int(kind[3:])
        return {"table": ((n, k), "int64"), "sims": ((n, k), "float64")}
    raise ValueError(f"unknown state kind {kind!r}")


def _name(store: Store, layer: str, kind: str, part: str) -> str:
    return f"states/{store.layer_info(layer)['id']}/{kind}/{part}"


def state_marker(store: Store, layer: str, kind: str, key: str) -> str:
    """The done-marker of a unit's state (`key`: the unit's content key)."""
    return f"done/state/{store.layer_info(layer)['id']}/{kind}/{content_key(key, kind)}"


def done_states(store: Store, layer: str, kind: str) -> set[str]:
    """The content keys (of units) whose `kind` state has its marker."""
    info = store.layer_info(layer)
    marked = set(store.files.list(f"done/state/{info['id']}/{kind}"))
    return {key for key in info["keys"].values() if content_key(key, kind) in marked}


def ensure_state_arrays(store: Store, layer: str, kind: str) -> None:
    """Create or grow the layer's arrays of state `kind` to its rows (the sweep, under the lock,
    before units write to them)."""
    if kind == "features":  # the features kept by the sweep (features/{id}/{row})
        return
    zarr = zarr_module()
    from zarr.codecs import Crc32cCodec

    rows = max(1, len(store.layer_info(layer)["rows"]))
    for part, (shape, dtype) in state_parts(kind, store.n).items():
        name = _name(store, layer, kind, part)
        existing = open_array(store.path, name)
        if existing is None:
            zarr.create_array(
                store=store.path,
                name=name,
                shape=(rows, *shape),
                chunks=(1, *shape),
                dtype=dtype,
                compressors=[Crc32cCodec()],
                fill_value=0,
            )
        elif existing.shape[0] < rows:
            existing.resize((rows, *shape))


def write_states(
    store: Store, layer: str, row: int, key: str, files: FeatureFiles, kinds: Sequence[str],
    budget: int, who: str,
) -> None:  # fmt: skip
    """Make the unit's `kinds` states from its features in `files` (read a block of rows at a
    time) and write them at `row`, each then marked done. Holds the two n x n float64 Grams, two
    blocks of rows within what `budget` leaves beside them (half of it: the pass's own buffers
    may still hold the other half), and one state with its eigendecomposition's workspace."""
    kinds = [k for k in kinds if k != "features"]  # kept during the pass: only its marker
    if not kinds:
        return
    plain = any(needs_plain(k) for k in kinds)
    centred = any(not needs_plain(k) for k in kinds)
    n, d = files.shape(layer)
    rows_budget = max(4 * 8 * d, budget // 2 - 4 * 8 * n * n)
    g, gc = grams_by_rows(files.reader(layer), n, d, rows_budget, centred=centred, plain=plain,
                          name=who)  # fmt: skip
    for kind in kinds:
        state = make_state(kind, g, gc, who)
        for part, value in state.items():
            open_array(store.path, _name(store, layer, kind, part))[row] = value
        store.mark(state_marker(store, layer, kind, key))


def read_features(store: Store, layer: str, rows: Sequence[int]) -> list[np.ndarray]:
    """The (n, d_i) features the sweep kept for the layer's `rows` (the "features" state);
    UserError naming the label when they were not kept."""
    info = store.layer_info(layer)
    done = done_states(store, layer, "features")
    out = []
    for r in rows:
        label = info["rows"][r]
        if info["keys"][label] not in done:
            raise UserError(
                f"store {store.path}: the features of {label!r} in layer {layer!r} are not kept; "
                "run the sweep again with the same measures to keep them"
            )
        try:
            out.append(np.asarray(store.features(label, layer)[...]))
        except Exception as err:  # a damaged chunk: zarr's checksum or decoding error
            store.files.remove(state_marker(store, layer, "features", info["keys"][label]))
            raise UserError(
                f"store {store.path}: the kept features of {label!r} in layer {layer!r} are "
                f"damaged ({type(err).__name__}); run the sweep again to recompute them"
            ) from None
    return out


def features_bytes(store: Store, layer: str, rows: Sequence[int]) -> int:
    """The largest float64 size (bytes) of the kept features of `rows` (their widths differ)."""
    info = store.layer_info(layer)
    widths = [open_array(store.path, f"features/{info['id']}/{r}") for r in rows]
    return max((8 * store.n * int(a.shape[1]) for a in widths if a is not None), default=8)


def read_states(store: Store, layer: str, kind: str, rows: Sequence[int]) -> list[dict]:
    """The `kind` states of the layer's `rows`, as dicts of numpy arrays (each chunk checked).
    UserError naming the label for a state not computed or damaged (its marker is removed so the
    next sweep computes it again)."""
    info = store.layer_info(layer)
    done = done_states(store, layer, kind)
    out = []
    arrays = {part: open_array(store.path, _name(store, layer, kind, part)) for part in
              state_parts(kind, store.n)}  # fmt: skip
    for r in rows:
        label = info["rows"][r]
        key = info["keys"][label]
        if key not in done or any(a is None for a in arrays.values()):
            raise UserError(
                f"store {store.path}: the {kind} state of {label!r} in layer {layer!r} is not "
                "computed; run the sweep again to finish it"
            )
        try:
            out.append({part: np.asarray(a[r]) for part, a in arrays.items()})
        except Exception as err:  # a damaged chunk: zarr's checksum or decoding error
            store.files.remove(state_marker(store, layer, kind, key))
            raise UserError(
                f"store {store.path}: the {kind} state of {label!r} in layer {layer!r} is "
                f"damaged ({type(err).__name__}); run the sweep again to recompute it"
            ) from None
    return out


class FeatureFiles:
    """Each layer's (n, d) features, as the pass gives them a batch of rows at a time, in a raw
    file of the folder `tmp` (C order, the features' dtype), written and read with plain file
    I/O (never mapped, so memory holds one batch or one block of rows, not the file); `keep` is
    a sources' Keep, `reader(layer)` gives read(r0, r1) -> rows for grams_by_rows."""

    def __init__(self, tmp: str | os.PathLike, n: int, layers: Sequence[str]) -> None:
        self.tmp, self.n, self.layers = os.fspath(tmp), n, set(layers)
        self.files: dict[str, tuple[Any, np.dtype, int]] = {}  # layer: (file, dtype, d)

    def keep(self, layer: str, start: int, rows: np.ndarray) -> None:
        if layer not in self.layers:
            return
        if layer not in self.files:
            path = os.path.join(self.tmp, f"features-{len(self.files)}.bin")
            self.files[layer] = (open(path, "w+b"), rows.dtype, int(rows.shape[1]))  # noqa: SIM115
        f, dtype, d = self.files[layer]
        f.seek(start * d * dtype.itemsize)
        f.write(np.ascontiguousarray(rows, dtype=dtype).tobytes())

    def shape(self, layer: str) -> tuple[int, int]:
        if layer not in self.files:
            raise UserError(f"layer {layer!r}: the pass gave no features to compute states from")
        return self.n, self.files[layer][2]

    def reader(self, layer: str) -> Any:
        """read(r0, r1) -> the layer's rows r0..r1-1 (r1 - r0, d), from its file."""
        f, dtype, d = self.files[layer]
        f.flush()

        def read(r0: int, r1: int) -> np.ndarray:
            f.seek(r0 * d * dtype.itemsize)
            return np.fromfile(f, dtype=dtype, count=(r1 - r0) * d).reshape(r1 - r0, d)

        return read

    def drop(self, layer: str) -> None:
        """Close and remove the layer's file (its states are made)."""
        f = self.files.pop(layer)[0]
        f.close()
        os.remove(f.name)

    def close(self) -> None:
        for layer in list(self.files):
            self.drop(layer)
