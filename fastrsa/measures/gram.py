"""The `gram` op: per-model Gram (kernel) matrices from features, their centring, and the one
matrix product that turns many centred Grams into all their pairwise inner products.

Every function takes validated floating arrays of one kind: numpy arrays, or torch tensors
(CPU or CUDA), and returns the same kind on the same device, in the input's dtype unless said.

Formulas (Kornblith et al., ICML 2019, the authors' notebook
google-research/google-research `representation_similarity/Demo.ipynb`: `gram_linear`,
`gram_rbf`, `center_gram`; the laplacian kernel as the DDS authors use it,
cvai-roig-lab/duality-diagram-similarity `utils.py`: `gram_laplacian_scipy`, i.e. sklearn's
`laplacian_kernel` with its default gamma = 1/d):

    linear     K = X Xᵀ
    rbf        K_ab = exp(-‖x_a - x_b‖² / (2 t² m)),  m = median of all n² entries of the
               squared distance matrix (diagonal zeros included, as np.median there), t the
               `threshold` (the bandwidth sigma = t·sqrt(m): a fraction of the median distance)
    laplacian  K_ab = exp(-‖x_a - x_b‖₁ / d)
    centred    H K H, H = I - 11ᵀ/n                       (biased HSIC = <HKH, HLH> / (n-1)²)
    U-centred  K̃ = K with zero diagonal; u = K̃1/(n-2) - 1ᵀK̃1/(2(n-1)(n-2));
               K̃ - u1ᵀ - 1uᵀ with zero diagonal (Székely & Rizzo 2014, as Kornblith's
               `center_gram(unbiased=True)`)   (unbiased HSIC, Song et al. 2012 = <.,.>/(n(n-3)))
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import _arrays as A
from .._checks import check_choice

__all__ = [
    "centre",
    "centred_and_mean",
    "column_centred",
    "eig_rank",
    "gram",
    "inner_products",
    "KERNELS",
    "median",
    "pow2_scaled",
    "rbf_from_sq",
    "sq_distances",
    "sq_distances_from_gram",
    "unit_scaled",
]

KERNELS = ("linear", "rbf", "laplacian")

# float32 products of rows longer than this many values are summed in float64 (DESIGN.md:
# accumulate in float64 where counts exceed 2**24).
_F32_COUNT = 2**24


def _torch() -> Any:
    return sys.modules["torch"]


def centred_and_mean(x: Any) -> tuple[Any, Any]:
    """(n, d) -> (features minus each column's mean, the means (1, d) in float64).

    The means are taken in float64 and what their rounding to x's dtype leaves is subtracted
    too, so a large common offset (1e8 + noise in float32) costs no accuracy."""
    if A.is_torch(x):
        mean = x.mean(dim=0, keepdim=True, dtype=_torch().float64)
        if x.dtype == _torch().float64:
            return x - mean, mean
        rounded = mean.to(x.dtype)
        return (x - rounded).sub_((mean - rounded).to(x.dtype)), mean
    mean = x.mean(axis=0, keepdims=True, dtype=np.float64)
    if x.dtype == np.float64:
        return x - mean, mean
    rounded = mean.astype(x.dtype)
    out = x - rounded
    out -= (mean - rounded).astype(x.dtype)
    return out, mean


def column_centred(x: Any) -> Any:
    """(n, d) -> features minus each column's mean (`centred_and_mean`: offsets cost nothing)."""
    return centred_and_mean(x)[0]


def pow2_scaled(x: Any, e: Any) -> Any:
    """x * 2**e, exact (e integers broadcasting against x), without overflowing a factor: in
    two steps of 2**(e/2) in x's dtype (torch), or np.ldexp."""
    if not A.is_torch(x):
        return np.ldexp(x, np.asarray(e, dtype=np.int32))
    torch = _torch()
    e = torch.as_tensor(e, device=x.device).to(torch.float64)
    half = torch.floor(e / 2)
    return x * torch.exp2(half).to(x.dtype) * torch.exp2(e - half).to(x.dtype)


def unit_scaled(k: Any) -> tuple[Any, int]:
    """A matrix whose largest |entry| is not in [0.5, 1) -> (k * 2**-e, e), exact, e the binary
    exponent of that entry (0 for a zero matrix): its inner products with other such matrices
    neither overflow nor underflow in float32 (CKA is invariant to a per-model factor)."""
    if A.is_torch(k):
        top = float(k.abs().amax())
    else:
        top = float(np.abs(k).max())
    e = int(np.frexp(top)[1])
    return (k if e == 0 else pow2_scaled(k, -e)), e


def _fill_diagonal(k: Any, value: float) -> Any:
    if A.is_torch(k):
        k.fill_diagonal_(value)
    else:
        np.fill_diagonal(k, value)
    return k


def median(values: Any) -> float:
    """The median of all entries (the mean of the two middle ones for an even count, as
    np.median; torch.median would return the lower one)."""
    if not A.is_torch(values):
        return float(np.median(values))
    flat = values.reshape(-1)
    m = flat.numel()
    lo = flat.kthvalue((m + 1) // 2).values
    hi = flat.kthvalue(m // 2 + 1).values if m % 2 == 0 else lo
    return float(0.5 * (lo.double() + hi.double()))


def sq_distances(x: Any) -> Any:
    """(n, d) -> (n, n) squared euclidean distances from the Gram of the column-centred rows
    (the same distances, with less cancellation), clipped at 0, zero diagonal."""
    xc = column_centred(x)
    return sq_distances_from_gram(xc @ xc.T)


def sq_distances_from_gram(g: Any) -> Any:
    """(n, n) Gram of (preferably column-centred) rows -> their squared euclidean distances
    g_ii + g_jj - 2 g_ij, clipped at 0, zero diagonal; a new array."""
    sq = g.diagonal()
    d2 = sq[:, None] + sq[None, :] - 2 * g
    d2 = d2.clamp_(min=0) if A.is_torch(d2) else np.maximum(d2, 0, out=d2)
    return _fill_diagonal(d2, 0.0)


def rbf_from_sq(d2: Any, threshold: float, name: str, minus_one: bool = False) -> Any:
    """(n, n) squared distances (`sq_distances`) -> the rbf kernel exp(-d2 / (2 t² m)), m their
    median (module docstring), in place; K - 1 by expm1 when minus_one. ValueError naming
    `name` when m is 0 (more than half of all pairs of rows identical)."""
    m = median(d2)
    if not m > 0:
        raise ValueError(
            f"{name}: the median squared distance between images is 0 (most rows are "
            "identical), so the rbf bandwidth is 0"
        )
    scale = -1.0 / (2.0 * threshold**2 * m)
    if A.is_torch(d2):
        return (d2 * scale).expm1_() if minus_one else (d2 * scale).exp_()
    return (np.expm1 if minus_one else np.exp)(d2 * scale, out=d2)


def eig_rank(lam: np.ndarray) -> int:
    """How many of the eigenvalues `lam` (descending, float64) of an (n, n) centred Gram
    Xc Xcᵀ count as its rank: those above lam[0] · n · 1e-12 (0 when lam[0] <= 0).

    Why this bound: an eigenvalue of the rounded Gram is off by about the Gram's own rounding
    (sqrt(d)·eps·lam[0] to form it, n·eps·lam[0] for the eigensolver, eps = 2.2e-16), so the
    (n - rank) zero eigenvalues of a rank-deficient Gram (d < n - 1, and the centring's null
    direction) come out as noise of up to ~n·1e-15·lam[0]; the bound stays a thousand times
    above that noise. The SVD of the features resolves far smaller singular values (s > s_max ·
    max(n, d) · eps, i.e. lam > ~1e-28 · lam[0]); the two ranks differ only for features with
    true directions of variance between those bounds (singular-value ratios below ~1e-6 sqrt(n)),
    and there the eigenvectors of the Gram are not accurate anyway."""
    n = lam.shape[0]
    if not n or not lam[0] > 0:
        return 0
    return int(np.count_nonzero(lam > lam[0] * n * 1e-12))


def gram(
    x: Any,
    kernel: str = "linear",
    threshold: float = 1.0,
    name: str = "features",
    minus_one: bool = False,
) -> Any:
    """(n, d) features -> (n, n) Gram matrix of `kernel` (formulas in the module docstring).

    The linear Gram is of the features as given (centre their columns first for the centred
    linear kernel; centring the Gram does the same). minus_one (rbf, laplacian): K - 1 by expm1,
    whose centred (and U-centred) form is K's, and which keeps kernel values within rounding of
    1 (features of tiny scale for the laplacian kernel) apart. ValueError naming `name` when the
    rbf bandwidth is zero (more than half of all pairs of rows identical).
    """
    check_choice(kernel, KERNELS, "kernel")
    if kernel == "linear":
        return x @ x.T
    if kernel == "rbf":
        return rbf_from_sq(sq_distances(x), threshold, name, minus_one)
    if kernel == "laplacian":
        d = x.shape[1]
        if A.is_torch(x):
            k = _torch().cdist(x, x, p=1) * (-1.0 / d)
            return k.expm1_() if minus_one else k.exp_()
        from scipy.spatial.distance import cdist

        k = cdist(x, x, "cityblock").astype(x.dtype, copy=False) * (-1.0 / d)
        return (np.expm1 if minus_one else np.exp)(k, out=k)
    raise AssertionError(f"kernel {kernel!r} is in KERNELS but has no formula here")


def centre(k: Any, unbiased: bool = False) -> Any:
    """(n, n) symmetric Gram -> H K H (biased) or its U-centred form (unbiased); a new array.
    Means are taken in float64 (as Kornblith's `center_gram`)."""
    n = k.shape[0]
    if A.is_torch(k):
        k = k.clone()
        if unbiased:
            k.fill_diagonal_(0.0)
            s = k.sum(dim=0, dtype=_torch().float64)
            means = s / (n - 2) - s.sum() / (2 * (n - 1) * (n - 2))
        else:
            means = k.mean(dim=0, dtype=_torch().float64)
            means = means - means.mean() / 2
        means = means.to(k.dtype)
        k -= means[:, None]
        k -= means[None, :]
        return k.fill_diagonal_(0.0) if unbiased else k
    k = k.copy()
    if unbiased:
        np.fill_diagonal(k, 0.0)
        s = k.sum(axis=0, dtype=np.float64)
        means = s / (n - 2) - s.sum() / (2 * (n - 1) * (n - 2))
    else:
        means = k.mean(axis=0, dtype=np.float64)
        means = means - means.mean() / 2
    means = means.astype(k.dtype, copy=False)
    k -= means[:, None]
    k -= means[None, :]
    if unbiased:
        np.fill_diagonal(k, 0.0)
    return k


def _stack(rows: Sequence[Any]) -> Any:
    return _torch().stack(list(rows)) if A.is_torch(rows[0]) else np.stack(rows)


def _wide(f: Any) -> Any:
    """Rows as float64 when float32 sums over them would exceed _F32_COUNT values."""
    if f.shape[1] <= _F32_COUNT or A.is_float64(f):
        return f
    return f.double() if A.is_torch(f) else f.astype(np.float64)


def _to_numpy64(x: Any) -> np.ndarray:
    if A.is_torch(x):
        return x.detach().double().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _groups(count: int, per: int) -> list[range]:
    return [range(s, min(s + per, count)) for s in range(0, count, per)]


def inner_products(
    make_a: Callable[[int], Any],
    count_a: int,
    make_b: Callable[[int], Any] | None,
    count_b: int,
    size: int,
    itemsize: int,
    budget: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairwise Frobenius inner products of many matrices, one matrix product per group.

    make_a(i) -> model i's (centred) matrix, any shape with `size` entries (make_b likewise for
    a second set, or None). The matrices are flattened and stacked, F (B, size), and
    <K_i, K_j> = (F Fᵀ)_ij: one matrix product of the flattened Grams, never a product per pair
    of feature matrices. When the stacks do not fit `budget` bytes, models go in groups that do
    (two groups at a time) and a group's matrices are recomputed for each later group.

    Returns (P, sq_a, sq_b) as float64 numpy arrays: P (count_a, count_b) — (count_a, count_a)
    when make_b is None — and the squared norms ‖K_i‖² of each set (sq_b = sq_a without b).
    float32 matrices of more than 2**24 entries are multiplied in float64.
    """
    per = max(1, budget // max(1, 2 * size * itemsize))
    ga = _groups(count_a, per)
    out = np.empty((count_a, count_b if make_b is not None else count_a))
    sq_a = np.empty(count_a)
    if make_b is None:
        for gi, rows_i in enumerate(ga):
            fi = _wide(_stack([make_a(i).reshape(-1) for i in rows_i]))
            for gj in range(gi, len(ga)):
                rows_j = ga[gj]
                fj = fi if gj == gi else _wide(_stack([make_a(j).reshape(-1) for j in rows_j]))
                block = _to_numpy64(fi @ fj.T)
                out[rows_i.start : rows_i.stop, rows_j.start : rows_j.stop] = block
                out[rows_j.start : rows_j.stop, rows_i.start : rows_i.stop] = block.T
            sq_a[rows_i.start : rows_i.stop] = np.diagonal(
                out[rows_i.start : rows_i.stop, rows_i.start : rows_i.stop]
            )
        return out, sq_a, sq_a
    gb = _groups(count_b, per)
    sq_b = np.empty(count_b)
    for gi, rows_i in enumerate(ga):
        fi = _wide(_stack([make_a(i).reshape(-1) for i in rows_i]))
        sq_a[rows_i.start : rows_i.stop] = _to_numpy64((fi * fi).sum(-1))
        for rows_j in gb:
            fj = _wide(_stack([make_b(j).reshape(-1) for j in rows_j]))
            if gi == 0:
                sq_b[rows_j.start : rows_j.stop] = _to_numpy64((fj * fj).sum(-1))
            out[rows_i.start : rows_i.stop, rows_j.start : rows_j.stop] = _to_numpy64(fi @ fj.T)
    return out, sq_a, sq_b
