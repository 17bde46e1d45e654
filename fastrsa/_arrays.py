"""Input handling shared by the public API: numpy/torch in and out, and the bad-input checks.

Everything here runs before a backend is called, so a backend only ever sees finite, real,
floating-point arrays of the right rank. Errors name the argument, what was expected and what came.
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


@dataclass(frozen=True)
class Origin:
    """Where an input came from, so the result can go back as the same kind."""

    kind: str  # "numpy" | "torch"
    device: Any = None  # torch.device for tensors


def origin_of(x: Any) -> Origin:
    return Origin("torch", x.device) if is_torch(x) else Origin("numpy")


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """float64 stays float64; float16/float32 compute in float32; integers and bools in float64."""
    if dtype == np.float64:
        return np.dtype(np.float64)
    if dtype.kind == "f":
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def to_numpy(x: Any, name: str) -> np.ndarray:
    """A numpy view of `x` (a copy only when unavoidable: GPU tensors, bfloat16, lists)."""
    if is_torch(x):
        import torch

        t = x.detach()
        if t.is_complex():
            raise TypeError(f"{name} must be real; got a complex tensor of dtype {t.dtype}")
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        return t.cpu().numpy()
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as err:  # ragged lists and the like
        raise TypeError(f"{name} must be an array of numbers; could not convert it: {err}") from None
    return arr


def check_numeric(arr: np.ndarray, name: str) -> np.ndarray:
    """Refuse complex, non-numeric and empty arrays; return a float array in its compute dtype."""
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real; got complex dtype {arr.dtype}")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers; got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    out = arr.astype(compute_dtype(arr.dtype), copy=False)
    if not np.isfinite(out).all():
        bad = np.argwhere(~np.isfinite(out))[0]
        raise ValueError(
            f"{name} holds NaN or Inf (first at index {tuple(int(i) for i in bad)}); "
            "remove or impute them first"
        )
    return out


def check_ndim(arr: np.ndarray, name: str, expected: str, ok: bool) -> None:
    if not ok:
        raise ValueError(f"{name} must be {expected}; got shape {tuple(arr.shape)}")


def check_rows_vary(arr: np.ndarray, name: str, what: str, about_zero: bool = False) -> None:
    """Refuse rows (last axis) that are constant (or all zero when `about_zero`).

    arr: (..., k). `what` words the error (e.g. "feature row", "vector").
    """
    if about_zero:
        bad = ~np.any(arr != 0, axis=-1)
        problem = "is all zeros (its norm is 0, so the cosine is undefined)"
    else:
        bad = np.all(arr == arr[..., :1], axis=-1)
        problem = "is constant (zero variance, so the correlation is undefined)"
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f"{name}[{', '.join(map(str, idx))}]"
        if arr.ndim == 3:
            where = f"{name}: batch index {idx[0]}, row {idx[1]}"
        elif arr.ndim == 2 and what == "feature row":
            where = f"{name}: row {idx[0]}"
        raise ValueError(f"{what} {problem}: {where} ({int(bad.sum())} such in all)")


def back_to(result: np.ndarray, origin: Origin) -> Any:
    """Return `result` as the kind the caller gave (a torch tensor on the input's device)."""
    if origin.kind == "torch":
        import torch

        return torch.from_numpy(np.ascontiguousarray(result)).to(origin.device)
    return result
