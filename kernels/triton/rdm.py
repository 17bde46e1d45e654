"""Batched RDMs: rows prepared once (centred, unit norm, fp32), then one launch of a tiled Gram
product over the tiles on or above the diagonal only, whose epilogue writes 1 - r (or the
distance) straight into the condensed layout."""

import torch
import triton
import triton.language as tl

from ..torch.rdm import refine_cosine_torch
from .prepare import CENTRED_UNIT, COLUMN_CENTRED, UNIT, prepare_rows_triton

__all__ = [
    "CONFIGS",
    "MAX_GRID_Y",
    "PRECISIONS",
    "rdm_triton",
    "SLAB",
]

MAX_GRID_Y = 65535  # CUDA's limit on grid axis 1, which carries the batch


@triton.jit
def _rdm_kernel(
    # pointers
    y_ptr, sq_ptr, out_ptr,
    # sizes (d: the features summed by this launch)
    n, d,
    # strides (y: (B, n, >= d) with unit feature stride; sq: (B, n); out: (B, m))
    stride_yb, stride_yn, stride_sb, stride_ob,
    # constexprs
    EUCLIDEAN: tl.constexpr,  # rows are column-centred and sq holds |y|^2; else rows are unit
    RAW: tl.constexpr,  # store the Gram entries themselves (a slab of a long row's features)
    PRECISION: tl.constexpr,  # tl.dot input precision: "ieee" (fp32 FMA), "tf32x3" or "tf32"
    EVEN_K: tl.constexpr,  # d % BLOCK_K == 0: no mask along the features
    BLOCK_N: tl.constexpr,  # rows (and columns) per tile
    BLOCK_K: tl.constexpr,  # features per step of the product
):  # fmt: skip
    """Program (t, b): upper tile t of batch b's Gram matrix, tiles numbered column by column:
    t = tj*(tj+1)/2 + ti with ti <= tj."""
    t = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    tj = ((tl.sqrt(8.0 * t + 1.0) - 1.0) * 0.5).to(tl.int32)  # fp32 sqrt, then exact fix-ups
    tj = tl.where((tj + 1) * (tj + 2) // 2 <= t, tj + 1, tj)
    tj = tl.where(tj * (tj + 1) // 2 > t, tj - 1, tj)
    ti = t - tj * (tj + 1) // 2
    ri = ti.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    rj = tj.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    ok_i = ri < n
    ok_j = rj < n
    y_b = y_ptr + b * stride_yb
    pa = y_b + ri[:, None] * stride_yn + tl.arange(0, BLOCK_K)[None, :]
    pc = y_b + rj[:, None] * stride_yn + tl.arange(0, BLOCK_K)[None, :]
    acc = tl.zeros([BLOCK_N, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, d, BLOCK_K):
        if EVEN_K:
            a = tl.load(pa, mask=ok_i[:, None], other=0.0)
            c = tl.load(pc, mask=ok_j[:, None], other=0.0)
        else:
            ok_k = (k0 + tl.arange(0, BLOCK_K)) < d
            a = tl.load(pa, mask=ok_i[:, None] & ok_k[None, :], other=0.0)
            c = tl.load(pc, mask=ok_j[:, None] & ok_k[None, :], other=0.0)
        acc = tl.dot(a, tl.trans(c), acc, input_precision=PRECISION)
        pa += BLOCK_K
        pc += BLOCK_K
    if RAW:
        val = acc
    elif EUCLIDEAN:
        s_i = tl.load(sq_ptr + b * stride_sb + ri, mask=ok_i, other=0.0)
        s_j = tl.load(sq_ptr + b * stride_sb + rj, mask=ok_j, other=0.0)
        val = tl.sqrt(tl.maximum(s_i[:, None] + s_j[None, :] - 2.0 * acc, 0.0))
    else:
        val = tl.minimum(tl.maximum(1.0 - acc, 0.0), 2.0)
    i = ri[:, None]
    j = rj[None, :]
    # condensed index of (i, j), i < j: i*n - i*(i+1)/2 + (j - i - 1), in int64
    idx = i * n - (i * (i + 1)) // 2 + (j - i - 1)
    tl.store(out_ptr + b * stride_ob + idx, val, mask=(i < j) & (j < n))


# (BLOCK_N, BLOCK_K, num_warps, num_stages) per precision, chosen on an H100 by
# benchmarks/gpu_bench.py (section rdm_configs); see benchmarks/results/NOTES-gpu.md.
CONFIGS = {"ieee": (128, 16, 4, 3), "tf32x3": (128, 64, 8, 3), "tf32": (128, 64, 8, 3)}
PRECISIONS = tuple(CONFIGS)
# Longer rows (correlation, cosine) are summed in slabs of this many features, each slab's Gram
# in fp32 and the slabs in float64: one fp32 sum over 524,288 features would err by ~1e-4.
SLAB = 8192


def rdm_triton(
    x: torch.Tensor,
    metric: str = "correlation",
    precision: str = "ieee",
    config: tuple[int, int, int, int] | None = None,
    out: torch.Tensor | None = None,
    chunk_bytes: int = 1 << 30,
) -> torch.Tensor:
    """x: (B, n, d) float32/float16/bfloat16, any strides -> condensed RDMs (B, n*(n-1)//2) fp32
    (written into `out` when given: contiguous, fp32, that shape).

    precision "ieee": fp32 products and sums on the FMA units (|error| vs float64 < 1e-6);
    "tf32x3": each product as three tensor-core tf32 products (hi*hi + hi*lo + lo*hi), fp32
    sums: about fp32's accuracy (|error| < 2e-6), several times faster; "tf32": one tf32
    product (10-bit mantissas, |error| ~1e-4), fastest. Errors measured on an H100, see
    benchmarks/results/NOTES-gpu.md. Rows longer than SLAB features (correlation, cosine) are
    summed slab by slab, the slabs in float64 (one more (B, m) float64 buffer). cosine
    distances too small for the fp32 Gram's rounding (below `cosine_limit`: rows sharing a large
    offset) are recomputed from float64 unit rows with torch (`refine_cosine_torch`), accurate
    relative to themselves, in every precision.
    Rows are first centred and scaled in fp32 (one read, one write), in chunks of the batch
    whose prepared rows (and slab sums) take about `chunk_bytes`, at least one matrix at a time.
    euclidean: the Gram formula in fp32, so the squared distance errs by ~1e-7 of the squared
    norms (near-duplicate pairs lose relative accuracy); fastrsa's triton backend therefore
    computes euclidean RDMs with torch in float64 (kernels/torch/rdm.py).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    block_n, block_k, warps, stages = config or CONFIGS[precision]
    nb, n, d = x.shape
    mode = {"correlation": CENTRED_UNIT, "cosine": UNIT, "euclidean": COLUMN_CENTRED}[metric]
    if out is None:
        out = torch.empty((nb, n * (n - 1) // 2), dtype=torch.float32, device=x.device)
    slabs = metric != "euclidean" and d > SLAB
    per_item = n * d * 4 + (12 * out.shape[1] if slabs else 0)  # fp32 rows (+ slab sums)
    step = max(1, min(MAX_GRID_Y, chunk_bytes // per_item))
    cfg = dict(metric=metric, precision=precision, config=(block_n, block_k, warps, stages))
    for b0 in range(0, nb, step):
        b1 = min(nb, b0 + step)
        y, sq = prepare_rows_triton(x[b0:b1], mode)
        if not slabs:
            _launch(y, sq, out[b0:b1], 0, d, raw=False, **cfg)
        else:
            gram = torch.zeros((b1 - b0, out.shape[1]), dtype=torch.float64, device=x.device)
            part = torch.empty((b1 - b0, out.shape[1]), dtype=torch.float32, device=x.device)
            for k0 in range(0, d, SLAB):
                _launch(y, sq, part, k0, min(d, k0 + SLAB), raw=True, **cfg)
                gram += part
            out[b0:b1] = (1.0 - gram).clamp_(0.0, 2.0)
        if metric == "cosine":  # distances below the fp32 Gram's rounding: from unit rows
            refine_cosine_torch(x[b0:b1], out[b0:b1], chunk_bytes // 4)
    return out


def _launch(y, sq, dst, k0, k1, raw, metric, precision, config) -> None:
    """One launch over every upper tile of every batch item of y (B, n, d), summing features
    [k0, k1): distances (or, `raw`, Gram entries) into dst (B, m)."""
    block_n, block_k, warps, stages = config
    nb, n, _ = y.shape
    n_tiles = triton.cdiv(n, block_n)
    sq = y if sq is None else sq  # unused pointer unless euclidean
    # fmt: off
    _rdm_kernel[(n_tiles * (n_tiles + 1) // 2, nb)](
        y[:, :, k0:], sq, dst,
        n, k1 - k0,
        y.stride(0), y.stride(1), sq.stride(0), dst.stride(0),
        EUCLIDEAN=metric == "euclidean", RAW=raw, PRECISION=precision,
        EVEN_K=(k1 - k0) % block_k == 0, BLOCK_N=block_n, BLOCK_K=block_k,
        num_warps=warps, num_stages=stages,
    )
    # fmt: on
