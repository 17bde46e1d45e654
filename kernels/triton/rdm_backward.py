"""Backward of the correlation / cosine RDM, dU = -S U, read from the condensed gradient.

Forward (per model): RDM_c = 1 - <u_i, u_j> for the pairs c = (i < j) in condensed order
(row-major, scipy's `squareform`), u (n, d) the rows already centred (correlation) and of unit
norm. With g (m,) = dL/dRDM, m = n(n-1)/2, and S the symmetric n x n matrix S_ij = S_ji = g_c
(zero diagonal): dL/du = -S U. The chain through the centring and normalisation is the caller's
(autograd of the row preparation). The Triton kernel builds each S[I, J] tile in registers from
the condensed g by index arithmetic and never holds a dense S.
"""

import torch
import triton
import triton.language as tl

from .rdm import MAX_GRID_Y, PRECISIONS

__all__ = [
    "BACKWARD_CONFIG",
    "rdm_backward",
    "rdm_backward_reference",
    "rdm_backward_triton",
]


@triton.jit
def _rdm_backward_kernel(
    # pointers
    u_ptr, g_ptr, out_ptr,
    # sizes
    n, d, n_dtiles,
    # strides (u: (B, n, d) any; g: (B, m) any; out: (B, n, d) contiguous)
    stride_ub, stride_un, stride_ud, stride_gb, stride_gm, stride_ob,
    # constexprs
    PRECISION: tl.constexpr,  # tl.dot input precision: "ieee", "tf32x3" or "tf32"
    BLOCK_I: tl.constexpr,  # output rows per program
    BLOCK_J: tl.constexpr,  # rows of U (columns of S) per step
    BLOCK_D: tl.constexpr,  # features per program
):  # fmt: skip
    """Program (t, b), t = ti * n_dtiles + td: out[b, I, D] = -sum_J S[I, J] @ U[J, D], the
    S tile gathered from g[b] (masked: the diagonal and rows/columns >= n are 0)."""
    t = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    ti = t // n_dtiles
    td = t % n_dtiles
    ri = ti.to(tl.int64) * BLOCK_I + tl.arange(0, BLOCK_I)
    rd = td.to(tl.int64) * BLOCK_D + tl.arange(0, BLOCK_D)
    ok_i = ri < n
    ok_d = rd < d
    u_b = u_ptr + b * stride_ub
    g_b = g_ptr + b * stride_gb
    acc = tl.zeros([BLOCK_I, BLOCK_D], dtype=tl.float32)
    for j0 in range(0, n, BLOCK_J):
        rj = j0 + tl.arange(0, BLOCK_J).to(tl.int64)
        ok_j = rj < n
        lo = tl.minimum(ri[:, None], rj[None, :])
        hi = tl.maximum(ri[:, None], rj[None, :])
        # condensed index of (lo, hi), lo < hi: lo*n - lo*(lo+1)/2 + (hi - lo - 1), in int64
        idx = lo * n - (lo * (lo + 1)) // 2 + (hi - lo - 1)
        ok_s = ok_i[:, None] & ok_j[None, :] & (lo != hi)
        s = tl.load(g_b + idx * stride_gm, mask=ok_s, other=0.0).to(tl.float32)
        uj = tl.load(
            u_b + rj[:, None] * stride_un + rd[None, :] * stride_ud,
            mask=ok_j[:, None] & ok_d[None, :],
            other=0.0,
        ).to(tl.float32)
        acc = tl.dot(s, uj, acc, input_precision=PRECISION)
    out = out_ptr + b * stride_ob + ri[:, None] * d + rd[None, :]
    tl.store(out, (-acc).to(out_ptr.dtype.element_ty), mask=ok_i[:, None] & ok_d[None, :])


# (BLOCK_I, BLOCK_J, BLOCK_D, num_warps, num_stages): not tuned on a GPU yet (no device lent).
BACKWARD_CONFIG = (64, 32, 64, 4, 3)


def _check(u: torch.Tensor, g: torch.Tensor) -> tuple[int, int]:
    """(..., n, d) and (..., n(n-1)/2) with the same leading dims -> (n, d); else ValueError."""
    if not isinstance(u, torch.Tensor) or not isinstance(g, torch.Tensor):
        raise TypeError("u and grad_condensed must be torch tensors")
    if u.ndim < 2 or not u.is_floating_point():
        raise ValueError(f"u must be a float (..., n, d) tensor; got {u.dtype} {tuple(u.shape)}")
    n, d = u.shape[-2:]
    m = n * (n - 1) // 2
    if g.shape != (*u.shape[:-2], m) or not g.is_floating_point():
        raise ValueError(
            f"grad_condensed must be a float tensor of shape {(*u.shape[:-2], m)} (u's batch, "
            f"n(n-1)/2 pairs); got {g.dtype} {tuple(g.shape)}"
        )
    if g.device != u.device:
        raise ValueError(f"u and grad_condensed are on {u.device} and {g.device}")
    return n, d


