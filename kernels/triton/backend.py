"""The triton backend's three ops: which work goes to the Triton kernels and which to torch.

Rules (each for accuracy; the kernels themselves are fp32):
- float64 input stays exact: RDMs, ranks' correlations go through torch (cuBLAS DGEMM);
- euclidean RDMs need a float64 Gram and the direct recomputation of near-duplicate pairs, which
  torch's path does (kernels/torch/rdm.py);
- Spearman: centred float32 ranks (rank - (M+1)/2, exact below 2**24 values) feed the
  correlation directly, uncentred (cosine of centred rows = Pearson);
- Pearson: rows are centred in two passes by torch first, so large offsets stay exact;
- Kendall (tau-b and tau-a) runs on the CPU (kernels/torch/kendall.py);
- rho-a: float64 ranks and a float64 product by torch (exact: see kernels/_compose.py).
Every op takes `chunk_bytes`, the working memory its chunked stages may hold at once.
"""

from typing import Any

import torch

from .. import torch as kt
from .._compose import compare_from_ops
from .corr import corr_triton
from .rank import rank_triton
from .rdm import PRECISIONS, rdm_triton

__all__ = ["PRECISIONS", "compare", "rank", "rdm"]


def rdm(x: torch.Tensor, metric: str, precision: str = "ieee", chunk_bytes: int = 1 << 30):
    """x: (B, n, d) -> condensed RDMs (B, n*(n-1)//2): float64 -> float64 (torch), else fp32."""
    if x.dtype == torch.float64 or metric == "euclidean":
        return kt.rdm_torch(x, metric, chunk_bytes=chunk_bytes)
    return rdm_triton(x, metric, precision=precision, chunk_bytes=chunk_bytes)


def rank(x: torch.Tensor, chunk_bytes: int = 1 << 30) -> torch.Tensor:
    """x: (R, M) -> float64 average-tie ranks (R, M)."""
    return rank_triton(x, chunk_bytes=chunk_bytes)


def compare(a: torch.Tensor, b: torch.Tensor | None, method: str, chunk_bytes: int = 1 << 30):
    """a: (Ba, M), b: (Bb, M) or None -> (Ba, Bb) similarities (float64 for float64 input and for
    kendall, tau-a and rho-a, else fp32)."""
    if a.dtype == torch.float64 or method in ("kendall", "tau-a", "rho-a"):
        rank_ = lambda v: kt.rank_torch(v, chunk_bytes=chunk_bytes)  # noqa: E731
        return compare_from_ops(rank_, kt.corr_torch, kt.kendall_torch)(a, b, method)
    if method == "spearman":  # centred float32 ranks feed the correlation directly
        ranks: dict[str, Any] = dict(centred=True, out_dtype=torch.float32, chunk_bytes=chunk_bytes)
        a = rank_triton(a, **ranks)
        b = None if b is None else rank_triton(b, **ranks)
        return corr_triton(a, b, centre=False, chunk_bytes=chunk_bytes)  # cosine = Pearson
    if method == "pearson":  # rows centred in two passes first: large offsets stay exact
        a = kt.centred_rows_torch(a)
        b = None if b is None else kt.centred_rows_torch(b)
    return corr_triton(a, b, centre=False, chunk_bytes=chunk_bytes)
