"""The one place that picks a backend: a registry of name -> (declared capabilities, loader).

A backend supplies three ops on validated arrays of its `kind` (numpy arrays, or torch tensors),
each taking the call's working-memory `budget` in bytes (keyword, required; fastrsa._memory):
`rdm(x, metric, precision=, budget=)` (B, n, d) -> (B, m) condensed RDMs,
`rank(x, budget=)` (R, M) -> (R, M) float64 average-tie ranks, and
`compare(a, b, method, budget=)` (Ba, M), (Bb, M) | None -> (Ba, Bb).
Statistics kernels are ops a backend may declare (`Capabilities.stats_ops`, STATS_OPS):
"permute", `permuted_products(ra, rb, perms, n, rounds)` yielding (k0, (c, Ba, Bb) null
similarities) per batch of relabelled rounds (fastrsa.stats.permutation_test), and
"weighted_ranks", `weighted_ranks(rows, n)` -> ranks(counts, out), the bootstrap's weighted
average-tie ranks with the rows sorted once (fastrsa.stats.bootstrap); `loop_context()` is the
context for a loop that alternates the backend's kernels with BLAS products.
The API layer asks a backend's `Capabilities`, never its name. An explicit request for a backend
that cannot run fails loudly (RuntimeError saying what to install, or what is missing), and one
that lacks a statistics op asked for fails with a ValueError naming those that have it; "auto"
takes the fastest one that can for the input's device (and has the op).

Adding a backend: write its kernels under kernels/<name>/ (plus, where ops need routing rules,
a kernels/<name>/backend.py with `rdm`, `rank`, `compare`), add a loader below that imports them
(turning a missing third-party package into a RuntimeError via `_missing`), declare its
capabilities, and register both in REGISTRY (and in _AUTO_* where "auto" may pick it).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import reference
from ._checks import check_choice
from .kernels import numpy as numpy_kernels  # numpy and scipy only: always there
from .kernels._compose import compare_from_ops
from .kernels.numpy.rdm import rdm_from_gram, sqdist_from_gram, sqdist_of_pairs
from .reference import METHODS

_ALL_METHODS = tuple(METHODS)
# kendall (tau-b) and tau-a share Knight's merge-sort count, which has no GPU kernel
_CPU_METHODS = tuple(m for m in METHODS if m not in ("kendall", "tau-a"))
# statistics kernels a backend may declare (Backend fields: permuted_products, weighted_ranks)
STATS_OPS = ("permute", "weighted_ranks")
# The spilled-feature RDM (fastrsa.sweeps' FeatureBuffer) turns a host float64 Gram into the
# condensed RDM with `rdm_from_gram`, `sqdist_from_gram` and `sqdist_of_pairs`: one
# implementation whatever the backend (the Gram is on the host, in float64), numpy's, chosen
# here like every other kernel (imported above, used from here).
GRAM_OPS = (rdm_from_gram, sqdist_from_gram, sqdist_of_pairs)


@dataclass(frozen=True)
class Capabilities:
    """What a backend declares about itself (known without loading it)."""

    kind: str = "numpy"  # the arrays its ops take and return: "numpy" | "torch"
    devices: tuple[str, ...] = ("cpu",)  # where it computes: "cpu", "cuda"
    precisions: tuple[str, ...] = ("ieee",)  # `precision=` values its rdm accepts
    dtypes: tuple[str, ...] = ("float32", "float64")  # computed natively (others: converted)
    native_methods: tuple[str, ...] = _ALL_METHODS  # compare methods run on its own devices
    # (the others run on the CPU and their results come back)
    stats_ops: tuple[str, ...] = ()  # the statistics kernels it has (of STATS_OPS)
    # bytes per entry (B x M) the "weighted_ranks" op holds for a run with the weighted rows
    # (sort order, tie flags, pair images, scratch, temporaries), checked against the budget
    weighted_ranks_bytes: int = 0


@dataclass(frozen=True)
class Backend:
    name: str
    rdm: Callable[..., Any]
    rank: Callable[..., Any]
    compare: Callable[..., Any]
    capabilities: Capabilities = Capabilities()
    # statistics ops, present where `capabilities.stats_ops` declares them (see the docstring)
    permuted_products: Callable[..., Any] | None = None
    weighted_ranks: Callable[..., Any] | None = None
    loop_context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext

    @property
    def kind(self) -> str:
        return self.capabilities.kind


def _missing(err: ImportError, *packages: str) -> bool:
    """True when `err` says one of the third-party `packages` is not installed; an ImportError
    from fastrsa's own code (or any other) is a bug to show as it is, not a missing package."""
    return (err.name or "").split(".")[0] in packages


