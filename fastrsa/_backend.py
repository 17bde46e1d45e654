"""The one place that picks a backend.

A backend supplies three ops on validated arrays of its `kind` (numpy arrays, or torch tensors):
`rdm` (B, n, d) -> (B, m) condensed RDMs, `rank` (R, M) -> (R, M) float64 average-tie ranks, and
`compare` (Ba, M), (Bb, M) | None -> (Ba, Bb). An explicit request for a backend that cannot run
fails loudly; "auto" takes the fastest one that can for the input's device.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BACKENDS = ("reference", "numpy", "numba", "torch", "triton")
_AUTO_CPU = ("numba", "numpy")  # fastest first
_AUTO_CUDA = ("triton", "torch")


@dataclass(frozen=True)
class Backend:
    name: str
    rdm: Callable[[Any, str], Any]
    rank: Callable[[Any], Any]
    compare: Callable[[Any, Any, str], Any]
    kind: str = "numpy"  # the arrays its ops take and return: "numpy" | "torch"


def compare_from_ops(rank, corr, kendall) -> Callable:
    """Builds `compare` from a backend's ops: Spearman = Pearson of ranks."""

    def compare(a, b, method: str):
        if method == "kendall":
            return kendall(a, b)
        if method == "spearman":
            a = _like(rank(a), a)
            b = None if b is None else _like(rank(b), b)
        return corr(a, b, center=method != "cosine")

    return compare


def _like(x, ref):
    """x in ref's dtype (numpy arrays and tensors)."""
    return x.to(ref.dtype) if hasattr(x, "is_cuda") else x.astype(ref.dtype, copy=False)


def _kendall_on_cpu(a, b):
    """Kendall tau-b of tensors by the best CPU kernel; the result returns to a's device."""
    import torch

    try:
        from .kernels.numba import kendall_numba as kendall
    except ImportError as err:
        if not _missing(err, "numba", "llvmlite"):
            raise
        from .kernels.numpy import kendall_numpy as kendall
    out = kendall(a.cpu().numpy(), None if b is None else b.cpu().numpy())
    return torch.from_numpy(out).to(a.device)


def _missing(err: ImportError, *packages: str) -> bool:
    """True when `err` says one of the third-party `packages` is not installed; an ImportError
    from fastrsa's own code (or any other) is a bug to show as it is, not a missing package."""
    return (err.name or "").split(".")[0] in packages


def _reference() -> Backend:
    from . import reference

    return Backend("reference", reference.rdm_ref, reference.rank_ref, reference.compare_ref)


def _numpy() -> Backend:
    from .kernels import numpy as k

    return Backend(
        "numpy",
        k.rdm_numpy,
        k.rank_numpy,
        compare_from_ops(k.rank_numpy, k.corr_numpy, k.kendall_numpy),
    )


def _numba() -> Backend:
    try:
        from .kernels import numba as k
    except ImportError as err:
        if not _missing(err, "numba", "llvmlite"):
            raise
        raise RuntimeError(
            f"backend 'numba' needs the numba package ({err}); install it with "
            "`pip install fastrsa[numba]` or choose backend='numpy'"
        ) from None
    return Backend(
        "numba",
        k.rdm_numba,
        k.rank_numba,
        compare_from_ops(k.rank_numba, k.corr_numba, k.kendall_numba),
    )


def _torch() -> Backend:
    try:
        from .kernels import torch as k
    except ImportError as err:
        if not _missing(err, "torch"):
            raise
        raise RuntimeError(
            f"backend 'torch' needs PyTorch ({err}); install it with `pip install fastrsa[torch]`"
        ) from None
    compare = compare_from_ops(k.rank_torch, k.corr_torch, _kendall_on_cpu)
    return Backend("torch", k.rdm_torch, k.rank_torch, compare, kind="torch")


def _triton() -> Backend:
    try:
        import torch

        from .kernels import torch as kt
        from .kernels import triton as k
    except ImportError as err:
        if not _missing(err, "torch", "triton"):
            raise
        raise RuntimeError(
            f"backend 'triton' needs PyTorch and Triton ({err}); "
            "install them with `pip install fastrsa[triton]`"
        ) from None
    if not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"):
        raise RuntimeError(
            "backend 'triton' needs a CUDA GPU, and torch sees none "
            "(TRITON_INTERPRET=1 runs the kernels on the CPU, slowly, for testing)"
        )

    def rdm(x, metric, precision="ieee"):
        # float64 stays exact (cuBLAS DGEMM through torch); euclidean needs a float64 Gram and
        # the direct recomputation of near-duplicate pairs, which torch's path does
        if x.dtype == torch.float64 or metric == "euclidean":
            return kt.rdm_torch(x, metric)
        return k.rdm_triton(x, metric, precision=precision)

    def rank(x):
        return k.rank_triton(x)

    def compare(a, b, method):
        if method == "kendall":
            return _kendall_on_cpu(a, b)
        if a.dtype == torch.float64:
            return compare_from_ops(kt.rank_torch, kt.corr_torch, None)(a, b, method)
        if method == "spearman":  # centred float32 ranks feed the correlation directly
            a = k.rank_triton(a, centred=True, out_dtype=torch.float32)
            b = None if b is None else k.rank_triton(b, centred=True, out_dtype=torch.float32)
            return k.corr_triton(a, b, center=False)  # centred ranks: cosine = Pearson
        if method == "pearson":  # rows centred in two passes first: large offsets stay exact
            a = kt.centred_rows_torch(a)
            b = None if b is None else kt.centred_rows_torch(b)
        return k.corr_triton(a, b, center=False)

    return Backend("triton", rdm, rank, compare, kind="torch")


_LOADERS: dict[str, Callable[[], Backend]] = {
    "reference": _reference,
    "numpy": _numpy,
    "numba": _numba,
    "torch": _torch,
    "triton": _triton,
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


def get_backend(backend: str = "auto", cuda: bool = False) -> Backend:
    """The Backend for a name; "auto" = the fastest that can run here, for CUDA input (`cuda`)
    triton then torch, else numba then numpy."""
    check_backend_name(backend)
    if backend != "auto":
        return _load(backend)
    for name in (*_AUTO_CUDA, *_AUTO_CPU) if cuda else _AUTO_CPU:
        try:
            return _load(name)
        except RuntimeError:
            continue
    raise AssertionError("the numpy backend always loads")


def device_for(backend: Backend, x: Any) -> Any:
    """Where a torch-kind backend computes: a CUDA tensor's own device (the torch backend also
    keeps CPU tensors where they are); otherwise CUDA when there is one (the input moves once),
    else the CPU."""
    if backend.kind != "torch":
        return None
    import torch

    if isinstance(x, torch.Tensor) and (x.is_cuda or backend.name == "torch"):
        return x.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
