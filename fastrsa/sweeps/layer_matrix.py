"""Every (source, layer) of a sweep store against every (source, layer): one matrix across
architectures whose layer names differ (Kornblith et al. 2019's layer-by-layer figure across two
networks), computed from the stored RDMs a block of rows at a time.

    m = fastrsa.sweeps.layer_matrix("sweep-store", method="spearman")
    m.entries                          # [(label, layer), ...]: by label, then layer
    m.values                           # (k, k) float64
    layers_a, layers_b, block = m.between("resnet18", "vit_small")
    m.save("layers.json")              # or .npz
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from .._backend import check_backend_name
from .._checks import check_choice
from .._memory import budget_for
from ..layer_names import select_layers
from .blocks import TILE_METHODS, compared, tile_rows
from .measure_specs import MeasureSpec, kind_of, parse_measures
from .measure_states import features_bytes
from .measure_tiles import ASYMMETRIC, pair_block, piece_rows, read_kind
from .store import Store, open_store

__all__ = ["LAYER_MATRIX_FILES", "LayerMatrix", "layer_matrix"]

LAYER_MATRIX_FILES = (".json", ".npz")  # what LayerMatrix.save writes, by suffix


@dataclass
class LayerMatrix:
    """The similarity of every (source label, layer) entry of a store against every other.

    entries: [(label, layer)], k of them, by label (the store's label order), then layer (the
    order layers were added to the store: a sweep's layers in model order); values: (k, k)
    float64, symmetric (but for the asymmetric measures cknna, pwcca, ridge: row i is
    entries[i]'s), row i / column i = entries[i]; method: how RDMs were compared, or the
    measure's key; store: the store's path; n: its image count."""

    entries: list[tuple[str, str]]
    values: np.ndarray
    method: str
    store: str = ""
    n: int = 0

    @property
    def labels(self) -> list[str]:
        """The source labels, each once, in entry order."""
        return list(dict.fromkeys(label for label, _ in self.entries))

    def layers_of(self, label: str) -> list[str]:
        """The layers of `label`, in entry order; ValueError naming the labels held if none."""
        layers = [layer for lab, layer in self.entries if lab == label]
        if not layers:
            raise ValueError(f"label {label!r} is not in the layer matrix; it has {self.labels}")
        return layers

    def between(self, label_a: str, label_b: str) -> tuple[list[str], list[str], np.ndarray]:
        """(layers of a, layers of b, (ka, kb) float64 block): layer i of a against layer j
        of b, the two-network figure (`fastrsa.plots.plot_layer_matrix(m, path, labels=(a, b))`)."""
        layers_a, layers_b = self.layers_of(label_a), self.layers_of(label_b)
        rows = [i for i, (lab, _) in enumerate(self.entries) if lab == label_a]
        cols = [i for i, (lab, _) in enumerate(self.entries) if lab == label_b]
        return layers_a, layers_b, np.array(self.values[np.ix_(rows, cols)], dtype=np.float64)

    def to_json(self) -> dict:
        """{"method", "store", "n", "entries": [[label, layer], ...], "values": k lists of k}."""
        return {
            "method": self.method,
            "store": self.store,
            "n": self.n,
            "entries": [[label, layer] for label, layer in self.entries],
            "values": np.asarray(self.values, dtype=np.float64).tolist(),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write to `path`, atomically: .json (to_json) or .npz (values (k, k) float64, labels
        and layers (k,) str, method, store, n); ValueError for another suffix."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in LAYER_MATRIX_FILES:
            raise ValueError(f"layer matrix: {path} must end in .json or .npz")
        if suffix == ".json":
            return io.save_json(path, self.to_json())
        return io.save_npz(
            path,
            values=np.asarray(self.values, dtype=np.float64),
            labels=np.array([label for label, _ in self.entries], dtype=str),
            layers=np.array([layer for _, layer in self.entries], dtype=str),
            method=np.array(self.method),
            store=np.array(self.store),
            n=np.array(self.n),
        )


def _chosen(available: list[str], wanted: Any, name: str, what: str, store: Store) -> list[str]:
    """The names of `available` that `wanted` (names, glob patterns; None: all) selects, in
    store order; a miss refused with the closest names."""
    if wanted is None:
        return available
    try:
        return select_layers(available, [wanted] if isinstance(wanted, str) else wanted, name)
    except ValueError as err:  # select_layers speaks of a model's layers
        text = str(err).replace("no layer of the model", f"no {what} of store {store.path}")
        raise ValueError(text) from None


def _entries(store: Store, labels: Any = None, layers: Any = None) -> list[tuple[str, str, int]]:
    """[(label, layer, row)] of the store's RDMs that `labels` and `layers` (names or glob
    patterns; None: all) select, by label then layer (each source's layers in its own order,
    Store.layers_of: a model's layers in model order), the row in the layer's arrays. A label
    a layer does not hold is skipped; ValueError when a named label holds none of the layers,
    a named layer none of the labels, or an RDM is not computed (its sweep did not finish)."""
    if not store.layers:
        raise ValueError(f"store {store.path} holds no layers yet (its sweep did not start)")
    chosen_labels = _chosen(store.labels, labels, "labels", "source label", store)
    in_order = sorted(store.layers, key=lambda layer: int(store.layer_info(layer)["id"]))
    chosen_layers = _chosen(in_order, layers, "layers", "layer", store)
    rows = {layer: store.layer_info(layer)["rows"] for layer in chosen_layers}
    out = [
        (label, layer, rows[layer].index(label))
        for label in chosen_labels
        for layer in store.layers_of(label)
        if layer in rows
    ]
    held = {label for label, _, _ in out}
    if labels is not None and len(held) < len(chosen_labels):
        lacking = [label for label in chosen_labels if label not in held]
        raise ValueError(f"labels: {lacking} hold none of the layers {chosen_layers}")
    used = {layer for _, layer, _ in out}
    if layers is not None and len(used) < len(chosen_layers):
        lacking = [layer for layer in chosen_layers if layer not in used]
        raise ValueError(f"layers: {lacking} hold none of the labels {chosen_labels}")
    for layer in chosen_layers:
        missing = store.missing_rows(layer, [row for _, lay, row in out if lay == layer])
        if missing:
            names = [rows[layer][r] for r in missing[:5]]
            raise ValueError(
                f"store {store.path}: layer {layer!r} lacks the RDMs of {names} (added by a "
                "sweep that did not finish): run that sweep again first"
            )
    return out


def _measure_values(
    st: Store, found: list[tuple[str, str, int]], spec: MeasureSpec, budget: int
) -> np.ndarray:
    """(k, k) float64 of a measure beyond RSA from the entries' states, a piece at a time."""
    kind = kind_of(spec.measure, spec.options)
    size = 0
    if kind == "features":
        size = max(features_bytes(st, layer, [row]) for _, layer, row in found)
    b = piece_rows(budget, kind, st.n, size)
    k = len(found)

    def read(part: range) -> tuple[list, list[str]]:
        """The states of entries `part`, read a layer at a time; names unique by position."""
        got: list = [None] * len(part)
        by_layer: dict[str, list[int]] = {}
        for i in part:
            by_layer.setdefault(found[i][1], []).append(i)
        for layer, where in by_layer.items():
            states = read_kind(st, layer, kind, [found[i][2] for i in where])
            for i, state in zip(where, states, strict=True):
                got[i - part.start] = state
        return got, [f"{found[i][0]!r} in {found[i][1]!r} (entry {i})" for i in part]

    def block(a: list, b_: list | None, na: list[str], nb: list[str]) -> np.ndarray:
        return pair_block(spec.measure, spec.options, kind, a, b_, na, nb)

    values = np.empty((k, k))
    for i0 in range(0, k, b):
        rows_i = range(i0, min(k, i0 + b))
        sa, na = read(rows_i)
        values[i0 : rows_i.stop, i0 : rows_i.stop] = block(sa, None, na, [])
        for j0 in range(rows_i.stop, k, b):
            rows_j = range(j0, min(k, j0 + b))
            sb, nb = read(rows_j)
            ab = block(sa, sb, na, nb)
            values[i0 : rows_i.stop, j0 : rows_j.stop] = ab
            back = block(sb, sa, nb, na) if spec.measure in ASYMMETRIC else ab.T
            values[j0 : rows_j.stop, i0 : rows_i.stop] = back
    return values


def layer_matrix(
    store: Store | str | os.PathLike,
    method: str = "spearman",
    labels: str | Sequence[str] | None = None,
    layers: str | Sequence[str] | None = None,
    memory: int | str | None = None,
    backend: str = "auto",
    measure: Any = "rsa",
) -> LayerMatrix:
    """Every (label, layer) RDM of a sweep store against every other -> LayerMatrix (k, k).

    store: a Store or its path / fsspec URL. method: "spearman" (Pearson of the stored ranks),
    "pearson", "cosine", "kendall" (tau-b), "rho-a" or "tau-a", as Store.similarity: the
    within-layer entries equal `store.similarity(layer, method)` (1e-12 for float64 RDMs, 1e-6
    for float32 ones: the stored tiles and these blocks hold different rows), the others
    `fastrsa.compare` of the two RDMs. labels, layers: only these (names or glob patterns,
    "blocks.*"; default all); a name matching nothing is refused with the closest names.
    Entries: every (label, layer) whose RDM the store holds, by label (store.labels order),
    then layer in the order layers were added to the store (a sweep adds a model's layers in
    model order; `store.layers` is sorted by name); an RDM a sweep did not finish is refused
    (ValueError).
    memory: the budget (bytes or "1GB"; default fastrsa.get_memory_budget()): two blocks of
    rows (RDMs, or ranks for spearman and rho-a, in the layers' dtype: float32 when every
    layer is float32, else float64) with their working copies fit it, plus the (k, k) float64
    result. Rows are read a block at a time across layers (Store.block), each block pair
    compared by fastrsa.compare (`backend`).
    measure: instead of RSA, another measure the store's sweep computed states for ("cka",
    "procrustes:alpha=0.5", (name, options); fastrsa.sweeps.measure_specs), from the states
    of every entry (fastrsa.measures.from_grams.tile), two pieces of states within `memory`;
    `method` is then not used. Its within-layer entries equal store.similarity(layer,
    measure=...); the asymmetric cknna has row = entries[i] and is not symmetric."""
    check_choice(method, TILE_METHODS, "method")
    check_backend_name(backend)
    spec = parse_measures([measure], method)[0]
    st = store if isinstance(store, Store) else open_store(store)
    found = _entries(st, labels, layers)
    k = len(found)
    if not spec.is_rsa:
        values = _measure_values(st, found, spec, budget_for(memory))
        entries = [(label, layer) for label, layer, _ in found]
        return LayerMatrix(entries, values, spec.key, st.path, st.n)
    dtype = np.result_type(*{st.layer_info(layer)["dtype"] for _, layer, _ in found})
    budget = budget_for(memory)
    b = tile_rows(budget, st.m, dtype.itemsize, k)

    def read(part: range) -> np.ndarray:
        out = np.empty((len(part), st.m), dtype=dtype)
        by_layer: dict[str, list[int]] = {}
        for i in part:
            by_layer.setdefault(found[i][1], []).append(i)
        for layer, where in by_layer.items():
            rows = [found[i][2] for i in where]
            out[[i - part.start for i in where]] = st.block(layer, method, rows)
        return out

    values = np.empty((k, k))
    for i0 in range(0, k, b):
        rows_i = range(i0, min(k, i0 + b))
        block_i = read(rows_i)
        for j0 in range(i0, k, b):
            rows_j = range(j0, min(k, j0 + b))
            other = None if j0 == i0 else read(rows_j)
            sim = compared(block_i, other, method, backend, budget)
            values[i0 : rows_i.stop, j0 : rows_j.stop] = sim
            values[j0 : rows_j.stop, i0 : rows_i.stop] = sim.T
            del other
    return LayerMatrix([(label, layer) for label, layer, _ in found], values, method, st.path, st.n)
