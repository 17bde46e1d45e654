"""The bootstrap over images (rsatoolbox's semantics) of the all-pairs similarity of RDMs, with
percentile and BCa intervals (jackknife over images for the acceleration) and standard errors,
and the results under scipy's names (`scipy.stats.bootstrap`'s `BootstrapResult`)."""

from __future__ import annotations

import contextlib
from collections import namedtuple
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _arrays as A
from .._backend import check_backend_name
from .._checks import check_choice, check_count, check_level, check_seed
from .._condensed import n_from_condensed
from .._memory import budget_for
from .._typing import ArrayIn
from ..compare import compare
from ..rdm_inputs import unwrap_rsatoolbox
from ..reference import METHODS
from .batches import (
    API_BUDGET,
    SETTING_BUDGET,
    block_rows,
    check_held,
    draw_rows,
    images_of,
    rows_shape,
)
from .resampling import (
    check_distinct,
    int_rows,
    resampler,
    similarity_resample,
    weighted,
)

__all__ = [
    "BootstrapResult",
    "ConfidenceInterval",
    "StandardError",
    "bootstrap",
    "bootstrap_batches",
    "bootstrap_first_row",
    "check_bootstrap_held",
]

# scipy's (scipy.stats._common.ConfidenceInterval): the interval's two bounds
ConfidenceInterval = namedtuple("ConfidenceInterval", ["low", "high"])
ConfidenceInterval.__doc__ = "A confidence interval (low, high), as scipy's: each (B, B)."


class StandardError(np.ndarray):
    """The standard error (B, B) float64 as an array (scipy's `standard_error` attribute), which
    may also be called, `result.standard_error()`, as the method it was: the call returns it as
    a plain ndarray. Arithmetic on it gives plain ndarrays."""

    def __call__(self) -> np.ndarray:
        return self.view(np.ndarray)

    def __array_wrap__(self, arr: Any, context: Any = None, return_scalar: bool = False) -> Any:
        arr = np.asarray(arr)
        return arr[()] if return_scalar else arr


def _norm_ppf(q: Any) -> Any:
    from scipy.special import ndtri

    return ndtri(q)


def _norm_cdf(z: Any) -> Any:
    from scipy.special import ndtr

    return ndtr(z)


