"""Transfer ranking: source models ordered by the similarity of their RDMs to a target's
(`rank_sources`; `rank_in_store` for a sweep store's RDMs), both ordered by `ranking_of`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import check_n_boot, check_seed, draw_seed
from ..compare import compare
from ..rdm_inputs import check_rows, rdm_row, rdm_rows, stack_rdms
from ..rdms import n_from_condensed
from ..stats import bootstrap_first_row
from ..support import RankingConfidence, ranking_confidence

__all__ = ["Ranking", "rank_in_store", "rank_sources", "ranking_of"]


@dataclass
class Ranking:
    """Source models ordered from most to least similar to the target."""

    labels: list[str]
    scores: np.ndarray  # (K,) similarity to the target, descending
    # With n_boot > 0: per source, in the order of `labels` (fastrsa.support.ranking_confidence)
    confidence: RankingConfidence | None = None
    n_boot: int = 0
    seed: int | None = None

    def __iter__(self):
        return iter(zip(self.labels, self.scores.tolist(), strict=True))

    def to_json(self, method: str) -> dict:
        """{"method", "labels" (best first), "scores" (in that order)}, and with a bootstrap
        {"bootstrap": {"n_boot", "seed", "level", "sources"}}, "sources" being
        RankingConfidence.per_source() (one dict per source, in the ranking's order)."""
        out: dict[str, Any] = {
            "method": method,
            "labels": list(self.labels),
            "scores": np.asarray(self.scores, dtype=np.float64).tolist(),
        }
        if self.confidence is not None:
            out["bootstrap"] = {
                "n_boot": int(self.n_boot),
                "seed": self.seed,
                "level": self.confidence.level,
                "sources": self.confidence.per_source(),
            }
        return out


def ranking_of(labels: list[str], scores: Any) -> tuple[Ranking, np.ndarray]:
    """(Ranking of `labels` by descending `scores` (S,), the order: indices into labels). Ties
    keep the order of `labels` (a stable sort): the earlier source ranks higher, as
    fastrsa.support.ranking_confidence orders each resample."""
    scores = np.asarray(scores)
    order = np.argsort(-scores, kind="stable")
    return Ranking([labels[i] for i in order], scores[order]), order


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
    n_boot, seed = check_n_boot(n_boot), check_seed(seed)
    from_rsa = rdm_rows(target_rdm, "target_rdm")
    if from_rsa is not None:
        if len(from_rsa[0]) != 1:
            raise ValueError(
                f"target_rdm must be one RDM; got an rsatoolbox RDMs object of {len(from_rsa[0])}"
            )
        target_rdm = from_rsa[0][0]
    target = rdm_row(target_rdm, "target_rdm")[None]
    labels, sources = stack_rdms(source_rdms, labels, "source_rdms")
    check_rows(None, target, method, "target_rdm")
    check_rows(labels, sources, method, "source_rdms")
    if target.shape[1] != sources.shape[1]:
        raise ValueError(
            f"target_rdm covers {n_from_condensed(target.shape[1])} images, source_rdms "
            f"{n_from_condensed(sources.shape[1])}: they must share the same images"
        )
    scores = compare(target, sources, method=method, backend=backend)[0]
    ranking, order = ranking_of(labels, scores)
    if n_boot:
        seed = draw_seed() if seed is None else seed
        both = np.concatenate([target, sources])
        samples = bootstrap_first_row(both, method, n_boot, seed, backend)
        ranking.confidence = ranking_confidence(samples[:, order], ranking.labels)
        ranking.n_boot, ranking.seed = n_boot, seed
    return ranking


def rank_in_store(
    store: Any,
    layer: str | None = None,
    target_rdm: Any = None,
    target_label: str | None = None,
    method: str = "spearman",
    backend: str = "auto",
) -> Ranking:
    """`rank_sources` for the RDMs of a sweep store (fastrsa.sweeps.Store) of `layer` (None:
    its only layer): their similarity to `target_rdm` (one RDM, condensed or square, of the
    store's images) or to `target_label` (an RDM of the store, then left out of the ranking),
    computed a block at a time (Store.compare). Give exactly one of the two. The order is
    rank_sources' (`ranking_of`). No bootstrap: a store holds RDMs, not resamples of them."""
    if (target_rdm is None) == (target_label is None):
        raise ValueError("give target_rdm or target_label (exactly one)")
    layer = store.layer_name(layer)
    labels = list(store.rdms(layer).labels)
    if target_label is not None:
        if target_label not in labels:
            more = " ..." if len(labels) > 10 else ""
            raise ValueError(
                f"target_label {target_label!r} is not in layer {layer!r} of store "
                f"{store.path}; it holds {labels[:10]}{more}"
            )
        target = store.rdms(layer)[[target_label]]
    else:
        target = rdm_row(target_rdm, "target_rdm")[None]
        check_rows(None, target, method, "target_rdm")
        if target.shape[1] != store.m:
            raise ValueError(
                f"target_rdm covers {n_from_condensed(target.shape[1])} images, store "
                f"{store.path} {store.n}: they must share the same images"
            )
    scores = store.compare(target, layer, method=method, backend=backend)[0]
    keep = [i for i, label in enumerate(labels) if label != target_label]
    if not keep:
        raise ValueError(f"store {store.path} holds no source other than {target_label!r}")
    return ranking_of([labels[i] for i in keep], np.asarray(scores)[keep])[0]
