"""Reading RDM files: condensed or square RDMs from .npy/.npz arrays (`load_rdms`,
`rdms_from_arrays`)."""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable

import numpy as np

from .._condensed import n_from_condensed, squareform
from .array_files import load_arrays

__all__ = [
    "READINGS",
    "check_rdm_length",
    "condensed_length",
    "load_rdms",
    "rdm_kind",
    "rdm_length",
    "rdm_problem",
    "rdms_from_arrays",
]

# ---- reading RDM files --------------------------------------------------------------------------

READINGS = ("auto", "condensed", "square")


def condensed_length(k: int) -> bool:
    """Whether k = n*(n-1)/2 for some n >= 3: a length condensed RDMs can have."""
    try:
        return n_from_condensed(k) >= 3
    except ValueError:
        return False


def rdm_problem(err: ValueError) -> str:
    """What squareform found wrong with a square array, without its internal name "x"."""
    text = str(err)
    if "symmetric" in text:
        return "not symmetric"
    if "diagonal" in text:
        return "non-zero diagonal"
    return re.sub(r"^x ", "", text)


def _warn_note(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


def rdm_kind(
    what: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
    reading: str,
    square_problem: Callable[[], str | None],
    note: Callable[[str], None],
) -> str:
    """How an array of `shape` in an RDM file is read: "one" (a condensed RDM), "rows" (condensed
    RDMs), "square" (one square RDM) or "stack" (square RDMs); the errors and notes of
    `rdms_from_arrays`. square_problem(): what is wrong with the (square 2-D) array as one RDM
    ("not symmetric", ...), None when it is one; called only when the reading depends on it."""
    if dtype.kind not in "fiu":
        raise TypeError(f"{what} holds {dtype}, not numbers")
    if math.prod(shape) == 0:
        raise ValueError(f"{what} is empty")
    ndim = len(shape)
    if ndim == 2 and shape[0] == shape[1] and reading != "condensed":
        k = shape[0]
        if reading == "square" or not condensed_length(k):
            problem = square_problem()
            if problem is not None:
                hint = "; pass --condensed if its rows are condensed RDMs"
                hint = hint if condensed_length(k) else ""
                raise ValueError(f"{what} is not a square RDM ({problem}){hint}")
            return "square"
        if square_problem() is not None:
            note(
                f"{what} is not a symmetric zero-diagonal RDM, so it was read as {k} "
                "condensed RDMs (rows); pass --condensed or --square to choose"
            )
            return "rows"
        if reading == "auto":
            note(
                f"{what} was read as one square RDM of {k} images; pass --condensed if "
                f"it holds {k} condensed RDMs (rows)"
            )
        return "square"
    if reading == "square" and ndim == 2:
        raise ValueError(f"{what} is not square, but --square was given")
    if ndim == 3 and reading != "condensed" and shape[1] == shape[2]:
        return "stack"
    if ndim in (1, 2):
        return "one" if ndim == 1 else "rows"
    raise ValueError(f"{what} is not an RDM, nor a batch of RDMs")


def rdm_length(kind: str, shape: tuple[int, ...]) -> int:
    """The condensed length of the RDMs of an array of `kind` (see rdm_kind) and `shape`."""
    if kind in ("square", "stack"):
        n = shape[-1]
        return n * (n - 1) // 2
    return shape[-1]


def check_rdm_length(what: str, m: int) -> None:
    """ValueError naming `what` unless m = n*(n-1)/2 for some n >= 3."""
    if not condensed_length(m):
        try:
            n = n_from_condensed(m)
            why = f"RDMs of {n} images cannot be compared (at least 3 are needed)"
        except ValueError:
            why = f"{m} is not n*(n-1)/2 for any n >= 3: not a condensed RDM"
        raise ValueError(
            f"{what} holds RDMs of length {m}; {why} (features are read with --features)"
        )


def rdms_from_arrays(
    arrays: dict[str, np.ndarray],
    name: str = "rdms",
    reading: str | None = None,
    note: Callable[[str], None] | None = None,
) -> tuple[list[str], np.ndarray]:
    """(labels, condensed RDMs (K, m)) from {key: array}, where each array is one condensed RDM
    (m,), one square RDM (n, n), a stack of square RDMs (k, n, n) or a batch of condensed RDMs
    (k, m); a stack or batch is labelled `key[0]`, `key[1]`, ...

    reading: "auto" (None), "condensed" or "square" (the CLI's --condensed / --square). A square
    (k, k) array can be one square RDM or k condensed RDMs of length k: "square" reads every
    square 2-D array as one square RDM, "condensed" every 2-D array as rows. With "auto", a valid
    RDM (symmetric, zero diagonal) is one square RDM and any other square array k condensed rows
    (when k is a condensed length); whenever both readings were possible, `note` (default: a
    UserWarning) says which was taken and how to choose.

    Every RDM must be real and finite, of a condensed length n*(n-1)/2 with n >= 3, all of the
    same length. Integers become float64; float32 and float64 stay as they are. Errors
    (ValueError, TypeError for non-numbers) name `name`, the array and the label.
    """
    reading = "auto" if reading is None else reading
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {READINGS} or None; got {reading!r}")
    note = note or _warn_note
    labels, rows = [], []
    for key, arr in arrays.items():
        what = f"{name}: array {key!r} of shape {arr.shape}"
        cell: list[np.ndarray] = []

        def problem(arr: np.ndarray = arr, cell: list = cell) -> str | None:
            try:
                cell.append(np.asarray(squareform(arr, to="condensed")))
            except ValueError as err:
                return rdm_problem(err)
            return None

        kind = rdm_kind(what, arr.shape, arr.dtype, reading, problem, note)
        if kind == "stack":
            try:
                arr = np.asarray(squareform(arr, to="condensed"))
            except ValueError as err:
                raise ValueError(
                    f"{what} is not a stack of square RDMs ({rdm_problem(err)})"
                ) from None
        elif kind == "square":
            arr = cell[-1] if cell else np.asarray(squareform(arr, to="condensed"))
        if arr.ndim == 1:
            labels.append(key)
            rows.append(arr)
        else:
            labels += [f"{key}[{i}]" for i in range(arr.shape[0])]
            rows += list(arr)
        check_rdm_length(what, len(rows[-1]))
    for label, row in zip(labels, rows, strict=True):
        if row.dtype.kind == "f" and not np.isfinite(row).all():
            first = int(np.argmax(~np.isfinite(row)))
            raise ValueError(f"{name}: RDM {label!r} holds NaN or Inf (first at value {first})")
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        sizes = ", ".join(f"{lab}: {len(r)}" for lab, r in zip(labels, rows, strict=True))
        raise ValueError(f"{name}: RDMs of different sizes cannot be compared ({sizes})")
    twice = sorted({lab for lab in labels if labels.count(lab) > 1})
    if twice:
        raise ValueError(f"{name}: the labels {twice} name more than one RDM")
    out = np.stack(rows)
    return labels, out if out.dtype.kind == "f" else out.astype(np.float64)


def load_rdms(
    path: str | os.PathLike,
    name: str = "rdms",
    reading: str | None = None,
    note: Callable[[str], None] | None = None,
) -> tuple[list[str], np.ndarray]:
    """(labels, condensed RDMs (K, m)) from an RDM file: the one reader of every command that
    takes RDMs (`fastrsa compare`, `taxonomy --rdms`, `rank`, `evaluate --rdms`, `demo
    --real-data`).

    path: an .npz with one RDM per label (condensed (m,) or square (n, n)) or stacked batches
    ((k, m) or (k, n, n), labelled `key[i]`), or an .npy holding one RDM or a stack (B, m) /
    (B, n, n) (labelled by the file's stem, `stem[i]` for a stack). Read safely with
    `load_arrays` (no pickle, checked headers); `reading` and `note`: see `rdms_from_arrays`.
    """
    return rdms_from_arrays(load_arrays(path, name), name, reading, note)
