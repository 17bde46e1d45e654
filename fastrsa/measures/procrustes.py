"""Procrustes-family shape metrics of many models at once: netrep's generalised shape metrics
(Williams, Kunz, Kornblith & Linderman, NeurIPS 2021; github ahwillia/netrep
`netrep/metrics/linear.py` LinearMetric with `netrep/utils.py` whiten and angular_distance),
the Procrustes angular and Euclidean distances (alpha = 1) and the normalised Bures similarity.

netrep's LinearMetric centres each model's columns, Xc (n, d); partially whitens it,
Xw = Xc Z with Z = c V diag(alpha + (1 - alpha) lam^-1/2) Vᵀ (Xcᵀ Xc = V diag(lam) Vᵀ; c keeps
the total variance, ‖Xw‖_F = ‖Xc‖_F); zero-pads the narrower model; and aligns the two by the
orthogonal Procrustes rotation. With Xc = U diag(s) Vᵀ (thin SVD, rank r), Xw = c U D Vᵀ with
D = diag(alpha s_i + 1 - alpha), i <= r, so the aligned Frobenius inner product is the nuclear
norm ‖Xwᵀ Yw‖_* = c_x c_y ‖D_x U_xᵀ U_y D_y‖_*, and with A = U D / ‖D‖_F (n, r) per model

    cos θ = ‖A_xᵀ A_y‖_*  (in [0, 1]; the padding adds zero columns and changes nothing)
    "angular"    θ = arccos(cos θ), radians, a metric in [0, pi/2]      (netrep's default)
    "euclidean"  ‖Xw Q - Yw‖_F = sqrt(‖Xc‖² + ‖Yc‖² - 2 ‖Xc‖ ‖Yc‖ cos θ), a metric in the
                 features' own units (netrep does not normalise: not scale-invariant)
    "nbs"        cos θ itself, a similarity in [0, 1]: at alpha = 1 the normalised Bures
                 similarity tr((K^½ L K^½)^½) / sqrt(tr K tr L) of the centred Grams
                 K = Xc Xcᵀ, L = Yc Ycᵀ (rsatoolbox's `bures` comparison)

alpha = 1: Procrustes (rotations only; invariant to translation, rotation and, for angular and
nbs, isotropic scale); alpha = 0: CCA (cos θ = the mean canonical correlation when the ranks are
equal; invariant to any invertible linear map); in between the result depends on the features'
scale, as netrep's does. Symmetric; diagonal exactly 0 (angular, euclidean) or 1 (nbs).

Differences from netrep, all where netrep's result is ill-defined: netrep clips eigenvalues of
Xcᵀ Xc below 1e-7 (absolute) and counts the clipped ones (rank deficiency d >= n, zero padding)
in c, so its alpha < 1 results depend on the units and, for "euclidean", on the other model's
width; here directions count up to the rank (singular values above s_max · max(n, d) · eps, as
numpy's matrix_rank) and the variance is preserved exactly. Both agree (float rounding) when
each Xc has full column rank with eigenvalues above 1e-7 and equal widths, and at alpha = 1.

Numerics: float64 throughout; each model is centred (float64 means) and scaled by a power of two
before its SVD, so any finite scale works. Per model once: the thin SVD of Xc (numpy, or torch
on the tensor's device: torch inputs are computed in torch, float64). Per pair: the (r_x, r_y)
product A_xᵀ A_y and its singular values; when cos θ > 1 - 1e-3 the distance is taken from the
aligned residual ρ = ‖A_x P - A_y R‖_F = 2 sin(θ/2) (M = P Σ Rᵀ) instead of arccos, so nearly
equal models get θ to about 1e-15, not sqrt(eps).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _arrays as A
from . import gram as G

__all__ = ["SCORES", "basis_from_eig", "check_alpha", "pair_score", "shape_basis", "shape_matrix"]

SCORES = ("angular", "euclidean", "nbs")

# cos θ above 1 - _CLOSE: the distance comes from the aligned residual, not arccos(cos θ)
_CLOSE = 1e-3


def _float64(x: Any) -> Any:
    if A.is_torch(x):
        return x.detach().double()
    return np.asarray(x, dtype=np.float64)


def shape_basis(x: Any, alpha: float, name: str = "features") -> tuple[Any, float]:
    """(n, d) features -> (A, norm): A = U D / ‖D‖_F (n, r) float64, D = alpha s + 1 - alpha
    over the rank-r thin SVD Xc = U diag(s) Vᵀ of the centred features (same kind and device
    as x), and norm = ‖Xc‖_F. ValueError for constant features (Xc = 0)."""
    x, e0 = G.unit_scaled(_float64(x))  # first below 1, so that centring cannot overflow
    xc, e = G.unit_scaled(G.column_centred(x))  # Xc = xc * 2**(e0 + e), max |xc| in [.5, 1)
    e += e0
    if A.is_torch(xc):
        torch = sys.modules["torch"]
        u, s_t, _ = torch.linalg.svd(xc, full_matrices=False)
        s = s_t.cpu().numpy()
    else:
        u, s, _ = np.linalg.svd(xc, full_matrices=False)
    if not s.size or not s[0] > 0:
        raise ValueError(
            f"{name} has constant features (zero variance after centring), so its shape "
            "metric is undefined"
        )
    with np.errstate(over="ignore"):  # inf: only "euclidean" needs it, and refuses then
        norm = float(np.ldexp(np.linalg.norm(s), e))
    r = int(np.count_nonzero(s > s[0] * max(xc.shape) * np.finfo(np.float64).eps))
    return _weighted(u, s[:r], e, alpha), norm


def _weighted(u: Any, s: np.ndarray, e: int, alpha: float) -> Any:
    """U[:, :r] D / ‖D‖_F for the r singular values s of Xc * 2**-e (D as shape_basis)."""
    r = s.size
    if alpha == 1:
        d = s  # the common factor 2**e cancels in D / ‖D‖
    elif e >= 0:  # D * 2**-e, computed without overflow
        d = alpha * s + (1 - alpha) * np.ldexp(1.0, -e)
    else:
        d = alpha * np.ldexp(s, e) + (1 - alpha)
    w = d / np.linalg.norm(d)
    if A.is_torch(u):
        w = sys.modules["torch"].from_numpy(w).to(u.device)
    return u[:, :r] * w


def basis_from_eig(
    u: np.ndarray, lam: np.ndarray, alpha: float, name: str = "features"
) -> tuple[np.ndarray, float]:
    """shape_basis from the eigendecomposition of the centred Gram Xc Xcᵀ = U diag(lam) Uᵀ
    (u (n, n) float64 columns, lam (n,) descending, clipped at 0) instead of the features:
    s = sqrt(lam) over the rank of gram.eig_rank (which see: it differs from the SVD's only for
    singular-value ratios below ~1e-6), the same weighting, norm = sqrt(sum lam) = ‖Xc‖_F.
    ValueError naming `name` for constant features (lam all 0)."""
    lam = np.asarray(lam, dtype=np.float64)
    r = G.eig_rank(lam)
    if not r:
        raise ValueError(
            f"{name} has constant features (zero variance after centring), so its shape "
            "metric is undefined"
        )
    # lam * 2**-2e in [0.25, 1): s * 2**-e in [0.5, 1), as shape_basis's scaled SVD
    e = (int(np.frexp(lam[0])[1]) + 1) // 2
    s = np.sqrt(np.ldexp(lam[:r], -2 * e))
    norm = float(np.sqrt(lam.sum()))
    return _weighted(np.asarray(u, dtype=np.float64), s, e, alpha), norm


def _svd(m: Any, vectors: bool) -> Any:
    """Singular values (float64 numpy) of m, or (P, sigma, R) with m = P diag(sigma) Rᵀ."""
    if A.is_torch(m):
        torch = sys.modules["torch"]
        if not vectors:
            return torch.linalg.svdvals(m).cpu().numpy()
        p, sig, rt = torch.linalg.svd(m)
        return p, sig.cpu().numpy(), rt.mT
    if not vectors:
        return np.linalg.svd(m, compute_uv=False)
    p, sig, rt = np.linalg.svd(m)
    return p, sig, rt.T


def _norm(m: Any) -> float:
    if A.is_torch(m):
        return float(sys.modules["torch"].linalg.norm(m))
    return float(np.linalg.norm(m))


def _residual(a: Any, b: Any, m: Any) -> float:
    """ρ = ‖a P - b R‖_F after the optimal alignment (m = aᵀ b = P Σ Rᵀ; the narrower side
    padded with zero columns), for unit-norm a, b: ρ² = 2 - 2 ‖m‖_*, without the cancellation."""
    p, _, r = _svd(m, vectors=True)
    k = min(p.shape[1], r.shape[1])
    ap, br = a @ p, b @ r
    parts = (_norm(ap[:, :k] - br[:, :k]), _norm(ap[:, k:]), _norm(br[:, k:]))
    return math.sqrt(sum(v * v for v in parts))


def pair_score(a: Any, b: Any, na: float, nb: float, score: str) -> float:
    """One pair's score (SCORES) from the two models' (A, norm) of shape_basis or
    basis_from_eig."""
    m = a.T @ b
    cos = min(max(float(_svd(m, vectors=False).sum()), 0.0), 1.0)
    if score == "nbs":
        return cos
    if cos > 1 - _CLOSE:
        rho = min(_residual(a, b, m), 2.0)
    else:
        rho = math.sqrt(2.0 - 2.0 * cos)
    if score == "angular":
        return 2.0 * math.asin(rho / 2)  # = arccos(cos θ), exact near θ = 0
    # ‖Xc‖² + ‖Yc‖² - 2 ‖Xc‖ ‖Yc‖ cos θ = (‖Xc‖ - ‖Yc‖)² + ‖Xc‖ ‖Yc‖ ρ²
    out = math.hypot(na - nb, math.sqrt(na) * math.sqrt(nb) * rho)
    if not math.isfinite(out):
        raise ValueError(
            "the euclidean shape distance overflows float64 at these features' scale; "
            "rescale them or use score='angular'"
        )
    return out


def check_alpha(alpha: Any, score: str) -> float:
    """alpha as a float in [0, 1]; ValueError for it, or for a score not in SCORES."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}; got {score!r}")
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        a = math.nan
    if not 0 <= a <= 1:
        raise ValueError(f"alpha must be a number in [0, 1] (1: Procrustes, 0: CCA); got {alpha!r}")
    return a


