"""Task taxonomy and transfer ranking from RDMs (Dwivedi & Roig 2019, sections 4.1 and 4.3).

- `taxonomy(rdms, labels)`: all-pairs similarity of models' RDMs -> agglomerative clustering.
- `rank_sources(target_rdm, source_rdms, labels)`: which pretrained model to start from.
- `evaluate_transfer(similarity, labels, affinities)`: the standard evaluation against measured
  transfer affinities (top-1/3/5 hits, mean per-target Pearson and Spearman).
"""

from __future__ import annotations

import csv
import json
import os
import platform
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from scipy.cluster import hierarchy
from scipy.spatial import distance

from . import _arrays as A
from . import io
from ._backend import get_backend
from .compare import compare
from .rdms import squareform

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
        }

    def save(self, out_dir: str | os.PathLike, plots: bool = True) -> Path:
        """DIR/taxonomy.json and DIR/taxonomy.npz (atomic), and the heatmap + dendrogram as
        DIR/taxonomy.png and .svg. Returns the JSON's path."""
        out_dir = Path(out_dir)
        path = io.save_json(out_dir / "taxonomy.json", self.to_json())
        io.save_npz(
            out_dir / "taxonomy.npz",
            labels=np.array(self.labels),
            similarity=self.similarity,
            linkage=self.linkage,
            order=np.array(self.order),
        )
        if plots:
            from .plots import plot_taxonomy

            plot_taxonomy(self, out_dir / "taxonomy.png")
            plot_taxonomy(self, out_dir / "taxonomy.svg")
        return path


def load_taxonomy(path: str | os.PathLike) -> Taxonomy:
    """A Taxonomy saved by Taxonomy.save (give the JSON or its folder)."""
    path = Path(path)
    path = path / "taxonomy.json" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"taxonomy: no such file: {path}")
    try:
        data = json.loads(path.read_text())
        return Taxonomy(
            labels=list(data["labels"]),
            similarity=np.asarray(data["similarity"], dtype=np.float64),
            linkage=np.asarray(data["linkage"], dtype=np.float64),
            order=list(data["order"]),
            clusters=data.get("clusters"),
            metadata=data.get("metadata", {}),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"taxonomy: {path} is not a saved taxonomy ({err})") from None


def stack_rdms(rdms: Any, labels: list[str] | None = None, name: str = "rdms") -> tuple:
    """(labels, condensed RDMs (K, m)) from a {label: RDM} mapping or an array (K, m) / (K, n, n)
    with `labels`. Square RDMs must be symmetric with a zero diagonal; all must share n."""
    if isinstance(rdms, dict):
        if labels is not None:
            raise ValueError(f"give labels either as the keys of {name} or as labels, not both")
        labels = list(rdms)
        items = [A.as_array(v, f"{name}[{k!r}]") for k, v in rdms.items()]
    else:
        arr = A.as_array(rdms, name)
        if arr.ndim not in (2, 3):
            raise ValueError(
                f"{name} must be (K, m) condensed or (K, n, n) square; got {arr.shape}"
            )
        items = list(arr)
    if labels is None:
        raise ValueError(f"labels are needed for an array of {name}")
    labels = [str(lab) for lab in labels]
    if len(labels) != len(items):
        raise ValueError(f"labels has {len(labels)} names for {len(items)} RDMs in {name}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels are not unique: {labels}")
    rows = []
    for lab, item in zip(labels, items, strict=True):
        if item.ndim == 2:
            if item.shape[0] != item.shape[1]:
                raise ValueError(f"{name}[{lab!r}] is not square: {item.shape}")
            try:
                item = squareform(item, to="condensed")
            except ValueError as err:
                raise ValueError(f"{name}[{lab!r}]: {err}") from None
        elif item.ndim != 1:
            raise ValueError(f"{name}[{lab!r}] must be an RDM; got shape {item.shape}")
        rows.append(np.asarray(item, dtype=np.float64))
    sizes = {lab: len(r) for lab, r in zip(labels, rows, strict=True)}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{name} are of different sizes (condensed lengths): {sizes}")
    return labels, np.stack(rows)


def _metadata(backend: str, n_images: int, method: str) -> dict:
    versions = {}
    for pkg in ("fastrsa", "numpy", "scipy", "numba", "torch"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return {
        "versions": versions,
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
) -> Taxonomy:
    """Agglomerative clustering of models by the similarity of their RDMs.

    rdms: {label: RDM} or an array (K, m) condensed / (K, n, n) square with `labels`.
    method: how RDMs are compared (fastrsa.compare). Distance between models = 1 - similarity;
    scipy.cluster.hierarchy.linkage with `linkage` (average by default); `n_clusters` flat
    clusters by fcluster(maxclust).
    """
    if linkage not in LINKAGES:
        raise ValueError(f"linkage must be one of {LINKAGES}; got {linkage!r}")
    labels, vectors = stack_rdms(rdms, labels)
    if len(labels) < 2:
        raise ValueError(f"a taxonomy needs at least 2 models; got {len(labels)}")
    if n_clusters is not None and not 1 <= n_clusters <= len(labels):
        raise ValueError(f"n_clusters must be between 1 and {len(labels)}; got {n_clusters}")
    sim = compare(vectors, method=method, backend=backend)
    ran_on = get_backend(backend).name  # the backend "auto" picked, for the record
    return _cluster(labels, sim, linkage, n_clusters, _metadata(ran_on, _n(vectors), method))


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
    """The same clustering from a precomputed (K, K) similarity matrix."""
    sim = A.as_array(similarity, "similarity").astype(np.float64)
    _check_square_symmetric(sim, "similarity", labels)
    return _cluster(list(labels), sim, linkage, n_clusters, {})


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
    m = vectors.shape[1]
    return int(round((1 + np.sqrt(1 + 8 * m)) / 2))


def _check_square_symmetric(sim: np.ndarray, name: str, labels) -> None:
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"{name} must be a square (K, K) matrix; got shape {sim.shape}")
    if len(labels) != sim.shape[0]:
        raise ValueError(
            f"labels has {len(labels)} names for a {sim.shape[0]}x{sim.shape[0]} {name}"
        )
    if not np.isfinite(sim).all():
        raise ValueError(f"{name} holds NaN or Inf")
    if not np.allclose(sim, sim.T, atol=1e-10):
        raise ValueError(f"{name} is not symmetric")


