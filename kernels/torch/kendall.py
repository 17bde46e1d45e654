"""Kendall tau-b (or tau-a) of tensors: computed on the CPU by the best CPU kernel (numba, else
numpy); there is no GPU kernel, its merge-sort count does not map onto one."""

import torch

from ..numpy import kendall_numpy

__all__ = ["kendall_torch"]


def kendall_torch(a: torch.Tensor, b: torch.Tensor | None, variant: str = "b") -> torch.Tensor:
    """a: (Ba, M), b: (Bb, M) or None -> (Ba, Bb) float64 tau-b (tau-a for variant "a"; see
    kernels/numba/kendall.py) on a's device (computed on the CPU: tensors elsewhere are copied
    to the host and the result back)."""
    try:
        from ..numba import kendall_numba as kendall
    except ImportError as err:
        if (err.name or "").split(".")[0] not in ("numba", "llvmlite"):
            raise  # an ImportError inside fastrsa is a bug, not a missing package
        kendall = kendall_numpy
    out = kendall(a.cpu().numpy(), None if b is None else b.cpu().numpy(), variant)
    return torch.from_numpy(out).to(a.device)
