"""Permutation-test op (numpy): the null similarities of unit rows whose images are relabelled,
batch by batch, as a gather through the permuted pair index and one BLAS product per batch."""

from collections.abc import Iterator

import numpy as np

from .._condensed import pair_index as permuted_pairs

__all__ = ["pair_index", "permuted_products_numpy"]


def pair_index(perms: np.ndarray, n: int) -> np.ndarray:
    """(K, n) permutations -> (K, M) int64, M = n(n-1)/2: entry m of the relabelled condensed RDM
    is entry [k, m] of the original (rows and columns reordered together: D'[i, j] =
    D[p_i, p_j], pairs i < j row-major as scipy's squareform)."""
    i, j = np.triu_indices(n, k=1)
    return permuted_pairs(perms, n, i, j)


def permuted_products_numpy(
    ra: np.ndarray, rb: np.ndarray, perms: np.ndarray, n: int, rounds: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Yields (k0, null) per batch of at most `rounds` rounds: null (c, Ba, Bb) with
    null[k, x, y] = sum_m ra[x, g_k(m)] rb[y, m], g_k the pair index of perms[k0 + k].
    ra (Ba, M), rb (Bb, M) of one float dtype (the result's); perms (K, n) int64 permutations of
    0..n-1. Holds one batch of gathered rows (c, Ba, M) and its product."""
    ba, m = ra.shape
    rbt = np.ascontiguousarray(rb.T)  # (M, Bb): BLAS-fast
    for k0 in range(0, perms.shape[0], rounds):
        chunk = perms[k0 : k0 + rounds]
        c = chunk.shape[0]
        g = np.take(ra, pair_index(chunk, n), axis=1)  # (Ba, c, M)
        yield k0, (g.reshape(ba * c, m) @ rbt).reshape(ba, c, -1).transpose(1, 0, 2)
