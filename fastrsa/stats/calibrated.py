"""Calibrated similarity scores: any measure of `fastrsa.similarity` against its permutation null
(the pairing of images broken), as a z-score and a p-value, with the "max over layer pairs"
correction for a user who reports the best-matching pair.

Raw scores of different measures, widths and numbers of images are not comparable, and the best
of many layer pairs is inflated by the choice itself; the 2026 "Aristotelian" / calibrated
similarity work (issue 24) reports each score against its permutation null instead. Here the
null of a pair (A, B) is the measure of A against B with B's rows (images) relabelled, K rounds,
the same K permutations for every pair (each round one `fastrsa.similarity` call).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _arrays as A
from .._checks import check_choice, check_count, check_seed, draw_seed
from .._memory import budget_for
from ..measures.catalog import CATALOG
from ..similarity import MEASURES, OPTIONS, similarity
from .batches import block_rows, check_held, draw_rows

__all__ = ["CALIBRATED_MEASURES", "Calibrated", "calibrated"]

# Every measure of fastrsa.similarity whose inputs are (n, d) features ("attribution" takes
# attribution maps of any shape: not here).
CALIBRATED_MEASURES = tuple(m for m in MEASURES if m != "attribution")
# Null values within TIES * max(|score|, |null|, unit) of the score count as ties (on both sides,
# conservative): the score and the null come from different row orders, so an exact tie (the
# identity permutation, an automorphism) differs by rounding only. By the result's dtype.
_TIES = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}


@dataclass(frozen=True)
class Calibrated:
    """Result of `calibrated`; every array numpy float64 (B, Bo) unless said otherwise.

    score: the raw measure, `similarity(features, measure, other=other, **options)`.
    null_mean, null_std: mean and standard deviation (ddof=0) over the K rounds of the null.
    calibrated: (score - null_mean) / null_std, a z-score in the measure's own direction
        (positive: more similar than chance for similarities, less for distances); 0 where the
        score ties the null mean and +-inf where the null never moves (null_std 0) but the score
        differs from it. p_value: one-sided permutation p-value in (0, 1], (1 + #)/(1 + K).
    measure, options (the measure's options, defaults filled in), distance (True: smaller is
    more similar), n_perm (K), seed (the seed used: drawn and recorded when none was given),
    max_over_pairs. null: (K, B, Bo) float64 when `keep_null`, else None. permutations: (K, n)
    int64, round k's relabelling of the images, when `keep_null`, else None.
    """

    score: np.ndarray
    null_mean: np.ndarray
    null_std: np.ndarray
    calibrated: np.ndarray
    p_value: np.ndarray
    measure: str
    options: dict[str, Any]
    distance: bool
    n_perm: int
    seed: int
    max_over_pairs: bool
    null: np.ndarray | None = field(default=None, repr=False)
    permutations: np.ndarray | None = field(default=None, repr=False)


def calibrated(
    features: Any,
    measure: str = "cka",
    *,
    other: Any = None,
    permutations: int = 1000,
    seed: int | None = None,
    max_over_pairs: bool = False,
    keep_null: bool = False,
    memory: int | str | None = None,
    **options: Any,
) -> Calibrated:
    """Every pair's score by `measure`, calibrated against its permutation null.

    features, other, measure, memory and options: as `fastrsa.similarity` (every measure but
    "attribution"; numpy arrays or torch tensors, computed where `similarity` computes them).
    Observed: S = similarity(features, measure, other=other, **options), (B, Bo) (Bo = B when
    other is None). Null: round k = 1..K draws one permutation p_k of the n images and computes
    N_k = similarity(features, measure, other=[Y[p_k] for Y in other or features], ...): the
    rows of the second model of every pair relabelled by the same p_k (the pairing of images
    broken, each model's own geometry kept), so every pair's null uses the same permutations.
    With other None the diagonal is each model against a relabelled copy of itself.
    permutations: K (int >= 1). seed: int >= 0 or None (a fresh one is drawn and recorded in the
    result, fastrsa._checks.draw_seed); the K permutations are
    `np.random.default_rng(seed).permuted(np.tile(np.arange(n), (K, 1)), axis=1)`, drawn a block
    of rows at a time (the same rows whatever the budget; fastrsa.stats' convention).

    Direction: distances (CATALOG[measure].distance: "procrustes" with score "angular" or
    "euclidean") count smaller as more similar; every other measure larger. With T = S[i, j]:
        p = (1 + #{k: N_k[i, j] >= T}) / (1 + K)   (similarities; <= for distances),
    ties within 1e-10 (float64 results; 1e-4 for float32) times max(|T|, |N|, 1) counted as
    reaching T (conservative; the unit is dropped for euclidean procrustes, which has the
    features' units). A model against itself: p = 1/(K+1) unless some relabelling leaves it as
    similar (an automorphism). max_over_pairs=True: the family-wise correction for reporting the
    best-matching pair among all, Westfall-Young max-T style: per round M_k = max over every
    (i, j) entry of N_k (min for distances; the diagonal included when other is None) and
    p = (1 + #{k: M_k >= T}) / (1 + K), so each p is >= the uncorrected one (the same draws)
    and controls the family-wise error over all B x Bo pairs.
    calibrated: z = (S - mean_k N_k) / std_k N_k (chosen over (S - mean) / (1 - mean) since it
    is defined for distances and unbounded measures too), with the same sign as the measure.

    Memory (`memory`, default fastrsa.get_memory_budget(), also each similarity call's budget):
    held besides one similarity call: one relabelled copy of the second set of models, one block
    of permutations (K_b, n) int64, running sums (Welford mean and M2) and exceedance counts
    (B, Bo). keep_null=True also returns the (K, B, Bo) float64 null and the (K, n) int64
    permutations, checked against the budget before any work (OverBudget naming
    `permutations`). Cost: K + 1 similarity calls (each computes its per-model work again).

    Refused: permutations < 1 or not an int, an unknown measure, fewer than 3 images (n < 3),
    and whatever `similarity` refuses for these inputs and options (ValueError / TypeError).
    """
    check_choice(measure, CALIBRATED_MEASURES, "measure")
    k = check_count(permutations, "permutations")
    checked = check_seed(seed)
    seed = draw_seed() if checked is None else checked
    for flag, name in ((max_over_pairs, "max_over_pairs"), (keep_null, "keep_null")):
        if not isinstance(flag, bool | np.bool_):
            raise TypeError(f"{name} must be True or False; got {flag!r}")
    second = _models(features if other is None else other, "features" if other is None else "other")
    n = _images(second[0])
    if n < 3:
        raise ValueError(
            f"calibrated needs at least 3 images (rows) for a permutation null; got n = {n}"
        )
    opts = {**OPTIONS[measure], **options}
    distance = measure in CATALOG and CATALOG[measure].distance and opts.get("score") != "nbs"
    unit = 0.0 if measure == "procrustes" and opts.get("score") == "euclidean" else 1.0

    raw = similarity(features, measure, other=other, memory=memory, **options)
    tol = _TIES[np.dtype(np.float64 if A.is_float64(raw) else np.float32)]
    score = _host(raw)
    budget = budget_for(memory)
    held = 0
    if keep_null:
        held = check_held(
            k,
            score.size * 8 + n * 8,
            budget,
            "permutations",
            f"rounds (the null (K, {score.shape[0]}, {score.shape[1]}) float64 and the "
            f"permutations (K, {n}) int64 that keep_null returns)",
        )
    null = np.empty((k, *score.shape)) if keep_null else None
    kept = np.empty((k, n), dtype=np.int64) if keep_null else None
    sign = -1.0 if distance else 1.0  # counts on sign * values: larger is more similar
    target = sign * score
    mean, m2 = np.zeros(score.shape), np.zeros(score.shape)
    reach = np.zeros(score.shape, dtype=np.int64)
    block = block_rows(k, n * 8, max(1, (budget - held) // 16))
    done = 0
    for perms in draw_rows("permutations", k, n, seed, block):
        for p in perms:
            relabelled = [_rows(y, p) for y in second]
            out = similarity(features, measure, other=relabelled, memory=memory, **options)
            values = _host(out)
            done += 1
            delta = values - mean  # Welford: mean and M2 in one pass, stable for any K
            mean += delta / done
            m2 += delta * (values - mean)
            signed = sign * values
            if max_over_pairs:  # the family's most similar value of this round, for every pair
                signed = np.full(score.shape, signed.max())
            reach += signed >= target - _margin(tol, score, signed, unit)
            if null is not None and kept is not None:
                null[done - 1] = values
                kept[done - 1] = p
    std = np.sqrt(m2 / k)
    gap = score - mean
    still = std <= _margin(tol, mean, mean, unit)  # a spread of rounding only: no spread
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(still, np.sign(gap) * np.inf, gap / np.where(still, 1.0, std))
    z = np.where(still & (np.abs(gap) <= _margin(tol, score, mean, unit)), 0.0, z)
    return Calibrated(
        score=score,
        null_mean=mean,
        null_std=std,
        calibrated=z,
        p_value=(1.0 + reach) / (1.0 + k),
        measure=measure,
        options=opts,
        distance=bool(distance),
        n_perm=k,
        seed=int(seed),
        max_over_pairs=bool(max_over_pairs),
        null=null,
        permutations=kept,
    )


def _margin(tol: float, a: np.ndarray, b: np.ndarray, unit: float) -> np.ndarray:
    """The tie band tol * max(|a|, |b|, unit), elementwise."""
    return tol * np.maximum(np.maximum(np.abs(a), np.abs(b)), unit)


def _models(models: Any, name: str) -> list[Any]:
    """The (n, d) models of a (..., n, d) array or tensor, a list or a dict (unchecked:
    `similarity` checks them)."""
    if isinstance(models, Mapping):
        values = list(models.values())
    elif isinstance(models, list | tuple):
        values = list(models)
    else:
        arr = models if A.is_torch(models) else A.as_array(models, name)
        values = list(arr.reshape(-1, *arr.shape[-2:])) if arr.ndim >= 3 else [arr]
    if not values:
        raise ValueError(f"{name} holds no models (got an empty {type(models).__name__})")
    return values


def _images(x: Any) -> int:
    """n, the number of rows of one model (0 for a model with no rows or no shape)."""
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = np.shape(x)
    return int(shape[0]) if len(shape) else 0


def _rows(x: Any, p: np.ndarray) -> Any:
    """x's rows reordered by p (numpy, or torch on x's device)."""
    if A.is_torch(x):
        import torch

        return x[torch.as_tensor(p, device=x.device)]
    return A.as_array(x, "features")[p]


def _host(x: Any) -> np.ndarray:
    """A similarity result as a float64 numpy array."""
    if A.is_torch(x):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)
