"""A sweep store checked against itself: every file the index implies (the index and its copy,
each array's zarr.json, each zarr group's, every RDM, rank and similarity chunk a done-marker
vouches for, the markers themselves), and what a re-run of its sweep would compute.

    report = check_store(store, deep=True)     # Store.verify(): also every chunk's checksum
    report.clean, report.damage, report.todo, report.lines()

A marker never outlives the data it vouches for: what is found damaged loses its marker (when
the store is writable), so the next sweep computes exactly that again. With `mend=True` (the
sweep, under the store's lock) the metadata is rewritten from the index too: zarr.json files
and the index's copy hold nothing the index does not.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .blocks import plan
from .store_arrays import (
    GROUP_META,
    CorruptChunk,
    array_meta,
    meta_problem,
    open_array,
    read_tile,
)
from .store_arrays import read_rows as read_chunks
from .store_index import COPY, FORMAT, INDEX, content_key, parse_index, rank_dtype

__all__ = ["Damage", "Report", "array_wants", "check_store", "unmark"]


@dataclass
class Damage:
    """One damaged file of a store: `file` (its key under the store), `problem`, `what` it is
    ("index", "metadata", "rdms", "ranks", "similarity", "marker") and whose: `layer`,
    `label` (a source's row), `tile` ((i, j) block indices) and `method` where they apply."""

    file: str
    problem: str
    what: str
    layer: str | None = None
    label: str | None = None
    tile: tuple[int, int] | None = None
    method: str | None = None

    def line(self) -> str:
        whose = []
        if self.label is not None:
            whose.append(f"source {self.label!r}")
        if self.tile is not None:
            whose.append(f"{self.method} tile {self.tile[0]},{self.tile[1]}")
        if self.layer is not None:
            whose.append(f"layer {self.layer!r}")
        return f"{self.file}: {self.problem}" + (f" ({', '.join(whose)})" if whose else "")


@dataclass
class Report:
    """What `Store.verify` found: `damage` (a list of Damage) and `todo`, what a re-run of the
    sweep computes ({layer: {"rdms": [labels], "tiles": {method: [(i, j), ...]}, and with
    deep=True "states": {kind: [labels]}, the damaged states of measures beyond RSA}}: units
    without a valid marker, the damaged ones among them). `deep`: chunks' checksums were read
    (else only their presence and sizes). `clean`: no damage and nothing to compute."""

    path: str
    deep: bool
    damage: list[Damage] = field(default_factory=list)
    todo: dict[str, dict] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.damage and not any(
            t["rdms"] or any(t["tiles"].values()) or any(t.get("states", {}).values())
            for t in self.todo.values()
        )

    def lines(self) -> list[str]:
        """The report as lines: the damage, then what a re-run of the sweep would compute."""
        out = [f"damaged: {d.line()}" for d in self.damage]
        for layer, t in self.todo.items():
            if t["rdms"]:
                out.append(f"would compute: layer {layer!r}, RDMs of {t['rdms']}")
            for kind, labels in t.get("states", {}).items():
                out.append(f"would compute: layer {layer!r}, {kind} states of {labels}")
            for method, tiles in t["tiles"].items():
                if tiles:
                    ij = " ".join(f"{i},{j}" for i, j in tiles)
                    out.append(f"would compute: layer {layer!r}, {method} tiles {ij}")
        how = "checksums" if self.deep else "presence and sizes of chunks"
        return out or [f"verified ({how}): no damage; nothing to compute"]


def unmark(store: Any, key: str) -> None:
    """Remove a done-marker (quietly when the store is read-only: the read still refuses)."""
    with contextlib.suppress(OSError):
        store.files.remove(key)


def array_wants(store: Any, layer: str, kind: str) -> dict:
    """The zarr.json (array_meta) of a layer's "rdms", "ranks" or "similarity" array as the
    index describes it (the least shape it may have)."""
    info = store.layer_info(layer)
    rows, m = max(1, len(info["rows"])), store.m
    if kind == "rdms":
        return array_meta((rows, m), (1, m), info["dtype"])
    if kind == "ranks":
        return array_meta((rows, m), (1, m), rank_dtype(m))
    b = int(info["tile_rows"] or 1)
    return array_meta((1, 1), (b, b), "float64")  # grown to the rows by each tile stage


def _index(store: Any, report: Report, mend: bool) -> None:
    for key in (INDEX, COPY):
        data = store.files.read(key)
        try:
            index, problem = parse_index(data)
        except ValueError as err:
            index, problem = None, str(err)
        if index is None:
            report.damage.append(Damage(key, problem or "missing", "index"))
    if mend and report.damage:
        store.save_index()


def _groups(store: Any, report: Report, mend: bool) -> None:
    tiled = [store.layer_info(x)["id"] for x in store.layers if store.layer_info(x)["methods"]]
    names = ["", "rdms", "ranks"] if store.layers else [""]
    names += (["similarity"] if tiled else []) + [f"similarity/{i}" for i in tiled]
    for name in names:
        key = f"{name}/zarr.json" if name else "zarr.json"
        want = dict(GROUP_META, attributes={"fastrsa": FORMAT} if not name else {})
        try:
            meta = json.loads(store.files.read(key) or b"null")
            ok = isinstance(meta, dict) and meta.get("node_type") == "group"
            problem = "missing" if meta is None else "not a zarr group's metadata"
        except ValueError:
            ok, problem = False, "not valid JSON (truncated or overwritten?)"
        if not ok:
            report.damage.append(Damage(key, problem, "metadata"))
            if mend:
                store.files.write_json(key, want)


def _meta(store: Any, report: Report, mend: bool, layer: str, kind: str, method=None) -> None:
    name = store.array_name(kind, layer, method)
    want = array_wants(store, layer, kind)
    problem = meta_problem(store.files.read(f"{name}/zarr.json"), want)
    if problem is not None:
        report.damage.append(Damage(f"{name}/zarr.json", problem, "metadata", layer))
        if mend:
            rows = max(1, len(store.layer_info(layer)["rows"]))
            shape = [rows, rows] if kind == "similarity" else [rows, store.m]
            store.files.write_json(f"{name}/zarr.json", dict(want, shape=shape))


def _chunk_checker(store: Any, name: str, deep: bool, nbytes: int):
    """check(key, read) -> problem or None: sizes from one listing, or (deep) read in full."""
    sizes = None if deep else store.files.sizes(name)

    def check(key: str, read) -> str | None:
        if sizes is not None:
            size = sizes.get(key[len(name) + 1 :])
            if size is None:
                return "missing"
            want = nbytes + 4
            return None if size == want else f"the wrong size ({size} bytes, not {want})"
        try:
            read()
        except CorruptChunk as bad:
            return bad.problem
        return None

    return check


def _rows(store: Any, report: Report, deep: bool, layer: str) -> list[str]:
    info = store.layer_info(layer)
    marks = f"done/rdm/{info['id']}"
    sizes = store.files.sizes(marks)
    checks = []  # (kind, array name, dtype, check): one listing of each array's chunks
    for kind, dtype in (("rdms", info["dtype"]), ("ranks", rank_dtype(store.m))):
        name = store.array_name(kind, layer)
        nbytes = store.m * np.dtype(dtype).itemsize
        checks.append((kind, name, dtype, _chunk_checker(store, name, deep, nbytes)))
    todo = []
    for r, label in enumerate(info["rows"]):
        key = info["keys"][label]
        if key not in sizes:
            todo.append(label)
            continue
        problems = [] if sizes[key] == 0 else [(f"{marks}/{key}", "not empty", "marker")]
        for kind, name, dtype, check in checks:
            chunk = f"{name}/c/{r}/0"
            problem = check(
                chunk,
                lambda name=name, r=r, dtype=dtype: read_chunks(
                    store.files, name, [r], store.m, dtype
                ),
            )
            if problem is not None:
                problems.append((chunk, problem, kind))
        for file, problem, what in problems:
            report.damage.append(Damage(file, problem, what, layer, label))
        if problems:
            unmark(store, f"{marks}/{key}")
            todo.append(label)
    return todo


def _tiles(store: Any, report: Report, deep: bool, layer: str, method: str) -> list:
    info = store.layer_info(layer)
    b = info.get("tile_rows")
    keys = [info["keys"][label] for label in info["rows"]]
    done = store.done_tiles(layer, method)
    name = store.array_name("similarity", layer, method)
    check = _chunk_checker(store, name, deep, 8 * int(b or 1) ** 2)
    todo = []
    for i, j, key in plan(keys, int(b), method) if b else []:
        if done.get(f"{i}-{j}") != key:
            todo.append((i, j))
            continue
        bad = []
        for p, q in {(i, j), (j, i)}:
            chunk = f"{name}/c/{p}/{q}"
            problem = check(chunk, lambda p=p, q=q: read_tile(store.files, name, p, q, int(b)))
            if problem is not None:
                bad.append(Damage(chunk, problem, "similarity", layer, None, (i, j), method))
        if bad:
            report.damage.extend(bad)
            unmark(store, f"done/tile/{info['id']}/{method}/{i}-{j}")
            todo.append((i, j))
    return todo


def _states(store: Any, report: Report, layer: str) -> dict[str, list[str]]:
    """Deep check of the layer's per-unit states of the measures beyond RSA (and features kept
    for them): each row whose state marker exists is read (zarr checks its crc32c); a damaged
    one loses its marker. -> {kind: [labels to compute again]}."""
    info = store.layer_info(layer)
    todo: dict[str, list[str]] = {}
    for kind in store.files.list(f"done/state/{info['id']}"):
        marked = set(store.files.list(f"done/state/{info['id']}/{kind}"))
        listed = store.files.list(f"states/{info['id']}/{kind}")
        parts = [f"states/{info['id']}/{kind}/{p}" for p in listed if p != "zarr.json"]
        for r, label in enumerate(info["rows"]):
            marker = content_key(info["keys"][label], kind)
            if marker not in marked:
                continue
            for name in [f"features/{info['id']}/{r}"] if kind == "features" else parts:
                try:
                    arr = open_array(store.path, name)
                    if arr is None:
                        raise FileNotFoundError(name)
                    np.asarray(arr[...] if kind == "features" else arr[r])
                except Exception as err:  # missing, checksum or decoding error
                    report.damage.append(Damage(name, f"unreadable ({type(err).__name__})",
                                                "state", layer, label))  # fmt: skip
                    unmark(store, f"done/state/{info['id']}/{kind}/{marker}")
                    todo.setdefault(kind, []).append(label)
                    break
    return todo


def check_store(store: Any, deep: bool = True, mend: bool = False) -> Report:
    """The Report of `store` (see the module docstring); damaged units lose their markers.
    deep: read every chunk a marker vouches for and check its crc32c (else its presence and
    size). mend (the sweep, under the lock): also rewrite damaged metadata from the index."""
    report = Report(store.path, deep)
    _index(store, report, mend)
    _groups(store, report, mend)
    for layer in store.layers:
        info = store.layer_info(layer)
        for kind, method in [("rdms", None), ("ranks", None)] + [
            ("similarity", m) for m in info["methods"]
        ]:
            _meta(store, report, mend, layer, kind, method)
        todo: dict[str, Any] = {"rdms": _rows(store, report, deep, layer), "tiles": {}}
        for method in info["methods"]:
            todo["tiles"][method] = _tiles(store, report, deep, layer, method)
        if deep:
            todo["states"] = _states(store, report, layer)
        report.todo[layer] = todo
    return report
