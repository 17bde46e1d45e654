"""Backward of the correlation / cosine RDM straight from the input features, as a Triton kernel
that reads the upstream gradient in the condensed layout tile by tile and never holds a dense
n x n matrix.

The formula (fastrsa.kernels.torch.rdm_backward, the reference): for rows x_i of a model's
features, u_i = (x_i - hi_i - lo_i) * inv_norm_i the unit (centred) rows of the forward,
S_ij = S_ji = g_c the condensed gradient g (c = (i < j), row-major, zero diagonal) and
rho_ij = 1 - RDM_ij:

    dL/dx_i = (a_i u_i - sum_j S_ij u_j) * inv_norm_i,   a_i = sum_j S_ij rho_ij.

Each program builds its S[I, J] tiles in registers from g by index arithmetic, rebuilds the unit
rows U[J, D] from x and the row factors as it loads them (no U is stored), and writes dL/dx once.
"""

import torch
import triton
import triton.language as tl

from ..torch.rdm_backward import check_unit_rdm_backward
from .rdm import MAX_GRID_Y, PRECISIONS

__all__ = ["BACKWARD_CONFIG", "unit_rdm_backward_triton"]


@triton.jit
def _unit_rdm_backward_kernel(
    # pointers
    x_ptr, hi_ptr, lo_ptr, inv_ptr, rdm_ptr, g_ptr, out_ptr,
    # sizes
    n, d, n_dtiles,
    # strides (x: (B, n, d) any; hi, lo, inv: (B, n) contiguous fp32; rdm, g: (B, m) any;
    # out: (B, n, d) contiguous)
    stride_xb, stride_xn, stride_xd, stride_rb, stride_rm, stride_gb, stride_gm, stride_ob,
    # constexprs
    PRECISION: tl.constexpr,  # tl.dot input precision: "ieee", "tf32x3" or "tf32"
    BLOCK_I: tl.constexpr,  # output rows per program
    BLOCK_J: tl.constexpr,  # rows of U (columns of S) per step
    BLOCK_D: tl.constexpr,  # features per program
):  # fmt: skip
    """Program (t, b), t = ti * n_dtiles + td: out[b, I, D] = (a_I u_I - S[I, :] U[:, D]) * inv_I,
    the S and rho tiles gathered from g[b] and rdm[b] (masked: the diagonal and rows/columns >= n
    are 0)."""
    t = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    ti = t // n_dtiles
    td = t % n_dtiles
    ri = ti.to(tl.int64) * BLOCK_I + tl.arange(0, BLOCK_I)
    rd = td.to(tl.int64) * BLOCK_D + tl.arange(0, BLOCK_D)
    ok_i = ri < n
    ok_d = rd < d
    x_b = x_ptr + b * stride_xb
    row_b = b * n
    g_b = g_ptr + b * stride_gb
    r_b = rdm_ptr + b * stride_rb
    acc = tl.zeros([BLOCK_I, BLOCK_D], dtype=tl.float32)
    a = tl.zeros([BLOCK_I], dtype=tl.float32)
    for j0 in range(0, n, BLOCK_J):
        rj = j0 + tl.arange(0, BLOCK_J).to(tl.int64)
        ok_j = rj < n
        lo_ij = tl.minimum(ri[:, None], rj[None, :])
        hi_ij = tl.maximum(ri[:, None], rj[None, :])
        # condensed index of (lo, hi), lo < hi: lo*n - lo*(lo+1)/2 + (hi - lo - 1), in int64
        idx = lo_ij * n - (lo_ij * (lo_ij + 1)) // 2 + (hi_ij - lo_ij - 1)
        ok_s = ok_i[:, None] & ok_j[None, :] & (lo_ij != hi_ij)
        s = tl.load(g_b + idx * stride_gm, mask=ok_s, other=0.0).to(tl.float32)
        rho = 1.0 - tl.load(r_b + idx * stride_rm, mask=ok_s, other=1.0).to(tl.float32)
        a += tl.sum(s * rho, axis=1)
        xj = tl.load(
            x_b + rj[:, None] * stride_xn + rd[None, :] * stride_xd,
            mask=ok_j[:, None] & ok_d[None, :],
            other=0.0,
        ).to(tl.float32)
        hj = tl.load(hi_ptr + row_b + rj, mask=ok_j, other=0.0)
        lj = tl.load(lo_ptr + row_b + rj, mask=ok_j, other=0.0)
        vj = tl.load(inv_ptr + row_b + rj, mask=ok_j, other=0.0)  # rows >= n: u = 0
        uj = ((xj - hj[:, None]) - lj[:, None]) * vj[:, None]
        acc = tl.dot(s, uj, acc, input_precision=PRECISION)
    xi = tl.load(
        x_b + ri[:, None] * stride_xn + rd[None, :] * stride_xd,
        mask=ok_i[:, None] & ok_d[None, :],
        other=0.0,
    ).to(tl.float32)
    hi_i = tl.load(hi_ptr + row_b + ri, mask=ok_i, other=0.0)
    lo_i = tl.load(lo_ptr + row_b + ri, mask=ok_i, other=0.0)
    inv_i = tl.load(inv_ptr + row_b + ri, mask=ok_i, other=0.0)
    ui = ((xi - hi_i[:, None]) - lo_i[:, None]) * inv_i[:, None]
    res = (a[:, None] * ui - acc) * inv_i[:, None]
    out = out_ptr + b * stride_ob + ri[:, None] * d + rd[None, :]
    tl.store(out, res.to(out_ptr.dtype.element_ty), mask=ok_i[:, None] & ok_d[None, :])


