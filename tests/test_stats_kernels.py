"""The statistics kernels against plain references: relabelled rows and their products for the
permutation test (kernels/numba/permute.py), weighted ranks for the bootstrap
(kernels/*/resample.py), and the bootstrap's weighted path against scipy on the gathered
entries (the resample written out as rsatoolbox does). float64 references, stated tolerances."""

import numpy as np
import pytest
import scipy.stats as ss
from helpers import CPU_BACKENDS, HAS_CUDA

from fastrsa import stats
from fastrsa.rdms import squareform

numba_kernels = pytest.importorskip("fastrsa.kernels.numba")


def _square(rows, n):
    return np.stack([squareform(r, to="square") for r in rows])


def _relabelled_ref(rows, n, p):
    """Condensed rows with images relabelled by p: D'[i, j] = D[p_i, p_j] (plain indexing)."""
    i, j = np.triu_indices(n, 1)
    return np.stack([squareform(r, to="square")[p[i], p[j]] for r in rows])


# ------------------------------------------------------------------------------ permutations


@pytest.mark.parametrize("count", [1, 3, 4, 5, 9])  # groups of 4 RDMs and every tail length
@pytest.mark.parametrize("n", [3, 4, 17])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index", [np.int32, np.uint32, np.int64])
def test_relabelled_rows_equal_indexing(rng, count, n, dtype, index):
    rows = rng.standard_normal((count, n * (n - 1) // 2)).astype(dtype)
    perms = np.stack([rng.permutation(n) for _ in range(6)]).astype(index)
    perms[0] = np.arange(n)  # the identity: the rows themselves
    out = np.empty((6,) + rows.shape, dtype=dtype)
    numba_kernels.relabelled_rows_numba(_square(rows, n), perms, np.argsort(perms, 1), out)
    for k, p in enumerate(perms):
        np.testing.assert_array_equal(out[k], _relabelled_ref(rows, n, p))  # a pure copy
    np.testing.assert_array_equal(out[0], rows)


@pytest.mark.parametrize("r,parts", [(1, 2), (7, 2), (40, 3), (5, 8)])
@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-4), (np.float64, 1e-12)])
def test_products_equal_matmul(rng, r, parts, dtype, tol):
    rows = rng.standard_normal((r, 300)).astype(dtype)
    fixed = rng.standard_normal((300, 6)).astype(dtype)
    out = np.empty((r, 6), dtype=dtype)
    with numba_kernels.one_blas_thread():
        numba_kernels.products_numba(rows, fixed, parts, out)
    ref = rows.astype(np.float64) @ fixed.astype(np.float64)
    np.testing.assert_allclose(out, ref, atol=tol * np.abs(ref).max())


