"""Input handling shared by the public API: numpy/torch in and out, and the bad-input checks.

Everything here runs before a backend is called, so a backend only ever sees finite, real,
floating-point arrays of the right rank and of the kind it takes (numpy arrays, or torch tensors
on its device). Errors name the argument, what was expected and what came. The checks run on the
array's own device: a CUDA tensor is checked on the GPU (one synchronisation, no copy).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._memory import physical_memory


def is_torch(x: Any) -> bool:
    """True for a torch.Tensor (without importing torch when the caller never did)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def lies_on(x: Any, device: Any) -> bool:
    """True for a torch tensor already on `device`."""
    return is_torch(x) and x.device == device


def is_cuda(x: Any) -> bool:
    return is_torch(x) and x.is_cuda


@dataclass(frozen=True)
class Origin:
    """Where an input came from, so the result can go back as the same kind."""

    kind: str  # "numpy" | "torch"
    device: Any = None  # torch.device for tensors


def origin_of(x: Any) -> Origin:
    return Origin("torch", x.device) if is_torch(x) else Origin("numpy")


def _dtype_kind(arr: Any) -> str:
    """numpy's dtype.kind letter for numpy arrays and torch tensors alike."""
    if not is_torch(arr):
        return arr.dtype.kind
    if arr.is_complex():
        return "c"
    if arr.is_floating_point():
        return "f"
    return "b" if arr.dtype == sys.modules["torch"].bool else "i"


def is_float64(arr: Any) -> bool:
    return str(arr.dtype).endswith("float64")


def as_checked(
    x: Any, name: str, kind: str = "numpy", device: Any = None, keep_int: bool = False
) -> Any:
    """`x` as a real array of `kind`: "numpy", or "torch" (on `device` when given, else where it
    lies; numpy input becomes a CPU tensor without a copy). TypeError for complex or non-numeric
    input.

    numpy: float64 stays, float16/float32 -> float32, integers/bools -> float64 (copies only to
    change dtype). torch: floating tensors keep their dtype (half types included), integers/bools
    -> float64. With `keep_int`, integers keep their dtype (bools become int64) so that callers
    can treat them exactly (see `exact_float64`).
    """
    arr: Any = x if is_torch(x) else as_array(x, name)  # a numpy array or a torch tensor
    letter = _dtype_kind(arr)
    if letter == "c":
        raise TypeError(f"{name} must be real; got complex dtype {arr.dtype}")
    if letter not in "fiub":
        raise TypeError(f"{name} must hold numbers; got dtype {arr.dtype}")
    integer = letter != "f"
    if kind == "numpy":
        if is_torch(arr):
            t = arr.detach().cpu()
            arr = (t.float() if letter == "f" and not is_float64(t) else t).numpy()  # bf16 -> f32
        if integer and keep_int:
            return arr.astype(np.int64) if letter == "b" else arr
        target = np.float64 if (integer or arr.dtype == np.float64) else np.float32
        return arr.astype(target, copy=False)
    import torch

    if not is_torch(arr) and arr.dtype == np.uint64 and keep_int:
        raise TypeError(f"{name}: uint64 arrays need a numpy backend (torch has no uint64 maths)")
    t = arr.detach() if is_torch(arr) else torch.from_numpy(np.ascontiguousarray(arr))
    if letter == "b" or (integer and not keep_int):
        t = t.to(torch.int64 if keep_int else torch.float64)
    return t.to(device) if device is not None else t


def is_integer(arr: Any) -> bool:
    """True for integer arrays and tensors (bools are converted before they get here)."""
    return _dtype_kind(arr) in "iu"