# (BLOCK_I, BLOCK_J, BLOCK_D, num_warps, num_stages): not tuned on a GPU yet (no device lent).
BACKWARD_CONFIG = (64, 32, 64, 4, 3)


def unit_rdm_backward_triton(
    x: torch.Tensor,
    hi: torch.Tensor,
    lo: torch.Tensor,
    inv_norm: torch.Tensor,
    rdm: torch.Tensor,
    grad: torch.Tensor,
    precision: str = "ieee",
    config: tuple[int, int, int, int, int] | None = None,
) -> torch.Tensor:
    """dL/dx (B, n, d) in x's dtype (module docstring). x (B, n, d) float32/float16/bfloat16, any
    strides (CUDA, or CPU under TRITON_INTERPRET=1); hi, lo, inv_norm (B, n) (read as fp32);
    rdm, grad (B, n(n-1)/2) any float dtype and stride. Products and sums in fp32 (`precision` as
    rdm_triton's: "ieee" fp32 FMA, error vs float64 ~ sqrt(n) * 6e-8 * |g| |u|; "tf32x3";
    "tf32"); float64 x is rounded to fp32 (fastrsa.torch sends float64 to the torch reference).
    Holds only the output and fp32 copies of the (B, n) row factors.

    Cost per model (n rows, d features, tiles BI x BJ x BD of `config`, T_I = ceil(n / BI),
    T_D = ceil(d / BD)): FLOPs 2 n² d (the dense product S U, tiles padded to the blocks; the
    zero diagonal and the symmetric half are not skipped) plus 2 n² T_D for a. Bytes: g and rdm
    are gathered once per row tile and feature tile, 2 T_D n² entries (from L2: a model's g and
    rdm, 4 n² bytes in fp32, are shared by its T_I T_D programs); x is read once per row tile,
    T_I n d itemsize; dL/dx written once, n d itemsize. The least traffic from memory is
    therefore 8 m + 2 n d itemsize bytes (g, rdm, x and dL/dx once each).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    n, d = check_unit_rdm_backward(x, hi, lo, inv_norm, rdm, grad)
    block_i, block_j, block_d, warps, stages = config or BACKWARD_CONFIG
    nb = x.shape[0]
    dtype = torch.float32 if x.dtype == torch.float64 else x.dtype
    out = torch.empty((nb, n, d), dtype=dtype, device=x.device)
    if out.numel() == 0:
        return out.to(x.dtype)
    hi, lo, inv = (t.to(torch.float32).contiguous() for t in (hi, lo, inv_norm))
    n_itiles, n_dtiles = triton.cdiv(n, block_i), triton.cdiv(d, block_d)
    for b0 in range(0, nb, MAX_GRID_Y):
        b1 = min(nb, b0 + MAX_GRID_Y)
        xc, rc, gc, oc = x[b0:b1], rdm[b0:b1], grad[b0:b1], out[b0:b1]
        hc, lc, vc = hi[b0:b1], lo[b0:b1], inv[b0:b1]
        # fmt: off
        _unit_rdm_backward_kernel[(n_itiles * n_dtiles, b1 - b0)](
            xc, hc, lc, vc, rc, gc, oc,
            n, d, n_dtiles,
            xc.stride(0), xc.stride(1), xc.stride(2), rc.stride(0), rc.stride(1),
            gc.stride(0), gc.stride(1), oc.stride(0),
            PRECISION=precision, BLOCK_I=block_i, BLOCK_J=block_j, BLOCK_D=block_d,
            num_warps=warps, num_stages=stages,
        )
        # fmt: on
    return out.to(x.dtype)
