"""Task taxonomy and transfer ranking from RDMs (Dwivedi & Roig 2019, sections 4.1 and 4.3).

- `taxonomy(rdms, labels)`: all-pairs similarity of models' RDMs -> agglomerative clustering.
- `rank_sources(target_rdm, source_rdms, labels)`: which pretrained model to start from.
- `evaluate_transfer(similarity, labels, affinities)`: the standard evaluation against measured
  transfer affinities (top-1/3/5 hits, mean per-target Pearson and Spearman).
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from scipy.cluster import hierarchy
from scipy.spatial import distance

from . import _arrays as A
from . import io
from ._backend import get_backend
from ._versions import package_versions
from .compare import compare
from .interop import rdm_rows
from .rdms import n_from_condensed, squareform
from .reference import METHODS

LINKAGES = ("average", "single", "complete", "weighted", "ward")
# RDM labels of shared/data/taskonomy whose names differ in Taskonomy's affinity table
TASKONOMY_ALIASES = {
    "vanishing_point": "vanishing_point_well_defined",
    "segmentsemantic": "segmentsemantic_rb",
}


def adjusted_rand_index(a, b) -> float:
    """Adjusted Rand index of two labellings of the same items (1: identical partitions,
    about 0: chance; as sklearn.metrics.adjusted_rand_score)."""
    if len(a) != len(b):
        raise ValueError(f"the labellings have {len(a)} and {len(b)} items")
    _, ia = np.unique(np.asarray(a, dtype=object).astype(str), return_inverse=True)
    _, ib = np.unique(np.asarray(b, dtype=object).astype(str), return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(table, (ia, ib), 1)

    def pairs(x):
        return (x * (x - 1) / 2).sum()

    both, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / pairs(np.array([len(a)]))
    top = 0.5 * (rows + cols)
    return 1.0 if top == expected else float((both - expected) / (top - expected))


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
        from .plots import taxonomy_figure_writers

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


def _real(x: Any, name: str) -> np.ndarray:
    """`x` (numpy array, torch tensor or nested lists) as a float64 numpy array; TypeError naming
    `name` for complex (its imaginary part would be lost) or non-numeric values."""
    if A.is_torch(x):
        if x.is_complex():
            raise TypeError(f"{name} must be real; got complex dtype {x.dtype}")
        x = x.detach().cpu()
        x = x.double() if x.is_floating_point() else x
        x = x.numpy()
    arr = A.as_array(x, name)
    if arr.dtype.kind == "c":
        raise TypeError(
            f"{name} must be real; got complex dtype {arr.dtype} (its imaginary part would be lost)"
        )
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers; got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _first_bad(mask: np.ndarray) -> str:
    idx = tuple(int(i) for i in np.argwhere(mask)[0])
    return str(idx[0]) if len(idx) == 1 else str(idx)


def _check_labels(labels: Any, count: int | None, what: str) -> list[str]:
    """`labels` as a list of unique, non-empty names (str() of each)."""
    if isinstance(labels, (str, bytes)):
        raise TypeError(f"labels must be a list of names, not one string ({labels!r})")
    try:
        labels = [str(lab) for lab in labels]
    except TypeError:
        raise TypeError(f"labels must be a list of names; got {type(labels).__name__}") from None
    if count is not None and len(labels) != count:
        raise ValueError(f"labels has {len(labels)} names for {count} {what}")
    if any(lab == "" for lab in labels):
        raise ValueError(f"labels holds an empty name: {labels}")
    seen, dups = set(), []
    for lab in labels:
        if lab in seen and lab not in dups:
            dups.append(lab)
        seen.add(lab)
    if dups:
        raise ValueError(f"labels are not unique: {dups} appear more than once")
    return labels


def _rdm_row(value: Any, where: str, check_length: bool = True) -> np.ndarray:
    """One RDM (condensed (m,) or square (n, n)) as a finite float64 condensed row of n >= 3
    images; errors name `where` (the user's argument and label)."""
    item = _real(value, where)
    if item.ndim == 2:
        if item.shape[0] != item.shape[1]:
            raise ValueError(f"{where} is not square: {item.shape}")
        if not np.isfinite(item).all():
            raise ValueError(
                f"{where} holds NaN or Inf (first at index {_first_bad(~np.isfinite(item))})"
            )
        try:
            item = np.asarray(squareform(item, to="condensed"))
        except ValueError as err:
            msg = str(err)
            raise ValueError(f"{where} {msg[2:] if msg.startswith('x ') else msg}") from None
    elif item.ndim != 1:
        raise ValueError(
            f"{where} must be an RDM, condensed (m,) or square (n, n); got shape {item.shape}"
        )
    item = np.asarray(item, dtype=np.float64)
    if not np.isfinite(item).all():
        raise ValueError(
            f"{where} holds NaN or Inf (first at index {_first_bad(~np.isfinite(item))})"
        )
    if check_length:
        _check_condensed(len(item), where)
    return item


def _check_condensed(m: int, where: str) -> None:
    try:
        n = n_from_condensed(m, where)
    except ValueError:
        n = 0
    if n < 3:
        raise ValueError(
            f"{where} has {m} values, which is not n*(n-1)/2 for any n >= 3 images: not a "
            "condensed RDM"
        )


def stack_rdms(rdms: Any, labels: list[str] | None = None, name: str = "rdms") -> tuple:
    """(labels, condensed RDMs (K, m)) from a {label: RDM} mapping, an array (K, m) / (K, n, n)
    with `labels`, or an rsatoolbox.rdm.RDMs object (labels, when not given, from its rdm
    descriptor "name", else its positions "0".."K-1"). Square RDMs must be symmetric with a zero
    diagonal; all must share n; every RDM must be real and finite (errors name `name[label]`);
    labels must be unique."""
    from_rsa = rdm_rows(rdms, name)
    if from_rsa is not None:
        rdms, names = from_rsa
        if labels is None:
            labels = names if names is not None else [str(i) for i in range(len(rdms))]
    if isinstance(rdms, dict):
        if labels is not None:
            raise ValueError(f"give labels either as the keys of {name} or as labels, not both")
        items = list(rdms.values())
        labels = _check_labels(list(rdms), None, f"RDMs in {name}")
    else:
        arr = rdms if A.is_torch(rdms) else A.as_array(rdms, name)
        if arr.ndim not in (2, 3):
            raise ValueError(
                f"{name} must be (K, m) condensed or (K, n, n) square; got {tuple(arr.shape)}"
            )
        items = list(arr)
        if labels is None:
            raise ValueError(f"labels are needed for an array of {name}")
        labels = _check_labels(labels, len(items), f"RDMs in {name}")
    if not items:
        raise ValueError(f"{name} holds no RDMs")
    rows = [
        _rdm_row(v, f"{name}[{lab!r}]", check_length=False)
        for lab, v in zip(labels, items, strict=True)
    ]
    sizes = {lab: len(r) for lab, r in zip(labels, rows, strict=True)}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{name} are of different sizes (condensed lengths): {sizes}")
    _check_condensed(len(rows[0]), f"{name}[{labels[0]!r}]" if len(rows) == 1 else name)
    return labels, np.stack(rows)


def _check_rows(labels: list[str] | None, rows: np.ndarray, method: str, name: str) -> None:
    """Refuse the RDMs a method cannot compare, naming them: constant ones for the correlations,
    all-zero ones for cosine."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    if method == "cosine":
        bad = ~rows.any(axis=1)
        problem = "is all zeros (its norm is 0, so the cosine is undefined)"
    else:
        bad = rows.min(axis=1) == rows.max(axis=1)
        problem = (
            "is constant (all its dissimilarities are equal, so its correlation with other RDMs "
            "is undefined)"
        )
    if bad.any():
        if labels is None:
            raise ValueError(f"{name} {problem}")
        which = [labels[i] for i in np.flatnonzero(bad)]
        more = f"; {len(which)} such: {which}" if len(which) > 1 else ""
        raise ValueError(f"{name}[{which[0]!r}] {problem}{more}")


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


def _check_linkage(linkage: Any) -> str:
    if not isinstance(linkage, str) or linkage not in LINKAGES:
        raise ValueError(f"linkage must be one of {LINKAGES}; got {linkage!r}")
    return linkage


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
    `seed`; to_json writes them under "bootstrap". n_boot = 0 (default): no bootstrap, the
    result is as without these arguments. n_boot must be an int >= 0 and seed an int >= 0 or
    None (TypeError / ValueError).
    """
    _check_linkage(linkage)
    n_boot, seed = _check_boot(n_boot, seed)
    labels, vectors = stack_rdms(rdms, labels)
    if len(labels) < 2:
        raise ValueError(f"a taxonomy needs at least 2 models; got {len(labels)}")
    n_clusters = _check_n_clusters(n_clusters, len(labels))
    _check_rows(labels, vectors, method, "rdms")
    sim = compare(vectors, method=method, backend=backend)
    ran_on = get_backend(backend).name  # the backend "auto" picked, for the record
    result = _cluster(labels, sim, linkage, n_clusters, _metadata(ran_on, _n(vectors), method))
    if n_boot:
        from .support import cluster_support, co_clustering

        seed = _draw_seed() if seed is None else seed
        samples = _bootstrap_samples(vectors, method, n_boot, seed, backend)
        clusters, support = cluster_support(result.similarity, samples, linkage)
        result.support = support
        result.support_clusters = [[labels[i] for i in sorted(c)] for c in clusters]
        if n_clusters is not None:
            result.co_clustering = co_clustering(samples, n_clusters, linkage)
        result.n_boot, result.seed = n_boot, seed
    return result


def _check_boot(n_boot: Any, seed: Any) -> tuple[int, int | None]:
    from .support import check_n_boot, check_seed

    return check_n_boot(n_boot), check_seed(seed)


def _draw_seed() -> int:
    """A fresh seed (from the OS's entropy) to record with a run that was given none."""
    return int(np.random.SeedSequence().generate_state(1)[0])


def _bootstrap_samples(
    vectors: np.ndarray, method: str, n_boot: int, seed: int, backend: str
) -> np.ndarray:
    """(n_boot, K, K) similarity of the K condensed RDMs `vectors` over image resamples."""
    from .stats import bootstrap  # lazily: stats sits above this module's imports

    result = bootstrap(vectors, method=method, n_boot=n_boot, seed=seed, backend=backend)
    return np.asarray(result.samples, dtype=np.float64)


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
    _check_linkage(linkage)
    sim = _real(similarity, "similarity")
    labels = _check_square_symmetric(sim, "similarity", labels)
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


def _cluster(labels, sim, linkage, n_clusters, metadata) -> Taxonomy:
    dist = distance.squareform(np.clip(1.0 - sim, 0.0, None), checks=False)
    tree = hierarchy.linkage(dist, method=linkage)
    order = [int(i) for i in hierarchy.leaves_list(tree)]
    clusters = None
    if n_clusters is not None:
        ids = hierarchy.fcluster(tree, t=n_clusters, criterion="maxclust")
        clusters = {lab: int(c) for lab, c in zip(labels, ids, strict=True)}
    return Taxonomy(labels, sim, tree, order, clusters, metadata)


def _n(vectors: np.ndarray) -> int:
    return n_from_condensed(vectors.shape[1])


def _check_square_symmetric(sim: np.ndarray, name: str, labels) -> list[str]:
    """Square (K, K), finite and symmetric, with K unique labels; returns the labels as a list."""
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"{name} must be a square (K, K) matrix; got shape {sim.shape}")
    labels = _check_labels(labels, None, "")
    if len(labels) != sim.shape[0]:
        raise ValueError(
            f"labels has {len(labels)} names for a {sim.shape[0]}x{sim.shape[0]} {name}"
        )
    bad = ~np.isfinite(sim)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"{name} holds NaN or Inf (first at {name}[{labels[i]!r}, {labels[j]!r}])")
    asym = ~np.isclose(sim, sim.T, rtol=0, atol=1e-10)
    if asym.any():
        i, j = (int(v) for v in np.argwhere(asym)[0])
        raise ValueError(
            f"{name} is not symmetric: {name}[{labels[i]!r}, {labels[j]!r}] = {sim[i, j]} but "
            f"{name}[{labels[j]!r}, {labels[i]!r}] = {sim[j, i]}"
        )
    return labels


