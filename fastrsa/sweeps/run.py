"""`fastrsa.sweep`: many sources x layers over one image set -> RDMs and all-pairs similarity
tiles in a store, stage by stage, resumable, on this machine or on Ray."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from .._backend import check_backend_name
from .._checks import check_choice, check_count
from .._memory import budget_for
from ..errors import UserError
from ..reference import METRICS
from .blocks import TILE_METHODS
from .executors import EXECUTORS, check_ray_address, run_units
from .image_set import ImageSet, image_set
from .measure_specs import MeasureSpec, kind_of, parse_measures
from .measure_states import done_states, ensure_state_arrays
from .measure_tiles import measure_tile_units
from .progress import Progress, peak_rss, summary_line
from .rdm_units import ENCODER_KINDS, RDMUnit
from .sources import resolve_sources
from .spill import spill_base
from .storage import files_for, holder, is_url, writing
from .store import Store, create_or_open, existing_store, open_store
from .store_checks import check_store
from .store_index import content_key
from .text_set import TextSet, text_set
from .tiles import tile_units, uses_gpu

__all__ = ["ENCODER_KINDS", "RDMUnit", "Summary", "sweep"]


@dataclass
class Summary:
    """What a sweep did: units computed and reused per stage, seconds, peak memory (bytes)."""

    rdms_computed: int = 0
    rdms_reused: int = 0
    tiles_computed: int = 0
    tiles_reused: int = 0
    damaged: int = 0  # damaged files found in the store (their units computed again)
    seconds: float = 0.0
    peak_rss: int = 0
    stages: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        return (
            (f"{self.damaged} damaged file(s) in the store, redone; " if self.damaged else "")
            + f"RDMs: {self.rdms_computed} computed, {self.rdms_reused} reused; tiles: "
            f"{self.tiles_computed} computed, {self.tiles_reused} reused; "
            + summary_line(
                self.rdms_computed + self.tiles_computed,
                self.rdms_reused + self.tiles_reused,
                self.seconds,
                self.peak_rss,
            )
        )


def _check_args(method: str, metric: str, executor: str, backend: str, batch_size: Any) -> None:
    check_choice(method, TILE_METHODS, "method")
    check_choice(metric, METRICS, "metric")
    check_choice(executor, EXECUTORS, "executor")
    check_backend_name(backend)
    check_count(batch_size, "batch_size")


def _state_kinds(specs: list[MeasureSpec], srcs: list, n: int, budget: int) -> list[str]:
    """The state kinds the measures need; ValueError for a source of RDM files (no features),
    a k that n images cannot give, or a budget below what a worker holds for them: two n x n
    float64 Grams and their eigendecomposition's workspace in the pass, two states of the
    largest kind with their working copies in a tile (48 n² bytes)."""
    beyond = [spec for spec in specs if not spec.is_rsa]
    if not beyond:
        return []
    rdm_files = [s for s in srcs if s.kind == "rdms"]
    if rdm_files:
        raise ValueError(
            f"measures: {[spec.key for spec in beyond]} need features; {rdm_files[0].who()} "
            "holds precomputed RDMs, which give only 'rsa'"
        )
    for spec in beyond:
        k = spec.options.get("k")
        if k is not None and k >= n:
            raise ValueError(f"measures: {spec.key}: k = {k} must be at most n - 1 = {n - 1}")
    need = 48 * n * n
    if budget < need:
        raise ValueError(
            f"memory: the measures {[spec.key for spec in beyond]} hold about {need / 2**20:.0f} "
            f"MiB per worker for n = {n} images (n x n float64 Grams and states); the budget is "
            f"{budget / 2**20:.0f} MiB: raise it (memory= / --memory)"
        )
    return sorted({kind_of(spec.measure, spec.options) for spec in beyond})


def _check_states(st: Store, layer: str, kinds: list[str]) -> None:
    """Every row's states are done before the tiles read them (UserError otherwise)."""
    info = st.layer_info(layer)
    for kind in kinds:
        done = done_states(st, layer, kind)
        lack = [label for label in info["rows"] if info["keys"][label] not in done]
        if lack:
            raise UserError(
                f"store {st.path}: layer {layer!r} lacks the {kind} states of {lack[:5]} (swept "
                "without these measures, or by a sweep that did not finish): sweep those sources "
                "again with the same measures first"
            )