def _needs(name: str, what: str, extra: str, err: ImportError) -> RuntimeError:
    return RuntimeError(
        f"backend {name!r} needs {what} ({err}); install it with `pip install fastrsa[{extra}]`"
    )


def _reference() -> Backend:
    k = numpy_kernels  # statistics: the plain numpy gathers and sorts
    return Backend(
        "reference",
        lambda x, metric, *, precision="ieee", budget: reference.rdm_ref(x, metric),
        lambda x, *, budget: reference.rank_ref(x),
        lambda a, b, method, *, budget: reference.compare_ref(a, b, method),
        REGISTRY["reference"][0],
        permuted_products=k.permuted_products_numpy,
        weighted_ranks=k.weighted_ranker_numpy,
    )


def _cpu_backend(name: str, rdm, rank, corr, kendall, **stats: Any) -> Backend:
    """numpy-kind ops from kernels: rdm chunks its batch within the budget; rank, corr and
    kendall hold their whole input (and a normalised copy) at once. `stats`: the statistics
    ops (Backend fields)."""
    compare = compare_from_ops(rank, corr, kendall)
    return Backend(
        name,
        lambda x, metric, *, precision="ieee", budget: rdm(x, metric, chunk_bytes=budget),
        lambda x, *, budget: rank(x),
        lambda a, b, method, *, budget: compare(a, b, method),
        REGISTRY[name][0],
        **stats,
    )


