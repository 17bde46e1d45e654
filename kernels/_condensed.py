"""Index arithmetic of condensed RDMs (pairs i < j, row-major, as scipy's squareform), for numpy
arrays and torch tensors alike (plain integer arithmetic, no copies beyond the result)."""

from typing import Any

__all__ = ["condensed_index", "pair_index"]


def condensed_index(lo: Any, hi: Any, n: int) -> Any:
    """Position of pair (lo, hi), lo < hi, in a condensed RDM of n items (integer arrays or
    tensors of indices, broadcast)."""
    return lo * (2 * n - lo - 1) // 2 + (hi - lo - 1)


def pair_index(perms: Any, n: int, i: Any, j: Any) -> Any:
    """(K, n) permutations -> (K, M) indices, M = n(n-1)/2: entry m of the relabelled condensed
    RDM is entry [k, m] of the original (rows and columns reordered together: D'[a, b] =
    D[p_a, p_b]). i, j: the pairs' rows and columns (np.triu_indices(n, 1), or
    torch.triu_indices(n, n, 1) on the permutations' device)."""
    p, q = perms[:, i], perms[:, j]
    lo = q + (p - q) * (p < q)  # min and max, the same for arrays and tensors
    hi = p + q - lo
    return condensed_index(lo, hi, n)
