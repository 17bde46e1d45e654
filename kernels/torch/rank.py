"""Average-tie ranks in torch: sort each row, find tie runs with cumulative max/min, scatter."""

import torch

__all__ = ["rank_torch"]


def rank_torch(x: torch.Tensor, chunk_bytes: int = 1 << 30) -> torch.Tensor:
    """x: (R, M) -> float64 ranks (R, M), equal to scipy's rankdata "average" (exact: ranks are
    half-integers computed from int64 positions). Rows are ranked in chunks whose sort and scan
    workspace (~40 bytes per value) takes about `chunk_bytes`, at least one row at a time."""
    rows, m = x.shape
    out = torch.empty((rows, m), dtype=torch.float64, device=x.device)
    step = max(1, chunk_bytes // (m * 40))  # sort values + int64 indices + scan temporaries
    pos = torch.arange(m, device=x.device)
    for r0 in range(0, rows, step):
        vals, idx = torch.sort(x[r0 : r0 + step], dim=-1)
        new = torch.ones_like(vals, dtype=torch.bool)
        new[:, 1:] = vals[:, 1:] != vals[:, :-1]  # first element of a tie run
        start = torch.where(new, pos, 0).cummax(dim=-1).values
        last = torch.ones_like(new)
        last[:, :-1] = new[:, 1:]  # last element of a tie run
        end = torch.where(last, pos, m).flip(-1).cummin(dim=-1).values.flip(-1)
        ranks = (start + end).to(torch.float64) * 0.5 + 1.0
        out[r0 : r0 + step].scatter_(1, idx, ranks)
    return out