def _image_count(srcs: list, images: Any) -> int:
    """n: the image set's, else the file sources'; every source must agree."""
    counts = {s.label: s.n_images() for s in srcs if s.n_images() is not None}
    n = images.n if images is not None else next(iter(counts.values()), None)
    if n is None:
        raise ValueError("images: encoder sources need images (a folder, paths or an array)")
    wrong = {label: c for label, c in counts.items() if c != n}
    if wrong:
        raise ValueError(
            f"sources {sorted(wrong)} cover {sorted(set(wrong.values()))} images, not {n}: every "
            "source of a sweep must cover the same images"
        )
    if n < 3:
        raise ValueError(f"a sweep needs at least 3 images to compare RDMs; got {n}")
    return n


def _register(store: Store, srcs: list, layers: Any, fingerprints: dict, images_fp: Any):
    """Adds the sources to the index (labels, layers, rows, content keys). A (label, layer) is
    bound to one source's content once its RDM is done: another source under it is then refused
    (a label may take different sources in different layers, e.g. one feature file per layer);
    before that (a run that failed), the new source takes the row. Returns
    {label: [(layer, row, key)]} and the layers touched."""
    index = store.index
    plan: dict[str, list[tuple[str, int, str]]] = {}
    touched: list[str] = []
    for s in srcs:
        fp = fingerprints[s.label]
        entry = {**s.describe(), "fingerprint": fp}
        images = images_fp if s.needs_images else None
        items = []
        order = index.setdefault("layer_order", {}).setdefault(s.label, [])
        for layer in s.layer_names(layers):
            if layer not in order:  # the source's own layer order (the store's is by name)
                order.append(layer)
            dtype = "float32" if s.kind in ENCODER_KINDS else "float64"
            info = store.ensure_layer(layer, dtype)
            key = content_key(s.label, fp, layer, images, store.metric, store.n)
            old = info["keys"].get(s.label)
            if old is not None and old != key and old in store.done_rdms(layer):
                was = index["sources"].get(s.label, {}).get(layer, {})
                where = was.get("path") or was.get("spec") or "unknown"
                raise UserError(
                    f"store {store.path}: label {s.label!r} in layer {layer!r} holds the results "
                    f"of another {was.get('kind', 'source')} ({where}); "
                    "give this source another label (a checkpoint is a source of its own, "
                    "e.g. 'run3/epoch10')"
                )  # a source whose RDM never finished gives its row to this one
            if old is None:
                info["rows"].append(s.label)
            info["keys"][s.label] = key
            index["sources"].setdefault(s.label, {})[layer] = entry
            items.append((layer, info["rows"].index(s.label), key))
            if layer not in touched:
                touched.append(layer)
        if s.label not in index["labels"]:
            index["labels"].append(s.label)
        plan[s.label] = items
    return plan, touched


