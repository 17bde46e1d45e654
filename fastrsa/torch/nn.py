"""Loss modules over fastrsa.torch's differentiable ops: `RSALoss` and `CKALoss`.

Both return 1 - similarity (in [0, 2]; 0 when the representations match), per batch element,
reduced as torch's losses ("mean" | "sum" | "none"); gradients are those of
fastrsa.torch.functional (`rsa`, `rdms` + `compare`, `cka`), in the inputs' dtype and on their
device. Nothing is held between calls but RSALoss's target RDM buffer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._checks import check_choice
from .functional import cka, compare, rdms, rsa

__all__ = ["CKALoss", "REDUCTIONS", "RSALoss"]

REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_tensor(t: Any, name: str, least_dims: int) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must hold floating-point values; got {t.dtype}")
    if t.ndim < least_dims:
        what = "(..., n, d) features" if least_dims == 2 else "a (..., m) condensed RDM"
        raise ValueError(f"{name} must be {what}; got shape {tuple(t.shape)}")
    return t


def _images(m: int) -> int:
    """n with n(n-1)/2 = m, or 0 when m is no such count."""
    n = int(round((1 + (1 + 8 * m) ** 0.5) / 2))
    return n if n * (n - 1) // 2 == m else 0


class RSALoss(nn.Module):
    """1 - RSA similarity between the RDMs of features x and a target.

    RSALoss(target_rdm=None, metric="correlation", method="pearson", regularization=1.0,
    reduction="mean"); forward(x, target=None): x (..., n, d) features. The target is either
    the `target_rdm` given here (a condensed RDM (..., m), m = n(n-1)/2, pairs i < j row-major
    as scipy's squareform; stored as a buffer, so `.to()` and state_dict carry it; no gradient)
    or forward's `target` (exactly one of the two):
      - target.ndim == x.ndim: features (..., n, d_t) of the same n images (a teacher's):
        similarity = fastrsa.torch.functional.rsa(x, target, metric, method, regularization);
      - target.ndim < x.ndim: condensed RDMs (..., m) (a fixed RDM, e.g. brain data):
        similarity = compare(rdms(x, metric), target, method, regularization) per batch element.
    The rank of the tensor tells them apart, never its sizes (a (3, 3) matrix could be either).
    Batch dims broadcast; each RDM of x is compared with its own target only (a paired
    comparison: A m products for A RDMs; a single target RDM is prepared once for all).
    The target is cast to x's dtype. Returns 1 - similarity, reduced by `reduction`.
    Differentiable once with the correlation and cosine metrics (a gradient penalty, which
    differentiates the gradient again, needs metric="euclidean"; fastrsa.torch.rdms).
    """

    target_rdm: torch.Tensor | None

    def __init__(
        self,
        target_rdm: torch.Tensor | None = None,
        metric: str = "correlation",
        method: str = "pearson",
        regularization: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.reduction = check_choice(reduction, REDUCTIONS, "reduction")
        self.metric, self.method, self.regularization = metric, method, regularization
        if target_rdm is not None:
            target_rdm = _check_tensor(target_rdm, "target_rdm", 1)
            if _images(target_rdm.shape[-1]) < 3:
                raise ValueError(
                    "target_rdm must be a condensed RDM (..., n(n-1)/2) of n >= 3 images; got "
                    f"last dim {target_rdm.shape[-1]}"
                )
            target_rdm = target_rdm.detach().clone()
        self.register_buffer("target_rdm", target_rdm)

    def extra_repr(self) -> str:
        shape = None if self.target_rdm is None else tuple(self.target_rdm.shape)
        return (
            f"target_rdm={shape}, metric={self.metric!r}, method={self.method!r}, "
            f"regularization={self.regularization}, reduction={self.reduction!r}"
        )

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        x = _check_tensor(x, "x", 2)
        n = x.shape[-2]
        if target is None and self.target_rdm is None:
            raise ValueError("no target: give RSALoss(target_rdm=...) or forward(x, target)")
        if target is not None and self.target_rdm is not None:
            raise ValueError("target given twice: RSALoss was built with target_rdm")
        if target is None:
            t, name = self.target_rdm, "target_rdm"
        else:
            t, name = _check_tensor(target, "target", 1), "target"
        assert t is not None
        t = t.to(dtype=x.dtype)
        if t.ndim > x.ndim:
            raise ValueError(
                f"{name} has {t.ndim} dims, more than x's {x.ndim}: give features with x's "
                "rank (..., n, d) or condensed RDMs (..., m) with fewer dims"
            )
        if t.ndim == x.ndim:
            if t.shape[-2] != n:
                raise ValueError(
                    f"{name} (features, as many dims as x) must have x's {n} images (rows); "
                    f"got shape {tuple(t.shape)}"
                )
            sim = rsa(x, t, self.metric, self.method, self.regularization)
        else:
            sim = self._against_rdms(x, t, name)
        return _reduce(1 - sim, self.reduction)

    def _against_rdms(self, x: torch.Tensor, t: torch.Tensor, name: str) -> torch.Tensor:
        n = x.shape[-2]
        m = n * (n - 1) // 2
        if t.shape[-1] != m:
            raise ValueError(
                f"{name} (a condensed RDM: fewer dims than x) must have n(n-1)/2 = {m} entries "
                f"for x's {n} images; got last dim {t.shape[-1]}"
            )
        a = rdms(x, self.metric)
        try:
            torch.broadcast_shapes(a.shape[:-1], t.shape[:-1])
        except RuntimeError:
            raise ValueError(
                f"{name}'s batch dims {tuple(t.shape[:-1])} do not broadcast with x's "
                f"{tuple(x.shape[:-2])}"
            ) from None
        return compare(a, t, self.method, self.regularization, paired=True)


class CKALoss(nn.Module):
    """1 - CKA of features x (..., n, d1) and y (..., n, d2), batch dims broadcasting.

    CKALoss(kernel="linear", debiased=False, reduction="mean", threshold=1.0) (threshold: the
    rbf bandwidth as a fraction of the median distance, as fastrsa.similarity);
    forward(x, y) = 1 - fastrsa.torch.functional.cka(x, y, kernel, debiased, threshold),
    reduced. 1 - CKA, never log(1 - CKA): finite and smooth at CKA = 1. With debiased=True the
    unbiased HSIC(K, L) may be negative, so the loss may exceed 1 (up to 2).
    """

    def __init__(
        self,
        kernel: str = "linear",
        debiased: bool = False,
        reduction: str = "mean",
        threshold: float = 1.0,
    ) -> None:
        super().__init__()
        self.reduction = check_choice(reduction, REDUCTIONS, "reduction")
        self.kernel, self.debiased, self.threshold = kernel, debiased, threshold

    def extra_repr(self) -> str:
        return (
            f"kernel={self.kernel!r}, debiased={self.debiased}, reduction={self.reduction!r}, "
            f"threshold={self.threshold}"
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = _check_tensor(x, "x", 2), _check_tensor(y, "y", 2)
        if x.shape[-2] != y.shape[-2]:
            raise ValueError(
                f"x and y must have the same images (rows); got {x.shape[-2]} and {y.shape[-2]}"
            )
        sim = cka(x, y, self.kernel, self.debiased, self.threshold)
        return _reduce(1 - sim, self.reduction)
