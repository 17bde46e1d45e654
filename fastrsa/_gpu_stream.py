"""Host input for a GPU backend, moved to the device a piece at a time, within the memory budget.

Of the call's budget (fastrsa._memory), half bounds what is in flight on the device (a piece of
the input and its results), half the backend's own temporaries (`budget=` to its ops): the device
holds about one budget, whatever the batch. RDMs go by chunks of the batch; comparisons by blocks
of rows (ranks chunk by chunk first, then each block of a against each block of b); ranks by
chunks of rows. Inputs and results stay on the host.
"""

from __future__ import annotations

from typing import Any


def _bytes(*tensors: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def fits(budget: int, *tensors: Any) -> bool:
    """True when the tensors together fit in one piece (half the budget)."""
    return _bytes(*tensors) <= budget // 2


def rdms_streamed(be, x: Any, metric: str, device: Any, precision: str, budget: int) -> Any:
    """x: host tensor (B, n, d) -> host RDMs (B, n*(n-1)//2), computed a batch chunk at a time:
    each chunk's input and RDMs on the device take at most half the budget (one item at least)."""
    import torch

    nb, n, d = x.shape
    m = n * (n - 1) // 2
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    per_item = n * d * x.element_size() + m * dtype.itemsize
    step = max(1, (budget // 2) // per_item)
    out = torch.empty((nb, m), dtype=dtype)
    for b0 in range(0, nb, step):
        chunk = x[b0 : b0 + step].to(device)
        out[b0 : b0 + step] = be.rdm(chunk, metric, precision=precision, budget=budget // 2).cpu()
    return out


def compare_blocked(be, a: Any, b: Any, method: str, device: Any, budget: int) -> Any:
    """a: host (Ba, M), b: host (Bb, M) or None -> host (Ba, Bb), block by block on `device`:
    two blocks of rows take at most half the budget (one row each at least).

    Spearman: rows are ranked a chunk at a time, then compared as Pearson of ranks.
    """
    import torch

    m = a.shape[1]
    step = max(1, (budget // 2) // (2 * m * max(a.element_size(), 4)))
    if method == "spearman":
        a = ranked(be, a, device, budget, a.dtype)
        b = None if b is None else ranked(be, b, device, budget, b.dtype)
        method = "pearson"
    other = a if b is None else b
    out = torch.empty((a.shape[0], other.shape[0]), dtype=a.dtype)
    for i0 in range(0, a.shape[0], step):
        block_a = a[i0 : i0 + step].to(device)
        for j0 in range(i0 if b is None else 0, other.shape[0], step):
            block_b = block_a if (b is None and j0 == i0) else other[j0 : j0 + step].to(device)
            sim = be.compare(block_a, block_b, method, budget=budget // 2).cpu()
            out[i0 : i0 + step, j0 : j0 + step] = sim
            if b is None:
                out[j0 : j0 + step, i0 : i0 + step] = sim.T
    return out


def ranked(be, x: Any, device: Any, budget: int, dtype: Any = None) -> Any:
    """Average-tie ranks of host rows (R, M), a chunk of rows at a time on `device` (a chunk and
    its float64 ranks take at most half the budget), in `dtype` (default float64, exact; float32
    is exact below 2**24 values per row, and the correlation needs no more)."""
    import torch

    dtype = torch.float64 if dtype is None else dtype
    step = max(1, (budget // 2) // (x.shape[1] * (x.element_size() + 8)))
    out = torch.empty(x.shape, dtype=dtype)
    for r0 in range(0, x.shape[0], step):
        chunk = x[r0 : r0 + step].to(device)
        out[r0 : r0 + step] = be.rank(chunk, budget=budget // 2).to(dtype).cpu()
    return out
