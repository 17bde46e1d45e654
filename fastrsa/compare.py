"""Comparing RDMs (or any vectors): rank transform and all-pairs similarity."""

from __future__ import annotations

from typing import Any

from . import _arrays as A
from ._backend import check_backend_name, device_for, get_backend
from ._checks import check_choice
from ._gpu_stream import compare_blocked, fits, ranked
from ._memory import budget_for
from ._typing import ArrayIn, ArrayOut
from .rdm_inputs import unwrap_rsatoolbox
from .reference import METHODS, RANK_METHODS, UNCORRECTED

__all__ = ["compare", "rank_transform"]


def rank_transform(x: ArrayIn, backend: str = "auto", memory: int | str | None = None) -> ArrayOut:
    """Ranks along the last axis, identical to scipy.stats.rankdata(x, method="average", axis=-1).

    x: (..., M), numpy array or torch tensor, floats or integers. Returns float64 ranks 1..M
    (ties get the mean of the ranks they span), same shape, as the kind of array given. Exact:
    integers are sorted as integers (int64 beyond 2**53 too), floats as floats. float64 always:
    SciPy 1.18 returns float32 ranks for float32 input, which are inexact once M exceeds 2**24.

    memory: this call's working-memory budget (bytes, or a string like "4GB"); default
    `fastrsa.get_memory_budget()`. Holds the input and the float64 result; GPU backends sort
    chunks of rows within the budget, and host input for them goes to the GPU a chunk of rows
    at a time (a chunk and its ranks within half the budget).
    """
    check_backend_name(backend)
    origin = A.origin_of(x)
    be = get_backend(backend, cuda=A.is_cuda(x))
    device = device_for(be, x)
    budget = budget_for(memory, device)
    resident = A.lies_on(x, device)
    arr = A.as_checked(x, "x", be.kind, device if resident else None, keep_int=True)
    A.check_ndim(arr, "x", "at least 1-D (..., M)", arr.ndim >= 1)
    A.check_nonempty(arr, "x")
    A.check_values(arr, "x")
    rows = arr.reshape(-1, arr.shape[-1])
    if be.kind == "torch" and not resident:
        out = ranked(be, rows, device, budget)
    else:
        out = be.rank(rows, budget=budget)
    return A.back_to(out.reshape(arr.shape), origin)


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


def _prepared(v: Any, name: str, method: str, be, device, budget: int) -> Any:
    """Checked rows, ready for the backend: integers made exact floats (ranks for the rank
    methods, which they leave unchanged; row-shifted for pearson), float rows far from unit
    scale rescaled by powers of two for pearson and cosine (both invariant to a row's scale).
    Constant rows are refused except for rho-a and tau-a, where they are defined."""
    refuse = None if method in UNCORRECTED else "zero" if method == "cosine" else "constant"
    lo, hi = A.check_values(v, name, refuse, what="vector")
    if A.is_integer(v):
        if method in RANK_METHODS:
            if be.kind == "torch" and v.device != device:  # host rows: ranked on the device
                return ranked(be, v, device, budget)
            return be.rank(v, budget=budget)
        return A.exact_float64(v, lo, -1) if method == "pearson" else A.exact_float64(v, None, None)
    if method in ("pearson", "cosine"):
        v, _ = A.rescaled(v, lo, hi)
    return v