@dataclass(frozen=True)
class BootstrapResult:
    """Result of `bootstrap`, with scipy's names (`scipy.stats.bootstrap`'s result) beside its
    own.

    samples (scipy's `bootstrap_distribution`, the same array): (K, B, B) float64, the
    similarity matrix of each resample (resamples on the first axis; scipy puts them on the
    last). observed: (B, B) float64, that of all images. indices: (K, n) int64, the images drawn
    (with replacement) for each resample. numpy arrays. `standard_error`: (B, B), the standard
    deviation of the samples (ddof=1; an array, as scipy's, which may also be called:
    `standard_error()`). `confidence_interval`: `ConfidenceInterval(low, high)`, each (B, B),
    at scipy's defaults: BCa (`bca(0.95)`; computes the jackknife on first use, needs n >= 4
    images); `percentile(level)` and `bca(level)` for other intervals.
    """

    samples: np.ndarray
    observed: np.ndarray
    indices: np.ndarray
    method: str = "spearman"
    seed: int | None = None
    _rows: Any = field(default=None, repr=False, compare=False)
    _opts: dict = field(default_factory=dict, repr=False, compare=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def bootstrap_distribution(self) -> np.ndarray:
        """(K, B, B): scipy's name for `samples` (the same array)."""
        return self.samples

    @property
    def standard_error(self) -> StandardError:
        """(B, B): the standard deviation of the samples (ddof=1; 0 for K = 1), scipy's
        `standard_error`; `standard_error()` returns it as a plain ndarray."""
        k = self.samples.shape[0]
        se = self.samples.std(axis=0, ddof=1) if k > 1 else np.zeros_like(self.observed)
        return se.view(StandardError)

    @property
    def confidence_interval(self) -> ConfidenceInterval:
        """`ConfidenceInterval(low, high)`, each (B, B): the BCa interval at level 0.95
        (`bca(0.95)`), scipy's default method and level."""
        return ConfidenceInterval(*self.bca(0.95))

    def percentile(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi), each (B, B): the (1-level)/2 and (1+level)/2 quantiles of the samples
        (numpy's linear interpolation)."""
        level = check_level(level)
        lo, hi = np.quantile(self.samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return lo, hi

    def jackknife(self) -> np.ndarray:
        """(n, B, B): the similarity matrix with each image left out in turn (computed once)."""
        if "jackknife" not in self._cache:
            rows, n = self._rows, self.indices.shape[1]
            keep = np.ones(n, dtype=np.int64)
            out = np.empty((n,) + self.observed.shape)
            fast = weighted(self.method, rows)
            if fast:
                resample = resampler(rows, self.method, n, **self._opts)
            with resample.threads() if fast else contextlib.nullcontext():
                for i in range(n):
                    keep[i] = 0
                    if fast:
                        out[i] = resample(keep, f"image {i} left out")
                    else:
                        out[i] = similarity_resample(
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
        level = check_level(level)
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
    `np.random.default_rng(seed).integers(0, n, (K, n))` (drawn a block of rows at a time from
    that one generator: the same rows whatever the budget). indices: explicit (K, n) integer
    rows in [0, n). A resample with fewer than 3 distinct images (so at most one distinct
    dissimilarity: the correlation is undefined) raises ValueError naming the resample: no
    NaN and no silent skip (with random draws this needs a very small n). n >= 3 required.

    Returns a BootstrapResult: samples (K, B, B) float64 (scipy's `bootstrap_distribution`),
    observed (B, B), indices (K, n), with `percentile(level)`, `bca(level)` (jackknife over
    images for the acceleration), `standard_error` and `confidence_interval` (BCa at 0.95,
    scipy's default). backend: as for `fastrsa.compare` (torch rows stay on their device).

    memory: the budget (default `fastrsa.get_memory_budget()`). The result holds K x (B x B + n)
    8-byte values (samples and indices): checked against the budget before any work (ValueError
    naming `n_boot`, or `indices` when given, the bytes and the budget; `bootstrap_batches`
    streams the samples of any count instead). The weighted path holds about 30 (numba), 120
    (numpy), 140 (torch; Spearman) or 32 (Pearson, cosine) bytes per entry (B x M) for the whole
    run, refused with a ValueError naming the need when over the budget; other methods hold one
    gathered copy of the rows per resample plus what `compare` holds.
    """
    check_choice(method, METHODS, "method")
    check_backend_name(backend)
    n_boot = check_count(n_boot, "n_boot")
    seed = check_seed(seed)
    rdms = unwrap_rsatoolbox(rdms, "rdms")
    budget = budget_for(memory)
    count, argument = n_boot, "n_boot"
    if indices is not None:
        given_shape = getattr(indices, "shape", None) or np.shape(indices)
        count, argument = (int(given_shape[0]) if len(given_shape) else 0), "indices"
    shape = rows_shape(rdms)
    images = None if shape is None else images_of(shape[1])
    if shape is not None and images is not None:  # before any work
        check_bootstrap_held(count, shape[0], images, budget, argument)
    rows, n, observed, opts = _checked(rdms, method, backend, memory)
    if images is None:  # a shape known only once read
        check_bootstrap_held(count, rows.shape[0], n, budget, argument)
    given = None
    if indices is not None:
        given = check_distinct(int_rows(indices, "indices", n, "image indices"))
        seed = None
    idx = np.empty((n_boot, n), dtype=np.int64) if given is None else given
    samples = np.empty((idx.shape[0],) + observed.shape, dtype=np.float64)
    blocks = _index_blocks(idx.shape[0], n, seed, rows.shape[0], budget, given)
    for k0, drawn, block in _sample_blocks(rows, method, n, blocks, opts):
        if given is None:
            idx[k0 : k0 + len(drawn)] = drawn
        samples[k0 : k0 + len(block)] = block
    return BootstrapResult(
        samples=samples,
        observed=observed.astype(np.float64),
        indices=idx,
        method=method,
        seed=seed,
        _rows=rows,
        _opts=opts,
    )


def check_bootstrap_held(
    count: int, b: int, n: int, budget: int, argument: str = "n_boot", how: str = API_BUDGET
) -> int:
    """The bytes `bootstrap` holds for its result, K x (B x B + n) 8-byte values (the (K, B, B)
    samples and (K, n) indices), for K = `count` resamples of B RDMs of n images; OverBudget (a
    ValueError) naming `argument` (e.g. "n_boot", "--bootstrap") when over `budget`."""
    what = f"resamples (the samples (K, {b}, {b}) float64 and indices (K, {n}) of the result)"
    return check_held(count, 8 * (b * b + n), budget, argument, what, how=how)


def bootstrap_batches(
    rdms: ArrayIn,
    method: str = "spearman",
    n_boot: int = 1_000,
    seed: int | None = None,
    backend: str = "auto",
    memory: int | str | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """`bootstrap`'s samples a block at a time, for any n_boot in bounded memory: yields (k0,
    samples (c, B, B) float64), resamples k0 .. k0 + c - 1, the same values as
    `bootstrap(rdms, method, n_boot, seed).samples[k0 : k0 + c]` (the same draws, whatever the
    budget). A block holds its indices and samples within an eighth of the budget (at least
    one resample). rdms, method and the arguments are checked before this returns."""
    check_choice(method, METHODS, "method")
    check_backend_name(backend)
    n_boot = check_count(n_boot, "n_boot")
    seed = check_seed(seed)
    rows, n, _, opts = _checked(unwrap_rsatoolbox(rdms, "rdms"), method, backend, memory)
    blocks = _index_blocks(n_boot, n, seed, rows.shape[0], budget_for(memory))
    return ((k0, block) for k0, _, block in _sample_blocks(rows, method, n, blocks, opts))


def _checked(rdms: Any, method: str, backend: str, memory: Any) -> tuple[Any, int, Any, dict]:
    """(rows (B, M), n, observed (B, B) numpy, compare's options) of checked RDMs."""
    opts: dict[str, Any] = dict(backend=backend, memory=memory)
    observed = A.back_to(compare(rdms, None, method, **opts), A.Origin("numpy"))  # validates
    rows: Any = rdms if A.is_torch(rdms) else A.as_checked(rdms, "rdms", keep_int=True)
    n = n_from_condensed(rows.shape[1], "rdms")
    if n < 3:
        raise ValueError(f"rdms: a bootstrap over images needs n >= 3 images; got n = {n}")
    return rows, n, observed, opts


def _index_blocks(
    count: int, n: int, seed: int | None, b: int, budget: int, given: Any = None
) -> Iterator[np.ndarray]:
    """Blocks of resamples' image indices (c, n): rows of `given` (explicit indices, already
    checked), else drawn from `seed` (stats/batches.py) and checked for 3 distinct images. A
    block and its samples (c, B, B) fit an eighth of the budget."""
    block = block_rows(count, 8 * (n + b * b) + 16 * n, budget // 8)
    if given is not None:
        yield from (given[s : s + block] for s in range(0, count, block))
        return
    what = f"the resamples drawn (seed {seed}, n = {n} images)"
    drawn = draw_rows("indices", count, n, seed, block)
    for s, idx in zip(range(0, count, block), drawn, strict=True):
        yield check_distinct(idx, what, first=s)


def _sample_blocks(
    rows: Any, method: str, n: int, blocks: Iterator[np.ndarray], opts: dict, first: bool = False
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yields (k0, indices (c, n), samples) per block of resamples: samples (c, B, B) float64,
    or with `first` only row 0 without its diagonal, (c, B - 1)."""
    b = rows.shape[0]
    fast = weighted(method, rows)
    resample = resampler(rows, method, n, **opts) if fast else None
    k0 = 0
    with resample.threads() if resample is not None else contextlib.nullcontext():
        for idx in blocks:
            out = np.empty((len(idx), b - 1) if first else (len(idx), b, b))
            for k, r in enumerate(idx):
                if resample is not None:
                    what = f"resample {k0 + k}"
                    sim = resample(np.bincount(r, minlength=n), what, first=first)
                    out[k] = sim[1:] if first else sim
                else:
                    sim = similarity_resample(rows, r, n, method, opts)
                    out[k] = sim[0, 1:] if first else sim
            yield k0, idx, out
            k0 += len(idx)


def bootstrap_first_row(
    rdms: Any, method: str, n_boot: int, seed: int | None, backend: str = "auto"
) -> np.ndarray:
    """(K, B - 1) float64: the similarity of rdms[0] to each of rdms[1:] over K image
    resamples: `bootstrap(rdms, method, n_boot, seed).samples[:, 0, 1:]` (the same draws, the
    same values up to rounding, ~1e-16) computing only that row (B products per resample, not
    B^2): for ranking sources against one target. rdms: (B, M) condensed, already checked.
    The result, K x (B - 1) float64, is checked against the budget first (ValueError naming
    `n_boot`); the resamples are drawn a block at a time."""
    rows = np.asarray(rdms)
    n = n_from_condensed(rows.shape[1], "rdms")
    n_boot, seed = check_count(n_boot, "n_boot"), check_seed(seed)
    budget = budget_for(None)
    b = rows.shape[0]
    what = f"resamples (their scores (K, {b - 1}) float64)"
    check_held(n_boot, 8 * (b - 1), budget, "n_boot", what, how=SETTING_BUDGET)
    out = np.empty((n_boot, b - 1))
    opts: dict[str, Any] = dict(backend=backend, memory=None)
    blocks = _index_blocks(n_boot, n, seed, b, budget)
    for k0, _, block in _sample_blocks(rows, method, n, blocks, opts, first=True):
        out[k0 : k0 + len(block)] = block
    return out