def rdm_backward_reference(u: torch.Tensor, grad_condensed: torch.Tensor) -> torch.Tensor:
    """Plain torch: builds the dense (..., n, n) S (in the promoted dtype of u and g) and
    returns -S @ U in u's dtype, (..., n, d). Holds S and the product: the CPU (and float64)
    path, and the tests' reference (run in float64)."""
    n, _ = _check(u, grad_condensed)
    dtype = torch.promote_types(u.dtype, grad_condensed.dtype)
    s = u.new_zeros((*u.shape[:-2], n, n), dtype=dtype)
    i, j = torch.triu_indices(n, n, 1, device=u.device)
    g = grad_condensed.to(dtype)
    s[..., i, j] = g
    s[..., j, i] = g
    return (-(s @ u.to(dtype))).to(u.dtype)


def rdm_backward_triton(
    u: torch.Tensor,
    grad_condensed: torch.Tensor,
    precision: str = "ieee",
    config: tuple[int, int, int, int, int] | None = None,
) -> torch.Tensor:
    """The Triton kernel: u (..., n, d) float32/float16/bfloat16, any strides (CUDA, or CPU under
    TRITON_INTERPRET=1); grad_condensed (..., n(n-1)/2) any float dtype -> -S U (..., n, d) in
    u's dtype. Products and sums in fp32 (`precision` as rdm_triton's: "ieee" fp32 FMA, error
    vs float64 ~ sqrt(n) * 6e-8 * |g| |u|; "tf32x3", "tf32"); float64 inputs are rounded to
    fp32 (use `rdm_backward`, which sends float64 to torch). Holds only the output.

    Cost per model (n rows, d features, tiles BI x BJ x BD of `config`, T_I = ceil(n / BI),
    T_D = ceil(d / BD)): FLOPs 2 n² d (the dense product S U, tiles padded to the blocks; the
    zero diagonal and the symmetric half are not skipped). Bytes: g is read once per row tile
    and feature tile: T_D * n² gathered 4-byte entries (each g_c twice per feature tile, from
    L2: a model's g, 2 n² bytes, is shared by its T_I * T_D programs); U is read once per row
    tile, T_I * n * d * itemsize; the output written once, n * d * itemsize. The least traffic
    from memory is therefore 4 m + 2 n d itemsize bytes (g, U and dU once each).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    n, d = _check(u, grad_condensed)
    block_i, block_j, block_d, warps, stages = config or BACKWARD_CONFIG
    lead = u.shape[:-2]
    u3 = u.reshape(-1, n, d)
    g2 = grad_condensed.reshape(-1, n * (n - 1) // 2)
    nb = u3.shape[0]
    dtype = torch.float32 if u.dtype == torch.float64 else u.dtype
    out = torch.empty((nb, n, d), dtype=dtype, device=u.device)
    if out.numel() == 0:
        return out.reshape(*lead, n, d).to(u.dtype)
    n_itiles, n_dtiles = triton.cdiv(n, block_i), triton.cdiv(d, block_d)
    for b0 in range(0, nb, MAX_GRID_Y):
        b1 = min(nb, b0 + MAX_GRID_Y)
        uc, gc, oc = u3[b0:b1], g2[b0:b1], out[b0:b1]
        # fmt: off
        _rdm_backward_kernel[(n_itiles * n_dtiles, b1 - b0)](
            uc, gc, oc,
            n, d, n_dtiles,
            uc.stride(0), uc.stride(1), uc.stride(2), gc.stride(0), gc.stride(1), oc.stride(0),
            PRECISION=precision, BLOCK_I=block_i, BLOCK_J=block_j, BLOCK_D=block_d,
            num_warps=warps, num_stages=stages,
        )
        # fmt: on
    return out.reshape(*lead, n, d).to(u.dtype)


def rdm_backward(u: torch.Tensor, grad_condensed: torch.Tensor) -> torch.Tensor:
    """dL/du = -S U for RDM = 1 - condensed(U Uᵀ): u (..., n, d), grad_condensed (..., m) ->
    (..., n, d) in u's dtype. CUDA float32/float16/bfloat16: the Triton kernel
    (`rdm_backward_triton`, fp32 products, no dense S); float64 (kept exact: cuBLAS DGEMM) and
    CPU tensors (even under TRITON_INTERPRET=1, which only the tests use, calling the kernel
    directly): `rdm_backward_reference` (dense S, torch)."""
    if u.is_cuda and u.dtype != torch.float64:
        return rdm_backward_triton(u, grad_condensed)
    return rdm_backward_reference(u, grad_condensed)
