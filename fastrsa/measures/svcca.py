"""Canonical correlation measures for many models at once: mean CCA and SVCCA (Raghu, Gilmer,
Yosinski & Sohl-Dickstein, NeurIPS 2017) and projection-weighted CCA, PWCCA (Morcos, Raghu &
Bengio, NeurIPS 2018); the authors' google/svcca `cca_core.py`, `pwcca.py` and
tutorials/001_Introduction.ipynb.

Basis. For each model, its column-centred features Xc (n, d) = U S Vᵀ (thin SVD) are reduced to
the first k directions Xc V_k = U_k S_k, k the smallest number whose share of the variance,
sum_{i<=k} s_i² / sum_i s_i², reaches `variance` (1.0 keeps every direction with nonzero variance:
plain CCA; SVCCA uses 0.99). CCA between two reduced sets with orthonormal bases U_k and W_l: the
canonical correlations rho_1 >= ... >= rho_r, r = min(k, l), are the singular values of
U_kᵀ W_l = P diag(rho) Qᵀ (Björck & Golub 1973), clipped to [0, 1]; the canonical variates of the
first set are the unit n-vectors h_i = U_k p_i.

- "mean":  (1/r) sum_i rho_i (Raghu et al.; `np.mean(cca_coef1)` in their tutorial, all r of
  them, without cca_core's 98%-of-sum trimming of the "mean" entry). Symmetric.
- "pwcca": sum_i a_i rho_i / sum_i a_i with a_i = sum_j |<h_i, z_j>|, z_j the first model's
  centred neurons (columns of Xc), i.e. a = column sums of |Xcᵀ U_k P| = |V_k S_k P| (Morcos et
  al., eq. in their section 2.3). Asymmetric: weighted by the FIRST model's neurons, so entry
  [i, j] says how much of models_a[i] is captured by models_b[j], as `compute_pwcca(acts1=A_i.T,
  acts2=B_j.T)` when A_i has no more kept directions than B_j. Differences from google/svcca
  `pwcca.py`, all where that code departs from the paper: its canonical directions omit
  Σxx^-1/2 (equal only when Xc's columns are orthogonal with equal norms) and its weights use
  uncentred neurons; it weights by whichever model has fewer neurons, where fastrsa always weights
  by the first and, when k > l, uses only A's top r = l canonical variates (the others have
  rho = 0 and no unique basis). Ties among the rho leave the variates, hence the weights, to the
  SVD's choice (as there); rho all 1 (a model with itself) gives 1.

Each model's SVD is computed once (and, for pwcca, V_k S_k (d, k) kept); each pair costs one
(k, n) x (n, l) product and the SVD of the (k, l) result (pwcca: plus a (d, k) x (k, r) product).
Torch tensors are computed in torch on their device, numpy arrays in numpy, in the input's
dtype (float32 stays float32), the last sums in float64. With d >= n - 1 and variance close to 1
a model keeps about n - 1 directions, and two such models have canonical correlations all near 1:
CCA needs more images than kept directions to mean anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _arrays as A
from . import gram as G

__all__ = [
    "WEIGHTINGS",
    "cca_matrix",
    "check_variance",
    "kept_count",
    "pair_cca",
    "reduced_basis",
    "reduced_from_eig",
    "svcca_matrix",
]

WEIGHTINGS = ("mean", "pwcca")


def _reduced(x: Any, variance: float, name: str, label: str, loadings: bool) -> tuple[Any, Any]:
    """(U_k (n, k), V_k S_k (d, k) when `loadings`, else None) of the centred features."""
    xc = G.column_centred(A.rescaled_matrix(x))
    if A.is_torch(xc):
        import torch

        u, s, vh = torch.linalg.svd(xc, full_matrices=False)
        s2 = (s.double() ** 2).cpu().numpy()
    else:
        u, s, vh = np.linalg.svd(xc, full_matrices=False)
        s2 = s.astype(np.float64) ** 2
    k = kept_count(s2, variance, name, label)
    return u[:, :k], (vh[:k].T * s[:k] if loadings else None)


def kept_count(s2: np.ndarray, variance: float, name: str, label: str) -> int:
    """The smallest k whose top-k share of the variances `s2` (descending, float64) reaches
    `variance` (within 1e-12); ValueError naming `name` when they are all zero."""
    total = s2.sum()
    if not total > 0:
        raise ValueError(f"{name} has zero variance (constant features), so {label} is undefined")
    share = np.cumsum(s2) / total
    return min(int(np.searchsorted(share, variance * (1 - 1e-12), side="left")) + 1, s2.size)


def reduced_from_eig(
    u: np.ndarray, lam: np.ndarray, variance: float, name: str = "features", label: str = "CCA"
) -> np.ndarray:
    """reduced_basis from the eigendecomposition of the centred Gram Xc Xcᵀ = U diag(lam) Uᵀ
    (u (n, n) float64 columns, lam (n,) descending, clipped at 0): the variances s² = lam
    within the rank of gram.eig_rank (the eigenvalues beyond it are the Gram's rounding),
    then the same share rule, -> U_k (n, k) float64. ValueError naming `name` for constant
    features."""
    lam = np.asarray(lam, dtype=np.float64)
    r = G.eig_rank(lam)
    k = kept_count(lam[:r] if r else np.zeros(1), variance, name, label)
    return np.asarray(u, dtype=np.float64)[:, :k]


def pair_cca(ua: Any, ub: Any) -> float:
    """Mean canonical correlation (in [0, 1]) of two orthonormal bases (n, k) and (n, l)."""
    return _pair(ua, ub, None)


def reduced_basis(x: Any, variance: float, name: str = "features") -> Any:
    """(n, d) features -> U_k (n, k): the orthonormal basis of the top-k SVD directions of the
    centred features that keep `variance` of their variance (float64 cumulative shares). The
    features are rescaled by a power of two when far from unit scale (the basis is the same)
    and centred with float64 means (offsets cost nothing), so any finite scale works."""
    return _reduced(x, variance, name, "SVCCA", False)[0]


def _pair(ua: Any, ub: Any, loadings: Any) -> float:
    """Mean (loadings None) or projection-weighted (loadings = V_k S_k of `ua`'s model) CCA."""
    m = ua.T @ ub
    if A.is_torch(m):
        import torch

        if loadings is None:
            rho = torch.linalg.svdvals(m).double().cpu().numpy()
        else:
            p, r, _ = torch.linalg.svd(m, full_matrices=False)
            rho = r.double().cpu().numpy()
            w = (loadings @ p).abs().sum(dim=0).double().cpu().numpy()
    elif loadings is None:
        rho = np.linalg.svd(m, compute_uv=False).astype(np.float64)
    else:
        p, r, _ = np.linalg.svd(m, full_matrices=False)
        rho = r.astype(np.float64)
        w = np.abs(loadings @ p).sum(axis=0, dtype=np.float64)
    rho = np.clip(rho, 0.0, 1.0)
    if loadings is None:
        return float(rho.mean())
    # w_i = |Xcᵀ h_i|_1 > 0: h_i lies in the span of directions with nonzero singular values
    return float(np.clip((w * rho).sum() / w.sum(), 0.0, 1.0))


def check_variance(variance: Any) -> float:
    """variance as a float in (0, 1]: TypeError for a non-number, ValueError outside."""
    if isinstance(variance, bool) or not isinstance(variance, int | float):
        raise TypeError(f"variance must be a number in (0, 1]; got {variance!r}")
    if not 0 < variance <= 1:
        raise ValueError(f"variance must be in (0, 1]; got {variance!r}")
    return float(variance)


def cca_matrix(
    models_a: Sequence[Any],
    models_b: Sequence[Any] | None,
    *,
    variance: float = 1.0,
    weighting: str = "mean",
    names_a: Sequence[str],
    names_b: Sequence[str] = (),
) -> np.ndarray:
    """CCA similarity of every model of `models_a` (n, d_i) with every one of `models_b` (or of
    `models_a` when None), after reducing each to the SVD directions keeping `variance` of its
    variance (module docstring). weighting "mean": mean canonical correlation, symmetric (the
    all-pairs matrix is computed for i <= j and mirrored); "pwcca": projection-weighted by the
    row model's neurons, asymmetric (every entry computed, [i, j] weighted by models_a[i]).
    Similarities in [0, 1], higher = more similar, 1 for a model with itself (up to rounding).
    Returns (Ba, Bb) float64 numpy."""
    variance = check_variance(variance)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}; got {weighting!r}")
    label = "PWCCA" if weighting == "pwcca" else ("SVCCA" if variance < 1 else "CCA")
    return _cca(models_a, models_b, variance, weighting, names_a, names_b, label)


def _cca(
    models_a: Sequence[Any],
    models_b: Sequence[Any] | None,
    variance: float,
    weighting: str,
    names_a: Sequence[str],
    names_b: Sequence[str],
    label: str,
) -> np.ndarray:
    pw = weighting == "pwcca"
    for x, nm in zip(models_a, names_a, strict=True):
        if x.shape[0] < 3:
            raise ValueError(f"{nm} has n = {x.shape[0]} images; {label} needs at least 3")
    red_a = [_reduced(x, variance, nm, label, pw) for x, nm in zip(models_a, names_a, strict=True)]
    same = models_b is None
    bases_b = [u for u, _ in red_a]
    if models_b is not None:
        bases_b = [
            _reduced(x, variance, nm, label, False)[0]
            for x, nm in zip(models_b, names_b, strict=True)
        ]
    out = np.empty((len(red_a), len(bases_b)))
    for i, (ua, loadings) in enumerate(red_a):
        for j in range(i if same and not pw else 0, len(bases_b)):
            out[i, j] = _pair(ua, bases_b[j], loadings)
            if same and not pw:
                out[j, i] = out[i, j]
    return out


def svcca_matrix(
    models_a: Sequence[Any],
    models_b: Sequence[Any] | None,
    *,
    variance: float = 0.99,
    names_a: Sequence[str],
    names_b: Sequence[str] = (),
) -> np.ndarray:
    """SVCCA: mean canonical correlation of every model of `models_a` with every one of
    `models_b` (or of `models_a`), each reduced to the directions keeping `variance` (0.99) of
    its variance; `cca_matrix(weighting="mean")`. Returns (Ba, Bb) float64 numpy."""
    if not 0 < variance <= 1:
        raise ValueError(f"variance must be in (0, 1]; got {variance!r}")
    return _cca(models_a, models_b, variance, "mean", names_a, names_b, "SVCCA")
