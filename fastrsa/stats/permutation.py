"""The permutation (Mantel) test of every pair of RDMs at once: relabel the images of RDMs and
recompute all-pairs similarities for a null distribution of every pair.

The Spearman and Pearson paths are the backend's "permute" op (a gather of unit rows through the
permuted pair index and one matrix product per batch of rounds), batched within the memory
budget (`fastrsa._memory`); other methods call `fastrsa.compare` once per round. Random
permutations are drawn a block at a time (stats/batches.py), so any count runs in bounded memory;
a returned null, which grows with the count, is checked against the budget before any work.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _arrays as A
from .._backend import Backend, check_backend_name, device_for, get_backend
from .._checks import check_choice, check_count, check_seed
from .._condensed import n_from_condensed
from .._memory import budget_for
from .._typing import ArrayIn
from ..compare import compare, rank_transform
from ..rdm_inputs import unwrap_rsatoolbox
from ..reference import METHODS
from .batches import block_rows, check_held, draw_rows, images_of, rows_shape
from .resampling import int_rows, pair_index, to_kind

__all__ = ["ALTERNATIVES", "PermutationResult", "permutation_test"]

ALTERNATIVES = ("greater", "less", "two-sided")
# Null values within this distance of the observed value count as ties (on both sides): the
# observed value and the null come from different (equally exact) summation orders, and a
# tie in exact arithmetic (an automorphism, the identity permutation) must not be decided by
# rounding. Relative to unit-scale correlations; by the working dtype.
_TIES = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-5}
# Bytes of gathered rows per batch of rounds on the CPU (also capped by half the budget): the
# relabelled rows and the product that reads them back; on 2 cores 256 MB (23 rounds of 20 RDMs
# of n = 500) measured as fast as 512 MB and ~10% faster than 128 MB.
_CPU_BATCH_BYTES = 256 << 20


@dataclass(frozen=True)
class PermutationResult:
    """Result of `permutation_test`, with scipy's names (`scipy.stats.PermutationTestResult`).

    statistic (alias `observed`): (Ba, Bb) float64, the similarity of the unpermuted RDMs
    (`compare(a, b, method)`). pvalue (alias `p`): (Ba, Bb) float64 p-values for
    `alternative`. null_distribution (alias `null`): (K, Ba, Bb) null similarities (round k:
    a's images relabelled by permutation k) when `return_null`, else None (scipy's is
    always there; its rounds are on the last axis, here on the first). n_perm: K, the number
    of rounds. seed: the seed given (None when permutations were given or no seed).
    permutations: (K, n) int64, the permutations used, when given or with `return_null`, else
    None (drawn a block at a time, not held: `np.random.default_rng(seed)` draws them again).
    Arrays are the kind of array `a` was (numpy, or torch tensors); each scipy name is the same
    object as its alias.
    """

    observed: Any
    p: Any
    n_perm: int
    seed: int | None
    alternative: str
    null: Any = None
    permutations: np.ndarray | None = field(default=None, repr=False)

    @property
    def statistic(self) -> Any:
        """(Ba, Bb) the observed similarity: scipy's name for `observed`."""
        return self.observed

    @property
    def pvalue(self) -> Any:
        """(Ba, Bb) the p-values: scipy's name for `p`."""
        return self.p

    @property
    def null_distribution(self) -> Any:
        """(K, Ba, Bb) the null similarities (None without `return_null`): scipy's name for
        `null`."""
        return self.null


def _check_permutations(perms: Any, n: int, block: int) -> np.ndarray:
    """perms as (K, n) int64 rows, each checked to be a permutation of 0..n-1, `block` rows at
    a time (the sort that checks them holds one block)."""
    arr = int_rows(perms, "permutations", n, "image indices")
    for s in range(0, arr.shape[0], block):
        part = arr[s : s + block]
        bad_rows = np.flatnonzero((np.sort(part, axis=1) != np.arange(n)).any(axis=1))
        if bad_rows.size:
            row = s + int(bad_rows[0])
            values, counts = np.unique(arr[row], return_counts=True)
            raise ValueError(
                f"permutations: row {row} is not a permutation of 0..{n - 1} (value "
                f"{int(values[counts > 1][0])} repeats)"
            )
    return arr