@dataclass
class Ranking:
    """Source models ordered from most to least similar to the target."""

    labels: list[str]
    scores: np.ndarray  # (K,) similarity to the target, descending
    # With n_boot > 0: per source, in the order of `labels` (fastrsa.support.ranking_confidence)
    confidence: Any = None  # fastrsa.support.RankingConfidence | None
    n_boot: int = 0
    seed: int | None = None

    def __iter__(self):
        return iter(zip(self.labels, self.scores.tolist(), strict=True))


def rank_sources(
    target_rdm: Any,
    source_rdms: Any,
    labels: list[str] | None = None,
    method: str = "spearman",
    backend: str = "auto",
    n_boot: int = 0,
    seed: int | None = None,
) -> Ranking:
    """Rank pretrained models for a new task's model: similarity of each source RDM to the
    target RDM (condensed (m,) or square (n, n)), highest first.

    source_rdms: as `taxonomy`'s rdms ({label: RDM}, an array with `labels`, or an
    rsatoolbox.rdm.RDMs object); target_rdm may also be an RDMs object holding one RDM.

    n_boot > 0: the target and all sources are bootstrapped together (the same image resample
    for all, fastrsa.stats.bootstrap with `seed`; drawn and recorded when None) and the result
    carries `confidence` (fastrsa.support.RankingConfidence, sources in the ranking's order:
    probability of being top-1 / in the top 1, 3, 5, 95% percentile interval of the score),
    `n_boot` and `seed`. n_boot = 0 (default): as without these arguments."""
    n_boot, seed = _check_boot(n_boot, seed)
    from_rsa = rdm_rows(target_rdm, "target_rdm")
    if from_rsa is not None:
        if len(from_rsa[0]) != 1:
            raise ValueError(
                f"target_rdm must be one RDM; got an rsatoolbox RDMs object of {len(from_rsa[0])}"
            )
        target_rdm = from_rsa[0][0]
    target = _rdm_row(target_rdm, "target_rdm")[None]
    labels, sources = stack_rdms(source_rdms, labels, "source_rdms")
    _check_rows(None, target, method, "target_rdm")
    _check_rows(labels, sources, method, "source_rdms")
    if target.shape[1] != sources.shape[1]:
        raise ValueError(
            f"target_rdm covers {_n(target)} images, source_rdms {_n(sources)}: they must share "
            "the same images"
        )
    scores = compare(target, sources, method=method, backend=backend)[0]
    order = np.argsort(-scores, kind="stable")
    ranking = Ranking([labels[i] for i in order], np.asarray(scores)[order])
    if n_boot:
        from .support import ranking_confidence

        seed = _draw_seed() if seed is None else seed
        from .stats import bootstrap_first_row

        both = np.concatenate([target, sources])
        samples = bootstrap_first_row(both, method, n_boot, seed, backend)
        ranking.confidence = ranking_confidence(samples[:, order], ranking.labels)
        ranking.n_boot, ranking.seed = n_boot, seed
    return ranking


