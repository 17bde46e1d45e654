"""All-pairs Pearson (or cosine) of many long rows: a split-K tiled product with centring in the
prologue; partial sums per slice of M, reduced and normalised afterwards (no atomics, so results
are deterministic)."""

import torch
import triton
import triton.language as tl

__all__ = ["CONFIG", "corr_triton", "MAX_K_PER_SPLIT"]


@triton.jit
def _corr_kernel(
    # pointers
    a_ptr, b_ptr, mean_a_ptr, mean_b_ptr, part_ptr,
    # sizes
    n_a, n_b, m, k_per_split,
    # strides
    stride_am, stride_ak, stride_bm, stride_bk, stride_ps, stride_pi,
    # constexprs
    CENTRE: tl.constexpr,  # subtract row means (Pearson) or not (cosine)
    PRECISION: tl.constexpr,  # tl.dot input precision: "ieee", "tf32x3" or "tf32"
    BLOCK_I: tl.constexpr,
    BLOCK_J: tl.constexpr,
    BLOCK_K: tl.constexpr,
):  # fmt: skip
    """Program (i, j, s): part[s, i-tile, j-tile] = sum over slice s of M of (a-mean)(b-mean)."""
    ri = tl.program_id(0).to(tl.int64) * BLOCK_I + tl.arange(0, BLOCK_I)
    rj = tl.program_id(1).to(tl.int64) * BLOCK_J + tl.arange(0, BLOCK_J)
    s = tl.program_id(2).to(tl.int64)
    ok_i = ri < n_a
    ok_j = rj < n_b
    if CENTRE:
        mu_i = tl.load(mean_a_ptr + ri, mask=ok_i, other=0.0)
        mu_j = tl.load(mean_b_ptr + rj, mask=ok_j, other=0.0)
    acc = tl.zeros([BLOCK_I, BLOCK_J], dtype=tl.float32)
    k_lo = s * k_per_split
    for k0 in range(0, k_per_split, BLOCK_K):
        k = k_lo + k0 + tl.arange(0, BLOCK_K)
        ok_k = (k < m) & (k < k_lo + k_per_split)
        mi = ok_i[:, None] & ok_k[None, :]
        mj = ok_j[:, None] & ok_k[None, :]
        a = tl.load(a_ptr + ri[:, None] * stride_am + k[None, :] * stride_ak, mask=mi, other=0.0)
        c = tl.load(b_ptr + rj[:, None] * stride_bm + k[None, :] * stride_bk, mask=mj, other=0.0)
        a = a.to(tl.float32)
        c = c.to(tl.float32)
        if CENTRE:  # re-mask so padding stays exactly 0
            a = tl.where(mi, a - mu_i[:, None], 0.0)
            c = tl.where(mj, c - mu_j[:, None], 0.0)
        acc = tl.dot(a, tl.trans(c), acc, input_precision=PRECISION)
    dst = part_ptr + s * stride_ps + ri[:, None] * stride_pi + rj[None, :]
    tl.store(dst, acc, mask=ok_i[:, None] & ok_j[None, :])


# (BLOCK, BLOCK_K, num_warps, num_stages), chosen on an H100 by benchmarks/gpu_bench.py.
CONFIG = (128, 16, 8, 3)
# Each program sums at most this many values in fp32 (|error| ~1e-6 on r near 1), the slices'
# partial sums are added in float64: one long fp32 sum errs by ~1e-4 at M = 124,750.
MAX_K_PER_SPLIT = 2048


def corr_triton(
    a: torch.Tensor,
    b: torch.Tensor | None = None,
    centre: bool = True,
    precision: str = "ieee",
    config: tuple[int, int, int, int] | None = None,
    chunk_bytes: int = 1 << 28,
) -> torch.Tensor:
    """a: (Ba, M), b: (Bb, M) or None -> (Ba, Bb) float32 Pearson r (cosine when not `centre`).

    fp32 products and sums within slices of at most MAX_K_PER_SPLIT values, the slices summed in
    float64; M is split so that at least about 2 programs per SM run, whatever Ba and Bb.
    Holds the float64 (Ba, Bb) sum and about `chunk_bytes` of fp32 partial sums (at least one
    slice's); M is covered in slabs of slices beyond that.
    config: (BLOCK, BLOCK_K, num_warps, num_stages), default CONFIG.
    Rows that are already centred (ranks from rank_triton(centred=True)) need centre=False.
    """
    b_ = a if b is None else b
    n_a, m = a.shape
    n_b = b_.shape[0]
    mean_a, inv_a = _row_stats(a, centre)
    mean_b, inv_b = (mean_a, inv_a) if b is None else _row_stats(b_, centre)
    block, block_k, warps, stages = config or CONFIG
    tiles = triton.cdiv(n_a, block) * triton.cdiv(n_b, block)
    sms = torch.cuda.get_device_properties(a.device).multi_processor_count if a.is_cuda else 4
    max_split = triton.cdiv(m, 16 * block_k)  # each slice keeps at least 16 steps of the product
    split = max(1, min(max_split, triton.cdiv(2 * sms, tiles)), triton.cdiv(m, MAX_K_PER_SPLIT))
    k_per_split = triton.cdiv(triton.cdiv(m, split), block_k) * block_k
    split = triton.cdiv(m, k_per_split)
    per_slab = max(1, min(split, chunk_bytes // (4 * n_a * n_b)))  # slices launched at once
    part = torch.empty((per_slab, n_a, n_b), dtype=torch.float32, device=a.device)
    gram = torch.zeros((n_a, n_b), dtype=torch.float64, device=a.device)
    for s0 in range(0, split, per_slab):
        k0 = s0 * k_per_split  # the slab covers values [k0, k0 + slices * k_per_split)
        slices = min(per_slab, split - s0)
        # fmt: off
        _corr_kernel[(triton.cdiv(n_a, block), triton.cdiv(n_b, block), slices)](
            a[:, k0:], b_[:, k0:], mean_a, mean_b, part,
            n_a, n_b, m - k0, k_per_split,
            a.stride(0), a.stride(1), b_.stride(0), b_.stride(1), part.stride(0), part.stride(1),
            CENTRE=centre, PRECISION=precision, BLOCK_I=block, BLOCK_J=block, BLOCK_K=block_k,
            num_warps=warps, num_stages=stages,
        )
        # fmt: on
        gram += part[:slices].sum(dim=0, dtype=torch.float64)
    return (gram * inv_a[:, None] * inv_b[None, :]).clamp_(-1.0, 1.0).float()


def _row_stats(a: torch.Tensor, centre: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean fp32, 1 / norm of the centred row float64), each (R,); torch's reductions."""
    af = a.float()
    if centre:
        var, mean = torch.var_mean(af, dim=1, correction=0)
        return mean, torch.rsqrt(var.double() * a.shape[1])
    return af.new_zeros(a.shape[0]), 1.0 / torch.linalg.vector_norm(af, dim=1, dtype=torch.float64)