def _unit_rows(x: Any) -> Any:
    """Rows centred and scaled to unit norm, in float64 (numpy array or torch tensor)."""
    if A.is_torch(x):
        x = x.double()
        x = x - x.mean(dim=1, keepdim=True)
        return x / x.norm(dim=1, keepdim=True)
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _round_bytes(ra: Any, bb: int) -> tuple[int, int]:
    """(bytes per round, bytes per call) of the "permute" op on unit rows ra (Ba, M) against
    Bb rows: per round the relabelled rows, or the building of their pair index (the numpy and
    torch ops hold ~6 int64 index arrays (c, M) at its peak), then the product and the tally's
    two boolean masks; per call the pair list of the triangle (two int64 (M,))."""
    ba, m = ra.shape
    itemsize = ra.element_size() if A.is_torch(ra) else ra.itemsize
    per_round = max(6 * m * 8, m * 8 + ba * m * itemsize) + ba * bb * (itemsize + 2)
    return per_round, 2 * m * 8


def _null_batches(
    be: Backend, ra: Any, rb: Any, blocks: Iterator[np.ndarray], n: int, budget: int
) -> Iterator[tuple[int, Any]]:
    """Yields (k0, null) per batch of rounds: null (c, Ba, Bb) = sum_m ra[:, g_k(m)] rb[:, m]
    of unit rows for rounds k0 .. k0 + c - 1 (the rows of `blocks`, blocks of permutations in
    round order), in ra's kind and dtype (the backend's "permute" op; possibly a buffer reused
    by the next batch: consume it first). A batch fits min(half the budget, 256 MB) on the
    CPU, half the budget on a GPU."""
    per_round, per_call = _round_bytes(ra, rb.shape[0])
    on_gpu = A.is_torch(ra) and ra.is_cuda
    cap = budget // 2 if on_gpu else min(budget // 2, _CPU_BATCH_BYTES)
    rounds = int(max(1, (cap - per_call) // per_round))
    if be.permuted_products is None:  # get_backend(op="permute") guarantees it
        raise AssertionError(f"backend {be.name!r} declares no permute op")
    k0 = 0
    for perms in blocks:
        for k, batch in be.permuted_products(ra, rb, perms, n, min(rounds, perms.shape[0])):
            yield k0 + k, batch
        k0 += perms.shape[0]


def _keeping(blocks: Iterator[np.ndarray], kept: np.ndarray) -> Iterator[np.ndarray]:
    """The blocks, each also copied into `kept` (K, n) in turn."""
    k0 = 0
    for perms in blocks:
        kept[k0 : k0 + perms.shape[0]] = perms
        k0 += perms.shape[0]
        yield perms


def _inverse(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """The inverse of each permutation, block by block."""
    for perms in blocks:
        yield np.argsort(perms, axis=1)


class _Tally:
    """Counts of null values at or above / at or below the observed values (ties within `tol`
    on both sides), batch by batch; keeps the whole (K, Ba, Bb) null only when asked."""

    def __init__(self, observed: np.ndarray, tol: float, k: int, keep: bool, like: Any) -> None:
        self.low, self.high = observed - tol, observed + tol
        self.greater = np.zeros(observed.shape, dtype=np.int64)
        self.less = np.zeros(observed.shape, dtype=np.int64)
        self.k = k
        self.null: Any = None
        if keep:
            shape = (k,) + observed.shape
            self.null = like.new_empty(shape) if A.is_torch(like) else np.empty(shape, like.dtype)

    def add(self, k0: int, batch: Any) -> None:
        if self.null is not None:
            self.null[k0 : k0 + batch.shape[0]] = batch
        host = batch.cpu().numpy() if A.is_torch(batch) else batch
        self.greater += (host >= self.low).sum(axis=0)
        self.less += (host <= self.high).sum(axis=0)

    def p_values(self, alternative: str) -> np.ndarray:
        greater = (1.0 + self.greater) / (1.0 + self.k)
        less = (1.0 + self.less) / (1.0 + self.k)
        if alternative == "greater":
            return greater
        if alternative == "less":
            return less
        return np.minimum(1.0, 2.0 * np.minimum(greater, less))


def permutation_test(
    a: ArrayIn,
    b: ArrayIn | None = None,
    method: str = "spearman",
    n_perm: int = 10_000,
    seed: int | None = None,
    permutations: Any = None,
    alternative: str = "greater",
    return_null: bool = False,
    backend: str = "auto",
    memory: int | str | None = None,
) -> PermutationResult:
    """Mantel test of every pair of RDMs at once.

    a: (Ba, M) condensed RDMs, M = n(n-1)/2 (or an rsatoolbox RDMs object); b: (Bb, M) or None
    for all pairs of a with itself. Each round k relabels the n images of every RDM of `a` by
    one permutation p_k (the same for the whole batch: D'[i, j] = D[p_k[i], p_k[j]], square
    rows and columns reordered together, i.e. the condensed entries gathered by the permuted
    pair index) and computes `compare(a', b, method)`; b stays. With T the observed similarity
    and N_k the null values:
        p_greater = (1 + #{k: N_k >= T}) / (1 + K),  p_less = (1 + #{k: N_k <= T}) / (1 + K),
        two-sided = min(1, 2 min(p_greater, p_less)).
    Null values within 1e-12 (float64 work) or 2e-5 (float32 work) of T count as ties on both
    sides (conservative): rounding never decides a tie that exact arithmetic would make.

    method: "spearman" (ranks computed once: a permutation of images permutes the condensed
    entries, so ranks are gathered, never recomputed; each batch of rounds is a gather of the
    centred, unit-norm rank rows and one matrix product; when b has fewer RDMs than a, b is
    relabelled by the inverse permutations instead, the same values since <P a, b> =
    <a, P^-1 b>, for fewer gathers), "pearson" (the same on centred,
    unit-norm values), or any other `fastrsa.compare` method (one `compare` call per round:
    slow). Work is float32 when every input is float32 (null values then match scipy to ~1e-5),
    else float64 (to ~1e-12); the null is returned in that dtype, observed and p in float64.
    n_perm: K, the number of random rounds (int >= 1; ignored when `permutations` is given).
    seed: int or None, for `np.random.default_rng(seed)`, which draws K permutations
    (`rng.permuted` of K rows of arange(n)). permutations: explicit (K, n) integer rows, each a
    permutation of 0..n-1: exactly reproducible runs, comparable across experiments.
    alternative: "greater" (default), "less" or "two-sided". return_null: also return the
    (K, Ba, Bb) null. Returns a `PermutationResult`: `statistic` (alias `observed`), `pvalue`
    (alias `p`), `null_distribution` (alias `null`), as scipy's `permutation_test`. With b
    None, observed is `compare(a)` (unit diagonal) and the diagonal's p-values are still
    computed (each RDM against a relabelled copy of itself: near 1/(K+1) for any RDM with
    structure; not meaningful, ignore them).

    memory: working-memory budget (default `fastrsa.get_memory_budget()`). Holds the ranked
    unit rows of a and b (float32 or float64, (Ba + Bb, M)), one batch of relabelled rows
    (within half the budget; at most 256 MB on the CPU), one block of permutations (drawn a
    block at a time from the seed's generator: the same rows as one whole draw, so results do
    not depend on the budget) and counts (Ba, Bb) int64; the numba backend also holds a's
    square RDMs (Ba, n, n). Any n_perm runs in this memory (a huge count takes long: that is
    the caller's call). p-values are counted batch by batch: the (K, Ba, Bb) null and the
    permutations (K, n) int64 are held only with `return_null` or given `permutations`; what is
    held is checked against the budget before any work (ValueError naming `n_perm` or
    `permutations`, the count, the bytes and the budget), and the batches share what it leaves.
    Results do not depend on the backend or batching.
    """
    check_choice(method, METHODS, "method")
    check_choice(alternative, ALTERNATIVES, "alternative")
    check_backend_name(backend)
    n_perm = check_count(n_perm, "n_perm")
    seed = check_seed(seed)
    a, b = unwrap_rsatoolbox(a, "a"), None if b is None else unwrap_rsatoolbox(b, "b")
    gathered = method in ("spearman", "pearson")  # the backend's "permute" op
    be = get_backend(backend, cuda=A.is_cuda(a), op="permute" if gathered else None)
    device = device_for(be, a)
    budget = budget_for(memory, device)
    held = _held(a, b, n_perm, permutations, return_null, budget)  # before any work
    observed = compare(a, b, method, backend=backend, memory=memory)  # validates a and b
    origin = A.origin_of(a)
    obs = A.back_to(observed, A.Origin("numpy")).astype(np.float64)
    va = A.as_checked(a, "a", be.kind, device)
    vb = va if b is None else A.as_checked(b, "b", be.kind, device)
    if held is None:  # inputs whose shape was known only once read
        held = _held(va, None if b is None else vb, n_perm, permutations, return_null, budget)
    work = max(1, budget - (held or 0))  # what the batches may hold beside the held output
    n = n_from_condensed(va.shape[1], "a")
    given = None
    if permutations is not None:
        given = _check_permutations(permutations, n, block_rows(len(permutations), 16 * n, work))
        seed = None
    k = n_perm if given is None else given.shape[0]
    block = block_rows(k, 3 * n * 8, work // 8)  # a block of permutations and its inverses
    kept = given
    if given is None:
        blocks = draw_rows("permutations", k, n, seed, block)
        if return_null:  # the permutations come back with the null (counted in `held`)
            kept = np.empty((k, n), dtype=np.int64)
            blocks = _keeping(blocks, kept)
    else:
        blocks = (given[s : s + block] for s in range(0, k, block))
    wide = A.is_float64(va) or A.is_float64(vb)
    tol = _TIES[np.dtype(np.float64 if wide else np.float32)]
    like = A.cast_result(va[:1, :1] if A.is_torch(va) else np.zeros(1), wide)
    tally = _Tally(obs, tol, k, return_null, like)
    if gathered:
        if method == "spearman":
            ra = rank_transform(va, backend=be.name, memory=work)
            rb = ra if b is None else rank_transform(vb, backend=be.name, memory=work)
        else:
            ra, rb = va, vb
        ra = A.cast_result(_unit_rows(ra), wide)
        rb = ra if b is None else A.cast_result(_unit_rows(rb), wide)
        if rb.shape[0] < ra.shape[0]:  # relabel the smaller side: <P a, b> = <a, P^-1 b>
            for k0, batch in _null_batches(be, rb, ra, _inverse(blocks), n, work):
                tally.add(
                    k0, batch.transpose(1, 2) if A.is_torch(batch) else batch.transpose(0, 2, 1)
                )
        else:
            for k0, batch in _null_batches(be, ra, rb, blocks, n, work):
                tally.add(k0, batch)
    else:  # one compare per round, on the rows gathered through that round's pair index
        itemsize = va.element_size() if A.is_torch(va) else va.itemsize
        rest = max(1, work - block * 3 * n * 8 - va.shape[1] * (6 * 8 + va.shape[0] * itemsize))
        k0 = 0
        for perms in blocks:
            for p in perms:
                idx = to_kind(pair_index(p[None], n)[0], va)
                sim = compare(va[:, idx], vb, method, backend=be.name, memory=rest)
                tally.add(k0, A.cast_result(sim, wide)[None])
                k0 += 1
    p = tally.p_values(alternative)
    return PermutationResult(
        observed=A.back_to(obs, origin),
        p=A.back_to(p, origin),
        n_perm=int(k),
        seed=seed,
        alternative=alternative,
        null=A.back_to(tally.null, origin) if return_null else None,
        permutations=kept,
    )


def _narrow(x: Any) -> bool:
    """Whether rows of x's dtype are worked on in float32 (float16/float32 arrays and
    tensors)."""
    return str(getattr(x, "dtype", "")).endswith(("float32", "float16"))


def _held(
    a: Any, b: Any, n_perm: int, permutations: Any, return_null: bool, budget: int
) -> int | None:
    """Bytes held whole for the run: the returned null (K, Ba, Bb) with `return_null`, explicit
    `permutations` as int64 (K, n); OverBudget (a ValueError) naming `n_perm` or `permutations`
    when they exceed the budget. None when a's or b's shape is not known yet (lists), 0 when
    nothing is held or a's length is no condensed length (its check names it)."""
    sa = rows_shape(a)
    sb = sa if b is None else rows_shape(b)
    if sa is None or sb is None:
        return None
    n = images_of(sa[1])
    if n is None:
        return 0
    wide = not (_narrow(a) and (b is None or _narrow(b)))
    per, parts = 0, []
    if return_null:
        per += sa[0] * sb[0] * (8 if wide else 4)
        dtype = "float64" if wide else "float32"
        parts.append(f"the null (K, {sa[0]}, {sb[0]}) {dtype} that return_null returns")
    count, argument = n_perm, "n_perm"
    if permutations is not None:
        shape = getattr(permutations, "shape", None) or np.shape(permutations)
        count, argument = (int(shape[0]) if len(shape) else 0), "permutations"
    if permutations is not None or return_null:
        per += n * 8
        parts.append(f"the permutations (K, {n}) int64")
    if not per:
        return 0
    what = f"rounds ({' and '.join(parts)})"
    return check_held(count, per, budget, argument, what)