@pytest.mark.parametrize("count", [4, 6])
def test_permutation_grouped_path_equals_scipy(rng, count):
    """Enough RDMs for the numba kernel's groups of four plus a tail, with ties, against a
    plain loop of scipy.stats.spearmanr on the relabelled rows."""
    n, K = 11, 12
    a = rng.random((count, n * (n - 1) // 2))
    a[1] = np.round(a[1] * 4)
    perms = np.stack([rng.permutation(n) for _ in range(K)])
    r = stats.permutation_test(a, permutations=perms, return_null=True, backend="numba")
    for k, p in enumerate(perms):
        g = _relabelled_ref(a, n, p)
        ref = [[ss.spearmanr(x, y).statistic for y in a] for x in g]
        np.testing.assert_allclose(r.null[k], ref, atol=1e-12)


# --------------------------------------------------------------------------------- bootstrap


def _gathered(row, idx, n):
    """The resampled vector as rsatoolbox builds it: images sorted, all pairs of positions,
    pairs of an image with its own copy left out."""
    s = np.sort(idx)
    sq = squareform(row, to="square")
    i, j = np.triu_indices(len(s), 1)
    keep = s[i] != s[j]
    return sq[s[i][keep], s[j][keep]]


def _cosine(x, y):
    return x @ y / np.sqrt((x @ x) * (y @ y))


REFS = {
    "spearman": lambda x, y: ss.spearmanr(x, y).statistic,
    "pearson": lambda x, y: ss.pearsonr(x, y).statistic,
    "cosine": _cosine,
}


@pytest.mark.parametrize("method", sorted(REFS))
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("count,n,ties", [(1, 3, False), (2, 5, True), (5, 23, True)])
def test_weighted_bootstrap_equals_scipy_on_gathered(rng, method, backend, count, n, ties):
    rows = rng.random((count, n * (n - 1) // 2)) + 0.1
    if ties:
        rows = np.round(rows * 3) / 3 + 0.1
    idx = rng.integers(0, n, (8, n))
    for r in idx:  # at least 3 distinct images (n = 3: every image once)
        if np.unique(r).size < 3:
            r[:] = rng.permutation(n)
    idx[0] = np.arange(n)  # no repeats: the plain similarity
    idx[1, 3:] = 0  # heavy repeats of one image
    idx[1, :3] = [0, 1, 2]
    res = stats.bootstrap(rows, method=method, indices=idx, backend=backend)
    for k, r in enumerate(idx):
        g = np.stack([_gathered(x, r, n) for x in rows])
        ref = np.array([[REFS[method](x, y) for y in g] for x in g])
        np.fill_diagonal(ref, 1.0)
        np.testing.assert_allclose(res.samples[k], ref, atol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_jackknife_equals_leave_one_out(rng, backend):
    n = 9
    rows = np.round(rng.random((3, n * (n - 1) // 2)) * 5)
    res = stats.bootstrap(rows, n_boot=2, seed=0, backend=backend)
    jack = res.jackknife()
    for i in range(n):
        keep = np.delete(np.arange(n), i)
        g = np.stack([_gathered(x, keep, n) for x in rows])
        np.testing.assert_allclose(jack[i], ss.spearmanr(g.T).statistic, atol=1e-12)


def test_bootstrap_row_constant_on_a_resample(rng):
    """A row whose entries differ only on pairs the resample leaves out: a clear error."""
    n = 5
    sq = np.ones((n, n))
    sq[0, 1] = sq[1, 0] = 2.0  # only the pair (0, 1) differs
    row = squareform(sq - np.diag(np.diag(sq)), to="condensed")
    rows = np.stack([row, rng.random(row.size)])
    idx = np.array([[0, 2, 3, 4, 4]])  # image 1 not drawn
    with pytest.raises(ValueError, match="row 0 is constant on the image pairs of resample 0"):
        stats.bootstrap(rows, indices=idx)


@pytest.mark.parametrize("name", ["numpy", "numba", "torch"])
def test_weighted_rank_kernels_agree(rng, name):
    """The three weighted-rank kernels against each other's definition on random weights
    (zero weights included), ties, one row per case of group boundaries."""
    from fastrsa.kernels.numpy import sort_rows, weighted_ranks_numpy

    n = 13
    m = n * (n - 1) // 2
    rows = np.round(rng.random((4, m)) * 6)
    counts = rng.integers(0, 3, n).astype(np.float64)
    order, new_group, first, second = sort_rows(rows, n)
    ref = np.empty(rows.shape)
    # the definition, by brute force: average-tie ranks of the expanded multiset
    i, j = np.triu_indices(n, 1)
    w = counts[i] * counts[j]
    total = w.sum()
    for b, x in enumerate(rows):
        below = np.array([w[x < v].sum() for v in x])
        same = np.array([w[x == v].sum() for v in x])
        ref[b] = (below + (same + 1) / 2 - (total + 1) / 2) * np.sqrt(w)
    out = np.empty(rows.shape)
    if name == "numpy":
        weighted_ranks_numpy(order, new_group, first, second, counts, out)
    elif name == "numba":
        inverse = np.argsort(order, axis=1).astype(np.int32)
        work = np.empty(rows.shape, dtype=np.float32)
        numba_kernels.weighted_ranks_numba(
            new_group,
            first,
            second,
            inverse,
            i.astype(np.int32),
            j.astype(np.int32),
            counts,
            work,
            out,
        )
    else:
        torch = pytest.importorskip("torch")
        from fastrsa.kernels.torch import sort_rows_torch, weighted_ranks_torch

        t = sort_rows_torch(torch.from_numpy(rows), n)
        out = weighted_ranks_torch(
            *t, torch.from_numpy(counts), torch.empty(rows.shape, dtype=torch.float64)
        ).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_stats_on_cuda_equal_cpu(rng):
    import torch

    n = 40
    rows = rng.random((6, n * (n - 1) // 2)).astype(np.float32)
    cuda = torch.from_numpy(rows).cuda()
    perms = np.stack([rng.permutation(n) for _ in range(64)])
    r_gpu = stats.permutation_test(cuda, permutations=perms, return_null=True)
    r_cpu = stats.permutation_test(rows, permutations=perms, return_null=True, backend="numpy")
    np.testing.assert_allclose(r_gpu.null.cpu().numpy(), r_cpu.null, atol=2e-5)
    idx = rng.integers(0, n, (16, n))
    b_gpu = stats.bootstrap(cuda, indices=idx)
    b_cpu = stats.bootstrap(rows, indices=idx, backend="numpy")
    np.testing.assert_allclose(b_gpu.samples, b_cpu.samples, atol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_permutation_smaller_side_relabelled(rng, backend):
    """b with fewer RDMs than a: b is relabelled by the inverse permutations; the null is still
    a's rows relabelled (a plain scipy loop over a's relabelled rows)."""
    n = 10
    a, b = rng.random((5, n * (n - 1) // 2)), rng.random((2, n * (n - 1) // 2))
    perms = np.stack([rng.permutation(n) for _ in range(7)])
    r = stats.permutation_test(a, b, permutations=perms, return_null=True, backend=backend)
    for k, p in enumerate(perms):
        ref = [[ss.spearmanr(x, y).statistic for y in b] for x in _relabelled_ref(a, n, p)]
        np.testing.assert_allclose(r.null[k], ref, atol=1e-12)


@pytest.mark.parametrize("method", ["spearman", "pearson", "kendall"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_bootstrap_first_row_equals_full(rng, method, backend):
    """rank_sources' bootstrap computes only the target's row: the same values (same draws)
    as the full bootstrap's samples[:, 0, 1:]."""
    rows = np.round(rng.random((5, 12 * 11 // 2)) * 4)
    full = stats.bootstrap(rows, method, n_boot=6, seed=9, backend=backend).samples
    first = stats.bootstrap_first_row(rows, method, 6, 9, backend)
    np.testing.assert_allclose(first, full[:, 0, 1:], atol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_pearson_bootstrap_row_constant_on_a_resample(backend):
    """Pearson centring by a weighted mean rounds; a row constant on the resample's pairs is
    still refused, not scored ~0."""
    a = np.array([0.3, 0.3, 0.3, 0.9, 0.3, 0.3, 0.5, 0.3, 0.7, 0.2])  # constant on images 0-3
    rows = np.stack([a, np.arange(1.0, 11.0)])
    with pytest.raises(ValueError, match="row 0 is constant on the image pairs of resample 0"):
        stats.bootstrap(rows, "pearson", indices=np.array([[0, 1, 2, 3, 3]]), backend=backend)


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_bootstrap_large_integers_exact(rng, method):
    """int64 rows beyond 2**53 (not exact in float64) take the gather path, which compares
    integers exactly: distinct values stay distinct."""
    n = 6
    rows = 2**60 + np.stack([rng.permutation(15), rng.permutation(15)]).astype(np.int64)
    idx = np.array([np.arange(n), [0, 0, 1, 2, 4, 5]])
    res = stats.bootstrap(rows, method, indices=idx)
    small = stats.bootstrap(rows - 2**60, method, indices=idx)  # the same ranks and shape
    np.testing.assert_allclose(res.samples, small.samples, atol=1e-12)


def test_bca_needs_four_images(rng):
    res = stats.bootstrap(rng.random((2, 3)), n_boot=3, seed=0, indices=np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="BCa needs n >= 4"):
        res.bca()
    assert res.percentile()[0].shape == (2, 2)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_permutation_batches_within_the_budget(rng, backend):
    """Many RDMs of few images: the per-round product and the tally count in the batch size,
    so the working memory stays near the budget (float64 rows of a and b are held beside it)."""
    import tracemalloc

    if backend not in CPU_BACKENDS:
        pytest.skip(f"{backend} not installed")
    a = rng.random((400, 45))
    budget = 10_000_000
    stats.permutation_test(a[:4], n_perm=2, seed=0, backend=backend)  # compile outside
    tracemalloc.start()
    stats.permutation_test(a, method="pearson", n_perm=200, seed=0, memory=budget, backend=backend)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1.5 * budget, peak


# ------------------------------------------------------------- the backends' statistics ops


def _permute_ops():
    from fastrsa.kernels.numpy import permuted_products_numpy

    ops = {"numpy": permuted_products_numpy, "numba": numba_kernels.permuted_products_numba}
    try:
        from fastrsa.kernels.torch import permuted_products_torch
    except ImportError:
        return ops
    ops["torch"] = permuted_products_torch
    return ops


@pytest.mark.parametrize("name", ["numpy", "numba", "torch"])
@pytest.mark.parametrize("rounds", [1, 3, 7, 50])  # batches of one, a tail, all rounds at once
@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_permuted_products_equal_relabelled_gram(rng, name, rounds, dtype, atol):
    """The "permute" op of each backend: null[k] = relabelled(a, p_k) @ b.T, batch by batch."""
    ops = _permute_ops()
    if name not in ops:
        pytest.skip(f"{name} kernels not installed")
    n, K = 9, 7
    a = rng.standard_normal((5, n * (n - 1) // 2)).astype(dtype)
    b = rng.standard_normal((2, a.shape[1])).astype(dtype)
    perms = np.stack([rng.permutation(n) for _ in range(K)])
    ra, rb = a, b
    if name == "torch":
        import torch

        ra, rb = torch.from_numpy(a), torch.from_numpy(b)
    null = np.empty((K, 5, 2))
    starts = []
    for k0, batch in ops[name](ra, rb, perms, n, rounds):
        batch = batch.numpy() if name == "torch" else batch
        assert batch.dtype == dtype and batch.shape[1:] == (5, 2)
        null[k0 : k0 + batch.shape[0]] = batch  # consumed before the next batch (buffers)
        starts.append(k0)
    assert starts == list(range(0, K, min(rounds, K)))
    for k, p in enumerate(perms):
        ref = _relabelled_ref(a.astype(np.float64), n, p) @ b.astype(np.float64).T
        np.testing.assert_allclose(null[k], ref, atol=atol * np.abs(ref).max())


@pytest.mark.parametrize("name", ["numpy", "numba", "torch"])
def test_weighted_rankers_equal_the_numpy_kernel(rng, name):
    """The "weighted_ranks" op of each backend (rows sorted once, one call per resample) equals
    weighted_ranks_numpy on each resample's counts."""
    from fastrsa.kernels.numpy import sort_rows, weighted_ranks_numpy

    n = 11
    rows = np.round(rng.random((4, n * (n - 1) // 2)) * 5)
    if name == "numpy":
        from fastrsa.kernels.numpy import weighted_ranker_numpy as make
    elif name == "numba":
        make = numba_kernels.weighted_ranker_numba
    else:
        torch = pytest.importorskip("torch")
        from fastrsa.kernels.torch import weighted_ranker_torch as make
    ranks = make(torch.from_numpy(rows) if name == "torch" else rows, n)
    fixed = sort_rows(rows, n)
    for _ in range(3):
        counts = rng.integers(0, 3, n).astype(np.float64)
        want = weighted_ranks_numpy(*fixed, counts, np.empty(rows.shape))
        out = (
            torch.empty(rows.shape, dtype=torch.float64)
            if name == "torch"
            else np.empty(rows.shape)
        )
        got = ranks(counts, out)
        got = got.numpy() if name == "torch" else got
        np.testing.assert_allclose(got, want, atol=1e-12)
