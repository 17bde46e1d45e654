"""Permutation-test op (torch, any device): the algorithm of kernels/numpy/permute.py, with the
pair index of each batch built on the rows' device (host index work per batch would dominate a
GPU run)."""

from collections.abc import Iterator

import numpy as np
import torch

from .._condensed import pair_index as permuted_pairs

__all__ = ["pair_index_torch", "permuted_products_torch"]


def pair_index_torch(perms: torch.Tensor, n: int) -> torch.Tensor:
    """(K, n) int64 permutations on a device -> (K, M) int64 on that device: entry m of the
    relabelled condensed RDM is entry [k, m] of the original (D'[i, j] = D[p_i, p_j])."""
    i, j = torch.triu_indices(n, n, offset=1, device=perms.device)
    return permuted_pairs(perms, n, i, j)


def permuted_products_torch(
    ra: torch.Tensor, rb: torch.Tensor, perms: np.ndarray, n: int, rounds: int
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yields (k0, null) per batch of at most `rounds` rounds: null (c, Ba, Bb) on ra's device
    with null[k, x, y] = sum_m ra[x, g_k(m)] rb[y, m], g_k the pair index of perms[k0 + k].
    ra (Ba, M), rb (Bb, M) tensors of one float dtype on one device; perms (K, n) int64 numpy
    permutations of 0..n-1 (each batch moves to the device once)."""
    ba, m = ra.shape
    rbt = rb.T
    for k0 in range(0, perms.shape[0], rounds):
        chunk = torch.from_numpy(np.ascontiguousarray(perms[k0 : k0 + rounds])).to(ra.device)
        c = chunk.shape[0]
        g = ra[:, pair_index_torch(chunk, n)]  # (Ba, c, M)
        yield k0, (g.reshape(ba * c, m) @ rbt).reshape(ba, c, -1).transpose(0, 1)
