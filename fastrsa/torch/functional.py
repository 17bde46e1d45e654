"""Differentiable RSA and CKA for training code: plain torch (autograd, torch.compile), batched.

Same numerics as fastrsa's numpy ops (fastrsa.rdms, fastrsa.compare, fastrsa.similarity "cka"):

    rdms        "correlation": 1 - Pearson r of the rows, each centred by its own mean;
                "cosine": 1 - cosine similarity; "euclidean": ‖x_i - x_j‖. Condensed: pairs
                i < j in row-major order, as scipy's `pdist` / `squareform`.
    compare     Pearson r / cosine of rows; "spearman": Pearson r of soft ranks (Blondel et al.
                2020, fastrsa.torch.softrank), exact Spearman's rho as regularization -> 0.
    cka         CKA(K, L) = <K̃, L̃> / (‖K̃‖ ‖L̃‖) (Kornblith et al. 2019), K̃ the centred Gram H K H
                (biased HSIC) or its U-centred form (debiased=True, Song et al. 2012, as
                fastrsa.measures.gram.centre). Kernels "linear" (K = X Xᵀ) and "rbf"
                (exp(-d² / (2 t² median d²)), the median over all n² entries, t = threshold).

Numerics: means are taken in float64 (what rounding them to the dtype leaves is subtracted too),
so large offsets cost nothing; every row (RDMs, compare) or model (CKA) is divided by its largest
|value| (a detached factor: the results are scale invariant, so the gradient is exact) before
any sum of squares, so nothing overflows in float32; CKA is the inner product of unit-norm
centred Grams (no HSIC ratio of large numbers, no log(1 - CKA); CKALoss is 1 - cka). The unbiased
HSIC may be negative: debiased CKA is then negative (a value in [-1, 1], never NaN).

Bad input: TypeError / ValueError naming the argument. Data-dependent checks (NaN or Inf,
constant rows, constant features; each one host synchronisation on CUDA) run in eager mode only:
under torch.compile (torch.compiler.is_compiling()) and during CUDA graph capture they are
skipped, and a constant row (correlation), zero row (cosine) or constant model (CKA) gives NaN.
Holds: the (..., n, n) Gram of each input while it runs. Autograd saves, for the correlation and
cosine RDMs, only x (held anyway), the condensed RDMs and three (..., n) row factors (the
backward, fastrsa.torch.ops.UnitRDM, recomputes the unit rows from x); for the euclidean RDM and
CKA about three (..., n, n) arrays per input; compare holds the normalised rows and the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._checks import check_choice
from .checks import check_finite, check_float, check_regularization, checking
from .ops import UnitRDM
from .softrank import soft_rank

__all__ = ["CKA_KERNELS", "METHODS", "METRICS", "cka", "cka_matrix", "compare", "rdms", "rsa"]

METRICS = ("correlation", "cosine", "euclidean")
METHODS = ("pearson", "cosine", "spearman")
CKA_KERNELS = ("linear", "rbf")


def _centred(x: torch.Tensor, dim: int) -> torch.Tensor:
    """x minus its mean along `dim`, the mean taken in float64 (its rounding to x's dtype
    subtracted as well, so an offset of 1e6 in float32 costs no accuracy)."""
    mean = x.mean(dim=dim, keepdim=True, dtype=torch.float64)
    if x.dtype == torch.float64:
        return x - mean
    rounded = mean.to(x.dtype)
    # the compensation's derivative is exactly 0 (autograd's cast passes gradients through):
    # detached, so the backward does one broadcast subtraction's work, not two
    return (x - rounded) - (mean - rounded).detach().to(x.dtype)


def _scaled(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """x divided by its largest |value| over `dims` (detached: for scale-invariant results the
    gradient is unchanged)."""
    top = x.detach().abs().amax(dim=dims, keepdim=True)
    return x / top


def _unit_rows(v: torch.Tensor, centre: bool) -> torch.Tensor:
    """Rows (..., m) centred (Pearson) or not (cosine), scaled, divided by their norm."""
    u = _scaled(_centred(v, -1) if centre else v, (-1,))
    return u / torch.linalg.vector_norm(u, dim=-1, keepdim=True)


def _check_rows(v: torch.Tensor, name: str, constant: bool) -> None:
    """Eager: ValueError naming `name` and the first constant (or all-zero) row (..., m)."""
    if not checking(v):
        return
    check_finite(v, name)
    bad = v.amax(-1) == v.amin(-1) if constant else (v == 0).all(-1)
    if bool(bad.any()):
        index = tuple(int(i) for i in torch.nonzero(bad)[0])
        what = "constant (its correlation is undefined)" if constant else "all zero"
        raise ValueError(f"{name}: row {index} is {what}")


def _check_features(x: object, name: str) -> torch.Tensor:
    x = check_float(x, name, 2, "(..., n images, d features)")
    n, d = x.shape[-2:]
    if n < 3:
        raise ValueError(f"{name} needs at least 3 images (rows, axis -2); got n = {n}")
    if d == 0:
        raise ValueError(f"{name} has d = 0 features (axis -1); need at least 1")
    return x


def _check_pair(x: object, y: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Paired feature batches x (..., n, dx), y (..., n, dy): the same n, else ValueError."""
    x = _check_features(x, "x")
    y = _check_features(y, "y")
    if x.shape[-2] != y.shape[-2]:
        raise ValueError(
            f"x and y must hold the same number of images (axis -2); got {x.shape[-2]} and "
            f"{y.shape[-2]}"
        )
    return x, y