@dataclass
class Ranking:
    """Source models ordered from most to least similar to the target."""

    labels: list[str]
    scores: np.ndarray  # (K,) similarity to the target, descending

    def __iter__(self):
        return iter(zip(self.labels, self.scores.tolist(), strict=True))


def rank_sources(
    target_rdm: Any,
    source_rdms: Any,
    labels: list[str] | None = None,
    method: str = "spearman",
    backend: str = "auto",
) -> Ranking:
    """Rank pretrained models for a new task's model: similarity of each source RDM to the
    target RDM (condensed (m,) or square (n, n)), highest first."""
    _, target = stack_rdms([A.as_array(target_rdm, "target_rdm")], ["target"], "target_rdm")
    labels, sources = stack_rdms(source_rdms, labels, "source_rdms")
    if target.shape[1] != sources.shape[1]:
        raise ValueError(
            f"target_rdm covers {_n(target)} images, source_rdms {_n(sources)}: they must share "
            "the same images"
        )
    scores = compare(target, sources, method=method, backend=backend)[0]
    order = np.argsort(-scores, kind="stable")
    return Ranking([labels[i] for i in order], scores[order])


def load_affinities(path: str | os.PathLike) -> dict[tuple[str, str], float]:
    """Transfer affinities {(source, target): value} from JSON ({"affinity": {"s__t": v}} as in
    shared/data/taskonomy, or the inner mapping itself) or CSV (columns source, target, value)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"affinities: no such file: {path}")
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            return {(r["source"], r["target"]): float(r["value"]) for r in rows}
        data = json.loads(path.read_text())
        table = data.get("affinity", data)
        out = {}
        for key, value in table.items():
            source, target = key.split("__")
            out[(source, target)] = float(value)
        return out
    except (json.JSONDecodeError, KeyError, ValueError, AttributeError, TypeError) as err:
        raise ValueError(
            f"affinities: could not read {path} (expected {{'affinity': {{'source__target': "
            f"value}}}} JSON or a source,target,value CSV): {err}"
        ) from None


@dataclass
class TransferEvaluation:
    n_targets: int
    top1: int
    top3: int
    top5: int
    mean_pearson: float
    mean_spearman: float
    per_target: list[dict]

    def to_json(self) -> dict:
        return self.__dict__.copy()


def evaluate_transfer(
    similarity: np.ndarray,
    labels: list[str],
    affinities: dict[tuple[str, str], float] | str | os.PathLike,
    aliases: dict[str, str] | None = None,
) -> TransferEvaluation:
    """The standard evaluation (Dwivedi & Roig 2019, section 4.3; shared/data/taskonomy/README.md).

    Tasks: the labels found in the affinity table both as a source and as a target (after
    `aliases`, label -> affinity name). For each target t, its candidates are the other tasks; it
    is a top-k hit when the candidate most similar to t (RSA) is among the k with the highest
    affinity source -> t. Correlations: per target, Pearson and Spearman between the candidates'
    similarities and affinities, averaged over targets.
    """
    if not isinstance(affinities, dict):
        affinities = load_affinities(affinities)
    sim = A.as_array(similarity, "similarity").astype(np.float64)
    labels = list(labels)
    _check_square_symmetric(sim, "similarity", labels)
    aliases = dict(aliases or {})
    unknown = sorted(set(aliases) - set(labels))
    if unknown:
        raise ValueError(f"aliases name labels that are not in labels: {unknown}")
    name = {lab: aliases.get(lab, lab) for lab in labels}
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
    rows = []
    hits = {1: 0, 3: 0, 5: 0}
    for t in tasks:
        cands = [c for c in tasks if c != t]
        s = sim[t, cands]
        a = np.array([affinities[(name[labels[c]], name[labels[t]])] for c in cands])
        best = cands[int(np.argmax(s))]
        by_affinity = [cands[i] for i in np.argsort(-a, kind="stable")]
        rank = by_affinity.index(best) + 1  # 1 = the best-transferring source
        for k in hits:
            hits[k] += rank <= k
        rows.append(
            {
                "target": labels[t],
                "rsa_best": labels[best],
                "affinity_best": labels[by_affinity[0]],
                "affinity_rank_of_rsa_best": rank,
                "pearson": float(stats.pearsonr(s, a).statistic),
                "spearman": float(stats.spearmanr(s, a).statistic),
            }
        )
    return TransferEvaluation(
        n_targets=len(tasks),
        top1=hits[1],
        top3=hits[3],
        top5=hits[5],
        mean_pearson=float(np.mean([r["pearson"] for r in rows])),
        mean_spearman=float(np.mean([r["spearman"] for r in rows])),
        per_target=rows,
    )
