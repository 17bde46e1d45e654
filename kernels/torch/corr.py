"""All-pairs Pearson (or cosine) of rows in torch: normalise, then one matrix product."""

import torch


def centred_rows_torch(a: torch.Tensor) -> torch.Tensor:
    """Rows minus their mean, in a's dtype, by two passes: the second removes what rounding left
    of the first mean, so rows with a large offset (1e6 + N(0, 1) in float32) stay accurate."""
    a = a - a.mean(dim=-1, keepdim=True)
    return a - a.mean(dim=-1, keepdim=True)


def unit_rows_torch(a: torch.Tensor, center: bool) -> torch.Tensor:
    if center:
        a = centred_rows_torch(a)
    return a / torch.linalg.vector_norm(a, dim=-1, keepdim=True)


def corr_torch(a: torch.Tensor, b: torch.Tensor | None, center: bool = True) -> torch.Tensor:
    """a: (Ba, M), b: (Bb, M) or None -> (Ba, Bb) Pearson r (cosine when not `center`), computed
    in a's dtype (float64 stays float64, else float32)."""
    dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
    za = unit_rows_torch(a.to(dtype), center)
    zb = za if b is None else unit_rows_torch(b.to(dtype), center)
    return (za @ zb.T).clamp_(-1.0, 1.0)
