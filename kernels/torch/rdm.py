"""Batched RDMs in torch: centre, one batched Gram product (bmm), condensed extraction."""

import math

import torch

from .._euclidean import cosine_limit, refine_ratio, refine_step
from .corr import matmul_t

__all__ = ["condensed_index", "rdm_torch", "refine_cosine_torch"]


def condensed_index(n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices (int64) of the pairs i < j, in scipy's condensed order."""
    i, j = torch.triu_indices(n, n, offset=1, device=device)
    return i, j


def rdm_torch(x: torch.Tensor, metric: str, chunk_bytes: int = 1 << 30) -> torch.Tensor:
    """x: (B, n, d) -> condensed RDMs (B, n*(n-1)//2); float64 stays float64, else float32.

    correlation: 1 - r of rows centred by their own mean (what rounding leaves of the mean is
    removed from the Gram: large offsets cost no accuracy); cosine: 1 - cos; float32 products
    summed over slices of features in float64 (`matmul_t`); cosine distances too small for the
    Gram's rounding recomputed from float64 unit rows (`refine_cosine_torch`). euclidean:
    columns centred, products in float64, pairs the Gram formula cannot resolve recomputed
    directly: relative error < ~1e-7 (float32 results) or ~1e-11 (float64) of each distance.
    The batch is computed in chunks whose temporaries (prepared rows, Gram matrices, condensed
    intermediates) take about `chunk_bytes`, at least one matrix at a time; near-duplicate
    pairs are recomputed a quarter of `chunk_bytes` of differences at a time.
    """
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    euclidean = metric == "euclidean"
    work = torch.float64 if euclidean else dtype
    nb, n, d = x.shape
    i, j = condensed_index(n, x.device)
    out = torch.empty((nb, n * (n - 1) // 2), dtype=dtype, device=x.device)
    per_item = (n * d + 2 * n * n) * (8 if work == torch.float64 else 4) + n * n * 8
    step = max(1, chunk_bytes // per_item)
    refine = refine_ratio(d, dtype == torch.float64)
    for b0 in range(0, nb, step):
        xb = x[b0 : b0 + step].to(work)
        if metric == "correlation":
            mean = xb.mean(dim=-1, keepdim=True)
            xb = xb - mean
        elif euclidean:
            xb = xb - xb.mean(dim=-2, keepdim=True)
        gram = matmul_t(xb, xb)
        if metric == "correlation":
            _remove_offset(gram, xb, mean[..., 0])
        sq = torch.diagonal(gram, dim1=-2, dim2=-1)
        if euclidean:
            total = sq[:, i] + sq[:, j]
            d2 = (total - 2.0 * gram[:, i, j]).clamp_min_(0.0)
            _refine(x[b0 : b0 + step], d2, d2 < refine * total, i, j, chunk_bytes // 4)
            out[b0 : b0 + step] = d2.sqrt_()
        else:
            norms = sq.sqrt()
            r = gram[:, i, j] / (norms[:, i] * norms[:, j])
            dist = (1.0 - r).clamp_(0.0, 2.0)
            if metric == "cosine":
                refine_cosine_torch(x[b0 : b0 + step], dist, chunk_bytes // 4)
            out[b0 : b0 + step] = dist
    return out


def refine_cosine_torch(x: torch.Tensor, dist: torch.Tensor, chunk_bytes: int) -> None:
    """dist (B, m) condensed cosine distances of rows x (B, n, d) from a Gram in x's precision
    (float32 for lower ones) -> in place, those below `cosine_limit` recomputed as |u - v|^2 / 2
    of the float64 unit rows u, v (accurate relative to the distance itself), their float64 rows
    taking about `chunk_bytes` at a time. One host synchronisation (which pairs)."""
    n, d = x.shape[-2:]
    b, p = torch.nonzero(dist < cosine_limit(d, x.dtype == torch.float64), as_tuple=True)
    if b.numel() == 0:
        return
    rows = torch.arange(n - 1, device=x.device)
    starts = rows * n - rows * (rows + 1) // 2  # condensed index of (i, i + 1)
    step = max(1, refine_step(d, chunk_bytes) // 2)
    for s in range(0, b.numel(), step):
        bb, pp = b[s : s + step], p[s : s + step]
        i = torch.searchsorted(starts, pp, right=True) - 1
        j = pp - starts[i] + i + 1
        u = x[bb, i].double()
        v = x[bb, j].double()
        u /= torch.linalg.vector_norm(u, dim=-1, keepdim=True)
        v /= torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        u -= v
        dist[bb, pp] = (0.5 * (u * u).sum(-1)).clamp_(max=2.0).to(dist.dtype)


def _remove_offset(gram: torch.Tensor, y: torch.Tensor, mean: torch.Tensor) -> None:
    """gram (B, n, n) of rows y = x - mean (B, n, d) -> in place, the Gram of exactly centred rows.

    The mean's rounding leaves y a small mean l, and sum (y - l)(y' - l') = sum y y' - d l l'.
    That rounding is at most ~log2(d) * eps * sqrt(mean of x^2) per row; where it cannot matter
    (ordinary data, no large offset) l is not even computed."""
    d = y.shape[-1]
    sq = torch.diagonal(gram, dim1=-2, dim2=-1).double()
    bound = (
        4 * math.log2(d + 1) * torch.finfo(y.dtype).eps * torch.sqrt(sq / d + mean.double() ** 2)
    )
    if bool((d * bound * bound > 1e-10 * sq).any()):
        left = y.mean(dim=-1, dtype=torch.float64)
        gram -= (d * left[:, :, None] * left[:, None, :]).to(gram.dtype)


def _refine(x: torch.Tensor, d2: torch.Tensor, close: torch.Tensor, i, j, chunk_bytes) -> None:
    """d2[b, p] <- sum((x[b, i[p]] - x[b, j[p]])^2) in float64 where `close` (B, m) is True."""
    b, p = torch.nonzero(close, as_tuple=True)
    step = refine_step(x.shape[-1], chunk_bytes)
    for s in range(0, b.numel(), step):
        bb, pp = b[s : s + step], p[s : s + step]
        diff = x[bb, i[pp]].double() - x[bb, j[pp]].double()
        d2[bb, pp] = (diff * diff).sum(-1)
