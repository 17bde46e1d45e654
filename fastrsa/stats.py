"""How sure is the answer: permutation (Mantel) tests and bootstrap over images.

`permutation_test` relabels the images of RDMs and recomputes all-pairs similarities to get a
null distribution for every pair at once; `bootstrap` resamples images with replacement
(rsatoolbox's semantics) and returns the distribution of the similarity matrix, with percentile
and BCa intervals and standard errors.

RDMs are condensed rows (B, n*(n-1)//2), i < j row-major as scipy's `squareform` (or
rsatoolbox RDMs objects). Both functions use the ops of `fastrsa.compare` (`rank_transform`,
`compare`); the permutation test's Spearman and Pearson paths are a gather and one matrix
product per batch of rounds, batched within the memory budget (`fastrsa._memory`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _arrays as A
from ._backend import check_backend_name, device_for, get_backend
from ._memory import budget_for
from ._typing import ArrayIn
from .compare import _unwrapped, compare, rank_transform
from .rdms import n_from_condensed, squareform
from .reference import METHODS
from .support import check_seed

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


# ---------------------------------------------------------------------------------- checks


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int; got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1; got {value}")
    return int(value)


def _int_rows(x: Any, name: str, n: int, what: str) -> np.ndarray:
    """x as a (K, n) int64 numpy array (tensors are copied to the host); errors name `name`."""
    if A.is_torch(x):
        x = x.detach().cpu().numpy()
    arr = A.as_array(x, name)
    if arr.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must be an integer array (K, {n}) of {what}; got dtype {arr.dtype}"
        )
    if arr.ndim != 2 or arr.shape[1] != n or arr.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape (K, {n}) with K >= 1 (one row of {what} per round, n = {n} "
            f"images); got shape {arr.shape}"
        )
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} holds values out of range [0, {n}): first at row {row}, column {col} "
            f"(value {int(arr[row, col])})"
        )
    return arr.astype(np.int64, copy=False)


def _check_permutations(perms: Any, n: int) -> np.ndarray:
    arr = _int_rows(perms, "permutations", n, "image indices")
    bad_rows = np.flatnonzero((np.sort(arr, axis=1) != np.arange(n)).any(axis=1))
    if bad_rows.size:
        row = int(bad_rows[0])
        values, counts = np.unique(arr[row], return_counts=True)
        raise ValueError(
            f"permutations: row {row} is not a permutation of 0..{n - 1} (value "
            f"{int(values[counts > 1][0])} repeats; {bad_rows.size} such rows in all)"
        )
    return arr


def _condensed_index(lo: Any, hi: Any, n: int) -> Any:
    """Index in the condensed vector of pairs (lo, hi), lo < hi (numpy or torch integers)."""
    return lo * (2 * n - lo - 1) // 2 + (hi - lo - 1)


def _pair_index(perms: Any, n: int) -> Any:
    """(K, n) permutations -> (K, M) int64: entry m of the relabelled RDM is entry [k, m] of the
    original (rows and columns reordered together: D'[i, j] = D[p[i], p[j]]). numpy arrays, or
    int64 tensors computed on their device."""
    if A.is_torch(perms):
        import torch

        i, j = torch.triu_indices(n, n, offset=1, device=perms.device)
        p, q = perms[:, i], perms[:, j]
        return _condensed_index(torch.minimum(p, q), torch.maximum(p, q), n)
    i, j = np.triu_indices(n, k=1)
    p, q = perms[:, i], perms[:, j]
    return _condensed_index(np.minimum(p, q), np.maximum(p, q), n)


# ------------------------------------------------------------------- permutation test


@dataclass(frozen=True)
class PermutationResult:
    """Result of `permutation_test`.

    observed: (Ba, Bb) float64, the similarity of the unpermuted RDMs (`compare(a, b, method)`).
    p: (Ba, Bb) float64 p-values for `alternative`. n_perm: K, the number of rounds (rows of the
    permutations used). seed: the seed given (None when permutations were given or no seed).
    null: (K, Ba, Bb) null similarities (round k: a's images relabelled by permutation k) when
    `return_null`, else None. Arrays are the kind of array `a` was (numpy, or torch tensors).
    """

    observed: Any
    p: Any
    n_perm: int
    seed: int | None
    alternative: str
    null: Any = None
    permutations: np.ndarray | None = field(default=None, repr=False)


def _unit_rows(x: Any, centre_scale: bool = True) -> Any:
    """Rows centred and scaled to unit norm, in float64 (numpy array or torch tensor)."""
    if A.is_torch(x):
        x = x.double()
        x = x - x.mean(dim=1, keepdim=True)
        return x / x.norm(dim=1, keepdim=True)
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _null_batches(be: Any, ra: Any, rb: Any, perms: np.ndarray, n: int, budget: int) -> Any:
    """Yields (k0, null) per batch of rounds: null (c, Ba, Bb) = sum_m ra[:, g_k(m)] rb[:, m]
    of unit rows for rounds k0 .. k0 + c - 1, in ra's kind and dtype (a buffer reused by the
    next batch: consume it first). A batch's relabelled rows fit min(half the budget, 256 MB)
    on the CPU, half the budget on a GPU."""
    K = perms.shape[0]
    ba, m = ra.shape
    itemsize = ra.element_size() if A.is_torch(ra) else ra.itemsize
    # per round: relabelled rows, pair index, the product and the tally's two boolean masks
    per_round = ba * m * itemsize + m * 8 + ba * rb.shape[0] * (itemsize + 2)
    cap = budget // 2 if be.kind == "torch" and ra.is_cuda else min(budget // 2, _CPU_BATCH_BYTES)
    kc = int(max(1, min(K, cap // per_round)))
    rbt = rb.T if be.kind == "torch" else np.ascontiguousarray(rb.T)  # (M, Bb): BLAS-fast
    if be.name == "numba":
        import numba

        from .kernels import numba as k

        square = squareform(ra, to="square")
        threads = numba.get_num_threads()
        buf = np.empty((kc, ba, m), dtype=ra.dtype)  # reused: fresh pages cost more than a gather
        prod = np.empty((kc * ba, rbt.shape[1]), dtype=ra.dtype)
    for k0 in range(0, K, kc):
        chunk = perms[k0 : k0 + kc]
        c = chunk.shape[0]
        if be.kind == "torch":
            import torch

            # the pair index is built on the device (host work per batch would dominate a GPU)
            idx = _pair_index(torch.from_numpy(np.ascontiguousarray(chunk)).to(ra.device), n)
            g = ra[:, idx]  # (Ba, c, M)
            yield k0, (g.reshape(ba * c, m) @ rbt).reshape(ba, c, -1).transpose(0, 1)
        elif be.name == "numba":
            with k.one_blas_thread():
                # unsigned indices spare numba's negative-index checks (~7% of the gather)
                inverse = np.argsort(chunk, axis=1).astype(np.uint32)
                k.relabelled_rows_numba(square, chunk.astype(np.uint32), inverse, buf[:c])
                k.products_numba(buf[:c].reshape(c * ba, m), rbt, threads, prod[: c * ba])
            yield k0, prod[: c * ba].reshape(c, ba, -1)
        else:
            g = np.take(ra, _pair_index(chunk, n), axis=1)  # (Ba, c, M)
            yield k0, (g.reshape(ba * c, m) @ rbt).reshape(ba, c, -1).transpose(1, 0, 2)


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
    (K, Ba, Bb) null. With b None, observed is `compare(a)` (unit diagonal) and the diagonal's
    p-values are still computed (each RDM against a relabelled copy of itself: near 1/(K+1)
    for any RDM with structure; not meaningful, ignore them).

    memory: working-memory budget (default `fastrsa.get_memory_budget()`). Holds the ranked
    unit rows of a and b (float32 or float64, (Ba + Bb, M)), one batch of relabelled rows
    (within half the budget; at most 256 MB on the CPU), and counts (Ba, Bb) int64; the numba
    backend also holds a's square RDMs (Ba, n, n). p-values are counted batch by batch: the
    (K, Ba, Bb) null is held only with `return_null` (it is then part of the output). Results
    do not depend on the backend or batching.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    if alternative not in ALTERNATIVES:
        raise ValueError(
            f"alternative must be one of {', '.join(map(repr, ALTERNATIVES))}; got {alternative!r}"
        )
    check_backend_name(backend)
    n_perm = _check_count(n_perm, "n_perm")
    seed = check_seed(seed)
    a, b = _unwrapped(a, "a"), None if b is None else _unwrapped(b, "b")
    observed = compare(a, b, method, backend=backend, memory=memory)  # validates a and b
    origin = A.origin_of(a)
    obs = A.back_to(observed, A.Origin("numpy")).astype(np.float64)
    be = get_backend(backend, cuda=A.is_cuda(a))
    device = device_for(be, a)
    budget = budget_for(memory, device)
    va = A.as_checked(a, "a", be.kind, device)
    vb = va if b is None else A.as_checked(b, "b", be.kind, device)
    n = n_from_condensed(va.shape[1], "a")
    if permutations is not None:
        perms = _check_permutations(permutations, n)
        seed = None
    else:
        rng = np.random.default_rng(seed)
        perms = rng.permuted(np.broadcast_to(np.arange(n), (n_perm, n)), axis=1)
    wide = A.is_float64(va) or A.is_float64(vb)
    tol = _TIES[np.dtype(np.float64 if wide else np.float32)]
    like = A.cast_result(va[:1, :1] if A.is_torch(va) else np.zeros(1), wide)
    tally = _Tally(obs, tol, perms.shape[0], return_null, like)
    if method in ("spearman", "pearson"):
        if method == "spearman":
            ra = rank_transform(va, backend=be.name, memory=budget)
            rb = ra if b is None else rank_transform(vb, backend=be.name, memory=budget)
        else:
            ra, rb = va, vb
        ra = A.cast_result(_unit_rows(ra), wide)
        rb = ra if b is None else A.cast_result(_unit_rows(rb), wide)
        if rb.shape[0] < ra.shape[0]:  # relabel the smaller side: <P a, b> = <a, P^-1 b>
            for k0, batch in _null_batches(be, rb, ra, np.argsort(perms, axis=1), n, budget):
                tally.add(
                    k0, batch.transpose(1, 2) if A.is_torch(batch) else batch.transpose(0, 2, 1)
                )
        else:
            for k0, batch in _null_batches(be, ra, rb, perms, n, budget):
                tally.add(k0, batch)
    else:  # one compare per round
        for k0, idx in enumerate(_pair_index(perms, n)):
            sim = compare(va[:, _to_kind(idx, va)], vb, method, backend=be.name, memory=budget)
            tally.add(k0, A.cast_result(sim, wide)[None])
    p = tally.p_values(alternative)
    null = tally.null
    return PermutationResult(
        observed=A.back_to(obs, origin),
        p=A.back_to(p, origin),
        n_perm=int(perms.shape[0]),
        seed=seed,
        alternative=alternative,
        null=A.back_to(null, origin) if return_null else None,
        permutations=perms,
    )


# -------------------------------------------------------------------------------- bootstrap


def _norm_ppf(q: Any) -> Any:
    from scipy.special import ndtri

    return ndtri(q)


def _norm_cdf(z: Any) -> Any:
    from scipy.special import ndtr

    return ndtr(z)


@dataclass(frozen=True)
class BootstrapResult:
    """Result of `bootstrap`.

    samples: (K, B, B) float64, the similarity matrix of each resample; observed: (B, B)
    float64, that of all images; indices: (K, n) int64, the images drawn (with replacement)
    for each resample. numpy arrays.
    """

    samples: np.ndarray
    observed: np.ndarray
    indices: np.ndarray
    method: str = "spearman"
    seed: int | None = None
    _rows: Any = field(default=None, repr=False, compare=False)
    _opts: dict = field(default_factory=dict, repr=False, compare=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def percentile(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi), each (B, B): the (1-level)/2 and (1+level)/2 quantiles of the samples
        (numpy's linear interpolation)."""
        _check_level(level)
        lo, hi = np.quantile(self.samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return lo, hi

    def standard_error(self) -> np.ndarray:
        """(B, B): the standard deviation of the samples (ddof=1; 0 for K = 1)."""
        k = self.samples.shape[0]
        return self.samples.std(axis=0, ddof=1) if k > 1 else np.zeros_like(self.observed)

    def jackknife(self) -> np.ndarray:
        """(n, B, B): the similarity matrix with each image left out in turn (computed once)."""
        if "jackknife" not in self._cache:
            rows, n = self._rows, self.indices.shape[1]
            keep = np.ones(n, dtype=np.int64)
            out = np.empty((n,) + self.observed.shape)
            weighted = _weighted(self.method, rows)
            if weighted:
                resampler = _resampler(rows, self.method, n, **self._opts)
            with resampler.threads() if weighted else contextlib.nullcontext():
                for i in range(n):
                    keep[i] = 0
                    if weighted:
                        out[i] = resampler(keep, f"image {i} left out")
                    else:
                        out[i] = _similarity_resample(
                            rows, np.flatnonzero(keep), n, self.method, self._opts
                        )
                    keep[i] = 1
            self._cache["jackknife"] = out
        return self._cache["jackknife"]

    def bca(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi), each (B, B): bias-corrected and accelerated interval (Efron 1987).

        Bias z0 = Phi^-1((#{samples < observed} + #{samples == observed}/2) / K), the fraction
        clipped to [1/(2K), 1 - 1/(2K)]; acceleration a = sum d^3 / (6 (sum d^2)^1.5), d = mean
        - jackknife values over images (n leave-one-image-out similarity matrices: n more
        compare calls, done once and cached; a = 0 where the jackknife values are all equal,
        e.g. the unit diagonal). The interval is the samples' quantiles at
        Phi(z0 + (z0 + z) / (1 - a (z0 + z))) for z = Phi^-1((1 -+ level) / 2).
        """
        _check_level(level)
        if self.indices.shape[1] < 4:
            raise ValueError(
                f"bca: the jackknife leaves one image out of n = {self.indices.shape[1]}, which "
                "leaves one pair: the correlation is undefined; BCa needs n >= 4 images "
                "(use percentile())"
            )
        k = self.samples.shape[0]
        below = (self.samples < self.observed).sum(axis=0)
        ties = (self.samples == self.observed).sum(axis=0)
        frac = np.clip((below + 0.5 * ties) / k, 0.5 / k, 1 - 0.5 / k)
        z0 = _norm_ppf(frac)
        jack = self.jackknife()
        d = jack.mean(axis=0) - jack
        num = (d**3).sum(axis=0)
        den = 6.0 * (d**2).sum(axis=0) ** 1.5
        acc = np.divide(num, den, out=np.zeros_like(num), where=den > 1e-300)
        bounds = []
        for z in (_norm_ppf((1 - level) / 2), _norm_ppf((1 + level) / 2)):
            q = _norm_cdf(z0 + (z0 + z) / (1 - acc * (z0 + z)))
            bounds.append(_quantile_per_entry(self.samples, q))
        return bounds[0], bounds[1]


def _check_level(level: Any) -> None:
    if not isinstance(level, int | float) or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1); got {level!r}")


def _quantile_per_entry(samples: np.ndarray, q: np.ndarray) -> np.ndarray:
    """samples (K, B, B), q (B, B) -> the q[i, j] quantile of samples[:, i, j] (linear)."""
    k = samples.shape[0]
    s = np.sort(samples, axis=0)
    pos = np.clip(q, 0.0, 1.0) * (k - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, k - 1)
    w = pos - lo
    take = lambda i: np.take_along_axis(s, i[None], axis=0)[0]  # noqa: E731
    return (1 - w) * take(lo) + w * take(hi)


def _resample_pairs(idx: np.ndarray, n: int) -> np.ndarray:
    """Condensed entries of the resample `idx` (n image indices, with repeats), as rsatoolbox's
    `subsample_pattern` orders them (images sorted, pairs i < j of the sorted list), without
    the pairs of an image with a copy of itself."""
    s = np.sort(idx)
    i, j = np.triu_indices(s.size, k=1)
    p, q = s[i], s[j]
    keep = p != q
    return _condensed_index(p[keep], q[keep], n)


def bootstrap(
    rdms: ArrayIn,
    method: str = "spearman",
    n_boot: int = 1_000,
    seed: int | None = None,
    indices: Any = None,
    backend: str = "auto",
    memory: int | str | None = None,
) -> BootstrapResult:
    """Bootstrap over images (patterns) of the all-pairs similarity of RDMs.

    rdms: (B, M) condensed RDMs of n images, M = n(n-1)/2 (or an rsatoolbox RDMs object).
    Each resample draws n images with replacement (`indices` row k) and keeps rsatoolbox's
    semantics for repeated images (`rsatoolbox.inference.bootstrap_sample_pattern` then
    `RDMs.subsample_pattern`): the drawn images are sorted, every pair of positions i < j
    gives the entry D[s_i, s_j], pairs of an image with a copy of itself are left out (their
    dissimilarity is not a valid entry: rsatoolbox marks them NaN and its comparisons drop
    them), and other pairs appear as often as the resample repeats them. The resampled rows
    are then compared as `fastrsa.compare(rows, method=method)` would. For "spearman",
    "pearson" and "cosine" nothing is gathered: a resample holds pair (i, j) c_i c_j times (c:
    how often each image is drawn), so its similarity is a weighted Gram of the original
    entries, with weighted average-tie ranks for Spearman from each row's sort order, computed
    once (float64; equal to `compare` on the gathered rows to ~1e-14). Other methods gather
    the resampled rows and call `compare` per resample. With rsatoolbox's indices, the values equal
    `rsatoolbox.rdm.compare(r, r, method)` on `r = rdms.subsample_pattern("index", idx)` for
    its methods of the same meaning ("spearman", "corr" = "pearson", "cosine", "rho-a",
    "tau-a").

    n_boot: K (int >= 1; ignored when `indices` is given). seed: int or None, for
    `np.random.default_rng(seed).integers(0, n, (K, n))`. indices: explicit (K, n) integer
    rows in [0, n). A resample with fewer than 3 distinct images (so at most one distinct
    dissimilarity: the correlation is undefined) raises ValueError naming the resample: no
    NaN and no silent skip (with random draws this needs a very small n). n >= 3 required.

    Returns a BootstrapResult: samples (K, B, B) float64, observed (B, B), indices (K, n),
    with `percentile(level)`, `bca(level)` (jackknife over images for the acceleration) and
    `standard_error()`. backend: as for `fastrsa.compare` (torch rows stay on their device).

    memory: the budget (default `fastrsa.get_memory_budget()`). The weighted path holds about
    30 (numba), 120 (numpy), 140 (torch; Spearman) or 32 (Pearson, cosine) bytes per entry (B x M)
    for the whole run, refused with a ValueError naming the need when over the budget; other
    methods hold one gathered copy of the rows per resample plus what `compare` holds. The
    result holds K x B x B float64 samples (not counted: it is the output).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    check_backend_name(backend)
    n_boot = _check_count(n_boot, "n_boot")
    seed = check_seed(seed)
    rdms = _unwrapped(rdms, "rdms")
    opts: dict[str, Any] = dict(backend=backend, memory=memory)
    observed = A.back_to(compare(rdms, None, method, **opts), A.Origin("numpy"))  # validates
    rows: Any = rdms if A.is_torch(rdms) else A.as_checked(rdms, "rdms", keep_int=True)
    n = n_from_condensed(rows.shape[1], "rdms")
    if n < 3:
        raise ValueError(f"rdms: a bootstrap over images needs n >= 3 images; got n = {n}")
    if indices is not None:
        idx = _check_distinct(_int_rows(indices, "indices", n, "image indices"))
        seed = None
    else:
        idx = _draw_indices(n_boot, seed, n)
    samples = np.empty((idx.shape[0],) + observed.shape, dtype=np.float64)
    if _weighted(method, rows):
        resampler = _resampler(rows, method, n, backend, memory)
        with resampler.threads():
            for k, r in enumerate(idx):
                samples[k] = resampler(np.bincount(r, minlength=n), f"resample {k}")
    else:
        for k, r in enumerate(idx):
            samples[k] = _similarity_resample(rows, r, n, method, opts)
    return BootstrapResult(
        samples=samples,
        observed=observed.astype(np.float64),
        indices=idx,
        method=method,
        seed=seed,
        _rows=rows,
        _opts=opts,
    )


# Methods whose resampled similarity is computed from pair weights (no gather, no re-sort).
_WEIGHTED_METHODS = ("spearman", "pearson", "cosine")


def _weighted(method: str, rows: Any) -> bool:
    """Whether the weighted path computes `method` on `rows`: its methods, on rows exact in
    float64 (integer rows beyond 2**53 take the gather path, which compares them exactly)."""
    if method not in _WEIGHTED_METHODS:
        return False
    if A.is_integer(rows):
        top = rows.abs().max() if A.is_torch(rows) else np.abs(rows).max()
        return int(top) <= 1 << 53
    return True


def _draw_indices(n_boot: int, seed: int | None, n: int) -> np.ndarray:
    """(K, n) int64 image indices, `np.random.default_rng(seed).integers(0, n, (K, n))`."""
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    return _check_distinct(idx, f"the resamples drawn (seed {seed}, n = {n} images)")


def _check_distinct(idx: np.ndarray, what: str = "indices") -> np.ndarray:
    distinct = np.array([np.unique(r).size for r in idx])
    if (distinct < 3).any():
        k = int(np.flatnonzero(distinct < 3)[0])
        raise ValueError(
            f"{what}: resample {k} has only {distinct[k]} distinct images; at least 3 are "
            "needed for a defined correlation"
        )
    return idx


def bootstrap_first_row(
    rdms: Any, method: str, n_boot: int, seed: int | None, backend: str = "auto"
) -> np.ndarray:
    """(K, B - 1) float64: the similarity of rdms[0] to each of rdms[1:] over K image
    resamples: `bootstrap(rdms, method, n_boot, seed).samples[:, 0, 1:]` (the same draws, the
    same values up to rounding, ~1e-16) computing only that row (B products per resample, not
    B^2): for ranking sources against one target. rdms: (B, M) condensed, already checked."""
    rows = np.asarray(rdms)
    n = n_from_condensed(rows.shape[1], "rdms")
    idx = _draw_indices(_check_count(n_boot, "n_boot"), check_seed(seed), n)
    if not _weighted(method, rows):
        return bootstrap(rows, method, indices=idx, backend=backend).samples[:, 0, 1:]
    resampler = _resampler(rows, method, n, backend, None)
    out = np.empty((len(idx), rows.shape[0] - 1))
    with resampler.threads():
        for k, r in enumerate(idx):
            out[k] = resampler(np.bincount(r, minlength=n), f"resample {k}", first=True)[1:]
    return out


def _resampler(rows: Any, method: str, n: int, backend: str, memory: Any) -> _Resampler:
    """The weighted path for `rows` on `backend`'s device (host rows move to the GPU once for a
    GPU backend, as `compare` does), after checking its holdings against the budget."""
    be = get_backend(backend, cuda=A.is_cuda(rows))
    device = device_for(be, rows)
    _check_weighted_memory(rows.shape, method, be, budget_for(memory, device))
    if be.kind == "torch" and not A.is_torch(rows):
        import torch

        rows = torch.from_numpy(np.ascontiguousarray(rows)).to(device)
    return _Resampler(rows, method, n, be)


def _check_weighted_memory(shape: tuple, method: str, be: Any, budget: int) -> None:
    """ValueError when the weighted path's holdings (bytes per entry of (B, M)) exceed budget."""
    # measured with tracemalloc (B = 40, n = 200): numba 26, numpy 91, Pearson 25; torch's
    # temporaries (int64 pair images, cumulative sums, flips) counted from the code
    spearman = {"numba": 30, "numpy": 120}.get(be.name, 140)
    per_entry = 32 if method != "spearman" else spearman
    need = per_entry * shape[0] * shape[1] + 24 * shape[1]  # + the pairs' image indices
    if need > budget:
        raise ValueError(
            f"bootstrap: {shape[0]} RDMs of {shape[1]} pairs need about {need / 1e9:.2f} GB "
            f"for the resampling ({per_entry} bytes per entry); the memory budget is "
            f"{budget / 1e9:.2f} GB: raise the budget (memory=, fastrsa.set_memory_budget or "
            "FASTRSA_MEMORY) or bootstrap fewer RDMs at once"
        )


class _Resampler:
    """(B, B) float64 similarity of condensed rows on a resample given by image counts.

    A resample that draws image i c_i times holds pair m = (i, j) w_m = c_i c_j times (pairs
    of an image with its own copy left out: rsatoolbox's semantics), so each method is a
    weighted statistic of the original entries: Pearson and cosine a weighted Gram of the rows
    (centred by the weighted mean for Pearson); Spearman the same of weighted average-tie ranks
    (kernels/*/resample.py: one pass over each row's fixed sort order, no re-sort). Equal to
    `compare` on the gathered entries up to rounding (float64 throughout).

    Holds, for the whole run: the rows as float64 (B, M) (Pearson, cosine), or for Spearman the
    sort order (or its inverse), tie flags and the images of each sorted pair, plus the
    weighted rows (B, M) float64 reused per resample (`_check_weighted_memory` counts it all).
    Torch rows stay on their device.
    """

    def __init__(self, rows: Any, method: str, n: int, be: Any) -> None:
        self.method = method
        self.torch = A.is_torch(rows)
        self.numba = False
        self.sorted: tuple[Any, ...] = ()  # the rank kernel's fixed inputs (Spearman)
        self.ranks: Any = None  # the rank kernel
        i, j = np.triu_indices(n, k=1)
        self.pairs = (i, j)
        if self.torch:
            import torch

            x = rows.detach().to(torch.float64)
            self.device = x.device
        else:
            x = np.asarray(rows, dtype=np.float64)
        if method == "spearman":
            if self.torch:
                from .kernels.torch import sort_rows_torch, weighted_ranks_torch

                self.sorted = sort_rows_torch(x, n)
                self.ranks = weighted_ranks_torch
            else:
                from .kernels.numpy import sort_rows, weighted_ranks_numpy

                self.sorted = sort_rows(x, n)
                self.ranks = weighted_ranks_numpy
                if be.name == "numba":
                    self._numba_ranks(n)
            self.out = x.new_empty(x.shape) if self.torch else np.empty(x.shape)
            self.x = None
        else:  # rows scaled by a power of two per row (exact) so the Gram cannot overflow
            top = x.abs().amax(dim=1) if self.torch else np.abs(x).max(axis=1)
            top = top.cpu().numpy() if self.torch else top
            scale = np.ldexp(1.0, -np.frexp(np.where(top > 0, top, 1.0))[1])
            self.x = x * (_to_kind(scale, x) if self.torch else scale)[:, None]

    def _constant(self, w: np.ndarray, norm: np.ndarray) -> np.ndarray:
        """(B,) bool: rows equal on every pair of the resample, checked exactly for the rows
        whose weighted norm is below 1e-10 of their scale (the others cannot be constant)."""
        out = np.zeros(norm.shape, dtype=bool)
        scale = np.sqrt(w.sum())  # rows are scaled to max |x| in [0.5, 1)
        x: Any = self.x
        for b in np.flatnonzero(norm < 1e-10 * scale):
            row = x[b].cpu().numpy() if self.torch else x[b]
            kept = row[w > 0]
            out[b] = bool((kept == kept[0]).all())
        return out

    def threads(self) -> Any:
        """Context for a run of calls: with the numba kernel, BLAS on one thread (its worker
        threads would otherwise spin beside numba's between the kernel and the product)."""
        if self.numba:
            from .kernels.numba import one_blas_thread

            return one_blas_thread()
        return contextlib.nullcontext()

    def _numba_ranks(self, n: int) -> None:
        """Switch to the numba kernel: its inputs replace the sort order by its inverse."""
        from .kernels.numba import weighted_ranks_numba

        order, new_group, first, second = (np.asarray(v) for v in self.sorted)
        inverse = np.empty(order.shape, dtype=np.int32)
        np.put_along_axis(inverse, order, np.arange(order.shape[1], dtype=np.int32)[None], 1)
        i, j = (v.astype(np.int32) for v in self.pairs)
        # ranks are half-integers of size <= W <= n(n-1)/2: exact in float32 while 2 W < 2^24
        exact32 = n * n < 1 << 23
        work = np.empty(order.shape, dtype=np.float32 if exact32 else np.float64)
        self.sorted = (new_group, first, second, inverse, i, j)
        self.numba = True
        kernel: Any = weighted_ranks_numba
        self.ranks = lambda *args: kernel(*args[:-1], work, args[-1])

    def __call__(self, counts: np.ndarray, what: str, first: bool = False) -> np.ndarray:
        """counts (n,) int: how often each image is drawn; `what` names the resample in errors.
        (B, B) float64, or with `first` only row 0, (B,)."""
        c = counts.astype(np.float64)
        like = self.out if self.x is None else self.x
        y: Any
        if self.method == "spearman":
            y = self.ranks(*self.sorted, _to_kind(c, like) if self.torch else c, self.out)
        else:
            i, j = self.pairs
            w_host = c[i] * c[j]
            w: Any = _to_kind(w_host, like) if self.torch else w_host
            y = self.x
            if self.method == "pearson":
                y = y - (y @ w / w.sum())[:, None]
            y = y * (w.sqrt() if self.torch else np.sqrt(w))
        if first:
            row = y[:1] @ y.T
            norms = (y * y).sum(1)
            gram, sq = (row.cpu().numpy(), norms.cpu().numpy()) if self.torch else (row, norms)
            norm = np.sqrt(sq)
        else:
            gram = y @ y.T
            gram = gram.cpu().numpy() if self.torch else gram
            norm = np.sqrt(np.diag(gram))
        if self.method == "pearson":  # centring rounds: a constant row may leave ~1e-16
            norm = np.where(self._constant(w_host, norm), 0.0, norm)
        if not (norm > 0).all():
            b = int(np.flatnonzero(~(norm > 0))[0])
            raise ValueError(
                f"rdms: row {b} is {'zero' if self.method == 'cosine' else 'constant'} on the "
                f"image pairs of {what}, so its {self.method} correlation is undefined"
            )
        if first:
            sim = np.clip(gram[0] / norm[0] / norm, -1.0, 1.0)
            sim[0] = 1.0
            return sim
        sim = np.clip(gram / norm[:, None] / norm[None, :], -1.0, 1.0)
        np.fill_diagonal(sim, 1.0)
        return sim


def _similarity_resample(rows: Any, r: np.ndarray, n: int, method: str, opts: dict) -> Any:
    """(B, B) float64 similarity of the RDMs on resample `r` (image indices, repeats allowed)."""
    sel = _to_kind(_resample_pairs(r, n), rows)
    sim = compare(rows[:, sel], None, method, **opts)
    return A.back_to(sim, A.Origin("numpy")).astype(np.float64)


def _to_kind(idx: np.ndarray, like: Any) -> Any:
    """An int64 index for `like`'s kind (a tensor on its device for torch)."""
    if A.is_torch(like):
        import torch

        return torch.from_numpy(idx).to(like.device)
    return idx


__all__ = [
    "BootstrapResult",
    "PermutationResult",
    "bootstrap",
    "bootstrap_first_row",
    "permutation_test",
]
