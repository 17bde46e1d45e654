"""Task taxonomy from RDMs (Dwivedi & Roig 2019, section 4.1): all-pairs similarity of models'
RDMs -> agglomerative clustering, one taxonomy or one per layer, from RDMs, a similarity matrix
or a sweep store.

- `taxonomy(rdms, labels)`: the similarity of models' RDMs, clustered (with a bootstrap over
  images: the support of each cluster).
- `taxonomy_from_similarity(similarity, labels)`, `taxonomy_from_store(store, layer)`: the same
  clustering of a precomputed similarity.

Transfer ranking and evaluation live in fastrsa.transfer; `rank_sources`, `evaluate_transfer`,
`Ranking`, `TransferEvaluation` and `load_affinities` are importable from here too.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.cluster import hierarchy

from . import io
from ._backend import get_backend
from ._checks import LINKAGES, check_linkage, check_n_boot, check_seed, draw_seed
from ._versions import package_versions
from .compare import compare
from .plots import taxonomy_figure_writers
from .rdm_inputs import check_rows, real_float64, stack_rdms
from .rdms import n_from_condensed
from .stats import bootstrap_batches
from .support import SupportTally, adjusted_rand_index, linkage_tree
from .sweeps.measure_specs import MeasureSpec, parse_measures
from .transfer import (
    TASKONOMY_ALIASES,
    TRANSFER_FIGURES,
    Ranking,
    TransferEvaluation,
    check_similarity_matrix,
    evaluate_transfer,
    load_affinities,
    rank_sources,
)

__all__ = [
    "adjusted_rand_index",
    "LINKAGES",
    "TASKONOMY_ALIASES",
    "TAXONOMY_FILES",
    "TRANSFER_FIGURES",
    "Ranking",
    "Taxonomy",
    "TransferEvaluation",
    "evaluate_transfer",
    "load_affinities",
    "load_taxonomy",
    "rank_sources",
    "stack_rdms",
    "taxonomies",
    "taxonomy",
    "taxonomy_from_similarity",
    "taxonomy_from_store",
]


@dataclass
class Taxonomy:
    """Similarity (K, K) of K models, its average-linkage tree and flat clusters."""

    labels: list[str]
    similarity: np.ndarray  # (K, K), 1 on the diagonal
    linkage: np.ndarray  # (K-1, 4), scipy.cluster.hierarchy format, distance = 1 - similarity
    order: list[int]  # dendrogram leaf order (indices into labels)
    clusters: dict[str, int] | None  # label -> flat cluster id (1-based), when asked for
    metadata: dict = field(default_factory=dict)
    # With n_boot > 0 (fastrsa.support): support[i] = fraction of the n_boot image resamples
    # whose dendrogram has the cluster support_clusters[i] (the labels under linkage row i);
    # co_clustering (K, K) = fraction of resamples putting two models in the same flat cluster
    # (only with n_clusters). n_boot 0: no bootstrap, these stay None.
    support: np.ndarray | None = None  # (K-1,), linkage order
    support_clusters: list[list[str]] | None = None
    co_clustering: np.ndarray | None = None  # (K, K)
    n_boot: int = 0
    seed: int | None = None  # the seed the resamples were drawn with (drawn when not given)

    def groups(self) -> dict[int, list[str]]:
        """{cluster id: its labels}, ids ascending (empty without flat clusters)."""
        out: dict[int, list[str]] = {}
        for label, cid in (self.clusters or {}).items():
            out.setdefault(cid, []).append(label)
        return dict(sorted(out.items()))

    def to_json(self) -> dict:
        return {
            "labels": self.labels,
            "similarity": self.similarity.tolist(),
            "order": self.order,
            "clusters": self.clusters,
            "linkage": self.linkage.tolist(),
            "metadata": self.metadata,
            **self._bootstrap_json(),
        }

    def _bootstrap_json(self) -> dict:
        """{"bootstrap": {n_boot, seed, clusters, support, co_clustering}}; {} without one."""
        if self.support is None:
            return {}
        co = self.co_clustering
        return {
            "bootstrap": {
                "n_boot": self.n_boot,
                "seed": self.seed,
                "clusters": self.support_clusters,
                "support": np.asarray(self.support).tolist(),
                "co_clustering": None if co is None else np.asarray(co).tolist(),
            }
        }

    def save(self, out_dir: str | os.PathLike, plots: bool = True) -> Path:
        """DIR/taxonomy.json, DIR/taxonomy.npz and (with `plots`) the heatmap + dendrogram as
        DIR/taxonomy.png and .svg, written as one set (io.write_set): a reader finds the old
        set or the new one, never a mix, even when the save is killed midway; taxonomy.json,
        written last, records the SHA-256 of the others (metadata.set.files) and load_taxonomy
        refuses a set whose files do not match. Without `plots`, figures of an earlier save are
        removed. Returns the JSON's path."""
        out_dir = Path(out_dir)
        arrays: dict[str, Any] = {
            "labels": np.array(self.labels),
            "similarity": self.similarity,
            "linkage": self.linkage,
            "order": np.array(self.order),
        }
        files = {TAXONOMY_FILES[1]: lambda f: np.savez(f, **arrays)}
        body = self.to_json()
        body["metadata"] = {k: v for k, v in dict(self.metadata).items() if k != "set"}
        io.json_bytes(body, f"taxonomy: {out_dir / TAXONOMY_FILES[0]}")  # refuse NaN up front

        def manifest(hashes: dict[str, str]) -> bytes:
            body["metadata"]["set"] = {"files": hashes}
            return io.json_bytes(body, f"taxonomy: {out_dir / TAXONOMY_FILES[0]}")

        figures = TAXONOMY_FILES[2:]
        if not plots:
            return io.write_set(out_dir, files, TAXONOMY_FILES[0], manifest, remove=figures)
        with taxonomy_figure_writers(self, ("png", "svg")) as draw:
            files.update({name: draw[name.rsplit(".", 1)[1]] for name in figures})
            return io.write_set(out_dir, files, TAXONOMY_FILES[0], manifest)


