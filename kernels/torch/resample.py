"""Weighted average-tie ranks for bootstrap resamples (torch, any device): the algorithm of
kernels/numpy/resample.py, vectorised with gathers, a weighted bincount and cumsums."""

import torch


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
    counts (n,) float64 on order's device."""
    b = order.shape[0]
    sw = counts[first] * counts[second]
    total = sw[0].sum()
    gid = torch.cumsum(new_group, dim=1) - 1
    n_groups = gid[:, -1] + 1
    gid += (torch.cumsum(n_groups, 0) - n_groups)[:, None]
    gw = torch.bincount(gid.reshape(-1), weights=sw.reshape(-1), minlength=int(n_groups.sum()))
    row_of_group = torch.repeat_interleave(torch.arange(b, device=order.device), n_groups)
    before = torch.cumsum(gw, 0) - gw - row_of_group * total
    value = before + (gw + 1.0) / 2.0 - (total + 1.0) / 2.0
    out.scatter_(1, order, value[gid] * torch.sqrt(sw))
    return out
