"""Duality Diagram Similarity (Dwivedi, Huang, Cichy & Roig, ECCV 2020) as the authors' code
computes it: cvai-roig-lab/duality-diagram-similarity `utils.py` (`get_similarity` for kernels,
`get_similarity_from_rdms` for distances, `group_norm`, `batch_norm`), re-implemented here on
many models at once (no code copied).

DDS(X, Y) = CKA(f(Q(X)), f(Y)) with, for each model's features X (n, d):

normalisation Q (`normalization=`):
    "none"       X
    "centering"  X minus each column's mean
    "znorm"      each column standardised, (x - mean) / std, std with ddof 0 (sklearn's
                 StandardScaler: a constant column is only centred) — the default, as theirs
    with shape=(h, w, c) (h·w·c = d; features flattened from (n, h, w, c), channels last):
    "group"      per image and group of channels (`groups=2` groups, their choice):
                 (x - mean) / sqrt(var + 1e-9) over (h, w, channels of the group)
    "instance"   the same with c groups (one channel each)
    "layer"      the same with one group (all of h, w, c)
    "batch"      per channel over images and positions: (x - mean) / sqrt(var + 1e-9)
matrix f (`kernel=`):
    kernels      "linear" X Xᵀ, "rbf" (Kornblith's bandwidth with threshold 0.5, theirs),
                 "laplacian" exp(-‖x_a - x_b‖₁ / d) (sklearn's laplacian_kernel, default gamma)
    distances    "pearson" 1 - Pearson r of rows, "euclidean", "cosine" 1 - cosine: fastrsa's
                 `rdm` op (fastrsa.rdms), as square (n, n) matrices with zero diagonals
then CKA of those matrices, debiased=True (U-centred) by default, as theirs.

Range: normalisations are taken in a range-safe way (column means in float64; znorm scales each
column by a power of two before its variance; the shaped ones in float64); then, for every
matrix but the laplacian kernel (the only one not invariant to a model's scale), each model is
rescaled by a power of two when its largest |value| lies outside the safe range, and the
linear kernel is taken of column-centred features (its centred form is the same). Each centred
matrix is scaled by a power of two before the inner products, as in CKA (fastrsa.measures.cka).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _arrays as A
from .._checks import check_choice
from ..rdms import rdms
from . import cka as C
from . import gram as G

__all__ = [
    "check_options",
    "dds_matrix",
    "DISTANCES",
    "EPS",
    "KERNELS",
    "matrix",
    "normalise",
    "NORMALIZATIONS",
    "SHAPED",
]

NORMALIZATIONS = ("znorm", "none", "centering", "group", "instance", "layer", "batch")
SHAPED = ("group", "instance", "layer", "batch")
DISTANCES = {"pearson": "correlation", "euclidean": "euclidean", "cosine": "cosine"}
KERNELS = (*G.KERNELS, *DISTANCES)
EPS = 1e-9  # their group_norm / batch_norm epsilon


def check_options(normalization: str, kernel: str, shape: Any, groups: int) -> None:
    check_choice(normalization, NORMALIZATIONS, "normalization")
    check_choice(kernel, KERNELS, "kernel")
    if normalization in SHAPED:
        if shape is None:
            raise ValueError(
                f"normalization={normalization!r} needs shape=(h, w, c): the features are "
                "flattened (n, h, w, c) maps, channels last"
            )
        if len(tuple(shape)) != 3 or not all(int(s) >= 1 for s in shape):
            raise ValueError(f"shape must be (h, w, c) of positive ints; got {shape!r}")
        c = int(shape[2])
        if normalization == "group" and (groups < 1 or c % groups):
            raise ValueError(f"groups must divide the c = {c} channels; got groups={groups}")


def _std(x: Any, dims: Any) -> tuple[Any, Any]:
    """Mean and population variance over `dims` (kept), of float64 x."""
    if A.is_torch(x):
        return x.mean(dim=dims, keepdim=True), x.var(dim=dims, keepdim=True, correction=0)
    return x.mean(axis=dims, keepdims=True), x.var(axis=dims, keepdims=True)


def _sqrt(x: Any) -> Any:
    return x.sqrt() if A.is_torch(x) else np.sqrt(x)


def _float64(x: Any) -> Any:
    return x.double() if A.is_torch(x) else x.astype(np.float64)


def _znorm(x: Any) -> Any:
    """sklearn StandardScaler().fit_transform: columns centred and divided by their std; a
    column whose variance is within rounding of 0 (sklearn's `_is_constant_feature` bound) is
    only centred. Each centred column is first scaled by a power of two to a largest |value| in
    [0.5, 1) (exact), so its variance neither overflows nor underflows in x's dtype."""
    n = x.shape[0]
    c, mean = G.centred_and_mean(x)
    on_torch = A.is_torch(x)
    top = c.abs().amax(dim=0).double().cpu().numpy() if on_torch else np.abs(c).max(axis=0)
    e = np.frexp(top.astype(np.float64))[1]  # per column; 0 for an all-zero column
    cs = G.pow2_scaled(c, -e)
    if on_torch:
        var = (cs * cs).sum(dim=0, dtype=sys.modules["torch"].float64).cpu().numpy() / n
        mean = mean.cpu().numpy()
    else:
        var = np.einsum("ij,ij->j", cs, cs, dtype=np.float64) / n
    eps = float(np.finfo(np.float64).eps)  # sklearn's bound uses float64's eps for all dtypes
    # sklearn's test var <= n eps var + (n mean eps)**2, on the variance scaled by 4**-e
    constant = var * (1 - n * eps) <= (n * np.ldexp(mean[0], -e) * eps) ** 2
    std = np.sqrt(np.where(constant, 1.0, var))
    if on_torch:
        torch = sys.modules["torch"]
        mask = torch.from_numpy(constant).to(x.device)
        return torch.where(mask, c, cs / torch.from_numpy(std).to(x.device, x.dtype))
    return np.where(constant, c, cs / std.astype(x.dtype))


def _shaped(x: Any, dims: Any) -> Any:
    """(x - mean) / sqrt(var + EPS) over `dims`, in float64 (any scale), back in x's dtype."""
    y = _float64(x)
    mean, var = _std(y, dims)
    out = (y - mean) / _sqrt(var + EPS)
    return out.to(x.dtype) if A.is_torch(x) else out.astype(x.dtype)


def normalise(x: Any, normalization: str, shape: Any = None, groups: int = 2) -> Any:
    """(n, d) features -> normalised (n, d) features (formulas in the module docstring)."""
    if normalization == "none":
        return x
    if normalization == "centering":
        return G.column_centred(x)
    if normalization == "znorm":
        return _znorm(x)
    n = x.shape[0]
    h, w, c = (int(s) for s in shape)
    if normalization == "batch":
        return _shaped(x.reshape(n, h, w, c), (0, 1, 2)).reshape(n, h * w * c)
    g = {"group": groups, "instance": c, "layer": 1}[normalization]
    return _shaped(x.reshape(n, h, w, g, c // g), (1, 2, 4)).reshape(n, h * w * c)


def _square(condensed: Any, n: int) -> Any:
    """Condensed (m,) -> square (n, n) symmetric with a zero diagonal, same kind and device."""
    i, j = np.triu_indices(n, k=1)
    if A.is_torch(condensed):
        import torch

        out = torch.zeros((n, n), dtype=condensed.dtype, device=condensed.device)
        ti = torch.from_numpy(i).to(condensed.device)
        tj = torch.from_numpy(j).to(condensed.device)
        out[ti, tj] = condensed
        out[tj, ti] = condensed
        return out
    square = np.zeros((n, n), dtype=condensed.dtype)
    square[i, j] = condensed
    square[j, i] = condensed
    return square


def matrix(x: Any, kernel: str, threshold: float, backend: str, memory: Any, name: str) -> Any:
    """(n, d) normalised features -> (n, n) kernel or distance matrix f(X)."""
    if kernel in G.KERNELS:
        return G.gram(x, kernel, threshold, name)

    try:
        condensed = rdms(x, DISTANCES[kernel], backend=backend, memory=memory)
    except ValueError as err:  # name the model, not rdms's own argument
        raise ValueError(f"{name} after normalisation: {err}") from None
    return _square(condensed, x.shape[0])


def dds_matrix(
    models_a: Sequence[Any],
    models_b: Sequence[Any] | None,
    *,
    normalization: str = "znorm",
    kernel: str = "linear",
    shape: Any = None,
    groups: int = 2,
    threshold: float = 0.5,
    debiased: bool = True,
    backend: str = "auto",
    memory: Any = None,
    budget: int,
    names_a: Sequence[str],
    names_b: Sequence[str] = (),
) -> np.ndarray:
    """DDS of every model of `models_a` with every model of `models_b` (or of `models_a`).

    models: validated (n, d_i) float arrays of one kind, the same n (d_i = h·w·c for the
    shaped normalisations). Returns (Ba, Bb) float64 numpy, unsymmetrised.
    """
    check_options(normalization, kernel, shape, groups)
    for models, names in ((models_a, names_a), (models_b or (), names_b)):
        if normalization in SHAPED:
            hwc = int(np.prod([int(s) for s in shape]))
            for x, name in zip(models, names, strict=True):
                if x.shape[1] != hwc:
                    raise ValueError(
                        f"{name} has d = {x.shape[1]} features, but shape={tuple(shape)} "
                        f"needs h*w*c = {hwc}"
                    )

    def maker(models: Sequence[Any], names: Sequence[str]) -> Any:
        def make(i: int) -> Any:
            z = normalise(models[i], normalization, shape, groups)
            if kernel != "laplacian":  # every other matrix is invariant to the model's scale
                z = A.rescaled_matrix(z)
            if kernel in G.KERNELS:
                k = C.centred_gram(z, kernel, threshold, debiased, names[i])
            else:
                k = G.centre(matrix(z, kernel, threshold, backend, memory, names[i]), debiased)
            return G.unit_scaled(k)[0]  # one scale per model: it cancels in the normalisation

        return make

    n = models_a[0].shape[0]
    products = G.inner_products(
        maker(models_a, names_a),
        len(models_a),
        None if models_b is None else maker(models_b, names_b),
        0 if models_b is None else len(models_b),
        n * n,
        models_a[0].dtype.itemsize,
        budget,
    )
    what = "kernel" if kernel in G.KERNELS else "distance matrix"
    return C.normalised(*products, names_a, names_b if models_b is not None else names_a, what)