def shape_matrix(
    models_a: Sequence[Any],
    models_b: Sequence[Any] | None,
    *,
    alpha: float = 1.0,
    score: str = "angular",
    names_a: Sequence[str],
    names_b: Sequence[str] = (),
) -> np.ndarray:
    """netrep's generalised shape metric (module docstring) of every model of `models_a` with
    every one of `models_b`, or all pairs of `models_a` (i <= j computed, mirrored; the diagonal
    exact). models: validated finite (n, d_i) float arrays of one kind, the same n >= 3, any
    widths. Returns (Ba, Bb) float64 numpy: distances ("angular", "euclidean"; smaller = more
    similar) or similarities ("nbs"; larger = more similar)."""
    alpha = check_alpha(alpha, score)
    n = models_a[0].shape[0] if len(models_a) else 3
    if n < 3:
        raise ValueError(
            f"{names_a[0]} has {n} images (rows); shape metrics need at least 3 (centring "
            "leaves rank n - 1)"
        )
    bases_a = [shape_basis(x, alpha, nm) for x, nm in zip(models_a, names_a, strict=True)]
    same = models_b is None
    bases_b = bases_a
    if models_b is not None:
        bases_b = [shape_basis(x, alpha, nm) for x, nm in zip(models_b, names_b, strict=True)]
    out = np.empty((len(bases_a), len(bases_b)))
    for i, (a, na) in enumerate(bases_a):
        for j in range(i if same else 0, len(bases_b)):
            if same and i == j:
                out[i, i] = 1.0 if score == "nbs" else 0.0
                continue
            b, nb = bases_b[j]
            out[i, j] = pair_score(a, b, na, nb, score)
            if same:
                out[j, i] = out[i, j]
    return out
