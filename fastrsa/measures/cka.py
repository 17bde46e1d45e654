"""Centered Kernel Alignment of many models at once (Kornblith et al., ICML 2019).

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))

with HSIC the biased estimator <HKH, HLH> / (n-1)² = tr(KHLH) / (n-1)², or (debiased=True)
the unbiased estimator of Song et al. (JMLR 2012) computed, as in the authors' notebook
(google-research/google-research `representation_similarity/Demo.ipynb`: `center_gram(
unbiased=True)`, `cka(debiased=True)`, equal to `feature_space_linear_cka(debiased=True)` and
its `_debiased_dot_product_similarity_helper`), as the inner product of U-centred Grams over
n(n-3). The normalisations cancel in CKA. For the linear kernel and centred features X, Y this
is ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F).

All pairs: each model's centred Gram is computed once, and the (B, B) inner products of all
of them are one matrix product of the flattened Grams (gram.inner_products).

Minibatch CKA (Nguyen, Raghu & Kornblith, ICLR 2021): the images are split into consecutive
batches of `minibatch` images (a last, shorter batch is kept when it has at least 4 images),
HSIC is estimated on each batch (unbiased by default) and averaged over batches, and

    CKA = mean_b HSIC_b(K, L) / sqrt(mean_b HSIC_b(K, K) · mean_b HSIC_b(L, L)).

Memory: one batch's Grams at a time, so n may far exceed what one n x n Gram would need.

Range: CKA with the linear and rbf kernels is invariant to each model's scale, so a model whose
largest |value| lies outside [2**-24, 2**24] (float32; 2**±250 float64) is first rescaled by a
power of two (exact); column means are taken in float64 (large offsets cost nothing); the
laplacian kernel (not scale-invariant) is computed as K - 1 (expm1), and every centred Gram is
scaled by a power of two to a largest |entry| in [0.5, 1) before the inner products, so no sum
overflows or underflows whatever the features' scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import _arrays as A
from . import gram as G

__all__ = [
    "batches",
    "centred_gram",
    "cka_matrix",
    "cka_of_matrices",
    "hsic_scale",
    "normalised",
    "SCALE_FREE",
]

# Kernels whose CKA does not change when a model's features are multiplied by a constant.
SCALE_FREE = ("linear", "rbf")


def centred_gram(
    x: Any, kernel: str, threshold: float, unbiased: bool, name: str = "features"
) -> Any:
    """(n, d) features -> (n, n) centred (HKH) or U-centred Gram of `kernel` (rbf and laplacian
    from K - 1: the same centred matrix, and exact where K is within rounding of 1)."""
    if kernel == "linear":
        xc = G.column_centred(x)  # H X Xᵀ H = Xc Xcᵀ; U-centring ignores the column means too
        k = xc @ xc.T
        return G.centre(k, True) if unbiased else k
    return G.centre(G.gram(x, kernel, threshold, name, minus_one=True), unbiased)


def normalised(
    products: np.ndarray,
    sq_a: np.ndarray,
    sq_b: np.ndarray,
    names_a: Sequence[str],
    names_b: Sequence[str],
    what: str = "Gram matrix",
) -> np.ndarray:
    """P_ij / sqrt(sq_a_i sq_b_j) (in [-1, 1] up to rounding); ValueError naming the first model
    whose self-similarity is not positive (constant features: its centred Gram is zero; or a
    kernel constant between all distinct images at the features' scale, e.g. the laplacian
    kernel exp(-|x - y|_1 / d) of features far from unit scale), and never a NaN."""
    for sq, names in ((sq_a, names_a), (sq_b, names_b)):
        bad = np.flatnonzero(~((sq > 0) & np.isfinite(sq)))
        if bad.size:
            raise ValueError(
                f"{names[bad[0]]}: its centred {what} has no positive self-similarity "
                f"(HSIC = {sq[bad[0]]:.3g}: constant features, or a kernel constant between "
                "all pairs of distinct images at this scale), so CKA is undefined"
            )
    out = products / np.sqrt(sq_a[:, None] * sq_b[None, :])
    where = np.argwhere(~np.isfinite(out))
    if where.size:
        i, j = where[0]
        raise ValueError(
            f"CKA of {names_a[i]} with {names_b[j]} is not finite (their Gram inner product "
            f"is {products[i, j]:.3g}); pass float64 features"
        )
    return out


def batches(n: int, minibatch: int) -> list[tuple[int, int]]:
    """Consecutive (start, stop) batches of `minibatch` images; a last, shorter batch is kept
    when it holds at least 4 images."""
    out = [(s, min(s + minibatch, n)) for s in range(0, n, minibatch)]
    if len(out) > 1 and out[-1][1] - out[-1][0] < 4:
        out.pop()
    return out


def hsic_scale(m: int, unbiased: bool) -> float:
    """1/(m(m-3)) (unbiased) or 1/(m-1)² (biased): inner product of centred Grams -> HSIC."""
    return 1.0 / (m * (m - 3)) if unbiased else 1.0 / (m - 1) ** 2


def cka_matrix(
    models_a: Sequence[Any],
    models_b: Sequence[Any] | None,
    *,
    kernel: str = "linear",
    threshold: float = 1.0,
    debiased: bool = False,
    minibatch: int | None = None,
    budget: int,
    names_a: Sequence[str],
    names_b: Sequence[str] = (),
) -> np.ndarray:
    """CKA of every model of `models_a` with every model of `models_b` (or of `models_a`).

    models: validated (n, d_i) float arrays of one kind (numpy, or torch on one device), the
    same n. Returns (Ba, Bb) float64 numpy, unsymmetrised. Grams are computed in the models'
    dtype and their inner products summed in float64 (float32 products over more than 2**24
    entries are computed in float64); see the module docstring for the range.
    """
    n = models_a[0].shape[0]
    itemsize = models_a[0].dtype.itemsize
    if kernel in SCALE_FREE:
        models_a = [A.rescaled_matrix(x) for x in models_a]
        models_b = None if models_b is None else [A.rescaled_matrix(x) for x in models_b]
    spans = [(0, n)] if minibatch is None else batches(n, minibatch)
    total: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    # each batch's centred Grams are scaled by 2**-e (exps: one per model and batch); scaled
    # back relative to the first batch's exponents, so every batch adds on one scale
    exps: dict[tuple[str, int, int], int] = {}
    for s, e in spans:

        def maker(
            models: Sequence[Any], names: Sequence[str], side: str, s: int = s, e: int = e
        ) -> Callable[[int], Any]:
            def make(index: int) -> Any:
                x = models[index][s:e]
                k = centred_gram(x, kernel, threshold, debiased, names[index])
                k, exps[side, index, s] = G.unit_scaled(k)
                return k

            return make

        make_b = None if models_b is None else maker(models_b, names_b, "b")
        p, sa, sb = G.inner_products(
            maker(models_a, names_a, "a"),
            len(models_a),
            make_b,
            0 if models_b is None else len(models_b),
            (e - s) ** 2,
            itemsize,
            budget,
        )
        ea = np.array([exps["a", i, s] - exps["a", i, 0] for i in range(len(models_a))])
        eb = (
            ea
            if models_b is None
            else np.array([exps["b", j, s] - exps["b", j, 0] for j in range(len(models_b))])
        )
        scale = hsic_scale(e - s, debiased)
        p = np.ldexp(p, ea[:, None] + eb[None, :])
        sa, sb = np.ldexp(sa, 2 * ea), np.ldexp(sb, 2 * eb)
        if total is None:
            total = (p * scale, sa * scale, sb * scale)
        else:
            total = (total[0] + p * scale, total[1] + sa * scale, total[2] + sb * scale)
    assert total is not None
    return normalised(*total, names_a, names_b if models_b is not None else names_a)


def cka_of_matrices(matrices: Any, debiased: bool = False) -> np.ndarray:
    """CKA of precomputed (n, n) symmetric matrices, all pairs: (B, n, n) numpy -> (B, B) float64.

    Each matrix (a Gram, or an RDM: the DDS paper's "rdm" variant, their
    `get_similarity_from_rdms`, takes the RDMs themselves with debiased=True) is centred (H K H)
    or U-centred once; the (B, B) Frobenius inner products are one matrix product. Holds the B
    centred matrices in float64 (B * n * n * 8 bytes)."""
    mats = np.asarray(matrices, dtype=np.float64)
    if mats.ndim != 3 or mats.shape[1] != mats.shape[2]:
        raise ValueError(f"matrices must be (B, n, n); got shape {mats.shape}")
    if mats.shape[1] < (4 if debiased else 3):
        raise ValueError(f"matrices need at least {4 if debiased else 3} rows; got {mats.shape[1]}")
    if not np.isfinite(mats).all():
        raise ValueError("matrices hold NaN or Inf")
    flat = np.stack([G.unit_scaled(G.centre(k, debiased))[0].ravel() for k in mats])
    products = flat @ flat.T
    sq = np.diag(products).copy()
    names = [f"matrices[{i}]" for i in range(len(mats))]
    out = normalised(products, sq, sq, names, names, what="matrix")
    out = (out + out.T) / 2
    np.fill_diagonal(out, 1.0)
    return out
