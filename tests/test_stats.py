"""fastrsa.stats: permutation (Mantel) tests and bootstrap over images, against plain loops of
scipy and against rsatoolbox's own bootstrap."""

import numpy as np
import pytest
import scipy.stats as ss
from helpers import CPU_BACKENDS

from fastrsa import stats


def _relabelled(row, p):
    """Condensed RDM `row` with its images relabelled by permutation p (a plain loop)."""
    n = len(p)
    sq = np.zeros((n, n))
    sq[np.triu_indices(n, 1)] = row
    sq = sq + sq.T
    return sq[np.ix_(p, p)][np.triu_indices(n, 1)]


def _loop_null(a, b, perms, fn):
    return np.array([[[fn(_relabelled(x, p), y).statistic for y in b] for x in a] for p in perms])


def _rdms(rng, count, n):
    return rng.random((count, n * (n - 1) // 2))


@pytest.mark.parametrize("method,fn", [("spearman", ss.spearmanr), ("pearson", ss.pearsonr)])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_permutation_equals_scipy_loop(rng, method, fn, backend):
    n, K = 9, 50
    a, b = _rdms(rng, 3, n), _rdms(rng, 2, n)
    a[1] = np.round(a[1] * 5)  # ties
    perms = np.array([rng.permutation(n) for _ in range(K)])
    perms[0] = np.arange(n)  # the identity: a tie with the observed value, counted
    ref = _loop_null(a, b, perms, fn)
    obs = np.array([[fn(x, y).statistic for y in b] for x in a])
    for alt in ("greater", "less", "two-sided"):
        r = stats.permutation_test(
            a, b, method, permutations=perms, alternative=alt, return_null=True, backend=backend
        )
        np.testing.assert_allclose(r.null, ref, atol=1e-12)
        np.testing.assert_allclose(r.observed, obs, atol=1e-12)
        tol = 1e-12
        pg = (1 + (ref >= obs - tol).sum(0)) / (K + 1)
        pl = (1 + (ref <= obs + tol).sum(0)) / (K + 1)
        want = {"greater": pg, "less": pl, "two-sided": np.minimum(1, 2 * np.minimum(pg, pl))}
        np.testing.assert_array_equal(r.p, want[alt])
        assert r.n_perm == K and r.alternative == alt and r.seed is None


def test_slow_path_method_and_no_null(rng):
    n = 8
    a = _rdms(rng, 2, n)
    perms = np.array([rng.permutation(n) for _ in range(10)])
    r = stats.permutation_test(a, method="kendall", permutations=perms, return_null=True)
    ref = _loop_null(a, a, perms, ss.kendalltau)
    np.testing.assert_allclose(r.null, ref, atol=1e-12)
    assert stats.permutation_test(a, n_perm=5, seed=1).null is None


def test_backends_and_batching_agree(rng):
    a = _rdms(rng, 4, 30)
    res = [
        stats.permutation_test(a, n_perm=40, seed=3, backend=be, return_null=True)
        for be in CPU_BACKENDS
    ]
    small = stats.permutation_test(a, n_perm=40, seed=3, return_null=True, memory=20_000)
    for r in [*res[1:], small]:
        np.testing.assert_allclose(r.null, res[0].null, atol=1e-12)
        np.testing.assert_array_equal(r.p, res[0].p)


def test_seed_reproducible(rng):
    a = _rdms(rng, 2, 12)
    r1 = stats.permutation_test(a, n_perm=30, seed=7, return_null=True)
    r2 = stats.permutation_test(a, n_perm=30, seed=7, return_null=True)
    np.testing.assert_array_equal(r1.null, r2.null)
    assert r1.seed == 7 and r1.null.shape == (30, 2, 2)


def test_null_p_values_uniform():
    """Independent random RDMs: the off-diagonal p-values of 40 x 40 pairs (1600 p-values, on a
    grid of step 1/(K+1) = 1/200) against the uniform law. Pairs share permutations, so they are
    not independent: the KS test uses a conservative threshold p > 1e-6 (the statistic's false
    failure rate is far below 1e-3 even allowing for the dependence); the seed is fixed."""
    rng = np.random.default_rng(12345)
    a, b = _rdms(rng, 40, 12), _rdms(rng, 40, 12)
    r = stats.permutation_test(a, b, n_perm=199, seed=2024)
    assert ss.kstest(r.p.ravel(), "uniform").pvalue > 1e-6
    assert 0.4 < r.p.mean() < 0.6


def test_planted_relation(rng):
    a = _rdms(rng, 3, 20)
    b = a + 0.01 * rng.standard_normal(a.shape)
    r = stats.permutation_test(a, b, n_perm=200, seed=0)
    np.testing.assert_array_equal(np.diag(r.p), 1 / 201)
    r = stats.permutation_test(a, b, n_perm=200, seed=0, alternative="less")
    np.testing.assert_array_equal(np.diag(r.p), 1.0)


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        (dict(n_perm=0), ValueError, "n_perm"),
        (dict(n_perm=2.5), TypeError, "n_perm"),
        (dict(seed=1.5), TypeError, "seed"),
        (dict(seed="1"), TypeError, "seed"),
        (dict(permutations=np.zeros((3, 5), int)), ValueError, "shape"),
        (dict(permutations=np.zeros((0, 6), int)), ValueError, "shape"),
        (
            dict(permutations=np.array([[0, 1, 2, 3, 4, 5], [0, 0, 2, 3, 4, 5]])),
            ValueError,
            "row 1",
        ),
        (dict(permutations=np.array([[0, 1, 2, 3, 4, 6]])), ValueError, "out of range"),
        (dict(permutations=np.array([[0.0, 1, 2, 3, 4, 5]])), TypeError, "integer"),
        (dict(alternative="both"), ValueError, "alternative"),
    ],
)
def test_permutation_bad_input(rng, kwargs, err, match):
    with pytest.raises(err, match=match):
        stats.permutation_test(_rdms(rng, 2, 6), **kwargs)


