"""Host input for a GPU backend, moved to the device a piece at a time.

The GPU then holds one piece (about STREAM_BYTES of input) and its results, whatever the batch:
RDMs go by chunks of the batch; comparisons by blocks of rows (ranks chunk by chunk first, then
each block of a against each block of b). Inputs and results stay on the host.
"""

from __future__ import annotations

from typing import Any

STREAM_BYTES = 1 << 30  # ~1 GiB of input per piece


def fits(*tensors: Any) -> bool:
    """True when the tensors together fit in one piece."""
    return sum(t.numel() * t.element_size() for t in tensors if t is not None) <= STREAM_BYTES


def rdms_streamed(be, x: Any, metric: str, device: Any, kwargs: dict) -> Any:
    """x: host tensor (B, n, d) -> host RDMs (B, n*(n-1)//2), computed a batch chunk at a time."""
    import torch

    nb, n, d = x.shape
    step = max(1, STREAM_BYTES // (n * d * x.element_size()))
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    out = torch.empty((nb, n * (n - 1) // 2), dtype=dtype)
    for b0 in range(0, nb, step):
        out[b0 : b0 + step] = be.rdm(x[b0 : b0 + step].to(device), metric, **kwargs).cpu()
    return out


def compare_blocked(be, a: Any, b: Any, method: str, device: Any) -> Any:
    """a: host (Ba, M), b: host (Bb, M) or None -> host (Ba, Bb), block by block on `device`.

    Spearman: rows are ranked a chunk at a time, then compared as Pearson of ranks.
    """
    import torch

    m = a.shape[1]
    step = max(1, STREAM_BYTES // (2 * m * max(a.element_size(), 4)))
    if method == "spearman":
        a = _ranked(be, a, step, device)
        b = None if b is None else _ranked(be, b, step, device)
        method = "pearson"
    other = a if b is None else b
    out = torch.empty((a.shape[0], other.shape[0]), dtype=a.dtype)
    for i0 in range(0, a.shape[0], step):
        block_a = a[i0 : i0 + step].to(device)
        for j0 in range(i0 if b is None else 0, other.shape[0], step):
            block_b = block_a if (b is None and j0 == i0) else other[j0 : j0 + step].to(device)
            sim = be.compare(block_a, block_b, method).cpu()
            out[i0 : i0 + step, j0 : j0 + step] = sim
            if b is None:
                out[j0 : j0 + step, i0 : i0 + step] = sim.T
    return out


def _ranked(be, x: Any, step: int, device: Any) -> Any:
    """Average-tie ranks of host rows, a chunk at a time, in x's dtype (exact below 2**24 rows
    entries for float32; the correlation needs no more)."""
    import torch

    out = torch.empty(x.shape, dtype=x.dtype)
    for r0 in range(0, x.shape[0], step):
        out[r0 : r0 + step] = be.rank(x[r0 : r0 + step].to(device)).to(x.dtype).cpu()
    return out
