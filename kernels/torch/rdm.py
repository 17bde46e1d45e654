"""Batched RDMs in torch: centre, one batched Gram product (bmm), condensed extraction."""

import torch

CHUNK_BYTES = 1 << 30  # temporaries per chunk of the batch: ~1 GiB


def condensed_index(n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices (int64) of the pairs i < j, in scipy's condensed order."""
    i, j = torch.triu_indices(n, n, offset=1, device=device)
    return i, j


def rdm_torch(x: torch.Tensor, metric: str, chunk_bytes: int = CHUNK_BYTES) -> torch.Tensor:
    """x: (B, n, d) -> condensed RDMs (B, n*(n-1)//2); float64 stays float64, else float32.

    correlation: 1 - r of rows centred by their own mean; cosine: 1 - cos; euclidean: ||xi - xj||
    (columns centred first). Products follow torch's matmul precision settings.
    """
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    nb, n, d = x.shape
    i, j = condensed_index(n, x.device)
    out = torch.empty((nb, n * (n - 1) // 2), dtype=dtype, device=x.device)
    per_item = (n * d + 2 * n * n) * (8 if dtype == torch.float64 else 4)
    step = max(1, chunk_bytes // per_item)
    for b0 in range(0, nb, step):
        xb = x[b0 : b0 + step].to(dtype)
        if metric == "correlation":
            xb = xb - xb.mean(dim=-1, keepdim=True)
        elif metric == "euclidean":
            xb = xb - xb.mean(dim=-2, keepdim=True)
        gram = torch.bmm(xb, xb.transpose(1, 2))
        sq = torch.diagonal(gram, dim1=-2, dim2=-1)
        if metric == "euclidean":
            d2 = sq[:, i] + sq[:, j] - 2.0 * gram[:, i, j]
            out[b0 : b0 + step] = d2.clamp_min_(0.0).sqrt_()
        else:
            norms = sq.sqrt()
            r = gram[:, i, j] / (norms[:, i] * norms[:, j])
            out[b0 : b0 + step] = (1.0 - r).clamp_(0.0, 2.0)
    return out
