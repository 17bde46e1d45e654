"""Per-row statistics that the Gram kernels fold into their prologue and epilogue."""

import torch
import triton
import triton.language as tl

# Centring modes, shared with rdm.py and corr.py (kernels may read only constexpr globals).
NONE, ROW_MEAN, COLUMN_MEAN = 0, 1, 2
_ROW_MEAN = tl.constexpr(ROW_MEAN)
_COLUMN_MEAN = tl.constexpr(COLUMN_MEAN)


@triton.jit
def _row_stats_kernel(
    # pointers
    x_ptr, colmean_ptr, mean_ptr, norm_ptr,
    # sizes: x is (B, n, d), seen as B*n rows of length d
    n_rows, n, d,
    # strides
    stride_xb, stride_xn, stride_xd, stride_cb,
    # constexprs
    MODE: tl.constexpr,  # NONE: raw rows; ROW_MEAN: minus own mean; COLUMN_MEAN: minus colmean[b]
    SQUARED: tl.constexpr,  # store ||row||^2 (euclidean) instead of 1 / ||row|| (correlations)
    BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """mean_ptr[r] <- the row mean (ROW_MEAN, else 0); norm_ptr[r] <- 1/||centred row|| or
    ||centred row||^2. fp32 sums, two passes over the row (mean first: no cancellation)."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = rows < n_rows
    b = rows // n
    i = rows % n
    base = b * stride_xb + i * stride_xn
    mean = tl.zeros([BLOCK_R], dtype=tl.float32)
    if MODE == _ROW_MEAN:
        for k0 in range(0, d, BLOCK_D):
            k = k0 + tl.arange(0, BLOCK_D)
            ok = row_ok[:, None] & (k < d)[None, :]
            v = tl.load(x_ptr + base[:, None] + k[None, :] * stride_xd, mask=ok, other=0.0)
            mean += tl.sum(v.to(tl.float32), axis=1)
        mean = mean / d
    ss = tl.zeros([BLOCK_R], dtype=tl.float32)
    for k0 in range(0, d, BLOCK_D):
        k = k0 + tl.arange(0, BLOCK_D)
        ok = row_ok[:, None] & (k < d)[None, :]
        v = tl.load(x_ptr + base[:, None] + k[None, :] * stride_xd, mask=ok, other=0.0)
        v = v.to(tl.float32)
        if MODE == _ROW_MEAN:
            v = v - mean[:, None]
        if MODE == _COLUMN_MEAN:
            c = tl.load(colmean_ptr + b[:, None] * stride_cb + k[None, :], mask=ok, other=0.0)
            v = v - c
        v = tl.where(ok, v, 0.0)  # masked lanes must not add (v - mean) to the sums
        ss += tl.sum(v * v, axis=1)
    tl.store(mean_ptr + rows, mean, mask=row_ok)
    if SQUARED:
        tl.store(norm_ptr + rows, ss, mask=row_ok)
    else:
        tl.store(norm_ptr + rows, 1.0 / tl.sqrt(tl.where(row_ok, ss, 1.0)), mask=row_ok)


def row_stats_triton(
    x: torch.Tensor, mode: int, squared: bool = False, colmean: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (B, n, d) any float dtype and strides -> (mean, norm), each (B, n) float32.

    colmean: (B, d) float32, contiguous in d, for mode COLUMN_MEAN.
    """
    nb, n, d = x.shape
    mean = torch.empty((nb, n), dtype=torch.float32, device=x.device)
    norm = torch.empty_like(mean)
    cm = colmean if colmean is not None else mean  # unused pointer when mode != COLUMN_MEAN
    block_r, block_d = 16, 128
    grid = (triton.cdiv(nb * n, block_r),)
    _row_stats_kernel[grid](
        x, cm, mean, norm,
        nb * n, n, d,
        x.stride(0), x.stride(1), x.stride(2), cm.stride(0),
        MODE=mode, SQUARED=squared, BLOCK_R=block_r, BLOCK_D=block_d,
    )
    return mean, norm