def sweep(
    sources: Any,
    images: Any = None,
    layers: Any = None,
    store: str | os.PathLike = "fastrsa-store",
    method: str = "spearman",
    metric: str = "correlation",
    executor: str = "local",
    memory: int | str | None = None,
    backend: str = "auto",
    keep_features: bool = False,
    batch_size: int = 64,
    device: str = "auto",
    address: str | None = None,
    progress: bool | None = None,
    texts: Any = None,
    pool: str = "auto",
    measures: Any = None,
) -> Store:
    """Many sources x layers over one image set -> RDMs and all-pairs similarity, in a store.

    sources: ONNX encoder files, torch.nn.Module objects (with `layers` naming submodules: their
        outputs are caught by forward hooks), feature files (.npy (n, d); .npz or zarr: one
        array per source label; d may differ between sources) and `RDMSource(path)` for files
        of precomputed RDMs; a list, or a {label: source} dict (a checkpoint is just a source
        with its own label, e.g. "run3/epoch10"). See fastrsa.sweeps.sources.
    images: the image set, read a batch at a time; needed for encoders: a folder, image paths
        (any size, aspect and mode), an array, or a torch Dataset / DataLoader (see
        fastrsa.sweeps.image_set). Models by name prepare images with their own
        preprocessing; ONNX files and plain torch modules the Taskonomy way (resized square,
        in [-1, 1]). A float array (N, C, H, W) is given to models by name as it is.
    texts: instead of images, for text models: a .txt file (one item a line), a .jsonl file,
        or a list of strings (fastrsa.sweeps.text_set).
    layers: layer names, glob patterns ("blocks.*") or presets ("@blocks", "@hidden_states");
        ONNX outputs / module names, listed by fastrsa.layers; default ["compressed"] for ONNX,
        "@blocks" for models by name; for feature and RDM files, one name for their layer
        (default "default").
    pool: how a layer's output becomes one row per item for models by name and modules:
        "auto" (flatten; masked-mean for a text model's tokens), "flatten", "gap", "cls",
        "mean", "last", "masked-mean" (fastrsa.zoo.pool). Recorded in the store.
    store: a folder or an fsspec URL. Created when absent; a store made from other images,
        another n or another metric is refused. Finished RDMs and tiles are skipped, so the
        same call after an interruption (kill -9 included) continues where it stopped.
    method: "spearman", "pearson", "cosine" or "kendall" (per pair); metric: the RDMs'.
    measures: what the all-pairs stage computes (default ["rsa"]: the RDMs compared by
        `method`): "rsa" and any measure of fastrsa.similarity but "attribution", each a name,
        "name:option=value,..." or (name, {options}) with fastrsa.similarity's options (e.g.
        "procrustes:alpha=0.5", ("mutual-knn", {"k": 20})). Results equal fastrsa.similarity
        in memory (float rounding). The pass also makes each (source, layer)'s state
        (fastrsa.sweeps.measure_states): cka, svcca, nbs, procrustes, cca, mutual-knn,
        jaccard-knn and cknna from two n x n float64 Grams of its features (spilled to a file,
        read a block of rows at a time); pwcca, ridge, dds and cka with the laplacian kernel or
        minibatch from its features, kept in the store (as keep_features). The tiles read only
        the states. A store's sources swept without them are passed again for the states. Not
        from RDM files (no features). The pass always builds the RDM too, so `metric` must be
        defined for the features (correlation: no constant rows).
    executor: "local" (this process: all cores or the GPU) or "ray" (`pip install
        fastrsa[ray]`; `address` of a running cluster, else a local one).
    memory: the budget (bytes or "4GB"; default fastrsa.get_memory_budget()). Holds, per
        worker: one source's features of one image batch, the layers' feature buffers within
        half the budget (features beyond that spill to a file in FASTRSA_SPILL_DIR or the
        temporary folder), one RDM and its ranks; in the tile stage two blocks of rows and a
        tile, sized to fit the budget; for the measures beyond RSA, two n x n float64 Grams
        and a chunk of features per worker, and two pieces of states per tile.
    Returns the store (`.similarity(layer, method)`, `.rdms(layer)`), with `.summary` of what
    this call computed and reused.
    """
    _check_args(method, metric, executor, backend, batch_size)
    specs = parse_measures(measures, method)
    if executor == "ray":  # an unreachable cluster is refused before the store is touched
        check_ray_address(address)
    budget = budget_for(memory)
    start = time.perf_counter()
    if isinstance(layers, str):
        layers = [layers]
    if images is not None and texts is not None:
        raise ValueError("give images or texts, not both")
    srcs = resolve_sources(sources, None if layers is None else list(layers), pool)
    if not srcs:
        raise ValueError("sources is empty")
    imageset: ImageSet | TextSet | None = image_set(images) if images is not None else None
    if texts is not None:
        imageset = text_set(texts)
    needs = [s.label for s in srcs if s.needs_images]
    if needs and imageset is None:
        raise ValueError(f"images: sources {needs} are encoders and need images (or texts)")
    n = _image_count(srcs, imageset)
    kinds = _state_kinds(specs, srcs, n, budget)
    if imageset is not None:
        imageset.check()  # every image file opens (headers only)
    for s in srcs:  # every source checked before any work starts
        s.check(s.layer_names(layers), n)
        s.check_rdms(s.layer_names(layers), method, budget)
        if s.needs_images and imageset is not None:
            check_stimuli = getattr(s, "check_stimuli", None)
            if check_stimuli is not None:  # models by name: images or texts, any size
                check_stimuli(imageset, s.layer_names(layers))
            elif isinstance(imageset, TextSet):
                raise ValueError(f"texts: {s.who()} takes images, not texts")
            else:
                imageset.check_size(s.input_size(), f"source {s.label!r}")
    spill_base()  # FASTRSA_SPILL_DIR, when set, names a folder to spill to
    fingerprints = {s.label: s.fingerprint() for s in srcs}
    path = os.fspath(store)
    path = path if is_url(path) else os.path.abspath(path)
    images_fp = None if imageset is None else imageset.fingerprint
    summary = Summary()
    gpu = uses_gpu(backend)
    files = files_for(path)
    found = existing_store(path, n, metric, images_fp)  # a refused run writes nothing:
    if found is not None:  # every check of the store before the lock (its file) is touched
        _register(found, srcs, layers, fingerprints, images_fp)
    with files.lock(holder()):
        files.clean_partials()  # what writes killed mid-way left (never read: not results)
        st = create_or_open(path, n, metric, images_fp)
        with writing(path):  # damaged files found lose their markers, metadata is rewritten
            summary.damaged = len(check_store(st, deep=False, mend=True).damage)
        plan, touched = _register(st, srcs, layers, fingerprints, images_fp)
        with writing(path):
            for layer in touched:
                st.allocate(layer)
                for kind in kinds:
                    ensure_state_arrays(st, layer, kind)
            st.save_index()
        units = []
        done = {layer: st.done_rdms(layer) for layer in touched}
        stated = {(layer, k): done_states(st, layer, k) for layer in touched for k in kinds}
        for s in srcs:
            todo, states, rdm_done = [], {}, []
            for layer, row, key in plan[s.label]:
                need = [k for k in kinds if key not in stated[layer, k]]
                if key in done[layer] and not need:
                    continue
                todo.append((layer, row, key))
                if need:
                    states[layer] = need
                if key in done[layer]:
                    rdm_done.append(layer)
            summary.rdms_reused += len(plan[s.label]) - len(todo) + len(rdm_done)
            if todo:
                units.append(
                    RDMUnit(path, s, todo, imageset if s.needs_images else None, metric,
                            backend, budget, batch_size, device, keep_features, gpu, states,
                            rdm_done)
                )  # fmt: skip
        t0 = time.perf_counter()
        with Progress(len(units), "rdms", progress) as bar:
            results = run_units(units, executor, address=address, progress=bar)
        summary.rdms_computed = sum(r.get("computed", 0) for r in results)
        summary.stages["rdms"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for layer in touched:
            rows = st.layer_info(layer)["rows"]
            missing = st.missing_rows(layer, range(len(rows)))
            if missing:
                labels = [rows[r] for r in missing[:5]]
                raise UserError(
                    f"store {path}: layer {layer!r} lacks the RDMs of {labels} (added by an "
                    "earlier sweep that did not finish): run that sweep again first"
                )
            _check_states(st, layer, kinds)
            for spec in specs:
                if spec.is_rsa:
                    tiles, reused = tile_units(st, layer, method, backend, budget)
                else:
                    tiles, reused = measure_tile_units(st, layer, spec, budget)  # type: ignore
                    with writing(path):
                        st.save_index()
                summary.tiles_reused += reused
                with Progress(len(tiles), f"tiles {layer} {spec.key}", progress) as bar:
                    results = run_units(tiles, executor, address=address, progress=bar)
                summary.tiles_computed += sum(r.get("computed", 0) for r in results)
        summary.stages["tiles"] = time.perf_counter() - t0
    summary.seconds = time.perf_counter() - start
    summary.peak_rss = peak_rss()
    out = open_store(path)
    out.summary = summary
    return out