def exact_float64(arr: Any, lo: Any, axis: int | None) -> Any:
    """Integer values as float64, exactly shifted first: `arr - lo` in integer arithmetic
    (modulo 2**64, which is exact because every difference lies in [0, 2**64)), then one
    rounding to float64. `lo` is each row's minimum (axis=-1), each column's (axis=-2), or None
    for no shift. Correlation is invariant to a row shift and euclidean distance to a column
    shift, so int64 values beyond 2**53 that differ keep differing."""
    if axis is None:
        return arr.to(sys.modules["torch"].float64) if is_torch(arr) else arr.astype(np.float64)
    if is_torch(arr):
        torch = sys.modules["torch"]
        diff = arr.to(torch.int64) - lo.to(torch.int64).unsqueeze(axis)  # wraps modulo 2**64
        out = diff.to(torch.float64)
        return torch.where(diff < 0, out + 2.0**64, out)  # read the wrapped bits as unsigned
    diff = arr.astype(np.uint64) - np.expand_dims(lo, axis).astype(np.uint64)
    return diff.astype(np.float64)


# Powers of two outside which a row's largest |value| is first rescaled (exactly, by a power of
# two) so that its Gram sums neither overflow nor underflow: float32 (and half types) squares
# and sums of up to 2**24-long rows stay normal for |x| in [2**-24, 2**24]; float64 likewise.
_SAFE_EXPONENTS = {False: (-24, 24), True: (-250, 250)}


def rescaled(arr: Any, lo: Any, hi: Any, per_matrix: bool = False) -> tuple[Any, Any]:
    """Float rows whose largest |value| lies outside the safe range, rescaled by powers of two.

    arr: (..., n, d) or (R, M) floats; lo, hi: their per-row (last axis) min and max, as from
    `check_values`. Each row (or, with `per_matrix`, each (n, d) matrix: euclidean distances are
    invariant only to a common scale) is multiplied by 2**-e with e its largest value's binary
    exponent, so values end up below 1 in magnitude. Returns (arr, None) untouched when every
    row is already safe (the usual case: no copy), else (scaled copy, e) with e the exponents,
    shape (...) per matrix or (..., n) per row, to scale results back by 2**e.
    """
    torch = sys.modules.get("torch") if is_torch(arr) else None
    absmax = torch.maximum(lo.abs(), hi.abs()) if torch else np.maximum(np.abs(lo), np.abs(hi))
    if per_matrix:
        absmax = absmax.amax(dim=-1) if torch else absmax.max(axis=-1)
    exps = torch.frexp(absmax.double())[1] if torch else np.frexp(absmax.astype(np.float64))[1]
    low, high = _SAFE_EXPONENTS[is_float64(arr)]
    if bool(((exps >= low) & (exps <= high)).all()):
        return arr, None
    factor = torch.exp2(-exps.double()) if torch else np.ldexp(1.0, -exps)
    factor = factor[..., None] if per_matrix else factor
    scaled = (
        arr.double() * factor[..., None] if torch else arr.astype(np.float64) * factor[..., None]
    )
    return (scaled.to(arr.dtype) if torch else scaled.astype(arr.dtype)), exps


def rescaled_matrix(arr: Any) -> Any:
    """One (n, d) float matrix (numpy or torch) rescaled as a whole by a power of two (exact) when
    its largest |value| lies outside the safe range (`rescaled` with per_matrix); the matrix
    itself, no copy, when it is safe. For measures invariant to a model's scale (CKA, SVCCA),
    whose Gram sums must neither overflow nor underflow."""
    lo, hi = _row_min_max(arr)
    return rescaled(arr, lo, hi, per_matrix=True)[0]


def as_array(x: Any, name: str) -> np.ndarray:
    """np.asarray with a clear TypeError for ragged or non-numeric input."""
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as err:  # ragged lists and the like
        raise TypeError(
            f"{name} must be an array of numbers; could not convert it: {err}"
        ) from None


def _first(mask: Any) -> tuple[int, ...]:
    """Index of the first True of a boolean numpy array or tensor."""
    if is_torch(mask):
        mask = mask.cpu().numpy()
    return tuple(int(i) for i in np.argwhere(mask)[0])


def check_nonempty(arr: Any, name: str) -> None:
    if arr.numel() == 0 if is_torch(arr) else arr.size == 0:
        raise ValueError(f"{name} is empty (shape {tuple(arr.shape)})")


def _row_min_max(arr: Any) -> tuple[Any, Any]:
    """Per-row (last axis) min and max in one pass; NaN propagates into both."""
    if is_torch(arr):
        import torch

        return torch.aminmax(arr, dim=-1)
    return arr.min(axis=-1), arr.max(axis=-1)


