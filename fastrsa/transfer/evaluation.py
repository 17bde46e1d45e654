"""The standard evaluation of RSA similarity against measured transfer affinities (Dwivedi &
Roig 2019, section 4.3): top-1/3/5 hits and mean per-target Pearson and Spearman, with
percentile intervals over bootstrap samples."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from .._checks import check_level
from ..io import load_affinities
from ..io.affinities import check_affinity
from ..rdm_inputs import check_labels, real_float64
from ..support import check_samples

__all__ = [
    "TASKONOMY_ALIASES",
    "TRANSFER_FIGURES",
    "TransferEvaluation",
    "check_similarity_matrix",
    "evaluate_transfer",
]

# RDM labels of shared/data/taskonomy whose names differ in Taskonomy's affinity table
TASKONOMY_ALIASES = {
    "vanishing_point": "vanishing_point_well_defined",
    "segmentsemantic": "segmentsemantic_rb",
}
# The figures of an evaluation, in the order of `_transfer_figures`' summary
TRANSFER_FIGURES = ("top1", "top3", "top5", "mean_pearson", "mean_spearman")


def check_similarity_matrix(sim: np.ndarray, name: str, labels: Any) -> list[str]:
    """Square (K, K), finite and symmetric, with K unique labels; returns the labels as a list.
    Errors (ValueError) name `name` and the labels of the first bad entry."""
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"{name} must be a square (K, K) matrix; got shape {sim.shape}")
    labels = check_labels(labels, None, "")
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


def _check_aliases(aliases: Any) -> dict[str, str]:
    """`aliases` (None or a mapping of label strings to affinity-name strings) as a dict; a
    TypeError naming `aliases` and what it must be otherwise."""
    if aliases is None:
        return {}
    what = "aliases must be a mapping {label: its name in the affinities} of strings, or None"
    if not isinstance(aliases, Mapping):
        raise TypeError(f"{what}; got {type(aliases).__name__} {_short(aliases)}")
    for label, name in aliases.items():
        if not isinstance(label, str) or not isinstance(name, str):
            raise TypeError(
                f"{what}; got the entry {_short(label)}: {_short(name)} "
                f"({type(label).__name__}: {type(name).__name__})"
            )
    return dict(aliases)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _affinity_names(labels: list[str], aliases: dict[str, str]) -> dict[str, str]:
    """{label: its name in the affinity table} after `aliases` (checked by _check_aliases);
    refuses aliases of unknown labels and two labels given the same name."""
    unknown = sorted(set(aliases) - set(labels))
    if unknown:
        raise ValueError(f"aliases name labels that are not in labels: {unknown}")
    name = {lab: aliases.get(lab, lab) for lab in labels}
    owner: dict[str, str] = {}
    for lab in labels:
        if name[lab] in owner:
            raise ValueError(
                f"aliases map labels {owner[name[lab]]!r} and {lab!r} to the same affinity name "
                f"{name[lab]!r}"
            )
        owner[name[lab]] = lab
    return name


def _targets(labels: list[str], affinities: dict, name: dict[str, str]) -> _Targets:
    """The tasks of the evaluation (labels both source and target of the table) and, per
    target, its candidates, their checked affinities and affinity ranks."""
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
    pair = {(c, t): (name[labels[c]], name[labels[t]]) for t in tasks for c in tasks if c != t}
    missing = [f"{s}__{t}" for s, t in pair.values() if (s, t) not in affinities]
    if missing:
        raise ValueError(f"affinities miss {len(missing)} pairs, e.g. {missing[:5]}")
    value = {
        ct: check_affinity(affinities[st], f"{st[0]}__{st[1]}", "affinities", TypeError)
        for ct, st in pair.items()
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
    return table


def evaluate_transfer(
    similarity: np.ndarray,
    labels: list[str],
    affinities: dict[tuple[str, str], float] | str | os.PathLike,
    aliases: Mapping[str, str] | None = None,
    samples: Any = None,
    level: float = 0.95,
) -> TransferEvaluation:
    """The standard evaluation (Dwivedi & Roig 2019, section 4.3; shared/data/taskonomy/README.md).

    Tasks: the labels found in the affinity table both as a source and as a target (after
    `aliases`: None or a mapping {label: its name in the affinity table}, strings; anything
    else is a TypeError). For each target t, its candidates are the other tasks; it is a top-k
    hit when the candidate most similar to t (RSA) is among the k with the highest
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
    level = check_level(level)
    alias = _check_aliases(aliases)
    if not isinstance(affinities, dict):
        affinities = load_affinities(affinities)
    sim = real_float64(similarity, "similarity")
    labels = check_similarity_matrix(sim, "similarity", labels)
    boot = None if samples is None else check_samples(samples, b=sim.shape[0])
    table = _targets(labels, affinities, _affinity_names(labels, alias))
    point = _transfer_figures(sim[None], table, labels, "similarity")
    rows = []
    for j, t in enumerate(table.tasks):
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
        n_targets=len(table.tasks),
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
