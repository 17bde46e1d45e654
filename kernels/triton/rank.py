"""Average-tie ranks on the GPU: torch.sort per row, then a Triton kernel that finds the runs of
ties in the sorted row, gives each element the mean rank of its run and scatters it back."""

import torch
import triton
import triton.language as tl

CHUNK_BYTES = 1 << 30  # sort workspace per chunk of rows: ~1 GiB


@triton.jit
def _max(a, b):
    return tl.maximum(a, b)


@triton.jit
def _min(a, b):
    return tl.minimum(a, b)


@triton.jit
def _rank_kernel(
    # pointers
    vals_ptr, idx_ptr, carry_ptr, out_ptr,
    # sizes
    m, n_chunks,
    # strides (per row)
    stride_v, stride_i, stride_c, stride_o,
    # constexprs
    CENTRED: tl.constexpr,  # store rank - (m + 1) / 2 (feeds the correlation) instead of the rank
    BLOCK: tl.constexpr,
):
    """Row r: vals (sorted), idx (their original positions) -> out[idx[k]] = mean rank of k's run.

    A run of ties spans sorted positions [start, end]; its ranks are start+1 .. end+1, so each
    member gets (start + end) / 2 + 1. start = running max of run-start positions (forward scan),
    end = running min of run-end positions (backward scan). A first pass records, per chunk, the
    start of the run that enters it from the left, so long runs may cross chunks.
    """
    r = tl.program_id(0).to(tl.int64)
    v_row = vals_ptr + r * stride_v
    c_row = carry_ptr + r * stride_c
    carry = tl.zeros([1], dtype=tl.int32)  # start of the run holding the last element seen
    for c in range(0, n_chunks):
        k = c * BLOCK + tl.arange(0, BLOCK)
        ok = k < m
        v = tl.load(v_row + k, mask=ok)
        prev = tl.load(v_row + k - 1, mask=ok & (k > 0))
        first = (k == 0) | (v != prev)
        tl.store(c_row + c + tl.arange(0, 1), carry)
        start = tl.where(first & ok, k, 0).to(tl.int32)
        carry = tl.maximum(carry, tl.max(start, axis=0))
    end_carry = tl.full([1], m - 1, dtype=tl.int32)  # end of the run entering from the right
    for cc in range(0, n_chunks):
        c = n_chunks - 1 - cc
        k = c * BLOCK + tl.arange(0, BLOCK)
        ok = k < m
        v = tl.load(v_row + k, mask=ok)
        prev = tl.load(v_row + k - 1, mask=ok & (k > 0))
        nxt = tl.load(v_row + k + 1, mask=k + 1 < m)
        first = (k == 0) | (v != prev)
        last = (k == m - 1) | (v != nxt)
        start = tl.associative_scan(tl.where(first & ok, k, 0).to(tl.int32), 0, _max)
        start = tl.maximum(start, tl.load(c_row + c + tl.zeros([BLOCK], tl.int32)))
        end = tl.associative_scan(tl.where(last & ok, k, m).to(tl.int32), 0, _min, reverse=True)
        end = tl.minimum(end, end_carry)
        end_carry = tl.min(tl.where(ok, end, m), axis=0) + tl.zeros([1], tl.int32)  # end at chunk's 1st
        # ranks are half-integers: (start + end) / 2 + 1 is exact in float64
        rank = (start + end).to(tl.float64) * 0.5 + 1.0
        if CENTRED:
            rank = rank - (m + 1) * 0.5
        dst = tl.load(idx_ptr + r * stride_i + k, mask=ok)
        tl.store(out_ptr + r * stride_o + dst, rank.to(out_ptr.dtype.element_ty), mask=ok)


def rank_triton(
    x: torch.Tensor, centred: bool = False, out_dtype: torch.dtype = torch.float64, block: int = 1024
) -> torch.Tensor:
    """x: (R, M) -> ranks (R, M) in `out_dtype`, equal to scipy's rankdata "average".

    Exact in float64 for M < 2**31 (positions are int32). centred=True stores rank - (M+1)/2,
    ready for a correlation; in float32 that is exact while M < 2**24 and rounded (relative
    error < 6e-8) beyond. Rows are sorted in chunks of about CHUNK_BYTES of workspace.
    """
    rows, m = x.shape
    if m >= 2**31 - 1:
        raise ValueError(f"rank_triton supports rows of fewer than 2**31 - 1 values; got {m}")
    out = torch.empty((rows, m), dtype=out_dtype, device=x.device)
    n_chunks = triton.cdiv(m, block)
    carry = torch.empty((rows, n_chunks), dtype=torch.int32, device=x.device)
    step = max(1, CHUNK_BYTES // (m * (x.element_size() + 8)))
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        vals, idx = torch.sort(x[r0:r1], dim=-1)
        _rank_kernel[(r1 - r0,)](
            vals, idx, carry[r0:r1], out[r0:r1],
            m, n_chunks,
            vals.stride(0), idx.stride(0), carry.stride(0), out.stride(0),
            CENTRED=centred, BLOCK=block,
        )
    return out
