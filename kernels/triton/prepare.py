"""Row preparation for the Gram kernels: centre and scale each feature row once, into fp32."""

import torch
import triton
import triton.language as tl

__all__ = ["CENTRED_UNIT", "COLUMN_CENTRED", "MAX_D", "UNIT", "prepare_rows_triton"]

# Modes (kernels may read only constexpr globals, hence the tl.constexpr twins).
UNIT, CENTRED_UNIT, COLUMN_CENTRED = 0, 1, 2
_CENTRED_UNIT = tl.constexpr(CENTRED_UNIT)
_COLUMN_CENTRED = tl.constexpr(COLUMN_CENTRED)


@triton.jit
def _prepare_kernel(
    # pointers
    x_ptr, colmean_ptr, y_ptr, sq_ptr,
    # sizes: x is (B, n, d), seen as B*n rows of length d
    n_rows, n, d,
    # strides (y is contiguous (B*n, d))
    stride_xb, stride_xn, stride_xd, stride_cb,
    # constexprs
    MODE: tl.constexpr,  # UNIT: x/|x|, CENTRED_UNIT: (x-mean)/|x-mean|, COLUMN_CENTRED: x-colmean
    BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr,  # >= d: each row is read once and written once
):  # fmt: skip
    """y[r] <- the prepared row (fp32); sq[r] <- |x - colmean|^2 (COLUMN_CENTRED only)."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    k = tl.arange(0, BLOCK_D)
    ok = (rows < n_rows)[:, None] & (k < d)[None, :]
    b = rows // n
    i = rows % n
    v = tl.load(
        x_ptr + (b * stride_xb + i * stride_xn)[:, None] + k[None, :] * stride_xd,
        mask=ok,
        other=0.0,
    ).to(tl.float32)
    if MODE == _COLUMN_CENTRED:
        c = tl.load(colmean_ptr + b[:, None] * stride_cb + k[None, :], mask=ok, other=0.0)
        v = tl.where(ok, v - c, 0.0)
        tl.store(sq_ptr + rows, tl.sum(v * v, axis=1), mask=rows < n_rows)
    else:
        if MODE == _CENTRED_UNIT:  # two passes: the second removes the first mean's rounding
            mean = tl.sum(v, axis=1) / d
            v = tl.where(ok, v - mean[:, None], 0.0)  # padding must stay 0
            mean = tl.sum(v, axis=1) / d
            v = tl.where(ok, v - mean[:, None], 0.0)
        ss = tl.sum(v * v, axis=1)
        v = v * (1.0 / tl.sqrt(tl.where(ss > 0, ss, 1.0)))[:, None]
    tl.store(y_ptr + rows[:, None] * d + k[None, :], v, mask=ok)


MAX_D = 16384  # rows up to this length are prepared in registers in one read


def prepare_rows_triton(x: torch.Tensor, mode: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """x: (B, n, d) any float dtype and strides -> (y (B, n, d) fp32 contiguous, sq (B, n) fp32 or
    None). Means and sums in fp32; the row mean is subtracted in two passes (the second removes
    the first one's rounding, so large offsets cost no accuracy) before squaring."""
    nb, n, d = x.shape
    if d > MAX_D:  # long rows: the same transform in torch, in fp32
        xf = x.float()
        if mode == COLUMN_CENTRED:
            y = (xf - xf.mean(dim=1, keepdim=True)).contiguous()
            return y, (y * y).sum(-1)
        if mode == CENTRED_UNIT:  # two passes, as in the kernel
            xf = xf - xf.mean(dim=-1, keepdim=True)
            xf = xf - xf.mean(dim=-1, keepdim=True)
        return (xf / torch.linalg.vector_norm(xf, dim=-1, keepdim=True)).contiguous(), None
    y = torch.empty((nb, n, d), dtype=torch.float32, device=x.device)
    sq = torch.empty((nb, n), dtype=torch.float32, device=x.device) if mode == COLUMN_CENTRED else y
    colmean = x.mean(dim=1, dtype=torch.float32).contiguous() if mode == COLUMN_CENTRED else y
    block_d = triton.next_power_of_2(d)
    block_r = max(1, 4096 // block_d)
    grid = (triton.cdiv(nb * n, block_r),)
    # fmt: off
    _prepare_kernel[grid](
        x, colmean, y, sq,
        nb * n, n, d,
        x.stride(0), x.stride(1), x.stride(2), colmean.stride(0),
        MODE=mode, BLOCK_R=block_r, BLOCK_D=block_d, num_warps=4 if block_d <= 4096 else 8,
    )
    # fmt: on
    return y, (sq if mode == COLUMN_CENTRED else None)
