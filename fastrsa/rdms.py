"""RDMs of many feature matrices at once, and the condensed <-> square conversion."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import _arrays as A
from . import io
from ._backend import check_backend_name, device_for, get_backend, supporting
from ._checks import check_choice
from ._condensed import n_from_condensed, squareform
from ._gpu_stream import rdms_streamed
from ._memory import budget_for
from ._typing import ArrayIn, ArrayOut
from .reference import METRICS

__all__ = ["PRECISIONS", "n_from_condensed", "rdms", "rdms_of_feature_file", "squareform"]

PRECISIONS = ("ieee", "tf32x3", "tf32")


def _check_metric(metric: str) -> None:
    check_choice(metric, METRICS, "metric")


def rdms(
    features: ArrayIn,
    metric: str = "correlation",
    backend: str = "auto",
    precision: str = "ieee",
    memory: int | str | None = None,
) -> ArrayOut:
    """Representational dissimilarity matrices of a batch of feature matrices.

    features: (..., n, d) — n images (stimuli) by d features, any leading batch dims (models ×
        layers × ...); numpy array or torch tensor; float or integer.
    metric: "correlation" (1 - Pearson r of each row centred by its own mean; the paper's),
        "cosine" (1 - cosine similarity) or "euclidean".
    precision: "ieee" (float32 or float64 arithmetic); triton backend only: "tf32x3" (products
        as three tensor-core tf32 products: about float32's accuracy, faster) or "tf32" (one
        tf32 product: fastest, |error| ~1e-4 on 1 - r).
    memory: this call's working-memory budget (bytes, or a string like "4GB"); default
        `fastrsa.get_memory_budget()`.
    Returns condensed RDMs (..., n*(n-1)//2), pairs i < j in row-major order as scipy's `pdist`,
    float64 for float64/integer input and float32 otherwise, as the kind of array given.

    Accuracy against `pdist` in float64 on the same values, for |x| from 1e-30 to 1e30 and
    float32 rows with mean/std up to 1e6: correlation/cosine within 1e-5 (float32 results) or
    1e-12 (float64); euclidean within 1e-6 (float32) or 1e-10 (float64) of each distance,
    near-duplicate rows included; cosine distances too small for the Gram's rounding (rows
    sharing a large offset, 1e8 + noise) recomputed from float64 unit rows, within 1e-6 of
    themselves (docs/guide/accuracy.md). Integer input is shifted exactly in integers first.

    Holds in memory: the input (a float64 copy for integers or rows needing rescaling) and the
    result, plus working memory bounded by the budget: the backend's temporaries (centred rows,
    Gram matrices, about (n*d + 3*n*n) * 8 bytes per matrix) are computed a chunk of the batch
    at a time within `memory` bytes (at least one matrix at a time, so a single huge matrix can
    exceed a tiny budget). Host input for a GPU backend is moved in chunks of the batch: a
    chunk's input and RDMs take at most half the budget on the GPU, the kernels' temporaries the
    other half, so the GPU holds about `memory` bytes whatever the batch, and the RDMs come back
    to the host. Refuses results larger than the device's memory (e.g. transposed features) up
    front.
    """
    _check_metric(metric)
    check_backend_name(backend)
    origin = A.origin_of(features)
    be = get_backend(backend, cuda=A.is_cuda(features))
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'ieee', 'tf32x3' or 'tf32'; got {precision!r}")
    if precision not in be.capabilities.precisions:
        raise ValueError(
            f"precision={precision!r} needs the {' or '.join(supporting(precisions=precision))} "
            f"backend; this call uses {be.name!r}"
        )
    device = device_for(be, features)
    budget = budget_for(memory, device)
    resident = A.lies_on(features, device)
    # Host input for a torch-kind backend is checked where it lies and streamed (below).
    x = A.as_checked(features, "features", be.kind, device if resident else None, keep_int=True)
    A.check_ndim(x, "features", "at least 2-D (..., n images, d features)", x.ndim >= 2)
    n, d = x.shape[-2:]
    if n < 3:
        raise ValueError(
            f"features needs at least 3 images (rows, axis -2) for an RDM; got n = {n}"
        )
    if d == 0:
        shape = tuple(x.shape)
        raise ValueError(f"features has d = 0 features (axis -1); need at least 1 (shape {shape})")
    A.check_nonempty(x, "features")
    lead = tuple(x.shape[:-2])
    batch = int(np.prod(lead, dtype=np.int64))
    _check_fits(x, batch, n, d)
    refuse = {"correlation": "constant", "cosine": "zero", "euclidean": None}[metric]
    lo, hi = A.check_values(x, "features", refuse, what="feature row")
    exps = None
    if A.is_integer(x):  # exact: shifted in integers first where the metric allows
        shift = {"correlation": lo, "euclidean": _column_min(x), "cosine": None}[metric]
        x = A.exact_float64(x, shift, {"correlation": -1, "euclidean": -2}.get(metric))
    elif metric != "euclidean" or A.is_float64(x):
        # rows far from unit scale: rescaled by powers of two (exact), so nothing overflows.
        # (float32 euclidean needs none: every backend computes it in float64.)
        x, exps = A.rescaled(x, lo, hi, per_matrix=metric == "euclidean")
    x3 = x.reshape(-1, n, d)
    if be.kind == "torch" and not resident:
        out = rdms_streamed(be, x3, metric, device, precision, budget)
    else:
        out = be.rdm(x3, metric, precision=precision, budget=budget)
    if metric == "euclidean":
        out = A.scaled_back(out, None if exps is None else exps.reshape(-1), "features")
    out = A.cast_result(out, A.is_float64(x)).reshape(*lead, n * (n - 1) // 2)
    return A.back_to(out, origin)


def _column_min(x: Any) -> Any:
    """Each (n, d) matrix's column minimum, shape (..., d)."""
    return x.amin(dim=-2) if A.is_torch(x) else x.min(axis=-2)