def _condensed(square: torch.Tensor) -> torch.Tensor:
    """(..., n, n) -> (..., n(n-1)/2): the entries i < j in row-major order (scipy's order)."""
    n = square.shape[-1]
    i, j = torch.triu_indices(n, n, 1, device=square.device)
    return square[..., i, j]


def rdms(x: torch.Tensor, metric: str = "correlation") -> torch.Tensor:
    """Condensed RDMs of a batch of feature matrices, differentiable (module docstring).

    x: (..., n, d) float tensor, n >= 3, d >= 1, any leading dims. metric: "correlation" (1 - r
    of row-centred rows, fastrsa.rdms's), "cosine" or "euclidean" (distances from the Gram of the
    column-centred rows, clipped at 0; the gradient at a zero distance is taken as 0).
    Returns (..., n(n-1)/2) in x's dtype and device, pairs i < j row-major (scipy's `pdist`).
    Forward within 1e-10 (float64) / 1e-5 (float32) of fastrsa.rdms.
    correlation / cosine: fastrsa.torch.ops.UnitRDM, whose backward (the registered op
    fastrsa::unit_rdm_backward) is a Triton kernel on CUDA (float32/16, bfloat16; torch on the
    CPU and for float64). The forward holds one copy of x and the (..., n, n) Gram while it
    runs; autograd saves only x (which it holds anyway, unless x had to be copied to flatten
    its batch dims), the returned RDMs (changing them in place before the backward is an
    error, as for torch.exp's output) and three (..., n) row factors; the backward holds dL/dx
    (plus, on the torch path, the unit rows and a dense (..., n, n) gradient). No double
    backward: differentiating the gradient again raises a RuntimeError saying so. euclidean:
    plain autograd (twice differentiable), which saves the (..., n, n) Gram and the centred
    rows.
    Eager: ValueError for NaN/Inf, a constant row (correlation), an all-zero row (cosine).
    """
    check_choice(metric, METRICS, "metric")
    x = _check_features(x, "x")
    if metric != "euclidean":
        _check_rows(x, "x", constant=metric == "correlation")
        n, d = x.shape[-2:]
        rdm = UnitRDM.apply(x.reshape(-1, n, d), metric == "correlation")[0]
        return rdm.reshape(*x.shape[:-2], rdm.shape[-1])
    check_finite(x, "x")
    xc = _centred(x, -2)
    top = xc.detach().abs().amax(dim=(-2, -1), keepdim=True)  # distances scale with it
    top = torch.where(top > 0, top, 1)  # all rows equal: every distance 0
    xc = xc / top
    g = xc @ xc.mT
    sq = torch.diagonal(g, dim1=-2, dim2=-1)
    d2 = _condensed(sq[..., :, None] + sq[..., None, :] - 2 * g)
    positive = d2 > 0
    dist = torch.where(positive, torch.where(positive, d2, 1).sqrt(), 0)
    return dist * top[..., 0]


