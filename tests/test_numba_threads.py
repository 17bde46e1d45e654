"""The numba kernels give bit-identical results whatever the number of threads."""

import numpy as np
import pytest

numba = pytest.importorskip("numba")
from fastrsa.kernels.numba import corr_numba, kendall_numba, rank_numba, rdm_numba  # noqa: E402


def _with_threads(k, fn, *args):
    old = numba.get_num_threads()
    numba.set_num_threads(k)
    try:
        return fn(*args)
    finally:
        numba.set_num_threads(old)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 or more numba threads")
@pytest.mark.parametrize(
    "fn,make",
    [
        (lambda x: rdm_numba(x, "correlation"), lambda r: r.standard_normal((5, 40, 33))),
        (lambda x: rdm_numba(x, "euclidean"), lambda r: r.standard_normal((5, 40, 33))),
        (rank_numba, lambda r: np.round(r.standard_normal((7, 3000)), 1)),
        (lambda x: corr_numba(x, None), lambda r: r.standard_normal((9, 500))),
        (lambda x: kendall_numba(x, None), lambda r: np.round(r.standard_normal((6, 800)), 1)),
    ],
)
def test_thread_count_does_not_change_results(rng, fn, make):
    x = make(rng)
    one = _with_threads(1, fn, x)
    many = _with_threads(numba.config.NUMBA_NUM_THREADS, fn, x)
    np.testing.assert_array_equal(one, many)


@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_one_blas_thread_per_gram_matches_blas_threads(rng, monkeypatch, dtype, atol):
    """Small Grams run one per BLAS thread from a thread pool; large ones on BLAS's threads.
    Both give the same RDMs, and the BLAS thread count is restored afterwards."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from fastrsa.kernels.numba import rdm as rdm_module

    x = rng.standard_normal((7, 45, 30)).astype(dtype)
    before = [lib["num_threads"] for lib in threadpoolctl.threadpool_info()]
    pools = []
    real_pool = rdm_module._pool
    monkeypatch.setattr(rdm_module, "_pool", lambda k: pools.append(k) or real_pool(k))
    pooled = rdm_numba(x, "correlation")
    assert pools == [numba.get_num_threads()]
    assert [lib["num_threads"] for lib in threadpoolctl.threadpool_info()] == before
    monkeypatch.setattr(rdm_module, "_SMALL_GRAM", 0)  # every Gram on BLAS's own threads
    blas_threads = rdm_numba(x, "correlation")
    assert len(pools) == 1
    np.testing.assert_allclose(pooled, blas_threads, rtol=0, atol=atol)
    monkeypatch.setattr(rdm_module, "_blas_limiter", lambda: None)  # threadpoolctl missing
    np.testing.assert_allclose(rdm_numba(x, "correlation"), blas_threads, rtol=0, atol=atol)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 or more numba threads")
def test_statistics_kernels_do_not_depend_on_threads(rng):
    """The permutation test's relabelled rows and the bootstrap's weighted ranks are
    bit-identical for 1 and many threads; the permutation null (one BLAS call per thread's share
    of rows) agrees to rounding, and so do its p-values exactly."""
    from fastrsa.kernels.numba import relabelled_rows_numba

    from fastrsa import stats

    n = 15
    rows = np.round(rng.random((6, n * (n - 1) // 2)) * 5)
    square = np.stack([_square(r, n) for r in rows])
    perms = np.stack([rng.permutation(n) for _ in range(5)]).astype(np.int32)
    inverse = np.argsort(perms, 1).astype(np.int32)

    def relabel():
        out = np.empty((5,) + rows.shape)
        relabelled_rows_numba(square, perms, inverse, out)
        return out

    np.testing.assert_array_equal(
        _with_threads(1, relabel), _with_threads(numba.config.NUMBA_NUM_THREADS, relabel)
    )
    boot = [
        _with_threads(k, lambda: stats.bootstrap(rows, n_boot=6, seed=3, backend="numba").samples)
        for k in (1, numba.config.NUMBA_NUM_THREADS)
    ]
    np.testing.assert_array_equal(boot[0], boot[1])
    res = [
        _with_threads(k, lambda: stats.permutation_test(rows, permutations=perms, return_null=True))
        for k in (1, numba.config.NUMBA_NUM_THREADS)
    ]
    np.testing.assert_allclose(res[0].null, res[1].null, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(res[0].p, res[1].p)


def _square(row, n):
    sq = np.zeros((n, n))
    sq[np.triu_indices(n, 1)] = row
    return sq + sq.T
