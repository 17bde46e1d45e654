"""Argument checks of fastrsa.torch: types and shapes (always), and the data-dependent checks
(NaN or Inf, ...; eager mode only, `set_checks` turns them off)."""

from __future__ import annotations

import torch

__all__ = [
    "MIN_TORCH",
    "check_finite",
    "check_float",
    "check_regularization",
    "checking",
    "require_custom_ops",
    "set_checks",
]

MIN_TORCH = "2.4"  # torch.library.custom_op, register_fake, register_autograd, opcheck


def require_custom_ops() -> None:
    """ImportError naming the version when the installed torch lacks `torch.library.custom_op`
    (torch < 2.4), which fastrsa.torch's registered ops need (the rest of fastrsa's torch
    backends work from torch 2.1)."""
    if not hasattr(torch.library, "custom_op"):
        raise ImportError(
            f"fastrsa.torch needs torch >= {MIN_TORCH} (torch.library.custom_op); found torch "
            f"{torch.__version__}: pip install 'fastrsa[torch]' (or torch>={MIN_TORCH})"
        )


class set_checks:  # noqa: N801  (lower case, as torch.set_grad_enabled, which it imitates)
    """Turn fastrsa.torch's data-dependent input checks on or off, for the whole process.

    The checks (NaN or Inf, constant or zero rows, constant models, a zero rbf bandwidth) raise a
    ValueError naming the argument, but each one reads a value back from the GPU: a host
    synchronisation. In an eager training loop on CUDA that must never wait on the GPU, turn
    them off: `fastrsa.torch.set_checks(False)`, or `with fastrsa.torch.set_checks(False): ...`
    (the previous setting is restored on exit). Off, bad input gives NaN instead of an error.
    They are always off while torch.compile traces and during CUDA graph capture. Under
    torch.func.vmap they cannot run (a value read inside vmap is an error): turn them off there.
    Shape, dtype and argument checks (no synchronisation) always run.
    """

    enabled = True  # the process-wide setting

    def __init__(self, enabled: bool) -> None:
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be True or False; got {enabled!r}")
        self.previous = set_checks.enabled
        set_checks.enabled = enabled

    def __enter__(self) -> set_checks:
        return self

    def __exit__(self, *exc: object) -> None:
        set_checks.enabled = self.previous


def checking(x: torch.Tensor) -> bool:
    """Whether data-dependent checks (each a host synchronisation on CUDA) run: in eager mode,
    unless `set_checks(False)`; never while torch.compile traces, nor during CUDA graph capture."""
    if torch.compiler.is_compiling() or not set_checks.enabled:
        return False
    return not (x.is_cuda and torch.cuda.is_current_stream_capturing())


def check_float(x: object, name: str, min_ndim: int, shape: str) -> torch.Tensor:
    """`x` as a floating-point tensor with at least `min_ndim` dims; TypeError / ValueError
    naming `name` otherwise (`shape` describes the expected shape)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {shape}; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must be {shape}; got shape {tuple(x.shape)}")
    return x


def check_finite(x: torch.Tensor, name: str) -> None:
    """ValueError naming `name` and the first bad index when x holds NaN or Inf (eager only)."""
    if checking(x):
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            index = tuple(int(i) for i in torch.nonzero(bad)[0])
            raise ValueError(f"{name} holds NaN or Inf (first at index {index})")


def check_regularization(regularization: object) -> float:
    """regularization as a finite float > 0; TypeError / ValueError naming it."""
    if isinstance(regularization, bool) or not isinstance(regularization, (int, float)):
        raise TypeError(f"regularization must be a float > 0; got {type(regularization).__name__}")
    if not 0.0 < float(regularization) < float("inf"):
        raise ValueError(f"regularization must be a finite float > 0; got {regularization!r}")
    return float(regularization)