# ---------------------------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("method,rsa_method", [("spearman", "spearman"), ("pearson", "corr")])
def test_bootstrap_equals_rsatoolbox(rng, method, rsa_method):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference.bootstrap import bootstrap_sample_pattern

    n = 14
    d = _rdms(rng, 4, n)
    d[2] = np.round(d[2] * 4)  # ties
    rdms = rsatoolbox.rdm.RDMs(d)
    np.random.seed(0)  # rsatoolbox draws with the global generator
    idx = np.array([bootstrap_sample_pattern(rdms)[1] for _ in range(8)])
    res = stats.bootstrap(d, method=method, indices=idx)
    for k in range(len(idx)):
        sub = rdms.subsample_pattern("index", idx[k])
        ref = rsatoolbox.rdm.compare(sub, sub, method=rsa_method)
        np.testing.assert_allclose(res.samples[k], ref, atol=1e-12)
    res2 = stats.bootstrap(rdms, method=method, indices=idx)  # an RDMs object
    np.testing.assert_allclose(res2.samples, res.samples, atol=1e-15)


def test_bootstrap_intervals(rng):
    n = 25
    a = _rdms(rng, 1, n)
    d = np.concatenate([a, a + 0.05 * rng.standard_normal(a.shape), _rdms(rng, 1, n)])
    res = stats.bootstrap(d, n_boot=200, seed=1)
    assert res.samples.shape == (200, 3, 3) and res.indices.shape == (200, n)
    assert res.samples.dtype == np.float64
    for lo, hi in (res.percentile(), res.bca(), res.percentile(0.5)):
        assert lo.shape == hi.shape == (3, 3) and (lo <= hi).all()
    for lo, hi in (res.percentile(), res.bca()):
        assert lo[0, 1] <= res.observed[0, 1] <= hi[0, 1]
        np.testing.assert_allclose(lo[0, 0], 1.0)
    se = res.standard_error()
    assert se.shape == (3, 3) and 0 < se[0, 1] < 0.1 and se[0, 0] < 1e-12
    assert res.jackknife().shape == (n, 3, 3)


