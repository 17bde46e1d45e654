"""The measures of fastrsa.similarity beyond RSA, CKA, DDS, SVCCA and attribution maps: each
one's options and defaults, which way is "more similar", whether all pairs are symmetric, and
the function that computes it on checked models.

    CATALOG["procrustes"].run(models, None, names, (), budget, {"alpha": 1.0, ...})

- nbs: normalised Bures similarity in [0, 1], symmetric, diagonal 1 (procrustes.py).
- procrustes: Williams et al. 2021 (netrep) shape metrics, a distance (angular: radians in
  [0, pi/2]; euclidean: the features' units; 0 on the diagonal), or score="nbs" (procrustes.py).
- mutual-knn, jaccard-knn: Huh et al. 2024; ReSi (Klabunde et al. 2025); similarities in
  [0, 1], symmetric, diagonal 1 (knn.py).
- cknna: Huh et al. 2024; at most 1, nearly symmetric (row-wise kNN masks: every ordered pair
  is computed), diagonal 1 (knn.py).
- cca: mean canonical correlation in [0, 1], symmetric; pwcca: Morcos et al. 2018, row i
  weighted by model i's neurons, not symmetric (svcca.py).
- ridge: cross-validated ridge predictivity (Brain-Score style), Pearson r in [-1, 1], row =
  source, column = target, not symmetric, the diagonal not 1 in general (ridge.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .knn import cknna_matrix, jaccard_knn_matrix, mutual_knn_matrix
from .procrustes import shape_matrix
from .ridge import DEFAULT_ALPHAS, ridge_matrix
from .svcca import cca_matrix

__all__ = ["CATALOG", "Measure"]

# run(models_a, models_b or None, names_a, names_b, budget (bytes), options) -> (Ba, Bb) float64
Runner = Callable[[Sequence[Any], Sequence[Any] | None, list[str], list[str], int, dict], Any]


@dataclass(frozen=True)
class Measure:
    """One measure: its options (name -> default), whether it is a distance (0: identical),
    whether all pairs of one set are symmetric (then similarity() symmetrises them and sets the
    diagonal), and its runner."""

    options: dict[str, Any]
    run: Runner
    distance: bool = False
    symmetric: bool = True


def _shape(score: str | None = None) -> Runner:
    def run(a, b, names_a, names_b, budget, opts):
        return shape_matrix(
            a,
            b,
            alpha=opts.get("alpha", 1.0),
            score=score or opts["score"],
            names_a=names_a,
            names_b=names_b,
        )

    return run


def _knn(matrix: Callable[..., np.ndarray]) -> Runner:
    def run(a, b, names_a, names_b, budget, opts):
        return matrix(a, b, k=opts["k"], names_a=names_a, names_b=names_b, budget=budget)

    return run


def _cca(weighting: str) -> Runner:
    def run(a, b, names_a, names_b, budget, opts):
        variance = opts["variance"]
        if isinstance(variance, bool) or not isinstance(variance, int | float):
            raise TypeError(f"variance must be a number in (0, 1]; got {variance!r}")
        return cca_matrix(
            a, b, variance=float(variance), weighting=weighting, names_a=names_a, names_b=names_b
        )

    return run


def _ridge(a, b, names_a, names_b, budget, opts):
    return ridge_matrix(
        a,
        b,
        alphas=opts["alphas"],
        folds=opts["folds"],
        inner_folds=opts["inner_folds"],
        score=opts["score"],
        names_a=names_a,
        names_b=names_b,
    )


CATALOG: dict[str, Measure] = {
    "nbs": Measure({}, _shape("nbs")),
    "procrustes": Measure({"alpha": 1.0, "score": "angular"}, _shape(), distance=True),
    "mutual-knn": Measure({"k": 10}, _knn(mutual_knn_matrix)),
    "jaccard-knn": Measure({"k": 10}, _knn(jaccard_knn_matrix)),
    "cknna": Measure({"k": 10}, _knn(cknna_matrix), symmetric=False),
    "cca": Measure({"variance": 1.0}, _cca("mean")),
    "pwcca": Measure({"variance": 1.0}, _cca("pwcca"), symmetric=False),
    "ridge": Measure(
        {"alphas": DEFAULT_ALPHAS, "folds": 5, "inner_folds": None, "score": "median"},
        _ridge,
        symmetric=False,
    ),
}
