"""Comparing RDMs (or any vectors): rank transform and all-pairs similarity."""

from __future__ import annotations

from typing import Any

from . import _arrays as A
from . import _stream
from ._backend import check_backend_name, device_for, get_backend
from .reference import METHODS


def rank_transform(x: Any, backend: str = "auto") -> Any:
    """Ranks along the last axis, identical to scipy.stats.rankdata(x, method="average", axis=-1).

    x: (..., M), numpy array or torch tensor, floats or integers. Returns float64 ranks 1..M
    (ties get the mean of the ranks they span), same shape, as the kind of array given. Exact:
    integers are sorted as integers (int64 beyond 2**53 too), floats as floats. float64 always:
    SciPy 1.18 returns float32 ranks for float32 input, which are inexact once M exceeds 2**24.
    """
    check_backend_name(backend)
    origin = A.origin_of(x)
    be = get_backend(backend, cuda=A.is_cuda(x))
    arr = A.as_checked(x, "x", be.kind, device_for(be, x), keep_int=True)
    A.check_ndim(arr, "x", "at least 1-D (..., M)", arr.ndim >= 1)
    A.check_nonempty(arr, "x")
    A.check_values(arr, "x")
    out = be.rank(arr.reshape(-1, arr.shape[-1])).reshape(arr.shape)
    return A.back_to(out, origin)


def _vectors(v: Any, name: str, be, device) -> Any:
    arr = A.as_checked(v, name, be.kind, device, keep_int=True)
    if arr.ndim != 2:
        hint = " (use fastrsa.squareform to condense square RDMs)" if arr.ndim == 3 else ""
        hint = hint or (f" (use {name}[None] for a single vector)" if arr.ndim == 1 else "")
        raise ValueError(f"{name} must be 2-D (models, values); got shape {arr.shape}{hint}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if arr.shape[1] < 2:
        raise ValueError(f"{name} needs at least 2 values per row to correlate; got {arr.shape[1]}")
    return arr


def _prepared(v: Any, name: str, method: str, be, device) -> Any:
    """Checked rows, ready for the backend: integers made exact floats (ranks for spearman and
    kendall, which they leave unchanged; row-shifted for pearson), float rows far from unit
    scale rescaled by powers of two for pearson and cosine (both invariant to a row's scale)."""
    refuse = "zero" if method == "cosine" else "constant"
    lo, hi = A.check_values(v, name, refuse, what="vector")
    if A.is_integer(v):
        if method in ("spearman", "kendall"):
            if be.kind == "torch":  # host rows are ranked on the device, then come back
                return be.rank(v.to(device)).to(v.device)
            return be.rank(v)
        return A.exact_float64(v, lo, -1) if method == "pearson" else A.exact_float64(v, None, None)
    if method in ("pearson", "cosine"):
        v, _ = A.rescaled(v, lo, hi)
    return v


def compare(a: Any, b: Any = None, method: str = "spearman", backend: str = "auto") -> Any:
    """All-pairs similarity of the rows of `a` and `b` (e.g. condensed RDMs of many models).

    a: (Ba, M); b: (Bb, M) or None for all pairs of a. method: "spearman" (Pearson of average-tie
    ranks, as scipy.stats.spearmanr), "pearson", "cosine", or "kendall" (tau-b, as
    scipy.stats.kendalltau). Returns (Ba, Bb) — with b None, symmetric with exact ones on the
    diagonal — float64 unless both inputs are float32 (or lower), as the kind of array given.
    Integer rows are compared exactly (as their ranks, or shifted in integers for pearson).
    Tolerance against scipy in float64 on the same values: 1e-5 for float32 results, 1e-12 for
    float64 results, for rows anywhere in the dtype's finite range.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    check_backend_name(backend)
    origin = A.origin_of(a)
    be = get_backend(backend, cuda=A.is_cuda(a))
    device = device_for(be, a)
    resident = A.is_torch(a) and a.device == device
    # Host input for a torch-kind backend is checked where it lies, then moved (below).
    va = _vectors(a, "a", be, device if resident else None)
    vb = None if b is None else _vectors(b, "b", be, device if resident else None)
    if vb is not None and vb.shape[1] != va.shape[1]:
        raise ValueError(
            "a and b must have the same number of values per row; got "
            f"{va.shape[1]} and {vb.shape[1]} (RDMs of different image counts cannot be compared)"
        )
    va = _prepared(va, "a", method, be, device)
    vb = None if vb is None else _prepared(vb, "b", method, be, device)
    wide = A.is_float64(va) or (vb is not None and A.is_float64(vb))
    va = A.cast_result(va, wide)  # float32 or float64 from here on
    vb = None if vb is None else A.cast_result(vb, wide)
    if be.kind == "torch" and not resident:
        if method != "kendall" and not _stream.fits(va, vb):
            out = _stream.compare_blocked(be, va, vb, method, device)
        else:
            va, vb = va.to(device), None if vb is None else vb.to(device)
            out = be.compare(va, vb, method)
    else:
        out = be.compare(va, vb, method)
    out = A.cast_result(out, wide)
    if vb is None:
        out = A.symmetrise_unit_diagonal(out)
    return A.back_to(out, origin)
