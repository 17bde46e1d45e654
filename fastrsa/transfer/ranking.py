"""Transfer ranking: source models ordered by the similarity of their RDMs to a target's
(`rank_sources`; `rank_in_store` for a sweep store's RDMs), both ordered by `ranking_of`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import check_n_boot, check_seed, draw_seed, one_line
from .._memory import get_memory_budget
from ..compare import compare
from ..rdm_inputs import check_rows, rdm_row, rdm_rows, stack_rdms
from ..rdms import n_from_condensed
from ..stats import bootstrap_first_row
from ..stats.batches import SETTING_BUDGET, check_held
from ..support import RankingConfidence, ranking_confidence
from ..sweeps.measure_specs import parse_measures

__all__ = ["Ranking", "measure_ranking", "rank_in_store", "rank_sources", "ranking_of"]

# (K, S) float64 or int64 arrays a bootstrap of the ranking holds at its peak: the scores, their
# copy in the ranking's order, and ranking_confidence's negated scores, order, ranks and sort
_RANKING_ARRAYS = 6


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
    `n_boot` and `seed`. n_boot = 0 (default): as without these arguments. The scores of all
    resamples are held at once (exact percentiles need them all): (K, S) values, 6 such arrays
    at the peak, checked against the memory budget (`fastrsa.set_memory_budget`) before any
    work (ValueError naming `n_boot`, the bytes and the budget); the resamples themselves are
    drawn a block at a time."""
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
    if n_boot:  # the resamples' scores are held whole: checked before any work
        _check_ranking_held(n_boot, sources.shape[0], get_memory_budget())
    scores = compare(target, sources, method=method, backend=backend)[0]
    ranking, order = ranking_of(labels, scores)
    if n_boot:
        seed = draw_seed() if seed is None else seed
        both = np.concatenate([target, sources])
        samples = bootstrap_first_row(both, method, n_boot, seed, backend)
        ranking.confidence = ranking_confidence(samples[:, order], ranking.labels)
        ranking.n_boot, ranking.seed = n_boot, seed
    return ranking


def _check_ranking_held(
    n_boot: int, sources: int, budget: int, argument: str = "n_boot", how: str = SETTING_BUDGET
) -> int:
    """The bytes a bootstrap of `rank_sources` holds at its peak for `n_boot` resamples of
    `sources` sources; OverBudget (a ValueError) naming `argument` (e.g. "--bootstrap") when
    over `budget`."""
    what = f"resamples (their scores (K, {sources}) and the ranking's work on them)"
    return check_held(n_boot, _RANKING_ARRAYS * 8 * sources, budget, argument, what, how=how)


def rank_in_store(
    store: Any,
    layer: str | None = None,
    target_rdm: Any = None,
    target_label: str | None = None,
    method: str = "spearman",
    backend: str = "auto",
    names: dict[str, str] | None = None,
) -> Ranking:
    """`rank_sources` for the RDMs of a sweep store (fastrsa.sweeps.Store) of `layer` (None:
    its only layer): their similarity to `target_rdm` (one RDM, condensed or square, of the
    store's images) or to `target_label` (an RDM of the store, then left out of the ranking),
    computed a block at a time (Store.compare). Give exactly one of the two. The order is
    rank_sources' (`ranking_of`). No bootstrap: a store holds RDMs, not resamples of them.
    names: how errors name "store", "target_rdm" and "target_label" (a command passes its
    flags; the store's own errors then start with the flag too)."""
    name = {"store": "store", "target_rdm": "target_rdm", "target_label": "target_label"}
    name.update(names or {})
    if (target_rdm is None) == (target_label is None):
        raise ValueError(f"give {name['target_rdm']} or {name['target_label']} (exactly one)")
    layer = store.layer_name(layer)
    labels = list(store.rdms(layer).labels)
    if target_label is not None:
        option = name["target_label"]
        if target_label not in labels:
            more = " ..." if len(labels) > 10 else ""
            raise ValueError(
                f"{option}: {target_label!r} is not in layer {layer!r} of store "
                f"{store.path}; it holds {labels[:10]}{more}"
            )
        if len(labels) == 1:
            raise ValueError(
                f"{name['store']}: store {store.path} holds no source other than {target_label!r}"
            )
        target = store.rdms(layer)[[target_label]]
    else:
        option = name["target_rdm"]
        target = rdm_row(target_rdm, option)[None]
        check_rows(None, target, method, option)
        if target.shape[1] != store.m:
            raise ValueError(
                f"{option} covers {n_from_condensed(target.shape[1])} images, store "
                f"{store.path} {store.n}: they must share the same images"
            )
    try:
        scores = store.compare(target, layer, method=method, backend=backend)[0]
    except ValueError as err:  # the store's own (damage, another n): a command names its flag
        if names is None:
            raise
        raise ValueError(f"{option}: {one_line(err)}") from None
    keep = [i for i, label in enumerate(labels) if label != target_label]
    return ranking_of([labels[i] for i in keep], np.asarray(scores)[keep])[0]


def measure_ranking(
    store: Any, layer: str | None, target_label: str, measure: Any, option: str = "target_label"
) -> Ranking:
    """The store's sources of `layer` ranked by `measure` (a measure its sweep computed: "cka",
    "procrustes:alpha=0.5", a (name, options) pair or a MeasureSpec; a distance d ranks as
    1 - d) to its source `target_label`, which is left out. Asymmetric measures are read the
    way transfer asks (how well each source serves the target): ridge by its column (row =
    source predicting column = target), pwcca and cknna by the target's row (pwcca: how much
    of the target each source captures). ValueError naming `option` for a label the layer
    lacks."""
    spec = parse_measures([measure], "spearman")[0]
    layer = store.layer_name(layer)
    labels = list(store.rdms(layer).labels)
    if target_label not in labels:
        raise ValueError(f"{option}: {target_label!r} is not in layer {layer!r} of {store.path}")
    if len(labels) == 1:
        raise ValueError(f"store {store.path} holds no source other than {target_label!r}")
    opts = {} if spec.is_rsa else {"measure": spec.measure, **spec.options}
    sim = spec.as_similarity(
        store.similarity(layer, spec.options.get("method", "spearman"), **opts)
    )
    t = labels.index(target_label)
    row = sim[:, t] if spec.measure == "ridge" else sim[t]
    keep = [i for i, label in enumerate(labels) if label != target_label]
    return ranking_of([labels[i] for i in keep], np.asarray(row)[keep])[0]