def compare(
    a: ArrayIn,
    b: ArrayIn | None = None,
    method: str = "spearman",
    backend: str = "auto",
    memory: int | str | None = None,
) -> ArrayOut:
    """All-pairs similarity of the rows of `a` and `b` (e.g. condensed RDMs of many models).

    a: (Ba, M); b: (Bb, M) or None for all pairs of a (arrays, tensors, or rsatoolbox RDMs
    objects: their dissimilarity vectors, as float64 numpy). method: "spearman" (Pearson of
    average-tie ranks, as scipy.stats.spearmanr), "pearson", "cosine", "kendall" (tau-b, as
    scipy.stats.kendalltau), or rsatoolbox's measures without tie correction (its
    `rsatoolbox.rdm.compare` methods of the same names):
      "rho-a": 12 x.y / (M^3 - M) - 3 (M + 1) / (M - 1), x and y the rows' average-tie ranks
        (Spearman's formula, not renormalised for ties: the expected Spearman rho under random
        tie breaking);
      "tau-a": (concordant - discordant) / (M (M - 1) / 2), pairs tied in either row counting as
        neither; Knight's O(M log M) count per pair, on the CPU for every backend.
    Returns (Ba, Bb) as the kind of array given: float64 unless both inputs are float32 (or
    lower); rho-a and tau-a always float64. With b None, symmetric, with exact ones on the
    diagonal for spearman, pearson, cosine and kendall; rho-a and tau-a keep their own diagonal
    (below 1 for a row with ties, as rsatoolbox gives). Constant rows are refused (their
    correlation is undefined) except by rho-a and tau-a, where a constant row scores 0 against
    every row. Integer rows are compared exactly (as their ranks, or shifted in integers for
    pearson). Tolerance against scipy in float64 on the same values: 1e-5 for float32 results,
    1e-12 for float64 results, for rows anywhere in the dtype's finite range; rho-a and tau-a
    are one rounding from the exact ratio (rho-a from exact products of ranks for M up to
    ~3e5, tau-a from exact pair counts; rsatoolbox's own values differ by ~1e-15).

    memory: this call's working-memory budget (bytes, or a string like "4GB"); default
    `fastrsa.get_memory_budget()`. Holds the inputs, the (Ba, Bb) result and, on the CPU
    backends, a normalised copy of the rows (float64 for numpy) and their ranks. GPU backends
    rank and sum partial products in chunks within the budget; host input for them larger than
    half the budget is ranked and compared in blocks of rows, two blocks within half the budget
    and the kernels' temporaries within the other half, so the GPU holds about `memory` bytes
    and the result stays on the host. Kendall and tau-a run on the CPU for every backend.
    """
    check_choice(method, METHODS, "method")
    check_backend_name(backend)
    a, b = unwrap_rsatoolbox(a, "a"), None if b is None else unwrap_rsatoolbox(b, "b")
    origin = A.origin_of(a)
    be = get_backend(backend, cuda=A.is_cuda(a))
    device = device_for(be, a)
    budget = budget_for(memory, device)
    resident = A.lies_on(a, device)
    # Host input for a torch-kind backend is checked where it lies, then moved (below).
    va = _vectors(a, "a", be, device if resident else None)
    vb = None if b is None else _vectors(b, "b", be, device if resident else None)
    if vb is not None and vb.shape[1] != va.shape[1]:
        raise ValueError(
            "a and b must have the same number of values per row; got "
            f"{va.shape[1]} and {vb.shape[1]} (RDMs of different image counts cannot be compared)"
        )
    va = _prepared(va, "a", method, be, device, budget)
    vb = None if vb is None else _prepared(vb, "b", method, be, device, budget)
    wide = method in UNCORRECTED or A.is_float64(va) or (vb is not None and A.is_float64(vb))
    va = A.cast_result(va, wide)  # float32 or float64 from here on
    vb = None if vb is None else A.cast_result(vb, wide)
    if be.kind == "torch" and not resident:
        if method not in be.capabilities.native_methods:  # computed on the CPU: stays there
            out = be.compare(va, vb, method, budget=budget)
        elif not fits(budget, va, vb):
            out = compare_blocked(be, va, vb, method, device, budget)
        else:
            va, vb = va.to(device), None if vb is None else vb.to(device)
            out = be.compare(va, vb, method, budget=budget // 2)
    else:
        out = be.compare(va, vb, method, budget=budget)
    out = A.cast_result(out, wide)
    if vb is None and method in UNCORRECTED:
        out = 0.5 * (out + out.T)  # exact already (exact products and counts); the diagonal kept
    elif vb is None:
        out = A.symmetrise_unit_diagonal(out)
    return A.back_to(out, origin)