def test_bootstrap_backends_agree(rng):
    d = _rdms(rng, 3, 15)
    res = [stats.bootstrap(d, n_boot=10, seed=4, backend=be).samples for be in CPU_BACKENDS]
    for r in res[1:]:
        np.testing.assert_allclose(r, res[0], atol=1e-12)


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        (dict(n_boot=0), ValueError, "n_boot"),
        (dict(seed=np.float64(2)), TypeError, "seed"),
        (dict(indices=np.zeros((2, 5), int)), ValueError, "shape"),
        (dict(indices=np.full((2, 6), 6)), ValueError, "out of range"),
        (dict(indices=np.full((2, 6), -1)), ValueError, "out of range"),
        (
            dict(indices=np.array([[0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 0, 1]])),
            ValueError,
            "resample 1 has only 2 distinct",
        ),
    ],
)
def test_bootstrap_bad_input(rng, kwargs, err, match):
    with pytest.raises(err, match=match):
        stats.bootstrap(_rdms(rng, 2, 6), **kwargs)


# ------------------------------------------------------------------------- scipy's names


def test_permutation_result_has_scipy_names(rng):
    """statistic, pvalue, null_distribution (scipy.stats.PermutationTestResult's names) are the
    same arrays as observed, p, null."""
    a = _rdms(rng, 3, 8)
    r = stats.permutation_test(a, n_perm=20, seed=0, return_null=True)
    assert r.statistic is r.observed and r.pvalue is r.p and r.null_distribution is r.null
    assert r.null_distribution.shape == (20, 3, 3)
    theirs = ss.permutation_test(([1.0, 2, 3], [4.0, 5, 6]), lambda x, y: x.mean() - y.mean())
    for name in ("statistic", "pvalue", "null_distribution"):
        assert hasattr(theirs, name) and hasattr(r, name)
    assert stats.permutation_test(a, n_perm=5, seed=0).null_distribution is None


def test_bootstrap_result_has_scipy_names(rng):
    """bootstrap_distribution, standard_error and confidence_interval (scipy.stats.bootstrap's
    result names) beside samples, standard_error() and bca()."""
    res = stats.bootstrap(_rdms(rng, 3, 12), n_boot=50, seed=2)
    assert res.bootstrap_distribution is res.samples
    want = res.samples.std(axis=0, ddof=1)
    se = res.standard_error  # an array, as scipy's attribute
    np.testing.assert_array_equal(se, want)
    assert se.shape == (3, 3) and se.dtype == np.float64
    called = res.standard_error()  # the method it was still works: a plain ndarray
    assert type(called) is np.ndarray
    np.testing.assert_array_equal(called, want)
    assert type(se * 2) is np.ndarray and type(np.sqrt(se)) is np.ndarray
    ci = res.confidence_interval  # scipy's default: BCa at 0.95
    theirs = ss.bootstrap(([1.0, 2, 3, 5],), np.mean, n_resamples=20, method="percentile")
    for name in ("confidence_interval", "bootstrap_distribution", "standard_error"):
        assert hasattr(theirs, name) and hasattr(res, name)
    assert ci._fields == theirs.confidence_interval._fields == ("low", "high")
    lo, hi = res.bca(0.95)
    np.testing.assert_array_equal(ci.low, lo)
    np.testing.assert_array_equal(ci.high, hi)
    assert tuple(ci) == (ci.low, ci.high)
    one = stats.bootstrap(_rdms(rng, 2, 6), n_boot=1, seed=0)
    np.testing.assert_array_equal(one.standard_error, 0.0)


@pytest.mark.parametrize(
    "level,err,match",
    [
        ("0.9", TypeError, "level must be a number"),
        (True, TypeError, "level must be a number"),  # bool is not a level
        (1.0, ValueError, r"level must lie in \(0, 1\)"),
        (0.0, ValueError, r"level must lie in \(0, 1\)"),
        (float("nan"), ValueError, r"level must lie in \(0, 1\)"),
    ],
)
def test_bootstrap_level_is_checked(rng, level, err, match):
    res = stats.bootstrap(_rdms(rng, 2, 6), n_boot=3, seed=0)
    for interval in (res.percentile, res.bca):
        with pytest.raises(err, match=match):
            interval(level)
