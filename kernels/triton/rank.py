"""Average-tie ranks on the GPU: torch.sort per row, then a Triton kernel that finds the runs of
ties in the sorted row, gives each element the mean rank of its run and scatters it back."""

import torch
import triton
import triton.language as tl

__all__ = ["CONFIG", "rank_sorted_triton", "rank_triton"]


@triton.jit
def _max(a, b):
    return tl.maximum(a, b)


@triton.jit
def _min(a, b):
    return tl.minimum(a, b)


@triton.jit
def _rank_kernel(
    # pointers
    vals_ptr, idx_ptr, out_ptr,
    # sizes
    m,
    # strides (per row)
    stride_v, stride_i, stride_o,
    # constexprs
    CENTRED: tl.constexpr,  # store rank - (m + 1) / 2 (feeds the correlation) instead of the rank
    BLOCK: tl.constexpr,
):  # fmt: skip
    """Program (r, c): sorted positions [c*BLOCK, (c+1)*BLOCK) of row r.

    A run of ties spans sorted positions [start, end]; its ranks are start+1 .. end+1, so each
    member gets (start + end) / 2 + 1. Inside the block, start = running max of run-start
    positions and end = reverse running min of run-end positions; a run entering from the left
    or leaving to the right is resolved by a binary search in the sorted row, so every block is
    independent of the others.
    """
    r = tl.program_id(0).to(tl.int64)
    k0 = tl.program_id(1) * BLOCK
    k = k0 + tl.arange(0, BLOCK)
    ok = k < m
    v_row = vals_ptr + r * stride_v
    v = tl.load(v_row + k, mask=ok)
    prev = tl.load(v_row + k - 1, mask=ok & (k > 0))
    nxt = tl.load(v_row + k + 1, mask=k + 1 < m)
    first = ok & ((k == 0) | (v != prev))
    last = ok & ((k == m - 1) | (v != nxt))
    # leftmost position holding the block's first value: the block's first position unless a
    # tie run enters from the left; then binary search in the sorted row (rare: ties only)
    v_first = tl.load(v_row + k0)
    enters = (k0 > 0) & (tl.load(v_row + k0 - 1, mask=k0 > 0) == v_first)
    lo = k0
    hi = k0
    if enters:
        lo = 0
    while lo < hi:
        mid = (lo + hi) // 2
        below = tl.load(v_row + mid) < v_first
        lo = tl.where(below, mid + 1, lo)
        hi = tl.where(below, hi, mid)
    # rightmost position holding the block's last value, likewise
    k_last = tl.minimum(k0 + BLOCK, m) - 1
    v_last = tl.load(v_row + k_last)
    leaves = (k_last + 1 < m) & (tl.load(v_row + k_last + 1, mask=k_last + 1 < m) == v_last)
    lo2 = k_last
    hi2 = k_last
    if leaves:
        hi2 = m - 1
    while lo2 < hi2:
        mid = (lo2 + hi2 + 1) // 2
        above = tl.load(v_row + mid) > v_last
        hi2 = tl.where(above, mid - 1, hi2)
        lo2 = tl.where(above, lo2, mid)
    start = tl.associative_scan(tl.where(first, k, 0), 0, _max)
    start = tl.maximum(start, lo)
    end = tl.associative_scan(tl.where(last, k, m), 0, _min, reverse=True)
    end = tl.minimum(end, lo2)
    # twice the rank (an integer, in int64: no overflow), or twice (rank - (m + 1) / 2)
    twice = start.to(tl.int64) + end + 2
    if CENTRED:
        twice = twice - (m + 1)
    rank = twice.to(out_ptr.dtype.element_ty) * 0.5  # exact in fp64; in fp32 while |twice| < 2**24
    dst = tl.load(idx_ptr + r * stride_i + k, mask=ok)
    tl.store(out_ptr + r * stride_o + dst, rank, mask=ok)


# (BLOCK, num_warps), chosen on an H100 by benchmarks/gpu_bench.py (section tuning).
CONFIG = (1024, 8)


def rank_triton(
    x: torch.Tensor,
    centred: bool = False,
    out_dtype: torch.dtype = torch.float64,
    config: tuple[int, int] | None = None,
    chunk_bytes: int = 1 << 30,
) -> torch.Tensor:
    """x: (R, M) -> ranks (R, M) in `out_dtype`, equal to scipy's rankdata "average".

    Exact in float64 for M < 2**31 (positions are int32). centred=True stores rank - (M+1)/2,
    ready for a correlation; in float32 that is exact while M < 2**24 and rounded (relative
    error < 6e-8) beyond. Rows are sorted in chunks of about `chunk_bytes` of workspace.
    """
    block, warps = config or CONFIG
    rows, m = x.shape
    if m >= 2**31 - 1:
        raise ValueError(f"rank_triton supports rows of fewer than 2**31 - 1 values; got {m}")
    out = torch.empty((rows, m), dtype=out_dtype, device=x.device)
    step = max(1, chunk_bytes // (m * (x.element_size() + 8)))
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        # contiguous: torch.sort keeps its input's strides, and the kernel reads rows densely
        vals, idx = torch.sort(x[r0:r1].contiguous(), dim=-1)
        rank_sorted_triton(vals, idx, out[r0:r1], centred, block, warps)
    return out


def rank_sorted_triton(vals, idx, out, centred: bool, block: int, warps: int) -> None:
    """The kernel alone: rows already sorted (vals, idx from torch.sort) -> out (R, M)."""
    rows, m = vals.shape
    # fmt: off
    _rank_kernel[(rows, triton.cdiv(m, block))](
        vals, idx, out,
        m,
        vals.stride(0), idx.stride(0), out.stride(0),
        CENTRED=centred, BLOCK=block, num_warps=warps,
    )
    # fmt: on
