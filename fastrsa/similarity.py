"""One entry point from features to a model-by-model similarity matrix, for every measure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import _arrays as A
from ._backend import check_backend_name, device_for, get_backend
from ._checks import check_choice
from ._memory import budget_for
from ._typing import ArrayIn, ArrayOut
from .compare import compare
from .measures.attribution import attribution_similarity
from .measures.catalog import CATALOG
from .measures.cka import cka_matrix
from .measures.dds import dds_matrix
from .measures.gram import KERNELS
from .measures.svcca import svcca_matrix
from .rdms import rdms
from .reference import METRICS

__all__ = ["MEASURES", "OPTIONS", "similarity"]

MEASURES = ("rsa", "cka", "dds", "svcca", "attribution", *CATALOG)
# Each measure's options and their defaults (None: chosen from the others, see the docstring).
OPTIONS: dict[str, dict[str, Any]] = {
    "rsa": {"metric": "correlation", "method": "spearman"},
    "cka": {"kernel": "linear", "threshold": 1.0, "debiased": None, "minibatch": None},
    "dds": {
        "normalization": "znorm",
        "kernel": "linear",
        "shape": None,
        "groups": 2,
        "threshold": 0.5,
        "debiased": True,
    },
    "svcca": {"variance": 0.99},
    "attribution": {},
    **{name: dict(m.options) for name, m in CATALOG.items()},
}

Models = ArrayIn | Sequence[ArrayIn] | Mapping[Any, ArrayIn]


def similarity(
    features: Models,
    measure: str = "rsa",
    *,
    other: Models | None = None,
    backend: str = "auto",
    memory: int | str | None = None,
    **options: Any,
) -> ArrayOut:
    """Similarity of every pair of models from their features, by one of several measures.

    features: the models' features on the same n images: a (B, n, d) array or tensor (any
        leading dims: (..., n, d) is flattened to B = prod(...) models in C order), or a list
        or dict of (n, d_i) arrays/tensors — the widths d_i may differ. A dict's keys label
        the models: the result's rows and columns follow the dict's order, `list(features)`.
    other: a second set of models in the same forms, on the same n images, or None.
    Returns S (B, B), symmetric with exact ones on the diagonal (distances: zeros; the
    asymmetric measures pwcca, cknna and ridge: row i is features[i]'s), or (B, Bo) with `other`;
    float64 when any input is float64 or integer, else float32; as the kind of array given
    (the first model's kind for a list or dict: numpy, or a torch tensor on its device).

    measure and its options (keyword arguments; any other raises TypeError naming it):
      "rsa"    metric="correlation" | "cosine" | "euclidean" for each model's RDM
               (fastrsa.rdms), then method="spearman" | "pearson" | "cosine" | "kendall" (or any
               other method of fastrsa.compare) comparing the RDMs.
      "cka"    Centered Kernel Alignment (Kornblith et al., ICML 2019): kernel="linear" |
               "rbf" | "laplacian"; threshold=1.0 (rbf bandwidth as a fraction of the median
               distance, their heuristic); debiased=False (True: the unbiased HSIC estimator,
               U-centred Grams, Song et al. 2012); minibatch=None or a batch size m: minibatch
               CKA (Nguyen et al., ICLR 2021), HSIC averaged over consecutive batches of m
               images (unbiased unless debiased=False), for n too large for one n x n Gram.
               See fastrsa.measures.cka for the formulas.
      "dds"    Duality Diagram Similarity (Dwivedi et al., ECCV 2020) as the authors' code:
               normalization="znorm" | "none" | "centering", or with shape=(h, w, c) (features
               flattened from (n, h, w, c)) "group" (groups=2) | "instance" | "layer" |
               "batch"; kernel="linear" | "rbf" (threshold=0.5) | "laplacian" or a distance
               "pearson" | "euclidean" | "cosine"; then CKA with debiased=True.
               See fastrsa.measures.dds.
      "svcca"  SVCCA (Raghu et al., NeurIPS 2017): each model's centred features reduced by
               SVD to the directions keeping variance=0.99 of the variance, then the mean
               canonical correlation of each pair. See fastrsa.measures.svcca.
      "nbs"    normalised Bures similarity (procrustes with alpha=1 as a similarity in [0, 1]).
      "procrustes"  generalised shape metrics (Williams et al., NeurIPS 2021; netrep):
               alpha=1.0 (1: Procrustes, 0: CCA, between: partial whitening), score="angular"
               (a distance in radians, [0, pi/2]) | "euclidean" (a distance in the features'
               units) | "nbs" (a similarity). See fastrsa.measures.procrustes.
      "mutual-knn", "jaccard-knn", "cknna"  k-nearest-neighbour alignment (Huh et al., ICML
               2024; ReSi): k=10 cosine neighbours, self excluded, ties to the lower index;
               mutual: mean |N_A(i) ∩ N_B(i)| / k; jaccard: mean |∩| / |∪|; CKNNA: CKA
               restricted to mutual neighbours. See fastrsa.measures.knn.
      "cca", "pwcca"  mean canonical correlation, and projection-weighted CCA (Morcos et al.,
               NeurIPS 2018: row i weighted by features[i]'s neurons), on each model's SVD
               basis keeping variance=1.0. See fastrsa.measures.svcca.
      "ridge"  encoding predictivity (Brain-Score style): row = source, column = target, the
               median (score="median" | "mean") over the target's units of Pearson r between
               cross-validated ridge predictions and the truth; folds=5 contiguous folds,
               alpha from alphas (10**-3 .. 10**5) by leave-one-out (inner_folds=None) or
               inner k-fold CV. See fastrsa.measures.ridge.
      "attribution"  Song et al. (NeurIPS 2019): features are attribution maps (B, n, ...),
               S = mean over images of the cosine of two models' maps
               (fastrsa.measures.attribution.attribution_similarity; arrays only).

    Any measure against its permutation null (a calibrated score and a p-value):
    fastrsa.stats.calibrated.

    backend: "auto" computes Gram products with torch for torch input (on its device) and
        with numpy (BLAS) otherwise; "torch" (or "triton": its Gram products are torch's)
        computes with torch, on CUDA when there is one; "numpy", "numba" and "reference"
        with numpy. For "rsa" the backend picks the rdms and compare kernels.
    memory: this call's working-memory budget (bytes, or a string like "4GB"); default
        `fastrsa.get_memory_budget()`. cka/dds hold every model's centred n x n Gram at once
        when they fit in the budget (each computed once, all pairs in one matrix product);
        otherwise groups of models that fit, recomputing a group's Grams for each later group.

    Accuracy: float64 results agree with the papers' formulas evaluated plainly in float64 to
    about 1e-10 (tests/test_measures.py). Grams are computed in the inputs' precision (float64
    or float32) and their inner products summed in float64 beyond 2**24 terms. Any finite scale
    (1e-20..1e20 tested) and large common offsets (1e8 + noise) keep these bounds: scale-free
    measures rescale each model by a power of two, means are taken in float64, and each
    centred Gram is scaled before the products (docs/guide/accuracy.md); never a NaN.

    Refused (ValueError naming the model, e.g. features[2] or features['resnet']): NaN or Inf,
    a model that is not 2-D, no models or an empty model, models (or `other`) with different
    numbers of images n, fewer than 3 images (4 for the unbiased estimators), and constant
    features where the measure is undefined (or a laplacian kernel that is the identity, for
    features far above unit scale). TypeError for unknown options or non-numbers.
    """
    check_choice(measure, MEASURES, "measure")
    unknown = sorted(set(options) - set(OPTIONS[measure]))
    if unknown:
        valid = ", ".join(OPTIONS[measure]) or "none"
        raise TypeError(
            f"similarity(measure={measure!r}) got unknown option(s) "
            f"{', '.join(map(repr, unknown))}; its options are: {valid}"
        )
    check_backend_name(backend)
    if measure == "attribution":
        return attribution_similarity(features, other, memory=memory)  # type: ignore[arg-type]
    opts = {**OPTIONS[measure], **options}
    names_a, raw_a = _split(features, "features")
    names_b, raw_b = ([], []) if other is None else _split(other, "other")
    origin = A.origin_of(raw_a[0])

    if measure == "rsa":
        return _rsa(
            raw_a,
            names_a,
            raw_b if other is not None else None,
            names_b,
            origin,
            backend,
            memory,
            opts,
        )

    torch_kind = backend in ("torch", "triton") or (backend == "auto" and A.is_torch(raw_a[0]))
    be = get_backend(
        "torch" if backend == "auto" and torch_kind else backend, cuda=A.is_cuda(raw_a[0])
    )
    kind = "torch" if torch_kind else "numpy"
    device = device_for(be, raw_a[0]) if torch_kind else None
    models_a = [_checked(x, nm, kind, device) for x, nm in zip(raw_a, names_a, strict=True)]
    models_b = [_checked(x, nm, kind, device) for x, nm in zip(raw_b, names_b, strict=True)]
    _check_images(models_a, names_a, models_b, names_b)
    wide = any(A.is_float64(x) for x in (*models_a, *models_b))
    models_a = [A.cast_result(x, wide) for x in models_a]
    models_b = [A.cast_result(x, wide) for x in models_b]
    budget = budget_for(memory, device)
    n = models_a[0].shape[0]
    b_or_none = models_b if other is not None else None

    if measure in CATALOG:
        entry = CATALOG[measure]
        out = entry.run(models_a, b_or_none, names_a, names_b, budget, opts)
        result = A.cast_result(out, wide)
        distance = entry.distance and opts.get("score") != "nbs"
        if other is None and entry.symmetric and not distance:
            result = A.symmetrise_unit_diagonal(result)
        return A.back_to(result, origin)
    if measure == "cka":
        out = _cka(models_a, b_or_none, names_a, names_b, n, budget, opts)
    elif measure == "dds":
        debiased = _flag(opts["debiased"], "debiased")
        _check_n(n, 4 if debiased else 3, "features")
        out = dds_matrix(
            models_a,
            b_or_none,
            normalization=opts["normalization"],
            kernel=opts["kernel"],
            shape=opts["shape"],
            groups=_int(opts["groups"], "groups", 1),
            threshold=_positive(opts["threshold"], "threshold"),
            debiased=debiased,
            backend=backend,
            memory=memory,
            budget=budget,
            names_a=names_a,
            names_b=names_b,
        )
    else:
        _check_n(n, 3, "features")
        variance = opts["variance"]
        if isinstance(variance, bool) or not isinstance(variance, int | float):
            raise TypeError(f"variance must be a number in (0, 1]; got {variance!r}")
        out = svcca_matrix(
            models_a, b_or_none, variance=float(variance), names_a=names_a, names_b=names_b
        )
    result = A.cast_result(out, wide)
    if other is None:
        result = A.symmetrise_unit_diagonal(result)
    return A.back_to(result, origin)


def _split(models: Any, name: str) -> tuple[list[str], list[Any]]:
    """(names for errors, one (n, d) array per model) from an array, a list or a dict."""
    if isinstance(models, Mapping):
        names = [f"{name}[{key!r}]" for key in models]
        values = list(models.values())
    elif isinstance(models, list | tuple):
        names = [f"{name}[{i}]" for i in range(len(models))]
        values = list(models)
    else:
        arr = models if A.is_torch(models) else A.as_array(models, name)
        if arr.ndim < 3:
            hint = f" (use {name}[None] or [{name}] for one model)" if arr.ndim == 2 else ""
            raise ValueError(
                f"{name} must be (B, n, d) — or (..., n, d), or a list or dict of (n, d) "
                f"arrays; got shape {tuple(arr.shape)}{hint}"
            )
        flat = arr.reshape(-1, *arr.shape[-2:])
        names = [f"{name}[{i}]" for i in range(flat.shape[0])]
        values = list(flat)
    if not values:
        raise ValueError(f"{name} holds no models (got an empty {type(models).__name__})")
    return names, values


def _checked(x: Any, name: str, kind: str, device: Any) -> Any:
    """One model as a finite float (n, d) array of `kind` (on `device` for torch)."""
    arr = A.as_checked(x, name, kind, device)
    A.check_ndim(arr, name, "2-D (n images, d features)", arr.ndim == 2)
    A.check_nonempty(arr, name)
    A.check_values(arr, name)
    return arr


def _check_images(a: list[Any], names_a: list[str], b: list[Any], names_b: list[str]) -> None:
    n = a[0].shape[0]
    for x, nm in (*zip(a, names_a, strict=True), *zip(b, names_b, strict=True)):
        if x.shape[0] != n:
            raise ValueError(
                f"{nm} has {x.shape[0]} images (rows) but {names_a[0]} has {n}: every model "
                "must be measured on the same images"
            )


def _check_n(n: int, least: int, name: str) -> None:
    if n < least:
        raise ValueError(f"{name} needs at least {least} images (rows) here; got n = {n}")


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def _int(value: Any, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int; got {value!r}")
    if value < least:
        raise ValueError(f"{name} must be at least {least}; got {value}")
    return int(value)


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise TypeError(f"{name} must be a positive number; got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return float(value)


def _cka(
    a: list[Any],
    b: list[Any] | None,
    names_a: list[str],
    names_b: list[str],
    n: int,
    budget: int,
    opts: dict[str, Any],
) -> np.ndarray:

    kernel = opts["kernel"]
    check_choice(kernel, KERNELS, "kernel")
    minibatch = opts["minibatch"]
    debiased = opts["debiased"]
    debiased = minibatch is not None if debiased is None else _flag(debiased, "debiased")
    least = 4 if debiased else 3
    _check_n(n, least, "features")
    if minibatch is not None:
        minibatch = _int(minibatch, "minibatch", least)
    return cka_matrix(
        a,
        b,
        kernel=kernel,
        threshold=_positive(opts["threshold"], "threshold"),
        debiased=debiased,
        minibatch=minibatch,
        budget=budget,
        names_a=names_a,
        names_b=names_b,
    )


def _rsa(
    raw_a: list[Any],
    names_a: list[str],
    raw_b: list[Any] | None,
    names_b: list[str],
    origin: A.Origin,
    backend: str,
    memory: Any,
    opts: dict[str, Any],
) -> ArrayOut:
    """RDMs of each model (fastrsa.rdms, one call per model), then fastrsa.compare."""

    check_choice(opts["metric"], METRICS, "metric")
    kind, device = origin.kind, origin.device
    a = [_checked_keep_int(x, nm, kind, device) for x, nm in zip(raw_a, names_a, strict=True)]
    b = [_checked_keep_int(x, nm, kind, device) for x, nm in zip(raw_b or [], names_b, strict=True)]
    _check_images(a, names_a, b, names_b)

    def stacked(models: list[Any], names: list[str]) -> Any:
        out = []
        for x, nm in zip(models, names, strict=True):
            try:
                out.append(rdms(x, opts["metric"], backend=backend, memory=memory))
            except ValueError as err:
                raise ValueError(f"{nm}: {err}") from None
        if A.is_torch(out[0]):
            import torch

            wide = any(A.is_float64(r) for r in out)
            return torch.stack([A.cast_result(r, wide) for r in out])
        return np.stack(out)

    ra = stacked(a, names_a)
    rb = None if raw_b is None else stacked(b, names_b)
    return compare(ra, rb, opts["method"], backend=backend, memory=memory)


def _checked_keep_int(x: Any, name: str, kind: str, device: Any) -> Any:
    """A model for rdms: integers stay integers (rdms takes them exactly)."""
    arr = A.as_checked(x, name, kind, device, keep_int=True)
    A.check_ndim(arr, name, "2-D (n images, d features)", arr.ndim == 2)
    A.check_nonempty(arr, name)
    A.check_values(arr, name)
    return arr
