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


def is_torch(x: Any) -> bool:
    """True for a torch.Tensor (without importing torch when the caller never did)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


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


def as_checked(x: Any, name: str, kind: str = "numpy", device: Any = None) -> Any:
    """`x` as a real float array of `kind`: "numpy", or "torch" (on `device` when given, else
    where it lies; numpy input becomes a CPU tensor without a copy). TypeError for complex or
    non-numeric input.

    numpy: float64 stays, float16/float32 -> float32, integers/bools -> float64 (copies only to
    change dtype). torch: floating tensors keep their dtype (half types included), integers/bools
    -> float64.
    """
    arr = x if is_torch(x) else as_array(x, name)
    letter = _dtype_kind(arr)
    if letter == "c":
        raise TypeError(f"{name} must be real; got complex dtype {arr.dtype}")
    if letter not in "fiub":
        raise TypeError(f"{name} must hold numbers; got dtype {arr.dtype}")
    if kind == "numpy":
        if is_torch(arr):
            t = arr.detach().cpu()
            arr = (t.float() if letter == "f" and not is_float64(t) else t).numpy()  # bf16 -> f32
        target = np.float64 if (letter != "f" or arr.dtype == np.float64) else np.float32
        return arr.astype(target, copy=False)
    import torch

    t = arr.detach() if is_torch(arr) else torch.from_numpy(np.ascontiguousarray(arr))
    if letter != "f":
        t = t.to(torch.float64)
    return t.to(device) if device is not None else t


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


def check_values(arr: Any, name: str, refuse: str | None = None, what: str = "row") -> None:
    """Refuse NaN/Inf anywhere, and (refuse="constant") rows along the last axis whose values are
    all equal, or (refuse="zero") rows that are all zero. One min/max pass over the data; the
    exact location is searched only when something is wrong. `what` words the row in errors."""
    lo, hi = _row_min_max(arr)
    finite = (lo > -float("inf")) & (hi < float("inf"))  # False for NaN too
    if not bool(finite.all()):
        bad = (arr != arr) | (arr == float("inf")) | (arr == -float("inf"))
        raise ValueError(
            f"{name} holds NaN or Inf (first at index {_first(bad)}); remove or impute them first"
        )
    if refuse is None:
        return
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
