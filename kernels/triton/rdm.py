"""Batched RDMs in one launch: a tiled Gram product over the tiles on or above the diagonal only,
with centring in the prologue and 1 - r (or the distance) written straight into the condensed
layout by the epilogue."""

import functools

import torch
import triton
import triton.language as tl

from .stats import COLUMN_MEAN, NONE, ROW_MEAN, row_stats_triton

_METRICS = {"correlation": 0, "cosine": 1, "euclidean": 2}
MAX_GRID_Y = 65535  # CUDA's limit on grid axis 1, which carries the batch


@triton.jit
def _rdm_kernel(
    # pointers
    x_ptr, mean_ptr, norm_ptr, colmean_ptr, tile_i_ptr, tile_j_ptr, out_ptr,
    # sizes
    n, d,
    # strides (x: batch, row, feature; stats: batch; colmean: batch; out: batch)
    stride_xb, stride_xn, stride_xd, stride_sb, stride_cb, stride_ob,
    # constexprs
    METRIC: tl.constexpr,  # 0 correlation, 1 cosine, 2 euclidean
    PRECISION: tl.constexpr,  # tl.dot input precision: "ieee" (fp32 FMA) or "tf32"
    BLOCK_N: tl.constexpr,  # rows (and columns) per tile
    BLOCK_K: tl.constexpr,  # features per step of the product
):
    """Program (t, b): the tile (tile_i[t], tile_j[t]) of batch b's Gram matrix, i-tile <= j-tile."""
    t = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    ti = tl.load(tile_i_ptr + t).to(tl.int64)
    tj = tl.load(tile_j_ptr + t).to(tl.int64)
    ri = ti * BLOCK_N + tl.arange(0, BLOCK_N)
    rj = tj * BLOCK_N + tl.arange(0, BLOCK_N)
    ok_i = ri < n
    ok_j = rj < n
    x_b = x_ptr + b * stride_xb
    if METRIC == 0:
        mu_i = tl.load(mean_ptr + b * stride_sb + ri, mask=ok_i, other=0.0)
        mu_j = tl.load(mean_ptr + b * stride_sb + rj, mask=ok_j, other=0.0)
    acc = tl.zeros([BLOCK_N, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, d, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        ok_k = k < d
        mi = ok_i[:, None] & ok_k[None, :]
        mj = ok_j[:, None] & ok_k[None, :]
        a = tl.load(x_b + ri[:, None] * stride_xn + k[None, :] * stride_xd, mask=mi, other=0.0)
        c = tl.load(x_b + rj[:, None] * stride_xn + k[None, :] * stride_xd, mask=mj, other=0.0)
        a = a.to(tl.float32)
        c = c.to(tl.float32)
        if METRIC == 0:  # centre each row; re-mask so padding stays exactly 0
            a = tl.where(mi, a - mu_i[:, None], 0.0)
            c = tl.where(mj, c - mu_j[:, None], 0.0)
        if METRIC == 2:  # subtract the batch's mean row (distances unchanged)
            cm = tl.load(colmean_ptr + b * stride_cb + k, mask=ok_k, other=0.0)
            a = tl.where(mi, a - cm[None, :], 0.0)
            c = tl.where(mj, c - cm[None, :], 0.0)
        acc = tl.dot(a, tl.trans(c), acc, input_precision=PRECISION)
    s_i = tl.load(norm_ptr + b * stride_sb + ri, mask=ok_i, other=1.0)
    s_j = tl.load(norm_ptr + b * stride_sb + rj, mask=ok_j, other=1.0)
    if METRIC == 2:  # s = squared norms
        val = tl.sqrt(tl.maximum(s_i[:, None] + s_j[None, :] - 2.0 * acc, 0.0))
    else:  # s = inverse norms
        val = tl.minimum(tl.maximum(1.0 - acc * s_i[:, None] * s_j[None, :], 0.0), 2.0)
    i = ri[:, None]
    j = rj[None, :]
    # condensed index of (i, j), i < j: i*n - i*(i+1)/2 + (j - i - 1), in int64
    idx = i * n - (i * (i + 1)) // 2 + (j - i - 1)
    tl.store(out_ptr + b * stride_ob + idx, val, mask=(i < j) & (j < n))


@functools.lru_cache(maxsize=64)
def _upper_tiles(n_tiles: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(tile_i, tile_j) int32 for every tile with tile_i <= tile_j, row-major."""
    ti, tj = torch.triu_indices(n_tiles, n_tiles, offset=0)
    return ti.to(torch.int32).to(device), tj.to(torch.int32).to(device)


def rdm_triton(
    x: torch.Tensor,
    metric: str = "correlation",
    precision: str = "ieee",
    block_n: int = 64,
    block_k: int = 32,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """x: (B, n, d) float32/float16/bfloat16, any strides -> condensed RDMs (B, n*(n-1)//2) fp32
    (written into `out` when given: contiguous, fp32, that shape).

    precision "ieee": fp32 products and sums (|error| vs float64 ~ 1e-6 for unit-scale rows);
    "tf32": tensor-core products with 10-bit mantissas (|error| ~ 1e-3), fp32 sums.
    Row means and norms in fp32, two-pass.
    """
    if precision not in ("ieee", "tf32"):
        raise ValueError(f"precision must be 'ieee' or 'tf32'; got {precision!r}")
    nb, n, d = x.shape
    code = _METRICS[metric]
    colmean = None
    if metric == "euclidean":
        colmean = x.mean(dim=1, dtype=torch.float32).contiguous()  # (B, d)
    mode = {0: ROW_MEAN, 1: NONE, 2: COLUMN_MEAN}[code]
    mean, norm = row_stats_triton(x, mode, squared=code == 2, colmean=colmean)
    if out is None:
        out = torch.empty((nb, n * (n - 1) // 2), dtype=torch.float32, device=x.device)
    ti, tj = _upper_tiles(triton.cdiv(n, block_n), str(x.device))
    cm = colmean if colmean is not None else mean
    for b0 in range(0, nb, MAX_GRID_Y):
        b1 = min(nb, b0 + MAX_GRID_Y)
        _rdm_kernel[(ti.numel(), b1 - b0)](
            x[b0:b1], mean[b0:b1], norm[b0:b1], cm[b0:b1], ti, tj, out[b0:b1],
            n, d,
            x.stride(0), x.stride(1), x.stride(2), mean.stride(0), cm.stride(0), out.stride(0),
            METRIC=code, PRECISION=precision, BLOCK_N=block_n, BLOCK_K=block_k,
        )
    return out
