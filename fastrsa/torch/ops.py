"""The custom ops of fastrsa.torch, registered with `torch.library` so that
`torch.compile(fullgraph=True)` traces a training step through them with no graph break.

Registered (custom_op + register_fake + register_autograd):

    fastrsa::soft_rank(Tensor values, float regularization, bool descending)
        -> (Tensor ranks, Tensor order, Tensor blocks)

values (B, m) float rows; ranks (B, m) in values' dtype (the soft ranks, fastrsa.torch.softrank);
order (B, m) int64, each row's permutation sorting its scaled values in descending order; blocks
(B, m) int64, the PAV block of each sorted position (0, 1, ... from the left). order and blocks
are what the backward needs (it is block averaging), returned so that compile can save them.

Only the soft rank is registered: its pool-adjacent-violators (PAV) loop runs a data-dependent
number of rounds, which dynamo cannot trace. Everything else in fastrsa.torch (rdms, compare,
rsa, cka, cka_matrix) is plain torch and traces as it is (tests/test_torch_compile.py checks it
with fullgraph=True). No numba or Triton kernel is used: the PAV below is batched torch on the
rows' device.
"""

from __future__ import annotations

import torch

__all__ = [
    "CUSTOM_OPS",
    "pav_blocks",
    "segment_mean",
    "soft_rank_backward",
    "soft_rank_forward",
    "soft_rank_op",
]


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
    values' dtype with the order and blocks that the backward needs. Cost O(m log m) per row for
    the sort plus the PAV rounds (`pav_blocks`)."""
    scale = (-1.0 if descending else 1.0) / regularization
    theta = values.to(torch.float64) * scale
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

# The registered ops, for tests (torch.library.opcheck) and for users who list them.
CUSTOM_OPS = {"fastrsa::soft_rank": soft_rank_op}