def _numpy() -> Backend:
    k = numpy_kernels
    return _cpu_backend(
        "numpy",
        k.rdm_numpy,
        k.rank_numpy,
        k.corr_numpy,
        k.kendall_numpy,
        permuted_products=k.permuted_products_numpy,
        weighted_ranks=k.weighted_ranker_numpy,
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
    return _cpu_backend(
        "numba",
        k.rdm_numba,
        k.rank_numba,
        k.corr_numba,
        k.kendall_numba,
        permuted_products=k.permuted_products_numba,
        weighted_ranks=k.weighted_ranker_numba,
        # BLAS on one thread: its workers would spin beside numba's between kernel and product
        loop_context=k.one_blas_thread,
    )


def _torch() -> Backend:
    try:
        from .kernels import torch as k
    except ImportError as err:
        if not _missing(err, "torch"):
            raise
        raise _needs("torch", "PyTorch", "torch", err) from None

    def compare(a, b, method, *, budget):
        rank = functools.partial(k.rank_torch, chunk_bytes=budget)
        return compare_from_ops(rank, k.corr_torch, k.kendall_torch)(a, b, method)

    return Backend(
        "torch",
        lambda x, metric, *, precision="ieee", budget: k.rdm_torch(x, metric, budget),
        lambda x, *, budget: k.rank_torch(x, chunk_bytes=budget),
        compare,
        REGISTRY["torch"][0],
        permuted_products=k.permuted_products_torch,
        weighted_ranks=k.weighted_ranker_torch,
    )


def _triton() -> Backend:
    try:
        import torch

        from .kernels import torch as kt
        from .kernels.triton import backend as k
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
    return Backend(
        "triton",
        lambda x, metric, *, precision="ieee", budget: k.rdm(x, metric, precision, budget),
        lambda x, *, budget: k.rank(x, chunk_bytes=budget),
        lambda a, b, method, *, budget: k.compare(a, b, method, chunk_bytes=budget),
        REGISTRY["triton"][0],
        # statistics: gathers, sorts and cuBLAS products are torch's (no Triton kernel of its own)
        permuted_products=kt.permuted_products_torch,
        weighted_ranks=kt.weighted_ranker_torch,
    )


# the statistics ops on numpy arrays (numba, numpy, reference) and on torch tensors (torch, triton);
# weighted_ranks_bytes measured with tracemalloc (B = 40, n = 200: numba 26, numpy 91), torch's
# temporaries (int64 pair images, cumulative sums, flips) counted from the code
_CPU_STATS: dict[str, Any] = dict(stats_ops=STATS_OPS, weighted_ranks_bytes=120)
_GPU: dict[str, Any] = dict(
    kind="torch", native_methods=_CPU_METHODS, stats_ops=STATS_OPS, weighted_ranks_bytes=140
)
# name -> (declared capabilities, loader); the loader raises RuntimeError when it cannot run.
REGISTRY: dict[str, tuple[Capabilities, Callable[[], Backend]]] = {
    "reference": (Capabilities(dtypes=("float64",), **_CPU_STATS), _reference),
    "numpy": (Capabilities(**_CPU_STATS), _numpy),
    "numba": (Capabilities(stats_ops=STATS_OPS, weighted_ranks_bytes=30), _numba),
    "torch": (Capabilities(devices=("cpu", "cuda"), **_GPU), _torch),
    "triton": (
        Capabilities(
            devices=("cuda",),  # (CPU tensors only under TRITON_INTERPRET=1, for tests)
            precisions=("ieee", "tf32x3", "tf32"),  # kernels/triton/rdm.py PRECISIONS
            dtypes=("float32", "float16", "bfloat16"),  # float64 goes through torch
            **_GPU,
        ),
        _triton,
    ),
}
BACKENDS = tuple(REGISTRY)
_AUTO_CPU = ("numba", "numpy")  # fastest first
_AUTO_CUDA = ("triton", "torch")


def capabilities(name: str) -> Capabilities:
    """The capabilities a backend declares (without loading it)."""
    check_backend_name(name)
    return REGISTRY[name][0]


def supporting(**wanted: str) -> list[str]:
    """Names of the backends whose declared capabilities include each value, e.g.
    supporting(precisions="tf32") -> ["triton"]."""
    return [
        name
        for name, (caps, _) in REGISTRY.items()
        if all(value in getattr(caps, field) for field, value in wanted.items())
    ]


@functools.cache
def _load(name: str) -> Backend:
    return REGISTRY[name][1]()


def check_backend_name(backend: str) -> None:
    if backend != "auto" and backend not in REGISTRY:
        raise ValueError(
            f"backend must be 'auto' or one of {', '.join(map(repr, REGISTRY))}; got {backend!r}"
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


def get_backend(backend: str = "auto", cuda: bool = False, op: str | None = None) -> Backend:
    """The Backend for a name; "auto" = the fastest that can run here, for CUDA input (`cuda`)
    triton then torch, else numba then numpy. `op`: a statistics op (of STATS_OPS) the backend
    must declare: "auto" skips those without it; a named backend without it is refused
    (ValueError naming the backends that have it)."""
    check_backend_name(backend)
    if op is not None:
        check_choice(op, STATS_OPS, "op")
    if backend != "auto":
        if op is not None and op not in REGISTRY[backend][0].stats_ops:
            having = ", ".join(map(repr, supporting(stats_ops=op))) or "none"
            raise ValueError(
                f"backend {backend!r} has no {op!r} kernel (a statistics op); backends with "
                f"one: {having}"
            )
        return _load(backend)
    for name in (*_AUTO_CUDA, *_AUTO_CPU) if cuda else _AUTO_CPU:
        if op is not None and op not in REGISTRY[name][0].stats_ops:
            continue
        try:
            return _load(name)
        except RuntimeError:
            continue
    if op is not None:
        raise RuntimeError(f"no backend that can run here has the {op!r} kernel")
    raise AssertionError("the numpy backend always loads")


def device_for(backend: Backend, x: Any) -> Any:
    """Where a torch-kind backend computes: a CUDA tensor's own device, a CPU tensor's own
    device for a backend that computes on the CPU; otherwise CUDA when there is one (the input
    moves once), else the CPU. None for numpy-kind backends."""
    if backend.kind != "torch":
        return None
    import torch

    on_cpu = "cpu" in backend.capabilities.devices
    if isinstance(x, torch.Tensor) and (x.is_cuda or on_cpu):
        return x.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# fastrsa.torch's kernels (training code), chosen here like every other kernel: the soft rank's
# CPU kernel and the RDM's backward. Loaded on first use; a missing numba or triton leaves the
# plain torch code of fastrsa.torch.ops in place.
@functools.cache
def soft_rank_kernel() -> Callable[..., Any] | None:
    """fastrsa.kernels.numba.pav.soft_rank_numba (the soft rank of float64 rows on the CPU), or
    None where numba is not installed."""
    try:
        from .kernels.numba.pav import soft_rank_numba
    except ImportError as err:
        if not _missing(err, "numba"):
            raise
        return None
    return soft_rank_numba


@functools.cache
def rdm_backward_kernel(cuda: bool) -> Callable[..., Any]:
    """The correlation / cosine RDM's backward from the features (fastrsa.torch.ops.UnitRDM):
    for CUDA tensors (float32, float16, bfloat16) the Triton kernel
    fastrsa.kernels.triton.rdm_backward.unit_rdm_backward_triton where triton is installed, else
    (and for float64, which the caller keeps off it) fastrsa.kernels.torch's
    unit_rdm_backward_torch."""
    if cuda:
        try:
            from .kernels.triton.rdm_backward import unit_rdm_backward_triton
        except ImportError as err:
            if not _missing(err, "triton"):
                raise
        else:
            return unit_rdm_backward_triton
    from .kernels.torch.rdm_backward import unit_rdm_backward_torch

    return unit_rdm_backward_torch