TAXONOMY_FILES = ("taxonomy.json", "taxonomy.npz", "taxonomy.png", "taxonomy.svg")


def load_taxonomy(path: str | os.PathLike) -> Taxonomy:
    """A Taxonomy saved by Taxonomy.save (give the JSON or its folder). A save that was killed
    after its commit point is completed first (where the folder is writable); a folder whose
    files come from different saves is refused (ValueError naming the folder and the file)."""
    path = Path(path)
    path = path / TAXONOMY_FILES[0] if path.is_dir() else path
    if path.parent.is_dir():
        try:
            io.recover(path.parent)
        except OSError:
            pass  # a read-only folder: read what is there, checked below
    if not path.is_file():
        raise FileNotFoundError(f"taxonomy: no such file: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        metadata = dict(data.get("metadata", {}))
        written = metadata.pop("set", None)
        labels = [str(lab) for lab in data["labels"]]
        k = len(labels)
        result = Taxonomy(
            labels=labels,
            similarity=np.asarray(data["similarity"], dtype=np.float64).reshape(k, k),
            linkage=np.asarray(data["linkage"], dtype=np.float64).reshape(max(k - 1, 0), 4),
            order=[int(i) for i in data["order"]],
            clusters=data.get("clusters"),
            metadata=metadata,
        )
        if sorted(result.order) != list(range(k)) or len(set(labels)) != k:
            raise ValueError("its labels or order are inconsistent")
        if not np.isfinite(result.similarity).all():
            raise ValueError("its similarity holds NaN or Inf")
        boot = data.get("bootstrap")
        if boot is not None:
            result.n_boot = int(boot["n_boot"])
            result.seed = None if boot["seed"] is None else int(boot["seed"])
            result.support_clusters = [[str(lab) for lab in c] for c in boot["clusters"]]
            result.support = np.asarray(boot["support"], dtype=np.float64).reshape(max(k - 1, 0))
            if boot.get("co_clustering") is not None:
                result.co_clustering = np.asarray(boot["co_clustering"], dtype=np.float64).reshape(
                    k, k
                )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"taxonomy: {path} is not a saved taxonomy ({err})") from None
    if isinstance(written, dict) and isinstance(written.get("files"), dict):
        io.verify_set(path.parent, written["files"], path.name)
    return result


