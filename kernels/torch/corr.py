"""All-pairs Pearson (or cosine) of rows in torch: normalise, then one matrix product."""

import torch

__all__ = [
    "centred_rows_torch",
    "corr_torch",
    "matmul_t",
    "SLICE",
    "unit_rows_torch",
]


def centred_rows_torch(a: torch.Tensor) -> torch.Tensor:
    """Rows minus their mean, in a's dtype, by two passes: the second removes what rounding left
    of the first mean, so rows with a large offset (1e6 + N(0, 1) in float32) stay accurate."""
    a = a - a.mean(dim=-1, keepdim=True)
    return a - a.mean(dim=-1, keepdim=True)


def unit_rows_torch(a: torch.Tensor, centre: bool) -> torch.Tensor:
    """Rows centred (if `centre`) and scaled to unit norm, in a's dtype; the norm in float64."""
    if centre:
        a = centred_rows_torch(a)
    norm = torch.linalg.vector_norm(a, dim=-1, keepdim=True, dtype=torch.float64)
    return a * (1.0 / norm).to(a.dtype)


# float32 products are summed over slices of this many features, the slices in float64: torch's
# CPU matmul sums long, skinny float32 products almost sequentially (|error| ~1e-4 on r = 0.99
# at 124,750 values); a slice of 2048 errs by ~2e-6.
SLICE = 2048


def matmul_t(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (..., p, K) @ b(..., q, K)^T -> (..., p, q): one product when K <= SLICE or the operands
    are float64 (result in their dtype), else float32 products over slices of SLICE features
    summed in float64 (float64 result; one slice product lives at a time)."""
    k = a.shape[-1]
    if a.dtype == torch.float64 or k <= SLICE:
        return a @ b.transpose(-1, -2)
    out = None
    for k0 in range(0, k, SLICE):
        part = (a[..., k0 : k0 + SLICE] @ b[..., k0 : k0 + SLICE].transpose(-1, -2)).double()
        out = part if out is None else out.add_(part)
    assert out is not None  # k > SLICE: at least one slice
    return out


def corr_torch(a: torch.Tensor, b: torch.Tensor | None, centre: bool = True) -> torch.Tensor:
    """a: (Ba, M), b: (Bb, M) or None -> (Ba, Bb) Pearson r (cosine when not `centre`), in a's
    dtype (float64 stays float64, else float32 products summed by slices in float64)."""
    dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
    za = unit_rows_torch(a.to(dtype), centre)
    zb = za if b is None else unit_rows_torch(b.to(dtype), centre)
    return matmul_t(za, zb).to(dtype).clamp_(-1.0, 1.0)