def _affinity(value: Any, key: str, where: str, error: type[Exception]) -> float:
    """A finite number (bool and strings are not numbers here); `error` naming `where` and the
    key otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise error(
            f"{where}: the affinity of {key!r} is {value!r} ({type(value).__name__}); expected a "
            "number"
        )
    if isinstance(value, (complex, np.complexfloating)):
        raise error(f"{where}: the affinity of {key!r} is complex ({value!r}); expected a number")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{where}: the affinity of {key!r} is {out}; it must be finite")
    return out


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} appears twice")
        seen[key] = value
    return seen


def load_affinities(path: str | os.PathLike) -> dict[tuple[str, str], float]:
    """Transfer affinities {(source, target): value} from JSON ({"affinity": {"s__t": v}} as in
    shared/data/taskonomy, or the inner mapping itself) or CSV (columns source, target, value).

    Every value must be a finite number (JSON true/false, strings, null, NaN and Infinity are
    refused); keys must be "source__target" with both names non-empty, and appear once. Errors
    (ValueError) name the file and the key or CSV line.
    """
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise ValueError(f"affinities: {path} is a folder; expected a .json or .csv file")
        raise FileNotFoundError(f"affinities: no such file: {path}")
    where = f"affinities: {path}"
    out: dict[tuple[str, str], float] = {}
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                missing = {"source", "target", "value"} - set(reader.fieldnames or ())
                if missing:
                    raise ValueError(
                        f"{where}: missing column(s) {sorted(missing)}; expected a header line "
                        "source,target,value"
                    )
                for row in reader:
                    line = reader.line_num
                    source, target, text = row["source"], row["target"], row["value"]
                    if source is None or target is None or text is None:
                        raise ValueError(f"{where}: line {line} has too few fields")
                    source, target = source.strip(), target.strip()
                    key = f"{source}__{target}"
                    if not source or not target:
                        raise ValueError(f"{where}: line {line} has an empty source or target")
                    try:
                        value = float(text)
                    except ValueError:
                        raise ValueError(
                            f"{where}: line {line}: the affinity of {key!r} is {text!r}; "
                            "expected a number"
                        ) from None
                    if (source, target) in out:
                        raise ValueError(f"{where}: line {line}: {key!r} appears twice")
                    out[(source, target)] = _affinity(
                        value, key, f"{where}: line {line}", ValueError
                    )
        else:
            try:
                data = json.loads(
                    path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates
                )
            except ValueError as err:
                raise ValueError(f"{where} is not valid JSON ({err})") from None
            table = data.get("affinity", data) if isinstance(data, dict) else data
            if not isinstance(table, dict):
                raise ValueError(
                    f"{where}: expected an object of 'source__target': value; got "
                    f"{type(table).__name__}"
                )
            for key, value in table.items():
                source, sep, target = key.partition("__")
                if not sep or not source or not target or "__" in target:
                    raise ValueError(
                        f"{where}: key {key!r} is not 'source__target' (two non-empty names "
                        "joined by one double underscore)"
                    )
                out[(source, target)] = _affinity(value, key, where, ValueError)
    except UnicodeDecodeError as err:
        raise ValueError(f"{where} is not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise ValueError(f"{where}: cannot read it ({err.strerror or err})") from None
    if not out:
        raise ValueError(f"{where} holds no affinities")
    return out


# The figures of an evaluation, in the order of `_transfer_figures`' summary
TRANSFER_FIGURES = ("top1", "top3", "top5", "mean_pearson", "mean_spearman")


@dataclass
class TransferEvaluation:
    """The standard evaluation of one similarity matrix (see `evaluate_transfer`).

    With bootstrap samples (n_boot > 0): `intervals` {figure: (lo, hi)} for each of
    TRANSFER_FIGURES, the percentile interval at `level` of that figure over the n_boot
    resamples; `seed` is whatever the caller records (the CLI sets it). n_boot 0: no bootstrap,
    `intervals` stays None.
    """

    n_targets: int
    top1: int
    top3: int
    top5: int
    mean_pearson: float
    mean_spearman: float
    per_target: list[dict]
    n_boot: int = 0
    level: float = 0.95
    intervals: dict[str, tuple[float, float]] | None = None
    seed: int | None = None

    def to_json(self) -> dict:
        """The figures and per-target rows; with a bootstrap also {"bootstrap": {n_boot, seed,
        level, intervals: {figure: [lo, hi]}}} (without one the keys are those of fastrsa
        before the bootstrap existed)."""
        out: dict[str, Any] = {
            "n_targets": self.n_targets,
            "top1": self.top1,
            "top3": self.top3,
            "top5": self.top5,
            "mean_pearson": self.mean_pearson,
            "mean_spearman": self.mean_spearman,
            "per_target": self.per_target,
        }
        if self.intervals is not None:
            out["bootstrap"] = {
                "n_boot": self.n_boot,
                "seed": self.seed,
                "level": self.level,
                "intervals": {k: [float(lo), float(hi)] for k, (lo, hi) in self.intervals.items()},
            }
        return out


@dataclass(frozen=True)
class _Targets:
    """The affinity side of the evaluation, the same for every similarity matrix: per target
    (an index into labels) its candidates (the other tasks), their affinities source -> target,
    and each candidate's 1-based position when sorted by descending affinity (stable)."""

    tasks: list[int]
    cands: list[np.ndarray]  # per target: (C,) int64 indices into labels
    affinity: list[np.ndarray]  # per target: (C,) float64
    affinity_rank: list[np.ndarray]  # per target: (C,) int64, 1 = the best-transferring source