def _as_rows(v: object, name: str) -> tuple[torch.Tensor, bool]:
    """(A, m) or (m,) -> (A, m) rows and whether the input was one vector."""
    v = check_float(v, name, 1, "(rows, m) or (m,)")
    if v.ndim > 2:
        raise ValueError(f"{name} must be (rows, m) or (m,); got shape {tuple(v.shape)}")
    if v.shape[-1] < 2:
        raise ValueError(f"{name} needs at least 2 values per row; got shape {tuple(v.shape)}")
    return (v[None] if v.ndim == 1 else v), v.ndim == 1


def _prepared(v: torch.Tensor, name: str, method: str, regularization: float) -> torch.Tensor:
    """Rows (..., m) -> unit rows whose inner products are `method`'s similarity."""
    _check_rows(v, name, constant=method != "cosine")
    if method == "spearman":  # in rank units: each row scaled by m / std
        v = soft_rank(v * (v.shape[-1] / v.std(dim=-1, keepdim=True)), regularization)
    return _unit_rows(v, centre=method != "cosine")


def _compare_paired(a: object, b: object, method: str, regularization: float) -> torch.Tensor:
    """compare(..., paired=True): the similarity of each row of a with the matching row of b."""
    if b is None:
        raise ValueError("compare(paired=True) needs b: the rows to pair with a's")
    a = check_float(a, "a", 1, "(..., m)")
    b = check_float(b, "b", 1, "(..., m)")
    if a.shape[-1] != b.shape[-1] or a.shape[-1] < 2:
        raise ValueError(
            "a and b must have the same number (>= 2) of values per row; got shapes "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )
    try:
        torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"paired rows: a's batch {tuple(a.shape[:-1])} and b's {tuple(b.shape[:-1])} do not "
            "broadcast"
        ) from None
    ua = _prepared(a, "a", method, regularization)
    ub = _prepared(b, "b", method, regularization)
    return (ua * ub).sum(-1)


def compare(
    a: torch.Tensor,
    b: torch.Tensor | None = None,
    method: str = "pearson",
    regularization: float = 1.0,
    paired: bool = False,
) -> torch.Tensor:
    """All-pairs similarity of rows (e.g. condensed RDMs), differentiable w.r.t. a and b.

    a: (A, m) or (m,) float tensor; b: (B, m), (m,) or None (all pairs of a). method: "pearson",
    "cosine" or "spearman" (Pearson r of the soft ranks `softrank.soft_rank(., regularization)`,
    Blondel et al. 2020, L2, of each row scaled by m / std(row) (the gradient flows through it):
    regularization is in rank units, whatever the values' scale and m: 1.0 smooths over about
    one rank of a spread-out row (heavy tails, which set the std, call for less); exact
    Spearman's rho of distinct values as regularization -> 0; Pearson r of the
    values once regularization >= 2 (max - min) / std). Returns (A, B) ((A, A) for b None) in
    the inputs' dtype, one matrix product of unit rows; a one-vector (m,) input drops its
    dimension from the result, as in a @ b.T. pearson / cosine within 1e-10 (float64) / 1e-5
    (float32) of fastrsa.compare.
    paired=True: a (..., m) and b (..., m) with broadcasting batch dims -> (...), the similarity
    of each row of a with the matching row of b only (as torch.nn.functional.cosine_similarity;
    each distinct row is prepared once, a (m,) b is shared by every row of a).
    Eager: ValueError for NaN/Inf, constant rows (pearson, spearman), all-zero rows (cosine).
    """
    check_choice(method, METHODS, "method")
    eps = check_regularization(regularization)
    if not isinstance(paired, bool):
        raise TypeError(f"paired must be True or False; got {paired!r}")
    if paired:
        return _compare_paired(a, b, method, eps)
    ra, va = _as_rows(a, "a")
    ua = _prepared(ra, "a", method, eps)
    if b is None:
        ub, vb = ua, va
    else:
        rb, vb = _as_rows(b, "b")
        if rb.shape[-1] != ra.shape[-1]:
            raise ValueError(
                f"a and b must have the same number of values per row; got {ra.shape[-1]} and "
                f"{rb.shape[-1]}"
            )
        ub = _prepared(rb, "b", method, eps)
    out = ua @ ub.mT
    if va:
        out = out[0]
    if vb:
        out = out[..., 0]
    return out


