"""Differentiable soft ranks (Blondel, Teboul, Berthet & Djolonga, "Fast differentiable sorting
and ranking", ICML 2020), batched over rows, with L2 regularisation.

    soft_rank(θ, ε) = argmin_{r ∈ P(w)} ||r - θ/ε||²,   w = (m, m-1, ..., 1)

the Euclidean projection of θ/ε onto the permutahedron P(w) (the convex hull of the
permutations of 1..m). Computed as in the paper (and its reference code, google-research
fast-soft-sort `numpy_ops.SoftRank`): sort s = θ/ε descending, v = decreasing isotonic regression
of s - w by pool adjacent violators (PAV), r = s - v in the original order. The Jacobian is
(I - Pᵀ A P)/ε, A averaging within each PAV block, so the backward is block averaging: O(m).

The two limits: for ε below the smallest gap between values no blocks pool and the soft ranks are
the exact ranks 1..m (ascending: the smallest value gets 1; there is no averaging of ties, the
ranks of tied values then depend on the stable sort); for ε >= 2 (max - min) / m every value
pools into one block and r = (θ - mean θ)/ε + (m + 1)/2, an affine map of the values, so a
Pearson correlation of soft ranks is exactly the Pearson correlation of the values. ε is on the
values' scale: for RDMs (1 - r in [0, 2], m pairs) ε = 1 is already in that affine regime once
m >= 4; use ε of the order of the gaps between values (about 2/m) or below to approach
Spearman's rho.
"""

from __future__ import annotations

import torch

from .._checks import check_choice
from .checks import check_finite, check_float, check_regularization
from .ops import soft_rank_op

__all__ = ["DIRECTIONS", "soft_rank"]

DIRECTIONS = ("ascending", "descending")


def soft_rank(
    values: torch.Tensor, regularization: float = 1.0, direction: str = "ascending"
) -> torch.Tensor:
    """Soft ranks of each row of values (..., m) (module docstring: Blondel et al. 2020, L2).

    values: float tensor (..., m), m >= 1, any leading dims (rows ranked independently, all in
        one batched call). regularization: ε > 0, on the values' scale (smaller: closer to exact
        ranks; larger: closer to an affine map of the values). direction: "ascending" (the
        smallest value ranks 1) or "descending" (the largest ranks 1).
    Returns (..., m) in values' dtype and device; differentiable w.r.t. values (the Jacobian is
    block averaging over the PAV blocks, (I - Pᵀ A P)/ε), and traceable by torch.compile
    (fullgraph) through the registered op `fastrsa::soft_rank` (fastrsa.torch.ops).
    Computed in float64 whatever the dtype. Cost per row: on the CPU with numba, O(m) (a radix
    sort and the sequential PAV, fastrsa.kernels.numba.pav; rows in parallel); elsewhere the
    O(m log m) sort, then R batched PAV rounds of O(m) (R: the longest chain of successive block
    merges, small in practice, at most m; each round one host synchronisation on CUDA). Holds
    about eight (rows, m) arrays.
    ValueError (eager mode) for NaN or Inf values.
    """
    check_float(values, "values", 1, "(..., m)")
    check_choice(direction, DIRECTIONS, "direction")
    eps = check_regularization(regularization)
    m = values.shape[-1]
    if m == 0:
        raise ValueError(f"values needs at least 1 value per row; got shape {tuple(values.shape)}")
    check_finite(values, "values")
    rows = values.reshape(-1, m).contiguous()
    ranks, _, _ = soft_rank_op(rows, eps, direction == "descending")
    return ranks.reshape(values.shape)