def _check_n_clusters(n_clusters: Any, k: int) -> int | None:
    if n_clusters is None:
        return None
    if isinstance(n_clusters, (bool, np.bool_)) or not isinstance(n_clusters, (int, np.integer)):
        raise TypeError(
            f"n_clusters must be an int >= 1 and <= the number of models ({k}); got "
            f"{n_clusters!r} ({type(n_clusters).__name__})"
        )
    if not 1 <= n_clusters <= k:
        raise ValueError(
            f"n_clusters must be between 1 and {k} (the number of models); got {n_clusters}"
        )
    return int(n_clusters)


def _metadata(backend: str, n_images: int, method: str) -> dict:
    return {
        "versions": package_versions(),
        "backend": backend,
        "device": platform.processor() or platform.machine(),
        "n_images": n_images,
        "method": method,
    }


def taxonomy(
    rdms: Any,
    labels: list[str] | None = None,
    method: str = "spearman",
    linkage: str = "average",
    n_clusters: int | None = None,
    backend: str = "auto",
    n_boot: int = 0,
    seed: int | None = None,
) -> Taxonomy:
    """Agglomerative clustering of models by the similarity of their RDMs.

    rdms: {label: RDM}, an array (K, m) condensed / (K, n, n) square with `labels`, or an
    rsatoolbox.rdm.RDMs object (labels from its rdm descriptor "name" unless given).
    method: how RDMs are compared (fastrsa.compare). Distance between models = 1 - similarity;
    scipy.cluster.hierarchy.linkage with `linkage` (average by default); `n_clusters` flat
    clusters by fcluster(maxclust): an int from 1 to K (tied merge heights can give fewer).
    Refused, naming the argument or the label: complex, non-finite or constant RDMs, duplicate
    labels, an unknown linkage, n_clusters that is not an int in 1..K.

    n_boot > 0: bootstrap over images (fastrsa.stats.bootstrap, n_boot resamples drawn with
    `seed`; without a seed one is drawn and recorded, so the run can be replayed). The result
    then carries `support` (per cluster, linkage order: the fraction of resamples whose
    dendrogram has the same cluster, fastrsa.support.cluster_support), `support_clusters`
    (their labels), `co_clustering` (K, K) when n_clusters is given (else None), `n_boot` and
    `seed`; to_json writes them under "bootstrap". The resamples stream through a block at a
    time (fastrsa.stats.bootstrap_batches, fastrsa.support.SupportTally): any n_boot runs in
    memory bounded by the budget (`fastrsa.set_memory_budget`), and a huge one takes long (the
    caller's call). n_boot = 0 (default): no bootstrap, the result is as without these
    arguments. n_boot must be an int >= 0 and seed an int >= 0 or None (TypeError /
    ValueError).
    """
    check_linkage(linkage)
    n_boot, seed = check_n_boot(n_boot), check_seed(seed)
    labels, vectors = stack_rdms(rdms, labels)
    if len(labels) < 2:
        raise ValueError(f"a taxonomy needs at least 2 models; got {len(labels)}")
    n_clusters = _check_n_clusters(n_clusters, len(labels))
    check_rows(labels, vectors, method, "rdms")
    sim = compare(vectors, method=method, backend=backend)
    ran_on = get_backend(backend).name  # the backend "auto" picked, for the record
    n_images = n_from_condensed(vectors.shape[1])
    result = _cluster(labels, sim, linkage, n_clusters, _metadata(ran_on, n_images, method))
    if n_boot:
        seed = draw_seed() if seed is None else seed
        tally = SupportTally(result.similarity, linkage, n_clusters)
        for k0, samples in bootstrap_batches(
            vectors, method=method, n_boot=n_boot, seed=seed, backend=backend
        ):  # a block of (c, K, K) resamples at a time: any n_boot in bounded memory
            tally.add(samples, k0)
        result.support = tally.support()
        result.support_clusters = [[labels[i] for i in sorted(c)] for c in tally.clusters]
        result.co_clustering = tally.co_clustering()
        result.n_boot, result.seed = n_boot, seed
    return result