def rsa(
    x: torch.Tensor,
    y: torch.Tensor,
    metric: str = "correlation",
    method: str = "pearson",
    regularization: float = 1.0,
) -> torch.Tensor:
    """Representational similarity of paired feature batches: compare(rdms(x), rdms(y)) per
    batch element, differentiable w.r.t. x and y.

    x: (..., n, dx), y: (..., n, dy) float tensors (the same n; batch dims broadcast; each RDM
    computed once). metric: as `rdms`; method, regularization: as `compare`. Returns (...) (the
    broadcast batch shape) in the inputs' dtype. Holds each input's (..., n, n) Gram and RDMs.
    """
    check_choice(metric, METRICS, "metric")
    check_choice(method, METHODS, "method")
    eps = check_regularization(regularization)
    x, y = _check_pair(x, y)
    ux = _prepared(rdms(x, metric), "rdms(x)", method, eps)
    uy = _prepared(rdms(y, metric), "rdms(y)", method, eps)
    return (ux * uy).sum(-1)


def _median(v: torch.Tensor) -> torch.Tensor:
    """Median over the last axis as np.median (mean of the two middle values), (...,), with
    gradient to the middle value(s)."""
    k = v.shape[-1]
    lo = v.kthvalue((k + 1) // 2, dim=-1).values
    return 0.5 * (lo + v.kthvalue(k // 2 + 1, dim=-1).values) if k % 2 == 0 else lo


def _centre_gram(k: torch.Tensor, debiased: bool) -> torch.Tensor:
    """(..., n, n) symmetric -> H K H, or its U-centred form (fastrsa.measures.gram.centre)."""
    n = k.shape[-1]
    if debiased:
        k = k * (1 - torch.eye(n, dtype=k.dtype, device=k.device))
        s = k.sum(-1, dtype=torch.float64)
        means = s / (n - 2) - s.sum(-1, keepdim=True) / (2 * (n - 1) * (n - 2))
    else:
        means = k.mean(-1, dtype=torch.float64)
        means = means - means.mean(-1, keepdim=True) / 2
    means = means.to(k.dtype)
    k = k - means[..., :, None] - means[..., None, :]
    if debiased:
        k = k * (1 - torch.eye(n, dtype=k.dtype, device=k.device))
    return k


def _unit_gram(
    x: torch.Tensor, name: str, kernel: str, debiased: bool, threshold: float
) -> torch.Tensor:
    """(..., n, d) features -> their centred (or U-centred) Gram, flattened and of unit norm,
    (..., n*n)."""
    n = x.shape[-2]
    if debiased and n < 4:
        raise ValueError(f"{name}: debiased CKA needs at least 4 images; got n = {n}")
    if checking(x):
        check_finite(x, name)
        flat = x.reshape(-1, n, x.shape[-1])
        bad = (flat.amax(-2) == flat.amin(-2)).all(-1)
        if bool(bad.any()):
            raise ValueError(
                f"{name}: model {int(torch.nonzero(bad)[0, 0])} (of the flattened batch) has "
                "constant features: its centred Gram is zero, so CKA is undefined"
            )
    xc = _scaled(_centred(x, -2), (-2, -1))
    g = xc @ xc.mT
    if kernel == "linear":
        k = _centre_gram(g, True) if debiased else g  # H X Xᵀ H = Xc Xcᵀ
    else:
        sq = torch.diagonal(g, dim1=-2, dim2=-1)
        off = 1 - torch.eye(n, dtype=g.dtype, device=g.device)
        d2 = (sq[..., :, None] + sq[..., None, :] - 2 * g).clamp_min(0) * off
        med = _median(d2.flatten(-2))
        if checking(x) and bool((med <= 0).any()):
            raise ValueError(
                f"{name}: the median squared distance between images is 0 (most rows are "
                "identical), so the rbf bandwidth is 0"
            )
        scale = -1.0 / (2.0 * threshold**2 * med)
        k = _centre_gram(torch.expm1(d2 * scale[..., None, None]), debiased)
    f = _scaled(k, (-2, -1)).flatten(-2)
    return f / torch.linalg.vector_norm(f, dim=-1, keepdim=True)


def _check_cka_args(kernel: str, threshold: float) -> float:
    check_choice(kernel, CKA_KERNELS, "kernel")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold must be a float > 0; got {type(threshold).__name__}")
    if not 0.0 < float(threshold) < float("inf"):
        raise ValueError(f"threshold must be a finite float > 0; got {threshold!r}")
    return float(threshold)


def cka(
    x: torch.Tensor,
    y: torch.Tensor,
    kernel: str = "linear",
    debiased: bool = False,
    threshold: float = 1.0,
) -> torch.Tensor:
    """CKA of paired feature batches (module docstring), differentiable w.r.t. x and y.

    x: (..., n, dx), y: (..., n, dy) float tensors (the same n; batch dims broadcast). kernel:
    "linear" or "rbf" (bandwidth threshold * sqrt(median squared distance), the median over all
    n² entries, differentiated too); debiased: U-centred Grams (the unbiased HSIC, n >= 4; the
    result may be negative). Returns (...) in the inputs' dtype, within 1e-10 (float64) / 1e-5
    (float32) of fastrsa.similarity(..., "cka"). Holds each model's (n, n) centred Gram.
    Eager: ValueError for NaN/Inf, a model with constant features, a zero rbf bandwidth.
    """
    t = _check_cka_args(kernel, threshold)
    x, y = _check_pair(x, y)
    fx = _unit_gram(x, "x", kernel, debiased, t)
    fy = _unit_gram(y, "y", kernel, debiased, t)
    return (fx * fy).sum(-1)


def cka_matrix(
    xs: torch.Tensor | Sequence[torch.Tensor],
    kernel: str = "linear",
    debiased: bool = False,
    threshold: float = 1.0,
) -> torch.Tensor:
    """CKA of every pair of models, differentiable: (B, B) in the models' dtype.

    xs: a (B, n, d) float tensor, or a sequence of B (n, d_i) tensors (widths may differ; one
    dtype and device). Each model's centred Gram is computed once, flattened and normalised; the
    (B, B) result is one product F Fᵀ of the stacked Grams (as fastrsa.measures.cka), so it holds
    B n² values. Options and checks as `cka`; within 1e-10 (float64) / 1e-5 (float32) of
    fastrsa.similarity(xs, "cka").
    """
    t = _check_cka_args(kernel, threshold)
    if isinstance(xs, torch.Tensor):
        x = _check_features(xs, "xs")
        if x.ndim != 3:
            raise ValueError(f"xs must be (B, n, d) or a list of (n, d); got shape {x.shape}")
        f = _unit_gram(x, "xs", kernel, debiased, t)
    else:
        if isinstance(xs, (str, bytes)) or not isinstance(xs, Sequence) or not xs:
            raise TypeError("xs must be a (B, n, d) tensor or a non-empty list of (n, d) tensors")
        models = [_check_features(x, f"xs[{i}]") for i, x in enumerate(xs)]
        for i, x in enumerate(models):
            if x.ndim != 2 or x.shape[0] != models[0].shape[0]:
                raise ValueError(
                    f"xs[{i}] must be (n, d) with the n of xs[0] ({models[0].shape[0]}); got "
                    f"shape {tuple(x.shape)}"
                )
        f = torch.stack(
            [_unit_gram(x, f"xs[{i}]", kernel, debiased, t) for i, x in enumerate(models)]
        )
    return f @ f.mT
