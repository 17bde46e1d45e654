"""Backward of the correlation / cosine RDM from the input features, in torch (any device).

Forward (per model, rows i of x (n, d)): c_i = x_i - hi_i - lo_i (the row mean split into its
rounding to x's dtype and the rest; zero for cosine), u_i = c_i / r_i with r_i = |c_i|, and
RDM_c = 1 - <u_i, u_j> for the pairs c = (i < j) in condensed order (row-major, scipy's
`squareform`). With g (m,) = dL/dRDM, m = n(n-1)/2, S the symmetric n x n matrix S_ij = g_c (zero
diagonal) and rho_ij = 1 - RDM_ij = <u_i, u_j>:

    dL/dx_i = (a_i u_i - (S U)_i) / r_i,   a_i = sum_j S_ij rho_ij

(dL/du = -S U, then the normalisation's chain; the centring's projection, minus the row's mean,
is exact already: every u_j has zero mean). The Triton kernel (fastrsa.kernels.triton
.rdm_backward) computes the same without a dense S.
"""

import torch

__all__ = ["check_unit_rdm_backward", "unit_rdm_backward_torch"]


def check_unit_rdm_backward(x, hi, lo, inv_norm, rdm, grad) -> tuple[int, int]:
    """x (B, n, d) float; hi, lo, inv_norm (B, n); rdm, grad (B, n(n-1)/2), all on x's device
    -> (n, d); ValueError naming the argument otherwise."""
    for name, t in (("x", x), ("hi", hi), ("lo", lo), ("inv_norm", inv_norm), ("rdm", rdm)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch tensor")
    if not isinstance(grad, torch.Tensor) or not grad.is_floating_point():
        raise TypeError("grad must be a floating-point torch tensor")
    if x.ndim != 3:
        raise ValueError(f"x must be (B, n, d); got shape {tuple(x.shape)}")
    b, n, d = x.shape
    m = n * (n - 1) // 2
    for name, t, shape in (
        ("hi", hi, (b, n)),
        ("lo", lo, (b, n)),
        ("inv_norm", inv_norm, (b, n)),
        ("rdm", rdm, (b, m)),
        ("grad", grad, (b, m)),
    ):
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape}; got {tuple(t.shape)}")
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device}, x on {x.device}")
    return n, d


def unit_rdm_backward_torch(
    x: torch.Tensor,
    hi: torch.Tensor,
    lo: torch.Tensor,
    inv_norm: torch.Tensor,
    rdm: torch.Tensor,
    grad: torch.Tensor,
) -> torch.Tensor:
    """dL/dx (B, n, d) in x's dtype (module docstring), computed in the promoted dtype of x and
    the row factors (float32 at least). Holds the unit rows U (B, n, d), the dense S (B, n, n)
    and S U: the CPU and float64 path, and the Triton kernel's test reference (in float64)."""
    n, _ = check_unit_rdm_backward(x, hi, lo, inv_norm, rdm, grad)
    dtype = torch.promote_types(torch.promote_types(x.dtype, inv_norm.dtype), torch.float32)
    inv = inv_norm.to(dtype)[..., None]
    u = (x.to(dtype) - hi.to(dtype)[..., None]).sub_(lo.to(dtype)[..., None]).mul_(inv)
    i, j = torch.triu_indices(n, n, 1, device=x.device)
    g = grad.to(dtype)
    s = u.new_zeros((x.shape[0], n, n))
    s[:, i, j] = g
    s[:, j, i] = g
    weighted = g * (1 - rdm.to(dtype))
    a = u.new_zeros(x.shape[:2]).index_add_(1, i, weighted).index_add_(1, j, weighted)
    out = torch.bmm(s, u).neg_().addcmul_(u, a[..., None])
    return out.mul_(inv).to(x.dtype)