def taxonomies(rdms_by_layer: dict[str, Any], **kwargs) -> dict[str, Taxonomy]:
    """One taxonomy per layer (the paper's Figure 5): {layer: {label: RDM}} -> {layer: Taxonomy}.
    Every layer must hold the same labels; keyword arguments go to `taxonomy`."""
    if not rdms_by_layer:
        raise ValueError("rdms_by_layer is empty")
    out = {layer: taxonomy(rdms, **kwargs) for layer, rdms in rdms_by_layer.items()}
    first = next(iter(out.values())).labels
    for layer, result in out.items():
        if sorted(result.labels) != sorted(first):
            raise ValueError(f"layer {layer!r} has labels {result.labels}; others have {first}")
    return out


def taxonomy_from_similarity(
    similarity: np.ndarray, labels: list[str], linkage: str = "average", n_clusters=None
) -> Taxonomy:
    """The same clustering from a precomputed (K, K) similarity matrix: real, finite, square,
    symmetric, ones on the diagonal and values in [-1, 1] (distance = 1 - similarity)."""
    check_linkage(linkage)
    sim = real_float64(similarity, "similarity")
    labels = check_similarity_matrix(sim, "similarity", labels)
    if len(labels) < 2:
        raise ValueError(f"a taxonomy needs at least 2 models; got {len(labels)}")
    n_clusters = _check_n_clusters(n_clusters, len(labels))
    diag = np.diagonal(sim)
    off = np.abs(diag - 1.0) > 1e-8
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"similarity must have ones on its diagonal (each model is itself); "
            f"similarity[{labels[i]!r}, {labels[i]!r}] = {diag[i]}"
        )
    out = np.abs(sim) > 1.0 + 1e-8
    if out.any():
        i, j = (int(v) for v in np.argwhere(out)[0])
        raise ValueError(
            f"similarity values must lie in [-1, 1]; similarity[{labels[i]!r}, {labels[j]!r}] "
            f"= {sim[i, j]}"
        )
    return _cluster(labels, sim, linkage, n_clusters, {})


def taxonomy_from_store(
    store: Any,
    layer: str | None = None,
    method: str = "spearman",
    linkage: str = "average",
    n_clusters: int | None = None,
    measure: Any = "rsa",
) -> Taxonomy:
    """The taxonomy of a sweep store's (fastrsa.sweeps.Store) RDMs of `layer` (None: its only
    layer): the (B, B) `method` similarity the sweep computed (Store.similarity; ValueError
    naming the store when it is not computed yet), clustered as `taxonomy_from_similarity`.
    measure: another measure the sweep computed instead ("cka", "procrustes:alpha=0.5", a
    (name, options) pair or a MeasureSpec; fastrsa.sweeps.measure_specs); a distance d is
    clustered as the similarity 1 - d. metadata records the store's package versions,
    n_images, method (or measure), store and layer."""
    layer = store.layer_name(layer)
    spec = parse_measures([measure], method)[0]
    if spec.clusterable is not None:
        raise ValueError(
            f"measure {spec.key}: a taxonomy clusters a symmetric similarity in [-1, 1], and "
            f"{spec.clusterable}; use compare --store or layer-matrix to read it"
        )
    sim = spec.as_similarity(store.similarity(layer, method, **_measure_args(spec)))
    result = taxonomy_from_similarity(sim, store.rdms(layer).labels, linkage, n_clusters)
    result.metadata = {
        "versions": store.metadata.get("versions"),
        "n_images": store.n,
        "method": spec.key,
        "store": str(store.path),
        "layer": layer,
    }
    return result


def _measure_args(spec: MeasureSpec) -> dict:
    """Store.similarity's keyword arguments for a measure other than rsa."""
    return {} if spec.is_rsa else {"measure": spec.measure, **spec.options}


def _cluster(labels, sim, linkage, n_clusters, metadata) -> Taxonomy:
    tree = linkage_tree(sim, linkage)
    order = [int(i) for i in hierarchy.leaves_list(tree)]
    clusters = None
    if n_clusters is not None:
        ids = hierarchy.fcluster(tree, t=n_clusters, criterion="maxclust")
        clusters = {lab: int(c) for lab, c in zip(labels, ids, strict=True)}
    return Taxonomy(labels, sim, tree, order, clusters, metadata)