def _check_fits(x: Any, batch: int, n: int, d: int) -> None:
    """Refuse, before allocating, RDMs that alone would exceed the memory of the device holding
    the input: usually features given as (d, n) instead of (n, d)."""
    need = batch * (n * (n - 1) // 2) * (8 if A.is_float64(x) or A.is_integer(x) else 4)
    have = A.device_memory(x)
    if need > have:
        hint = " Are they transposed? They must be (..., n images, d features)." if n > d else ""
        raise ValueError(
            f"features: RDMs of {batch} x {n} images need {need / 2**30:.1f} GiB, more than "
            f"the {have / 2**30:.1f} GiB of memory here (shape {tuple(x.shape)}).{hint}"
        )


def rdms_of_feature_file(
    path: str | os.PathLike, name: str = "features", backend: str = "auto"
) -> tuple[list[str], np.ndarray]:
    """(labels, condensed RDMs (K, m)) of a feature file (io.load_arrays: .npy or .npz): each
    array (n, d) is one model's features, labelled by its key; an array (..., n, d) is a batch
    labelled `key[i]` (`key[i,j]` for more leading dims). RDMs by fastrsa.rdms (correlation
    distance) on `backend`. Errors name `name` (the caller's argument) and the array; every
    array must hold the same number of images n."""
    labels, rows = [], []
    for key, arr in io.load_arrays(path, name).items():
        try:
            out = rdms(arr, backend=backend)
        except (ValueError, TypeError) as err:
            raise type(err)(f"{name}: array {key!r} of {path}: {err}") from None
        lead = arr.shape[:-2]
        if not lead:
            labels.append(key)
        else:
            labels += [f"{key}[{','.join(map(str, i))}]" for i in np.ndindex(*lead)]
        rows += list(np.asarray(out).reshape(-1, out.shape[-1]))
    if len({len(r) for r in rows}) > 1:
        raise ValueError(f"{name}: the arrays of {path} hold different numbers of images")
    return labels, np.stack(rows)
