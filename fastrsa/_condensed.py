"""Condensed RDMs: the upper triangle (i < j, row-major, like scipy's `squareform`) of square
(n, n) RDMs, and the conversions and index arithmetic between the two layouts."""

from __future__ import annotations

import numpy as np

from . import _arrays as A
from ._typing import ArrayIn, ArrayOut
from .kernels._condensed import condensed_index, pair_index

__all__ = ["condensed_index", "n_from_condensed", "pair_index", "squareform"]


def n_from_condensed(m: int, name: str = "rdm") -> int:
    """n such that n*(n-1)/2 == m, or a ValueError naming `name`."""
    n = int(round((1 + np.sqrt(1 + 8 * m)) / 2))
    if n * (n - 1) // 2 != m or m == 0:
        raise ValueError(
            f"{name} has length {m}, which is not n*(n-1)/2 for any n >= 2: not a condensed RDM"
        )
    return n


def squareform(x: ArrayIn, to: str | None = None, checks: bool = True) -> ArrayOut:
    """Convert between condensed (..., n*(n-1)//2) and square (..., n, n) RDMs, batched.

    to: "square" or "condensed". By default an input whose last two dims are equal is square
    (scipy's rule for 2-D input), anything else condensed; say `to` when that is ambiguous (a
    batch of k condensed vectors of length k). With `checks`, a square input must be symmetric
    with a zero diagonal (to 1e-8 relative to its largest finite entry, like rsatoolbox) and
    hold no NaN (named by its first index) — else ValueError. Boolean input is refused
    (TypeError) both ways: it is not an RDM.
    """
    origin = A.origin_of(x)
    torch_dtype = str(getattr(x, "dtype", "")) if A.is_torch(x) else ""
    if torch_dtype == "torch.bool":  # checked here: as_checked would make it float64
        raise TypeError(f"x must hold real numbers (dissimilarities); got dtype {torch_dtype}")
    arr = A.as_checked(x, "x") if A.is_torch(x) else A.as_array(x, "x")
    if arr.dtype.kind not in "fiu":  # booleans are not dissimilarities, in either direction
        raise TypeError(f"x must hold real numbers (dissimilarities); got dtype {arr.dtype}")
    if to is None:
        to = "condensed" if arr.ndim >= 2 and arr.shape[-1] == arr.shape[-2] else "square"
    if to not in ("square", "condensed"):
        raise ValueError(f"to must be 'square', 'condensed' or None; got {to!r}")
    if arr.ndim == 0 or arr.size == 0:
        raise ValueError(f"x is empty or a scalar (shape {arr.shape})")
    if to == "square":
        n = n_from_condensed(arr.shape[-1], "x")
        i, j = np.triu_indices(n, k=1)
        out = np.zeros(arr.shape[:-1] + (n, n), dtype=arr.dtype)
        out[..., i, j] = arr
        out[..., j, i] = arr
        return A.back_to(out, origin)
    A.check_ndim(
        arr,
        "x",
        "square in its last two dims (..., n, n)",
        arr.ndim >= 2 and arr.shape[-1] == arr.shape[-2],
    )
    n = arr.shape[-1]
    if checks:
        nan = np.isnan(arr) if arr.dtype.kind == "f" else None
        if nan is not None and nan.any():
            first = tuple(int(k) for k in np.argwhere(nan)[0])
            raise ValueError(
                f"x holds NaN (first at index {first}; {int(nan.sum())} in all): a square RDM's "
                "entries must be numbers"
            )
        finite = np.abs(arr[np.isfinite(arr)]) if arr.dtype.kind == "f" else np.abs(arr)
        # the tolerance scales with the largest finite entry (an inf would make it inf: no check)
        scale = max(float(finite.max()) if finite.size else 0.0, 1e-300)
        if not np.allclose(arr, arr.swapaxes(-1, -2), rtol=0, atol=1e-8 * scale):
            raise ValueError("x is not symmetric: a square RDM must equal its transpose")
        if np.abs(np.diagonal(arr, axis1=-2, axis2=-1)).max() > 1e-8 * scale:
            raise ValueError("x has a non-zero diagonal: a square RDM's diagonal must be 0")
    i, j = np.triu_indices(n, k=1)
    return A.back_to(np.ascontiguousarray(arr[..., i, j]), origin)
