"""Support values from resampled similarity matrices: how often a bootstrap resample of the
images reproduces a cluster of the taxonomy, puts two models in the same flat cluster, or keeps a
source model at the top of a transfer ranking.

Pure functions on arrays (no resampling here: fastrsa.stats.bootstrap makes the samples), so
they are testable on constructed samples.

- `cluster_support(observed_sim, samples, linkage)`: per cluster of the observed dendrogram, the
  fraction of samples whose dendrogram has the same cluster (the same set of leaves).
- `co_clustering(samples, n_clusters, linkage)`: (B, B) fraction of samples in which models i and
  j fall in the same flat cluster.
- `ranking_confidence(scores_samples, labels, k, level)`: per source, the probability of being
  top-1 / in the top k and a percentile interval of its score.
- `SupportTally(observed_sim, linkage, n_clusters)`: the first two counted a block of samples at
  a time (a bootstrap of any size in bounded memory), the same fractions.

Dendrograms are built by `linkage_tree(sim, linkage)`, the one builder fastrsa.taxonomy uses too:
distance = 1 - similarity (clipped at 0), condensed from the upper triangle,
`scipy.cluster.hierarchy.linkage(method=linkage)`.

Ties are resolved deterministically, never at random:
- dendrograms: merges at equal heights are made in the order scipy's linkage makes them (it
  depends only on the leaf order, which is the same for every sample), so a sample whose tree is
  one of several equally valid trees counts as the one scipy returns;
- rankings: sources with equal scores in a sample are ordered as in `labels` (the earlier one
  ranks higher), as `rank_sources` orders them (a stable sort on descending score).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.cluster import hierarchy
from scipy.spatial import distance

from ._checks import LINKAGES, check_level, check_linkage, check_n_boot, check_seed
from .rdm_inputs import real_float64

__all__ = [
    "check_samples",
    "adjusted_rand_index",
    "LINKAGES",
    "RankingConfidence",
    "SupportTally",
    "check_level",
    "check_n_boot",
    "check_seed",
    "cluster_support",
    "co_clustering",
    "linkage_tree",
    "ranking_confidence",
]
# LINKAGES, check_level, check_n_boot and check_seed live in fastrsa._checks (each check written
# once); they are re-exported here, where they were public before.


def check_samples(
    samples: Any, name: str = "samples", first: int = 0, b: int | None = None
) -> np.ndarray:
    """`samples` as (K, B, B) finite float64 similarity matrices, K >= 1, B >= 2 (numpy or torch;
    complex and non-numbers refused), B == `b` when given; errors name `name` and number the
    samples from `first` (the first resample of a block)."""
    arr = real_float64(samples, name)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2] or (b is not None and arr.shape[1] != b):
        size = "B, B" if b is None else f"{b}, {b}"
        order = "" if b is None else f" (K resamples of the {b}x{b} similarity, same label order)"
        raise ValueError(
            f"{name} must be (K, {size}) similarity matrices{order}; got shape {arr.shape}"
        )
    if arr.shape[0] < 1:
        raise ValueError(f"{name} holds no resamples (K = 0)")
    if arr.shape[1] < 2:
        raise ValueError(f"{name} must compare at least 2 models; got B = {arr.shape[1]}")
    bad = ~np.isfinite(arr)
    if bad.any():
        k, i, j = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"{name} holds NaN or Inf (first at {name}[{first + k}, {i}, {j}])")
    return arr


def linkage_tree(sim: Any, linkage: str = "average") -> np.ndarray:
    """The dendrogram of one (B, B) similarity matrix, the one way fastrsa builds it (taxonomy
    and its support values): distance = 1 - similarity clipped at 0, condensed from the upper
    triangle (`scipy.spatial.distance.squareform(checks=False)`), then
    `scipy.cluster.hierarchy.linkage(method=linkage)`. Returns the (B-1, 4) float64 linkage
    matrix. sim is not validated here (callers check it); linkage: one of LINKAGES."""
    dist = distance.squareform(np.clip(1.0 - np.asarray(sim), 0.0, None), checks=False)
    return hierarchy.linkage(dist, method=linkage)


def _cluster_masks(tree: np.ndarray) -> list[int]:
    """The leaf set of each internal node of `tree`, in linkage order, as a bit mask."""
    b = tree.shape[0] + 1
    masks = [1 << i for i in range(b)]
    for a, c in tree[:, :2].astype(np.int64):
        masks.append(masks[a] | masks[c])
    return masks[b:]


def _members(mask: int, b: int) -> frozenset[int]:
    return frozenset(i for i in range(b) if mask >> i & 1)


# ---- taxonomy support --------------------------------------------------------------------


def cluster_support(
    observed_sim: Any, samples: Any, linkage: str = "average"
) -> tuple[list[frozenset[int]], np.ndarray]:
    """Bootstrap support of each cluster of the dendrogram of `observed_sim`.

    observed_sim: (B, B) similarity of B models; samples: (K, B, B) similarity matrices of K
    resamples (models in the same order). Every matrix is clustered as fastrsa.taxonomy does
    (distance = 1 - similarity, scipy linkage `linkage`; ties: see the module docstring).

    Returns (clusters, support): clusters[i] is the set of leaf indices (into the B models) under
    row i of the observed linkage matrix (scipy linkage order, node B + i; the last is the root,
    all B models, support 1 by construction); support[i] (float64, in [0, 1]) is the fraction of
    the K samples whose dendrogram has a node with exactly that set of leaves.
    """
    linkage = check_linkage(linkage)
    samples = check_samples(samples)
    observed = check_samples(np.asarray(observed_sim)[None], "observed_sim")[0]
    if observed.shape != samples.shape[1:]:
        raise ValueError(
            f"observed_sim is {observed.shape} but samples are {samples.shape[1:]}: they must "
            "compare the same models"
        )
    b = observed.shape[0]
    wanted = _cluster_masks(linkage_tree(observed, linkage))
    counts = _cluster_counts(wanted, samples, linkage)
    return [_members(m, b) for m in wanted], counts / len(samples)


def _cluster_counts(wanted: list[int], samples: np.ndarray, linkage: str) -> np.ndarray:
    """(len(wanted),) int64: in how many of `samples` each cluster (a leaf mask) is found."""
    counts = np.zeros(len(wanted), dtype=np.int64)
    for sample in samples:
        found = set(_cluster_masks(linkage_tree(sample, linkage)))
        counts += np.fromiter((m in found for m in wanted), dtype=bool, count=len(wanted))
    return counts


def _together_counts(samples: np.ndarray, n_clusters: int, linkage: str) -> np.ndarray:
    """(B, B) int64: in how many of `samples` two models fall in the same flat cluster."""
    b = samples.shape[1]
    together = np.zeros((b, b), dtype=np.int64)
    for sample in samples:
        ids = hierarchy.fcluster(
            linkage_tree(sample, linkage), t=int(n_clusters), criterion="maxclust"
        )
        together += ids[:, None] == ids[None, :]
    return together


def co_clustering(samples: Any, n_clusters: int, linkage: str = "average") -> np.ndarray:
    """(B, B) float64: entry (i, j) is the fraction of the K samples (K, B, B) in which models i
    and j fall in the same flat cluster, flat clusters cut from each sample's dendrogram by
    `scipy.cluster.hierarchy.fcluster(tree, n_clusters, criterion="maxclust")` (as
    fastrsa.taxonomy's `n_clusters`; tied merge heights can give fewer clusters). Symmetric,
    ones on the diagonal."""
    linkage = check_linkage(linkage)
    samples = check_samples(samples)
    b = samples.shape[1]
    if (
        isinstance(n_clusters, (bool, np.bool_))
        or not isinstance(n_clusters, (int, np.integer))
        or not 1 <= n_clusters <= b
    ):
        raise ValueError(
            f"n_clusters must be an int from 1 to {b} (the models); got {n_clusters!r}"
        )
    return _together_counts(samples, int(n_clusters), linkage) / len(samples)


class SupportTally:
    """`cluster_support` and `co_clustering` counted a block of samples at a time, so a
    bootstrap of any size streams through in bounded memory (fastrsa.taxonomy): the same
    counts, so the same fractions, as the functions on all the samples at once.

    observed_sim: (B, B) similarity of the observed models; linkage: one of LINKAGES;
    n_clusters: the flat clusters of `co_clustering`, or None (not counted). `add(samples,
    first)`: a block (c, B, B) of samples, `first` the number of its first (for errors).
    `clusters` (leaf sets, linkage order), `support()` (float64 fractions), `co_clustering()`
    ((B, B) fractions, None without n_clusters) once at least one sample was added."""

    def __init__(
        self, observed_sim: Any, linkage: str = "average", n_clusters: int | None = None
    ) -> None:
        self.linkage = check_linkage(linkage)
        observed = check_samples(np.asarray(observed_sim)[None], "observed_sim")[0]
        self.b = observed.shape[0]
        self.wanted = _cluster_masks(linkage_tree(observed, self.linkage))
        self.clusters = [_members(m, self.b) for m in self.wanted]
        self.n_clusters = n_clusters
        self.counts = np.zeros(len(self.wanted), dtype=np.int64)
        self.together = np.zeros((self.b, self.b), dtype=np.int64)
        self.k = 0

    def add(self, samples: Any, first: int = 0) -> None:
        arr = check_samples(samples, first=first)
        if arr.shape[1:] != (self.b, self.b):
            raise ValueError(
                f"observed_sim is {(self.b, self.b)} but samples are {arr.shape[1:]}: they "
                "must compare the same models"
            )
        self.counts += _cluster_counts(self.wanted, arr, self.linkage)
        if self.n_clusters is not None:
            self.together += _together_counts(arr, self.n_clusters, self.linkage)
        self.k += arr.shape[0]

    def support(self) -> np.ndarray:
        return self.counts / self.k

    def co_clustering(self) -> np.ndarray | None:
        return None if self.n_clusters is None else self.together / self.k


# ---- transfer-ranking confidence ---------------------------------------------------------


@dataclass
class RankingConfidence:
    """How sure a transfer ranking is, per source (in the order of `labels`).

    top1: (S,) probability of being ranked first; top_k: `{k: (S,)}` probability of being among
    the first k; interval: (S, 2) percentile interval `[lo, hi]` of the score at `level`; n_boot:
    the number of resamples K.
    """

    labels: list[str]
    top1: np.ndarray
    top_k: dict[int, np.ndarray]
    interval: np.ndarray
    level: float
    n_boot: int

    def per_source(self) -> list[dict]:
        """One dict per source: label, p_top1 (from `top1`), p_top{k} for each other k of
        `top_k`, ci_low, ci_high."""
        rows = []
        for s, label in enumerate(self.labels):
            row: dict[str, Any] = {"label": label, "p_top1": float(self.top1[s])}
            row.update({f"p_top{k}": float(v[s]) for k, v in self.top_k.items() if k != 1})
            row["ci_low"], row["ci_high"] = (float(v) for v in self.interval[s])
            rows.append(row)
        return rows

    def to_json(self) -> dict:
        return {"level": self.level, "n_boot": self.n_boot, "sources": self.per_source()}


def ranking_confidence(
    scores_samples: Any,
    labels: list[str],
    k: int | tuple[int, ...] = (1, 3, 5),
    level: float = 0.95,
) -> RankingConfidence:
    """Confidence of a transfer ranking from K resamples.

    `scores_samples`: `(K, S)` similarity of each of S sources to the target in each resample;
    `labels`: the S source names. Per sample, sources are ranked by descending score, ties
    broken by the order of `labels` (a stable sort, as `rank_sources`). `top1[s]` = the fraction
    of samples in which source s ranks first; `top_k[k][s]` = the fraction in which its rank is
    <= k (1 for every source when k >= S); `interval[s]` = the `(1 - level)/2` and
    `(1 + level)/2` quantiles of its scores (`numpy.quantile`, linear interpolation). All
    float64. `k`: an int or ints >= 1 (the keys of `top_k`); `level`: in (0, 1).

    Refused with a TypeError / ValueError naming the argument: non-numeric or non-finite
    scores, a shape other than `(K, S)`, labels of another length, k < 1, level outside (0, 1).
    """
    scores = np.asarray(scores_samples)
    if scores.dtype.kind not in "fiu":
        raise TypeError(f"scores_samples must hold real numbers; got dtype {scores.dtype}")
    scores = scores.astype(np.float64, copy=False)
    if scores.ndim != 2 or scores.shape[0] < 1 or scores.shape[1] < 1:
        raise ValueError(f"scores_samples must be (K, S) with K, S >= 1; got shape {scores.shape}")
    bad = ~np.isfinite(scores)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"scores_samples holds NaN or Inf (first at scores_samples[{i}, {j}])")
    labels = [str(lab) for lab in labels]
    if len(labels) != scores.shape[1]:
        raise ValueError(f"labels has {len(labels)} names for {scores.shape[1]} sources")
    ks = (k,) if isinstance(k, (int, np.integer)) else tuple(k)
    for value in ks:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"k must be ints >= 1; got {value!r} ({type(value).__name__})")
        if value < 1:
            raise ValueError(f"k must be ints >= 1; got {value}")
    level = check_level(level)
    n, s = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    rank = np.empty_like(order)
    rank[np.arange(n)[:, None], order] = np.arange(s)[None, :]  # 0 = first
    top_k = {int(v): (rank < v).mean(axis=0) for v in ks}
    lo, hi = (1.0 - float(level)) / 2.0, (1.0 + float(level)) / 2.0
    interval = np.quantile(scores, [lo, hi], axis=0).T
    return RankingConfidence(
        labels=labels,
        top1=(rank == 0).mean(axis=0),
        top_k=top_k,
        interval=np.ascontiguousarray(interval),
        level=float(level),
        n_boot=n,
    )


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
