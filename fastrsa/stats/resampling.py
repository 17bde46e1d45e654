"""Resampling helpers shared by the permutation test and the bootstrap: index rows, pair
indices, bootstrap draws, and the weighted resampler (a resample's similarity from pair weights,
without gathering the resampled entries).

A bootstrap resample that draws image i c_i times holds pair m = (i, j) w_m = c_i c_j times
(pairs of an image with its own copy left out: rsatoolbox's semantics), so Spearman, Pearson and
cosine on it are weighted statistics of the original entries (`Resampler`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from .. import _arrays as A
from .._backend import Backend, device_for, get_backend
from .._condensed import condensed_index
from .._condensed import pair_index as permuted_pairs
from .._memory import budget_for
from ..compare import compare
from .batches import API_BUDGET, size_text

__all__ = [
    "WEIGHTED_METHODS",
    "Resampler",
    "check_distinct",
    "int_rows",
    "pair_index",
    "resample_pairs",
    "resampler",
    "similarity_resample",
    "to_kind",
    "weighted",
]

# Methods whose resampled similarity is computed from pair weights (no gather, no re-sort).
WEIGHTED_METHODS = ("spearman", "pearson", "cosine")


def int_rows(x: Any, name: str, n: int, what: str) -> np.ndarray:
    """x as a (K, n) int64 numpy array of values in [0, n) (tensors are copied to the host);
    TypeError / ValueError naming `name` (and the first bad row and column) otherwise."""
    if A.is_torch(x):
        x = x.detach().cpu().numpy()
    arr = A.as_array(x, name)
    if arr.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must be an integer array (K, {n}) of {what}; got dtype {arr.dtype}"
        )
    if arr.ndim != 2 or arr.shape[1] != n or arr.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape (K, {n}) with K >= 1 (one row of {what} per round, n = {n} "
            f"images); got shape {arr.shape}"
        )
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} holds values out of range [0, {n}): first at row {row}, column {col} "
            f"(value {int(arr[row, col])})"
        )
    return arr.astype(np.int64, copy=False)


def pair_index(perms: np.ndarray, n: int) -> np.ndarray:
    """(K, n) permutations -> (K, M) int64: entry m of the relabelled RDM is entry [k, m] of the
    original (rows and columns reordered together: D'[i, j] = D[p[i], p[j]])."""
    i, j = np.triu_indices(n, k=1)
    return permuted_pairs(perms, n, i, j)


def resample_pairs(idx: np.ndarray, n: int) -> np.ndarray:
    """Condensed entries of the resample `idx` (n image indices, with repeats), as rsatoolbox's
    `subsample_pattern` orders them (images sorted, pairs i < j of the sorted list), without
    the pairs of an image with a copy of itself."""
    s = np.sort(idx)
    i, j = np.triu_indices(s.size, k=1)
    p, q = s[i], s[j]
    keep = p != q
    return condensed_index(p[keep], q[keep], n)


def to_kind(idx: np.ndarray, like: Any) -> Any:
    """A numpy array for `like`'s kind (a tensor on its device for torch)."""
    if A.is_torch(like):
        import torch

        return torch.from_numpy(idx).to(like.device)
    return idx


def weighted(method: str, rows: Any) -> bool:
    """Whether the weighted path computes `method` on `rows`: its methods, on rows exact in
    float64 (integer rows beyond 2**53 take the gather path, which compares them exactly)."""
    if method not in WEIGHTED_METHODS:
        return False
    if A.is_integer(rows):
        top = rows.abs().max() if A.is_torch(rows) else np.abs(rows).max()
        return int(top) <= 1 << 53
    return True


def check_distinct(idx: np.ndarray, what: str = "indices", first: int = 0) -> np.ndarray:
    """`idx` (K, n) when every resample draws at least 3 distinct images; ValueError naming the
    first that does not (its correlation would be undefined), numbered from `first` (the
    block's first resample)."""
    distinct = np.array([np.unique(r).size for r in idx])
    if (distinct < 3).any():
        k = int(np.flatnonzero(distinct < 3)[0])
        raise ValueError(
            f"{what}: resample {first + k} has only {distinct[k]} distinct images; at least 3 "
            "are needed for a defined correlation"
        )
    return idx


def similarity_resample(rows: Any, r: np.ndarray, n: int, method: str, opts: dict) -> Any:
    """(B, B) float64 similarity of the RDMs on resample `r` (image indices, repeats allowed):
    the resampled entries gathered, then `compare` (`opts`: its backend and memory)."""
    sel = to_kind(resample_pairs(r, n), rows)
    sim = compare(rows[:, sel], None, method, **opts)
    return A.back_to(sim, A.Origin("numpy")).astype(np.float64)


def resampler(rows: Any, method: str, n: int, backend: str, memory: Any) -> Resampler:
    """The weighted path for `rows` on `backend`'s device (host rows move to the GPU once for a
    GPU backend, as `compare` does), after checking its holdings against the budget. Spearman
    needs the backend's "weighted_ranks" op."""
    op = "weighted_ranks" if method == "spearman" else None
    be = get_backend(backend, cuda=A.is_cuda(rows), op=op)
    device = device_for(be, rows)
    check_weighted_memory(rows.shape, method, be, budget_for(memory, device))
    if be.kind == "torch" and not A.is_torch(rows):
        import torch

        rows = torch.from_numpy(np.ascontiguousarray(rows)).to(device)
    return Resampler(rows, method, n, be)


def check_weighted_memory(shape: tuple, method: str, be: Backend, budget: int) -> None:
    """ValueError when the weighted path's holdings (bytes per entry of (B, M)) exceed budget:
    for Spearman what the backend declares for its weighted ranks, 32 for Pearson and cosine."""
    per_entry = be.capabilities.weighted_ranks_bytes if method == "spearman" else 32
    need = per_entry * shape[0] * shape[1] + 24 * shape[1]  # + the pairs' image indices
    if need > budget:
        raise ValueError(
            f"bootstrap: {shape[0]} RDMs of {shape[1]} pairs need about {size_text(need)} "
            f"for the resampling ({per_entry} bytes per entry); the memory budget is "
            f"{size_text(budget)}: raise the budget ({API_BUDGET}) or bootstrap fewer RDMs at "
            "once"
        )


class Resampler:
    """(B, B) float64 similarity of condensed rows on a resample given by image counts.

    Each method is a weighted statistic of the original entries (module docstring): Pearson and
    cosine a weighted Gram of the rows (centred by the weighted mean for Pearson); Spearman the
    same of weighted average-tie ranks (the backend's "weighted_ranks" op: one pass over each
    row's fixed sort order, no re-sort). Equal to `compare` on the gathered entries up to
    rounding (float64 throughout).

    Holds, for the whole run: the rows as float64 (B, M) (Pearson, cosine), or for Spearman what
    the backend's op holds (sort order, tie flags, the images of each sorted pair), plus the
    weighted rows (B, M) float64 reused per resample (`check_weighted_memory` counts it all).
    Torch rows stay on their device.
    """

    def __init__(self, rows: Any, method: str, n: int, be: Backend) -> None:
        self.method = method
        self.torch = A.is_torch(rows)
        self.pairs = np.triu_indices(n, k=1)
        self.ranks: Any = None  # the prepared rank op (Spearman)
        self.context: Any = contextlib.nullcontext
        if self.torch:
            import torch

            x = rows.detach().to(torch.float64)
        else:
            x = np.asarray(rows, dtype=np.float64)
        if method == "spearman":
            if be.weighted_ranks is None:  # get_backend(op=...) guarantees it
                raise AssertionError(f"backend {be.name!r} declares no weighted_ranks op")
            self.ranks = be.weighted_ranks(x, n)
            self.context = be.loop_context
            self.out = x.new_empty(x.shape) if self.torch else np.empty(x.shape)
            self.x = None
        else:  # rows scaled by a power of two per row (exact) so the Gram cannot overflow
            top = x.abs().amax(dim=1) if self.torch else np.abs(x).max(axis=1)
            top = top.cpu().numpy() if self.torch else top
            scale = np.ldexp(1.0, -np.frexp(np.where(top > 0, top, 1.0))[1])
            self.x = x * (to_kind(scale, x) if self.torch else scale)[:, None]

    def threads(self) -> Any:
        """Context for a run of calls: the backend's loop context for its rank kernel (numba:
        BLAS on one thread, whose workers would otherwise spin beside numba's between the
        kernel and the product)."""
        return self.context()

    def _constant(self, w: np.ndarray, norm: np.ndarray) -> np.ndarray:
        """(B,) bool: rows equal on every pair of the resample, checked exactly for the rows
        whose weighted norm is below 1e-10 of their scale (the others cannot be constant)."""
        out = np.zeros(norm.shape, dtype=bool)
        scale = np.sqrt(w.sum())  # rows are scaled to max |x| in [0.5, 1)
        x: Any = self.x
        for b in np.flatnonzero(norm < 1e-10 * scale):
            row = x[b].cpu().numpy() if self.torch else x[b]
            kept = row[w > 0]
            out[b] = bool((kept == kept[0]).all())
        return out

    def __call__(self, counts: np.ndarray, what: str, first: bool = False) -> np.ndarray:
        """counts (n,) int: how often each image is drawn; `what` names the resample in errors.
        (B, B) float64, or with `first` only row 0, (B,)."""
        c = counts.astype(np.float64)
        y: Any
        if self.method == "spearman":
            y = self.ranks(c, self.out)
        else:
            i, j = self.pairs
            w_host = c[i] * c[j]
            w: Any = to_kind(w_host, self.x) if self.torch else w_host
            y = self.x
            if self.method == "pearson":
                y = y - (y @ w / w.sum())[:, None]
            y = y * (w.sqrt() if self.torch else np.sqrt(w))
        if first:
            row = y[:1] @ y.T
            norms = (y * y).sum(1)
            gram, sq = (row.cpu().numpy(), norms.cpu().numpy()) if self.torch else (row, norms)
            norm = np.sqrt(sq)
        else:
            gram = y @ y.T
            gram = gram.cpu().numpy() if self.torch else gram
            norm = np.sqrt(np.diag(gram))
        if self.method == "pearson":  # centring rounds: a constant row may leave ~1e-16
            norm = np.where(self._constant(w_host, norm), 0.0, norm)
        if not (norm > 0).all():
            b = int(np.flatnonzero(~(norm > 0))[0])
            raise ValueError(
                f"rdms: row {b} is {'zero' if self.method == 'cosine' else 'constant'} on the "
                f"image pairs of {what}, so its {self.method} correlation is undefined"
            )
        if first:
            sim = np.clip(gram[0] / norm[0] / norm, -1.0, 1.0)
            sim[0] = 1.0
            return sim
        sim = np.clip(gram / norm[:, None] / norm[None, :], -1.0, 1.0)
        np.fill_diagonal(sim, 1.0)
        return sim
