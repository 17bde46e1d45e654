"""The custom ops of fastrsa.torch, registered with `torch.library` so that
`torch.compile(fullgraph=True)` traces a training step through them with no graph break.

Registered (custom_op + register_fake, and register_autograd where it has a gradient):

    fastrsa::unit_rdm_backward(Tensor x, Tensor hi, Tensor lo, Tensor inv_norm, Tensor rdm,
        Tensor grad) -> Tensor

the backward of the correlation / cosine RDM (`UnitRDM`, an autograd.Function whose forward,
`unit_rdm_forward`, is plain torch that torch.compile traces and fuses): x (B, n, d) float
features; rdm (B, n(n-1)/2) in x's dtype, pairs i < j row-major (scipy's order); hi, lo,
inv_norm (B, n) in x's dtype promoted to float32 at least: each row's mean rounded to x's dtype
and the rest (zeros for cosine), and 1 / |centred row|, saved by the forward; grad (B, m) the
condensed upstream gradient -> dL/dx (B, n, d). The Triton kernel
fastrsa.kernels.triton.rdm_backward on CUDA (float32, float16, bfloat16; no dense n x n matrix),
fastrsa.kernels.torch.rdm_backward elsewhere and for float64 (fastrsa._backend chooses). It has
no autograd of its own: no double backward through the RDM.

    fastrsa::soft_rank(Tensor values, float regularization, bool descending)
        -> (Tensor ranks, Tensor order, Tensor blocks)

values (B, m) float rows; ranks (B, m) in values' dtype (the soft ranks, fastrsa.torch.softrank);
order (B, m) int64, each row's permutation sorting its scaled values in descending order; blocks
(B, m) int64, the PAV block of each sorted position (0, 1, ... from the left). order and blocks
are what the backward needs (it is block averaging), returned so that compile can save them.

The soft rank is registered because its pool-adjacent-violators (PAV) loop runs a data-dependent
number of rounds, which dynamo cannot trace (on the CPU a numba kernel, elsewhere the batched
torch PAV below); the RDM's backward because it is a Triton kernel on CUDA. Everything else in
fastrsa.torch (the RDM's forward, compare, the euclidean RDM, cka, cka_matrix) is plain torch
and traces as it is (tests/test_torch_compile.py checks it all with fullgraph=True).
"""

from __future__ import annotations

import torch

from .._backend import rdm_backward_kernel, soft_rank_kernel
from .checks import require_custom_ops

__all__ = [
    "CUSTOM_OPS",
    "NoDoubleBackward",
    "UnitRDM",
    "pav_blocks",
    "segment_mean",
    "soft_rank_backward",
    "soft_rank_forward",
    "soft_rank_op",
    "unit_rdm_backward",
    "unit_rdm_backward_op",
    "unit_rdm_forward",
]

require_custom_ops()


