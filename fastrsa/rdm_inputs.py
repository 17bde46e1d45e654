"""RDM inputs -> labelled rows: the one place that turns what users give as RDMs (arrays and
tensors, condensed (K, m) or square (K, n, n); {label: RDM} mappings; rsatoolbox.rdm.RDMs
objects) into (labels, condensed float64 rows (K, m)), checked, with errors that name the
user's argument and label.

rsatoolbox objects are recognised without importing rsatoolbox: an object of its RDMs class
cannot exist before its module is imported. rsatoolbox stores `dissimilarities`
(n_rdm, n_cond*(n_cond-1)/2) in scipy squareform order (i < j, row-major), fastrsa's own.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from . import _arrays as A
from ._checks import check_choice
from ._condensed import n_from_condensed, squareform
from .reference import METHODS

__all__ = [
    "NAME",
    "check_condensed",
    "check_labels",
    "check_rows",
    "is_rsatoolbox_rdms",
    "rdm_row",
    "rdm_rows",
    "read_rsatoolbox",
    "real_float64",
    "stack_rdms",
    "unwrap_rsatoolbox",
]

NAME = "name"  # the rdm descriptor that holds model labels


def _rsatoolbox_rdms_class() -> type | None:
    """rsatoolbox.rdm.RDMs when rsatoolbox has been imported, else None (an object of that class
    cannot exist before its module is imported, so there is nothing to recognise)."""
    module = sys.modules.get("rsatoolbox.rdm.rdms")
    return getattr(module, "RDMs", None) if module is not None else None


def is_rsatoolbox_rdms(x: Any) -> bool:
    """True for an rsatoolbox.rdm.RDMs object (without importing rsatoolbox)."""
    cls = _rsatoolbox_rdms_class()
    return cls is not None and isinstance(x, cls)


def read_rsatoolbox(rdms: Any, descriptor: str, name: str) -> tuple[list[str] | None, np.ndarray]:
    rows = np.array(rdms.dissimilarities, dtype=np.float64).reshape(rdms.n_rdm, -1)
    names = rdms.rdm_descriptors.get(descriptor)
    labels = None if names is None else [str(v) for v in names]
    bad = ~np.isfinite(rows)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        which = f"{labels[i]!r}" if labels is not None else str(i)
        raise ValueError(
            f"{name} (rsatoolbox RDMs): RDM {which} holds NaN or Inf (first at dissimilarity {j}; "
            f"{int(bad.sum())} in all): fastrsa needs every dissimilarity"
        )
    return labels, rows


def rdm_rows(x: Any, name: str = "rdms") -> tuple[np.ndarray, list[str] | None] | None:
    """(condensed rows (B, m) float64, labels or None) when `x` is an rsatoolbox RDMs object (see
    `from_rsatoolbox`; errors name `name`, the caller's argument), else None: the hook through
    which the API takes RDMs objects."""
    if not is_rsatoolbox_rdms(x):
        return None
    labels, rows = read_rsatoolbox(x, NAME, name)
    return rows, labels


def unwrap_rsatoolbox(x: Any, name: str) -> Any:
    """x itself, or the condensed rows (B, m) float64 numpy of an rsatoolbox RDMs object."""
    rows = rdm_rows(x, name)
    return x if rows is None else rows[0]


def real_float64(x: Any, name: str) -> np.ndarray:
    """`x` (numpy array, torch tensor or nested lists) as a float64 numpy array; TypeError naming
    `name` for complex (its imaginary part would be lost) or non-numeric values."""
    if A.is_torch(x):
        if x.is_complex():
            raise TypeError(f"{name} must be real; got complex dtype {x.dtype}")
        x = x.detach().cpu()
        x = x.double() if x.is_floating_point() else x
        x = x.numpy()
    arr = A.as_array(x, name)
    if arr.dtype.kind == "c":
        raise TypeError(
            f"{name} must be real; got complex dtype {arr.dtype} (its imaginary part would be lost)"
        )
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers; got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _first_bad(mask: np.ndarray) -> str:
    idx = tuple(int(i) for i in np.argwhere(mask)[0])
    return str(idx[0]) if len(idx) == 1 else str(idx)


def check_labels(labels: Any, count: int | None, what: str) -> list[str]:
    """`labels` as a list of unique, non-empty names (str() of each)."""
    if isinstance(labels, (str, bytes)):
        raise TypeError(f"labels must be a list of names, not one string ({labels!r})")
    try:
        labels = [str(lab) for lab in labels]
    except TypeError:
        raise TypeError(f"labels must be a list of names; got {type(labels).__name__}") from None
    if count is not None and len(labels) != count:
        raise ValueError(f"labels has {len(labels)} names for {count} {what}")
    if any(lab == "" for lab in labels):
        raise ValueError(f"labels holds an empty name: {labels}")
    seen, dups = set(), []
    for lab in labels:
        if lab in seen and lab not in dups:
            dups.append(lab)
        seen.add(lab)
    if dups:
        raise ValueError(f"labels are not unique: {dups} appear more than once")
    return labels


def rdm_row(value: Any, where: str, check_length: bool = True) -> np.ndarray:
    """One RDM (condensed (m,) or square (n, n)) as a finite float64 condensed row of n >= 3
    images; errors name `where` (the user's argument and label)."""
    item = real_float64(value, where)
    if item.ndim == 2:
        if item.shape[0] != item.shape[1]:
            raise ValueError(f"{where} is not square: {item.shape}")
        if not np.isfinite(item).all():
            raise ValueError(
                f"{where} holds NaN or Inf (first at index {_first_bad(~np.isfinite(item))})"
            )
        try:
            item = np.asarray(squareform(item, to="condensed"))
        except ValueError as err:
            msg = str(err)
            raise ValueError(f"{where} {msg[2:] if msg.startswith('x ') else msg}") from None
    elif item.ndim != 1:
        raise ValueError(
            f"{where} must be an RDM, condensed (m,) or square (n, n); got shape {item.shape}"
        )
    item = np.asarray(item, dtype=np.float64)
    if not np.isfinite(item).all():
        raise ValueError(
            f"{where} holds NaN or Inf (first at index {_first_bad(~np.isfinite(item))})"
        )
    if check_length:
        check_condensed(len(item), where)
    return item


def check_condensed(m: int, where: str) -> None:
    try:
        n = n_from_condensed(m, where)
    except ValueError:
        n = 0
    if n < 3:
        raise ValueError(
            f"{where} has {m} values, which is not n*(n-1)/2 for any n >= 3 images: not a "
            "condensed RDM"
        )


def stack_rdms(rdms: Any, labels: list[str] | None = None, name: str = "rdms") -> tuple:
    """(labels, condensed RDMs (K, m)) from a {label: RDM} mapping, an array (K, m) / (K, n, n)
    with `labels`, or an rsatoolbox.rdm.RDMs object (labels, when not given, from its rdm
    descriptor "name", else its positions "0".."K-1"). Square RDMs must be symmetric with a zero
    diagonal; all must share n; every RDM must be real and finite (errors name `name[label]`);
    labels must be unique."""
    from_rsa = rdm_rows(rdms, name)
    if from_rsa is not None:
        rdms, names = from_rsa
        if labels is None:
            labels = names if names is not None else [str(i) for i in range(len(rdms))]
    if isinstance(rdms, dict):
        if labels is not None:
            raise ValueError(f"give labels either as the keys of {name} or as labels, not both")
        items = list(rdms.values())
        labels = check_labels(list(rdms), None, f"RDMs in {name}")
    else:
        arr = rdms if A.is_torch(rdms) else A.as_array(rdms, name)
        if arr.ndim not in (2, 3):
            raise ValueError(
                f"{name} must be (K, m) condensed or (K, n, n) square; got {tuple(arr.shape)}"
            )
        items = list(arr)
        if labels is None:
            raise ValueError(f"labels are needed for an array of {name}")
        labels = check_labels(labels, len(items), f"RDMs in {name}")
    if not items:
        raise ValueError(f"{name} holds no RDMs")
    rows = [
        rdm_row(v, f"{name}[{lab!r}]", check_length=False)
        for lab, v in zip(labels, items, strict=True)
    ]
    sizes = {lab: len(r) for lab, r in zip(labels, rows, strict=True)}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{name} are of different sizes (condensed lengths): {sizes}")
    check_condensed(len(rows[0]), f"{name}[{labels[0]!r}]" if len(rows) == 1 else name)
    return labels, np.stack(rows)


def check_rows(labels: list[str] | None, rows: np.ndarray, method: str, name: str) -> None:
    """Refuse the RDMs a method cannot compare, naming them: constant ones for the correlations,
    all-zero ones for cosine."""
    check_choice(method, METHODS, "method")
    if method == "cosine":
        bad = ~rows.any(axis=1)
        problem = "is all zeros (its norm is 0, so the cosine is undefined)"
    else:
        bad = rows.min(axis=1) == rows.max(axis=1)
        problem = (
            "is constant (all its dissimilarities are equal, so its correlation with other RDMs "
            "is undefined)"
        )
    if bad.any():
        if labels is None:
            raise ValueError(f"{name} {problem}")
        which = [labels[i] for i in np.flatnonzero(bad)]
        more = f"; {len(which)} such: {which}" if len(which) > 1 else ""
        raise ValueError(f"{name}[{which[0]!r}] {problem}{more}")
