"""SVCCA (Raghu, Gilmer, Yosinski & Sohl-Dickstein, NeurIPS 2017; the authors' google/svcca
`cca_core.py` and tutorials/001_Introduction.ipynb: SVD-reduce, then CCA, then the mean of the
canonical correlations), for many models at once.

For each model, its column-centred features Xc (n, d) = U S Vᵀ (thin SVD) are reduced to the
first k directions Xc V_k = U_k S_k, k the smallest number whose share of the variance,
sum_{i<=k} s_i² / sum_i s_i², reaches `variance` (0.99 by default). CCA between two reduced
sets A = U_k S_k and B = W_l T_l: their column spaces have the orthonormal bases U_k and W_l, so
the canonical correlations are the singular values of U_kᵀ W_l (Björck & Golub 1973), min(k, l)
of them, clipped to [0, 1]. SVCCA = their mean.

Each model's SVD is computed once; each pair costs one (k, n) x (n, l) product and the
singular values of the (k, l) result. With d >= n - 1 and variance close to 1 a model keeps
about n - 1 directions, and two such models have canonical correlations all near 1: SVCCA
needs more images than kept directions to mean anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _arrays as A
from . import gram as G

__all__ = ["reduced_basis", "svcca_matrix"]


def reduced_basis(x: Any, variance: float, name: str = "features") -> Any:
    """(n, d) features -> U_k (n, k): the orthonormal basis of the top-k SVD directions of the
    centred features that keep `variance` of their variance (float64 cumulative shares). The
    features are rescaled by a power of two when far from unit scale (the basis is the same)
    and centred with float64 means (offsets cost nothing), so any finite scale works."""
    xc = G.column_centred(A.rescaled_matrix(x))
    if A.is_torch(xc):
        import torch

        u, s, _ = torch.linalg.svd(xc, full_matrices=False)
        s2 = (s.double() ** 2).cpu().numpy()
    else:
        u, s, _ = np.linalg.svd(xc, full_matrices=False)
        s2 = s.astype(np.float64) ** 2
    total = s2.sum()
    if not total > 0:
        raise ValueError(f"{name} has zero variance (constant features), so SVCCA is undefined")
    share = np.cumsum(s2) / total
    k = int(np.searchsorted(share, variance * (1 - 1e-12), side="left")) + 1
    return u[:, : min(k, s2.size)]


def svcca_matrix(
    models_a: Sequence[Any],
    models_b: Sequence[Any] | None,
    *,
    variance: float = 0.99,
    names_a: Sequence[str],
    names_b: Sequence[str] = (),
) -> np.ndarray:
    """Mean canonical correlation of every model of `models_a` with every one of `models_b`
    (or of `models_a`). Returns (Ba, Bb) float64 numpy, unsymmetrised."""
    if not 0 < variance <= 1:
        raise ValueError(f"variance must be in (0, 1]; got {variance!r}")
    bases_a = [reduced_basis(x, variance, nm) for x, nm in zip(models_a, names_a, strict=True)]
    same = models_b is None
    bases_b = bases_a
    if models_b is not None:
        bases_b = [reduced_basis(x, variance, nm) for x, nm in zip(models_b, names_b, strict=True)]
    out = np.empty((len(bases_a), len(bases_b)))
    for i, ua in enumerate(bases_a):
        for j in range(i if same else 0, len(bases_b)):
            m = ua.T @ bases_b[j]
            if A.is_torch(m):
                import torch

                rho = torch.linalg.svdvals(m).double().cpu().numpy()
            else:
                rho = np.linalg.svd(m, compute_uv=False).astype(np.float64)
            out[i, j] = float(np.clip(rho, 0.0, 1.0).mean())
            if same:
                out[j, i] = out[i, j]
    return out
