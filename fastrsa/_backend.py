"""The one place that picks a backend.

A backend supplies three ops on validated arrays: `rdm` (B, n, d) -> (B, m) condensed RDMs,
`rank` (R, M) -> (R, M) float64 average-tie ranks, and `compare` (Ba, M), (Bb, M) | None ->
(Ba, Bb). An explicit request for a backend that cannot run fails loudly; "auto" takes the fastest
one that can.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BACKENDS = ("reference", "numpy", "numba", "torch", "triton")
_AUTO_CPU = ("numba", "numpy")  # fastest first


@dataclass(frozen=True)
class Backend:
    name: str
    rdm: Callable[[np.ndarray, str], np.ndarray]
    rank: Callable[[np.ndarray], np.ndarray]
    compare: Callable[[np.ndarray, np.ndarray | None, str], np.ndarray]


def compare_from_ops(rank, corr, kendall) -> Callable:
    """Builds `compare` from a backend's ops: Spearman = Pearson of ranks."""

    def compare(a: np.ndarray, b: np.ndarray | None, method: str) -> np.ndarray:
        if method == "kendall":
            return kendall(a, b)
        if method == "spearman":
            dtype = a.dtype
            a = rank(a).astype(dtype, copy=False)
            b = None if b is None else rank(b).astype(dtype, copy=False)
        return corr(a, b, center=method != "cosine")

    return compare


def _reference() -> Backend:
    from . import reference

    return Backend("reference", reference.rdm_ref, reference.rank_ref, reference.compare_ref)


def _numpy() -> Backend:
    from .kernels import numpy as k

    return Backend(
        "numpy", k.rdm_numpy, k.rank_numpy, compare_from_ops(k.rank_numpy, k.corr_numpy, k.kendall_numpy)
    )


def _numba() -> Backend:
    try:
        from .kernels import numba as k
    except ImportError as err:
        raise RuntimeError(
            f"backend 'numba' needs the numba package ({err}); install it with "
            "`pip install fastrsa[numba]` or choose backend='numpy'"
        ) from None
    return Backend(
        "numba", k.rdm_numba, k.rank_numba, compare_from_ops(k.rank_numba, k.corr_numba, k.kendall_numba)
    )


def _not_yet(name: str) -> Callable[[], Backend]:
    def load() -> Backend:
        raise RuntimeError(f"backend {name!r} is not available in this version of fastrsa")

    return load


_LOADERS: dict[str, Callable[[], Backend]] = {
    "reference": _reference,
    "numpy": _numpy,
    "numba": _numba,
    "torch": _not_yet("torch"),
    "triton": _not_yet("triton"),
}


@functools.cache
def _load(name: str) -> Backend:
    return _LOADERS[name]()


def check_backend_name(backend: str) -> None:
    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(
            f"backend must be 'auto' or one of {', '.join(map(repr, BACKENDS))}; got {backend!r}"
        )


def available_backends() -> list[str]:
    """Names of the backends that can run here."""
    names = []
    for name in BACKENDS:
        try:
            _load(name)
        except RuntimeError:
            continue
        names.append(name)
    return names


def get_backend(backend: str = "auto") -> Backend:
    """The Backend for a name; "auto" = the fastest CPU backend that can run here."""
    check_backend_name(backend)
    if backend != "auto":
        return _load(backend)
    for name in _AUTO_CPU:
        try:
            return _load(name)
        except RuntimeError:
            continue
    raise AssertionError("the numpy backend always loads")