def _row_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(K,) Pearson r of each row pair of x, y (K, C) float64 (scipy.stats.pearsonr's value,
    without its axis= argument, which needs SciPy >= 1.13); NaN for a constant row."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
    return np.clip(r, -1.0, 1.0)


def _transfer_figures(sims: np.ndarray, targets: _Targets, labels: list[str], where: str) -> dict:
    """The evaluation of each of K similarity matrices `sims` (K, B, B) float64, vectorised over
    K; the point estimate is K = 1, so it and every bootstrap sample share this code.

    Per matrix k and target t (row t of the matrix): best[k, t] the candidate most similar to t
    (the first in candidate order on a tie, as argmax), rank[k, t] its affinity rank (1 = best),
    pearson[k, t] and spearman[k, t] (Pearson of average ranks, scipy.stats.rankdata) between
    the candidates' similarities and affinities; then top1/top3/top5 (K,) int64 = number of
    targets with rank <= k and mean_pearson/mean_spearman (K,) float64 = means over targets.

    ValueError naming the first matrix (`where`[k] when K > 1) in which every candidate is
    equally similar to a target: its correlations and best source are undefined.
    """
    k_count = sims.shape[0]
    shape = (k_count, len(targets.tasks))
    best = np.empty(shape, dtype=np.int64)
    rank = np.empty(shape, dtype=np.int64)
    pearson = np.empty(shape)
    spearman = np.empty(shape)
    for j, t in enumerate(targets.tasks):
        cands, a = targets.cands[j], targets.affinity[j]
        s = sims[:, t, cands]  # (K, C)
        flat = s.min(axis=1) == s.max(axis=1)
        if flat.any():
            k = int(np.flatnonzero(flat)[0])
            which = f"{where}[{k}]" if k_count > 1 else where
            also = f" (and in {int(flat.sum()) - 1} more)" if flat.sum() > 1 else ""
            raise ValueError(
                f"{which}: every candidate is equally similar to target {labels[t]!r} (all "
                f"{s.shape[1]} values are {s[k, 0]}){also}, so its correlations and its best "
                "source are undefined"
            )
        pick = np.argmax(s, axis=1)
        best[:, j] = cands[pick]
        rank[:, j] = targets.affinity_rank[j][pick]
        a_rows = np.broadcast_to(a, s.shape)
        pearson[:, j] = _row_pearson(s, a_rows)
        spearman[:, j] = _row_pearson(
            stats.rankdata(s, axis=1), np.broadcast_to(stats.rankdata(a), s.shape)
        )
        bad = ~(np.isfinite(pearson[:, j]) & np.isfinite(spearman[:, j]))
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            which = f"{where}[{k}]: " if k_count > 1 else ""
            raise ValueError(f"{which}the correlations of target {labels[t]!r} are undefined (NaN)")
    return {
        "best": best,
        "rank": rank,
        "pearson": pearson,
        "spearman": spearman,
        "top1": (rank <= 1).sum(axis=1),
        "top3": (rank <= 3).sum(axis=1),
        "top5": (rank <= 5).sum(axis=1),
        "mean_pearson": pearson.mean(axis=1),
        "mean_spearman": spearman.mean(axis=1),
    }