def check_ndim(arr: Any, name: str, expected: str, ok: bool) -> None:
    if not ok:
        raise ValueError(f"{name} must be {expected}; got shape {tuple(arr.shape)}")


def check_values(
    arr: Any, name: str, refuse: str | None = None, what: str = "row"
) -> tuple[Any, Any]:
    """Refuse NaN/Inf anywhere, and (refuse="constant") rows along the last axis whose values are
    all equal, or (refuse="zero") rows that are all zero. One min/max pass over the data; the
    exact location is searched only when something is wrong. `what` words the row in errors.
    Returns each row's (min, max), shape arr.shape[:-1], for `rescaled` and `exact_float64`."""
    lo, hi = _row_min_max(arr)
    if is_integer(arr):
        finite = True
    else:
        finite = bool(((lo > -float("inf")) & (hi < float("inf"))).all())  # False for NaN too
    if not finite:
        bad = (arr != arr) | (arr == float("inf")) | (arr == -float("inf"))
        raise ValueError(
            f"{name} holds NaN or Inf (first at index {_first(bad)}); remove or impute them first"
        )
    if refuse is None:
        return lo, hi
    if refuse == "zero":
        bad = (lo == 0) & (hi == 0)
        problem = "is all zeros (its norm is 0, so the cosine is undefined)"
    else:
        bad = lo == hi
        problem = "is constant (zero variance, so the correlation is undefined)"
    if bool(bad.any()):
        idx = _first(bad)
        where = f"{name}[{', '.join(map(str, idx))}]"
        if arr.ndim == 3:
            where = f"{name}: batch index {idx[0]}, row {idx[1]}"
        elif arr.ndim == 2 and what == "feature row":
            where = f"{name}: row {idx[0]}"
        raise ValueError(f"{what} {problem}: {where} ({int(bad.sum())} such in all)")
    return lo, hi


def scaled_back(out: Any, exps: Any, name: str) -> Any:
    """Euclidean distances (B, m) of inputs rescaled by 2**-exps (B,), or None, back to the
    input's scale (exact); a ValueError naming `name` when they overflow the result's dtype
    (float32 distances of rows near float32's largest values)."""
    if is_torch(out):
        torch = sys.modules["torch"]
        if exps is not None:
            out = torch.ldexp(out.double(), exps.to(out.device)[:, None].double()).to(out.dtype)
        ok = bool(torch.isfinite(out).all())
    else:
        if exps is not None:
            out = np.ldexp(out, exps[:, None].astype(np.int32)).astype(out.dtype, copy=False)
        ok = bool(np.isfinite(out).all())
    if not ok:
        raise ValueError(f"{name}: distances overflow {out.dtype}; pass float64 {name}")
    return out


def device_memory(x: Any) -> int:
    """Bytes of memory of the device holding `x` (the host's physical memory for CPU arrays)."""
    if is_cuda(x):
        return sys.modules["torch"].cuda.get_device_properties(x.device).total_memory

    return physical_memory()


def cast_result(out: Any, wide: bool) -> Any:
    """float64 when `wide`, else float32 — for numpy arrays and tensors alike."""
    if is_torch(out):
        import torch

        return out.to(torch.float64 if wide else torch.float32)
    return out.astype(np.float64 if wide else np.float32, copy=False)


def symmetrise_unit_diagonal(out: Any) -> Any:
    """(B, B) -> (out + out.T) / 2 with the diagonal set to exactly 1."""
    out = 0.5 * (out + out.T)
    if is_torch(out):
        out.fill_diagonal_(1.0)
    else:
        np.fill_diagonal(out, 1.0)
    return out


def back_to(result: Any, origin: Origin) -> Any:
    """Return `result` as the kind the caller gave (a torch tensor on the input's device)."""
    if origin.kind == "torch":
        import torch

        if not is_torch(result):
            result = torch.from_numpy(np.ascontiguousarray(result))
        return result.to(origin.device)
    if is_torch(result):
        return result.cpu().numpy()
    return result
