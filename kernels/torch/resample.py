"""Weighted average-tie ranks for bootstrap resamples (torch, any device): the algorithm of
kernels/numpy/resample.py, vectorised with gathers, a weighted bincount and cumsums."""

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["sort_rows_torch", "weighted_ranker_torch", "weighted_ranks_torch"]


def sort_rows_torch(rows: torch.Tensor, n: int) -> tuple[torch.Tensor, ...]:
    """rows (B, M) -> (order, new_group bool, first, second), each (B, M) (int64 indices)."""
    s, order = torch.sort(rows, dim=1, stable=True)
    new_group = torch.ones(order.shape, dtype=torch.bool, device=rows.device)
    new_group[:, 1:] = s[:, 1:] != s[:, :-1]
    i, j = torch.triu_indices(n, n, offset=1, device=rows.device)
    return order, new_group, i[order], j[order]


def weighted_ranks_torch(
    order: torch.Tensor,
    new_group: torch.Tensor,
    first: torch.Tensor,
    second: torch.Tensor,
    counts: torch.Tensor,
    out: torch.Tensor,
) -> torch.Tensor:
    """out[b, m] = (weighted average-tie rank - (W + 1) / 2) * sqrt(w_m), float64 (B, M);
    counts (n,) float64 on order's device. Group sums from cumulative sums at each group's first
    and last sorted position: deterministic, and no host synchronisation."""
    m = order.shape[1]
    sw = counts[first] * counts[second]
    total = sw[0].sum()
    cs = torch.cumsum(sw, dim=1)
    pos = torch.arange(m, device=order.device).expand_as(order)
    start = torch.cummax(torch.where(new_group, pos, 0), dim=1).values
    last = torch.ones_like(new_group)
    last[:, :-1] = new_group[:, 1:]
    end = torch.cummin(torch.where(last, pos, m).flip(1), dim=1).values.flip(1)
    before = cs.gather(1, start) - sw.gather(1, start)
    weight = cs.gather(1, end) - before
    value = before + (weight + 1.0) / 2.0 - (total + 1.0) / 2.0
    out.scatter_(1, order, value * torch.sqrt(sw))
    return out


def weighted_ranker_torch(
    rows: torch.Tensor, n: int
) -> Callable[[np.ndarray, torch.Tensor], torch.Tensor]:
    """The backend's op: rows (B, M) float64 on any device are sorted once (`sort_rows_torch`);
    returns ranks(counts, out) -> out, `weighted_ranks_torch` for one resample (counts (n,)
    float64 numpy, moved to the rows' device; out (B, M) float64 on that device)."""
    order, new_group, first, second = sort_rows_torch(rows, n)
    device = rows.device
    return lambda counts, out: weighted_ranks_torch(
        order, new_group, first, second, torch.from_numpy(counts).to(device), out
    )