def _check_samples(samples: Any, b: int) -> np.ndarray:
    """`samples` as (K, B, B) finite float64, K >= 1; errors name `samples`."""
    arr = _real(samples, "samples")
    if arr.ndim != 3 or arr.shape[1:] != (b, b):
        raise ValueError(
            f"samples must be (K, {b}, {b}) similarity matrices (K resamples of the {b}x{b} "
            f"similarity, same label order); got shape {arr.shape}"
        )
    if arr.shape[0] < 1:
        raise ValueError("samples holds no resamples (K = 0); give K >= 1 or samples=None")
    bad = ~np.isfinite(arr)
    if bad.any():
        k, i, j = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"samples holds NaN or Inf (first at samples[{k}, {i}, {j}])")
    return arr


def evaluate_transfer(
    similarity: np.ndarray,
    labels: list[str],
    affinities: dict[tuple[str, str], float] | str | os.PathLike,
    aliases: dict[str, str] | None = None,
    samples: Any = None,
    level: float = 0.95,
) -> TransferEvaluation:
    """The standard evaluation (Dwivedi & Roig 2019, section 4.3; shared/data/taskonomy/README.md).

    Tasks: the labels found in the affinity table both as a source and as a target (after
    `aliases`, label -> affinity name). For each target t, its candidates are the other tasks; it
    is a top-k hit when the candidate most similar to t (RSA) is among the k with the highest
    affinity source -> t. Correlations: per target, Pearson and Spearman (Pearson of average
    ranks) between the candidates' similarities and affinities, averaged over targets.

    samples: optional (K, B, B) bootstrap similarity matrices in the order of `labels` (e.g.
    `fastrsa.stats.bootstrap(rdms, n_boot=K, seed=s).samples`); row t of each is used as the
    point estimate uses row t of `similarity`. Each is evaluated exactly as `similarity` is, and
    the result carries n_boot = K, `level` and `intervals` {"top1", "top3", "top5",
    "mean_pearson", "mean_spearman": (lo, hi)}: numpy.quantile (linear) of that figure over the
    K samples at (1 - level)/2 and (1 + level)/2 (a percentile interval: it need not contain the
    point estimate). level: in (0, 1).

    Nothing comes back NaN: non-finite or non-numeric affinities are refused naming the
    source__target entry (TypeError for non-numbers, bool included), and so is a target whose
    affinities are all equal (or whose candidates are all equally similar to it), naming the
    target: its correlations and its best source are undefined, and leaving it out silently
    would change n_targets and the top-k counts behind the caller's back. The same holds for
    each sample: a sample in which every candidate is equally similar to some target raises
    ValueError naming the sample (samples[k]) and the target, rather than being skipped (which
    would bias the intervals) or counted as NaN.
    """
    from .support import check_level

    level = check_level(level)
    if not isinstance(affinities, dict):
        affinities = load_affinities(affinities)
    sim = _real(similarity, "similarity")
    labels = _check_square_symmetric(sim, "similarity", labels)
    boot = None if samples is None else _check_samples(samples, sim.shape[0])
    aliases = dict(aliases or {})
    unknown = sorted(set(aliases) - set(labels))
    if unknown:
        raise ValueError(f"aliases name labels that are not in labels: {unknown}")
    name = {lab: str(aliases.get(lab, lab)) for lab in labels}
    owner: dict[str, str] = {}
    for lab in labels:
        if name[lab] in owner:
            raise ValueError(
                f"aliases map labels {owner[name[lab]]!r} and {lab!r} to the same affinity name "
                f"{name[lab]!r}"
            )
        owner[name[lab]] = lab
    for key in affinities:
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)):
            raise TypeError(f"affinities keys must be (source, target) pairs of names; got {key!r}")
    sources = {s for s, _ in affinities}
    targets = {t for _, t in affinities}
    tasks = [i for i, lab in enumerate(labels) if name[lab] in sources and name[lab] in targets]
    if len(tasks) < 3:
        raise ValueError(
            f"only {len(tasks)} labels appear in the affinity table as both source and target "
            "(use aliases to map label names to the table's)"
        )
    missing = [
        f"{name[labels[c]]}__{name[labels[t]]}"
        for t in tasks
        for c in tasks
        if c != t and (name[labels[c]], name[labels[t]]) not in affinities
    ]
    if missing:
        raise ValueError(f"affinities miss {len(missing)} pairs, e.g. {missing[:5]}")
    value = {
        (c, t): _affinity(
            affinities[(name[labels[c]], name[labels[t]])],
            f"{name[labels[c]]}__{name[labels[t]]}",
            "affinities",
            TypeError,
        )
        for t in tasks
        for c in tasks
        if c != t
    }
    table = _Targets(tasks, [], [], [])
    for t in tasks:
        cands = np.array([c for c in tasks if c != t], dtype=np.int64)
        a = np.array([value[(int(c), t)] for c in cands])
        if a.min() == a.max():
            raise ValueError(
                f"affinities: every source transfers equally well to target {labels[t]!r} (all "
                f"{len(a)} values are {a[0]}), so its correlations and its best source are "
                "undefined; remove that target from the table"
            )
        position = np.empty(len(a), dtype=np.int64)
        position[np.argsort(-a, kind="stable")] = np.arange(1, len(a) + 1)
        table.cands.append(cands)
        table.affinity.append(a)
        table.affinity_rank.append(position)
    point = _transfer_figures(sim[None], table, labels, "similarity")
    rows = []
    for j, t in enumerate(tasks):
        a, cands = table.affinity[j], table.cands[j]
        rows.append(
            {
                "target": labels[t],
                "rsa_best": labels[int(point["best"][0, j])],
                "affinity_best": labels[int(cands[np.argmax(a)])],
                "affinity_rank_of_rsa_best": int(point["rank"][0, j]),
                "pearson": float(point["pearson"][0, j]),
                "spearman": float(point["spearman"][0, j]),
            }
        )
    result = TransferEvaluation(
        n_targets=len(tasks),
        top1=int(point["top1"][0]),
        top3=int(point["top3"][0]),
        top5=int(point["top5"][0]),
        mean_pearson=float(point["mean_pearson"][0]),
        mean_spearman=float(point["mean_spearman"][0]),
        per_target=rows,
        level=level,
    )
    if boot is not None:
        figures = _transfer_figures(boot, table, labels, "samples")
        q = ((1.0 - level) / 2.0, (1.0 + level) / 2.0)
        result.intervals = {}
        for figure in TRANSFER_FIGURES:
            lo, hi = np.quantile(figures[figure].astype(np.float64), q)
            result.intervals[figure] = (float(lo), float(hi))
        result.n_boot = int(boot.shape[0])
    return result