def segment_mean(values: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    """(B, m) values, (B, m) int64 block ids (non-decreasing 0, 1, ... along each row) -> each
    position's block mean, (B, m), values' dtype. Sums by scatter_add (no cumsum differences)."""
    sums = torch.zeros_like(values).scatter_add_(1, blocks, values)
    counts = torch.zeros_like(values).scatter_add_(1, blocks, torch.ones_like(values))
    return (sums / counts.clamp_min(1)).gather(1, blocks)


def pav_blocks(y: torch.Tensor) -> torch.Tensor:
    """Blocks of the decreasing isotonic regression argmin_{v_1 >= ... >= v_m} ||v - y||² of each
    row of y (B, m), float64: (B, m) int64 block ids; the solution is `segment_mean(y, blocks)`.

    Pool adjacent violators, in parallel: every round merges each pair of adjacent blocks whose
    means violate the order (left mean <= right mean, as the sequential PAV of scikit-learn and
    Blondel et al.'s `isotonic_l2`), in all rows at once. Merging every violating pair together is
    what the sequential algorithm would do too (a block whose mean is at most its right
    neighbour's lies in the same block of the solution). The rounds work on (B, K) block sums and
    counts, K the most blocks a row has left (rows with fewer are padded with empty blocks, which
    merge into their left neighbour and change nothing). Cost: O(B m) for the first round, then R
    rounds of O(B K), R the longest chain of successive merges (about sqrt(m)/2 for values whose
    gaps are near the regularisation, 1 to 3 when they are far above or below it; at most m), and
    one host synchronisation per round (the test for any violator left). Holds about five (B, m)
    arrays."""
    b, m = y.shape
    sums, counts = y, torch.ones_like(y)
    while True:
        means = sums / counts.clamp_min(1)
        empty = counts[:, 1:] == 0
        merge = (means[:, :-1] <= means[:, 1:]) & ~empty
        if not bool(merge.any()):
            break
        merge |= empty
        new = torch.cat([torch.zeros_like(merge[:, :1], dtype=torch.int64), (~merge).cumsum(1)], 1)
        k = int(new[:, -1].max()) + 1
        sums = y.new_zeros(b, k).scatter_add_(1, new, sums)
        counts = y.new_zeros(b, k).scatter_add_(1, new, counts)
    # each block's first position -> a start mask over the positions -> block ids
    real = counts > 0
    first = torch.where(real, (counts.cumsum(1) - counts).to(torch.int64), m)
    start = torch.zeros(b, m + 1, dtype=torch.int64, device=y.device)
    start.scatter_add_(1, first, real.to(torch.int64))
    return start[:, :m].cumsum(1) - 1


def soft_rank_forward(
    values: torch.Tensor, regularization: float, descending: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft ranks of the rows of values (B, m) (Blondel et al. 2020, L2 regularisation):
    the projection of θ = ±values / regularization onto the permutahedron of w = (m, ..., 1):
    sort θ descending (s), v = decreasing isotonic regression of s - w (PAV), ranks = s - v put
    back in the rows' order. Computed in float64 (ranks near m keep their fractions), returned in
    values' dtype with the order and blocks that the backward needs. On the CPU with numba
    installed: fastrsa.kernels.numba.pav.soft_rank_numba (O(m) radix sort and sequential PAV
    per row, rows in parallel); else torch: O(m log m) sort per row plus the batched PAV rounds
    of `pav_blocks` (the same blocks)."""
    scale = (-1.0 if descending else 1.0) / regularization
    theta = values.to(torch.float64) * scale
    kernel = soft_rank_kernel() if values.device.type == "cpu" else None
    if kernel is not None:
        ranks, order, blocks = (torch.from_numpy(a) for a in kernel(theta.numpy()))
        return ranks.to(values.dtype), order, blocks
    s, order = theta.sort(dim=1, descending=True, stable=True)
    m = values.shape[1]
    w = torch.arange(m, 0, -1, dtype=torch.float64, device=values.device)
    y = s - w
    blocks = pav_blocks(y)
    primal = s - segment_mean(y, blocks)
    ranks = torch.empty_like(primal).scatter_(1, order, primal)
    return ranks.to(values.dtype), order, blocks


def soft_rank_backward(
    grad: torch.Tensor, order: torch.Tensor, blocks: torch.Tensor, scale: float
) -> torch.Tensor:
    """Vector-Jacobian product of the soft rank: scale * (g - P⁻¹ A P g), P the sort, A the
    averaging over each PAV block (the Jacobian of the isotonic regression), scale
    ±1/regularization. (B, m) in grad's dtype; plain torch, so it is differentiable again."""
    g = grad.gather(1, order)
    g = g - segment_mean(g, blocks)
    return torch.zeros_like(grad).scatter(1, order, g) * scale


@torch.library.custom_op("fastrsa::soft_rank", mutates_args=())
def soft_rank_op(
    values: torch.Tensor, regularization: float, descending: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """fastrsa::soft_rank: `soft_rank_forward` of contiguous (B, m) float rows (module
    docstring). No argument checks here: fastrsa.torch.softrank.soft_rank makes them."""
    return soft_rank_forward(values, regularization, descending)


@soft_rank_op.register_fake
def _soft_rank_fake(
    values: torch.Tensor, regularization: float, descending: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    index = torch.empty_like(values, dtype=torch.int64)
    return torch.empty_like(values), index, torch.empty_like(index)


def _soft_rank_setup(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    _, regularization, descending = inputs
    _, order, blocks = output
    ctx.scale = (-1.0 if descending else 1.0) / regularization
    ctx.save_for_backward(order, blocks)


def _soft_rank_backward(ctx, grad, _grad_order, _grad_blocks):  # type: ignore[no-untyped-def]
    order, blocks = ctx.saved_tensors
    return soft_rank_backward(grad, order, blocks, ctx.scale), None, None


soft_rank_op.register_autograd(_soft_rank_backward, setup_context=_soft_rank_setup)


def _condensed(square: torch.Tensor) -> torch.Tensor:
    """(B, n, n) -> (B, n(n-1)/2): the entries i < j in row-major order (scipy's order)."""
    n = square.shape[-1]
    i, j = torch.triu_indices(n, n, 1, device=square.device)
    return square[:, i, j]


def unit_rdm_forward(
    x: torch.Tensor, centre: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rdm, hi, lo, inv_norm) of x (B, n, d) (module docstring), fastrsa.torch.rdms's numerics:
    the row mean in float64, x minus its rounding to x's dtype minus the rest; each row divided
    by its largest |value|, then by its norm (no overflow in float32); 1 - the Gram of the unit
    rows (one (B, n, n) product in x's dtype), its upper triangle. Holds one (B, n, d) copy of
    x and the (B, n, n) Gram. A constant (centre) or zero row gives NaN (no checks here)."""
    aux = torch.promote_types(x.dtype, torch.float32)
    if centre:
        mean = x.mean(dim=-1, keepdim=True, dtype=torch.float64)
        hi = mean.to(x.dtype)
        lo = (mean - hi).to(x.dtype)
        c = (x - hi).sub_(lo)
    else:
        hi, lo = x.new_zeros((*x.shape[:-1], 1)), x.new_zeros((*x.shape[:-1], 1))
        c = x.clone()
    top = torch.maximum(c.amax(dim=-1, keepdim=True), c.amin(dim=-1, keepdim=True).neg_())
    c.div_(top)
    norm = torch.linalg.vector_norm(c, dim=-1, keepdim=True)
    c.div_(norm)
    inv_norm = 1 / (top.to(aux) * norm.to(aux))
    rdm = _condensed(c @ c.mT).neg_().add_(1)
    return rdm, hi[..., 0].to(aux), lo[..., 0].to(aux), inv_norm[..., 0]


def unit_rdm_backward(
    x: torch.Tensor,
    hi: torch.Tensor,
    lo: torch.Tensor,
    inv_norm: torch.Tensor,
    rdm: torch.Tensor,
    grad: torch.Tensor,
) -> torch.Tensor:
    """dL/dx (B, n, d) in x's dtype from the condensed gradient grad (B, n(n-1)/2): the Triton
    kernel for CUDA float32/float16/bfloat16 x (fp32 sums, "ieee"), torch elsewhere."""
    kernel = rdm_backward_kernel(x.is_cuda and x.dtype != torch.float64)
    return kernel(x, hi, lo, inv_norm, rdm, grad)


@torch.library.custom_op("fastrsa::unit_rdm_backward", mutates_args=())
def unit_rdm_backward_op(
    x: torch.Tensor,
    hi: torch.Tensor,
    lo: torch.Tensor,
    inv_norm: torch.Tensor,
    rdm: torch.Tensor,
    grad: torch.Tensor,
) -> torch.Tensor:
    """fastrsa::unit_rdm_backward: `unit_rdm_backward` (module docstring)."""
    return unit_rdm_backward(x, hi, lo, inv_norm, rdm, grad)


@unit_rdm_backward_op.register_fake
def _unit_rdm_backward_fake(x, hi, lo, inv_norm, rdm, grad):  # type: ignore[no-untyped-def]
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _no_double_backward(ctx, grad):  # type: ignore[no-untyped-def]
    raise RuntimeError(
        "fastrsa::unit_rdm_backward has no derivative: no double backward (create_graph=True) "
        "through fastrsa.torch's correlation / cosine RDM; use metric='euclidean', whose RDM is "
        "plain autograd, for a gradient penalty"
    )


def _no_setup(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    return None


unit_rdm_backward_op.register_autograd(_no_double_backward, setup_context=_no_setup)


@unit_rdm_backward_op.register_vmap
def _unit_rdm_backward_vmap(info, in_dims, x, hi, lo, inv_norm, rdm, grad):  # type: ignore[no-untyped-def]
    """torch.func.vmap (jacrev, per-sample gradients): the mapped dim merged into the batch."""
    size = info.batch_size
    args = []
    for t, dim in zip((x, hi, lo, inv_norm, rdm, grad), in_dims, strict=True):
        t = t.unsqueeze(0).expand(size, *t.shape) if dim is None else t.movedim(dim, 0)
        args.append(t.reshape(size * t.shape[1], *t.shape[2:]))
    out = unit_rdm_backward_op(*args)
    return out.reshape(size, -1, *out.shape[1:]), 0


class UnitRDM(torch.autograd.Function):
    """The RDM with its backward from the features: apply(x (B, n, d), centre) -> (rdm (B, m),
    hi, lo, inv_norm (B, n)) as `unit_rdm_forward` (plain torch: torch.compile traces and fuses
    it; torch.func transforms too: the row factors carry no gradient). The backward is the
    registered op fastrsa::unit_rdm_backward. Saves x, the RDMs (the returned tensor itself,
    as torch's exp or sigmoid do: changing it in place before the backward is an error) and
    the row factors."""

    generate_vmap_rule = True

    @staticmethod
    def forward(  # type: ignore[override]
        x: torch.Tensor, centre: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return unit_rdm_forward(x, centre)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def, override]
        x, _ = inputs
        rdm, hi, lo, inv_norm = output
        ctx.mark_non_differentiable(hi, lo, inv_norm)
        ctx.save_for_backward(x, hi, lo, inv_norm, rdm)

    @staticmethod
    def backward(ctx, grad, _grad_hi, _grad_lo, _grad_inv):  # type: ignore[no-untyped-def, override]
        x, hi, lo, inv_norm, rdm = ctx.saved_tensors
        dx = unit_rdm_backward_op(
            x.detach(), hi, lo, inv_norm, rdm.detach(), grad.detach().contiguous()
        )
        return NoDoubleBackward.apply(dx, x, grad), None


class NoDoubleBackward(torch.autograd.Function):
    """apply(dx, x, grad) -> dx, linked to x and grad so that differentiating it again (a
    double backward with create_graph=True, or nested torch.func.grad) raises a RuntimeError
    saying why, instead of silently missing terms: UnitRDM's backward has no derivative."""

    generate_vmap_rule = True

    @staticmethod
    def forward(dx: torch.Tensor, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return dx.view_as(dx)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def, override]
        return None

    @staticmethod
    def backward(ctx, _grad):  # type: ignore[no-untyped-def, override]
        return _no_double_backward(ctx, _grad)


# The registered ops, for tests (torch.library.opcheck) and for users who list them.
CUSTOM_OPS = {
    "fastrsa::soft_rank": soft_rank_op,
    "fastrsa::unit_rdm_backward": unit_rdm_backward_op,
}
