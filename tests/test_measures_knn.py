"""fastrsa.measures.knn (mutual kNN, Jaccard kNN, CKNNA) against the reference definitions,
written out plainly here one pair at a time in float64:

- neighbours and mutual kNN: platonic-rep `metrics.py` (`compute_nearest_neighbors`: the Gram of
  L2-normalised rows, diagonal -1e8, argsort descending, first k; `mutual_knn`: n x n 0/1 masks,
  mean over rows of the masks' row-wise product sum / k), with numpy's stable argsort standing in
  for torch's (ties: the lower index first, fastrsa's documented tie-break);
- Jaccard kNN: ReSi `nearest_neighbor.py` (`top_k_neighbors`: scikit-learn NearestNeighbors with
  the cosine metric and k + 1 neighbours, the first dropped; `jaccard_similarity`: mean of
  |∩| / |∪| of Python sets), run with the installed scikit-learn;
- CKNNA: platonic-rep `cknna` (unbiased=True) and `hsic_unbiased`, dense n x n masks, without
  their 1e-6 in the denominator (fastrsa leaves it out; one test shows the difference is tiny).

Inputs without duplicate points except in the tie tests, whose values are dyadic so that every
similarity is exact and the ties are real. Tolerances: neighbour tables exactly equal; mutual and
Jaccard kNN (ratios of counts) within 1e-12; CKNNA within 1e-10.
"""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from fastrsa.measures import knn
from fastrsa.similarity import similarity

torch = pytest.importorskip("torch")

ATOL = 1e-10


# ---------------------------------------------------------------- plain references (float64)


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def knn_plain(x, k):
    s = unit(x) @ unit(x).T
    np.fill_diagonal(s, -1e8)
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def mask_plain(table):
    n = table.shape[0]
    m = np.zeros((n, n))
    m[np.arange(n)[:, None], table] = 1.0
    return m


def mutual_plain(x, y, k):
    acc = (mask_plain(knn_plain(x, k)) * mask_plain(knn_plain(y, k))).sum(axis=1) / k
    return acc.mean()


def jaccard_resi(x, y, k):
    def top(r):
        nns = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(r)
        return [set(row[1:]) for row in nns.kneighbors(r)[1]]

    return np.mean([len(a & b) / len(a | b) for a, b in zip(top(x), top(y), strict=True)])


def hsic_unbiased_plain(K, L):
    m = K.shape[0]
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0)
    np.fill_diagonal(Lt, 0)
    h = (
        np.sum(Kt * Lt.T)
        + np.sum(Kt) * np.sum(Lt) / ((m - 1) * (m - 2))
        - 2 * np.sum(Kt @ Lt) / (m - 2)
    )
    return h / (m * (m - 3))


def cknna_plain(x, y, k, eps=0.0):
    K, L = unit(x) @ unit(x).T, unit(y) @ unit(y).T

    def sim(K, L):
        Kh, Lh = K.copy(), L.copy()
        np.fill_diagonal(Kh, -np.inf)
        np.fill_diagonal(Lh, -np.inf)
        mk = mask_plain(np.argsort(-Kh, axis=1, kind="stable")[:, :k])
        ml = mask_plain(np.argsort(-Lh, axis=1, kind="stable")[:, :k])
        mask = mk * ml
        return hsic_unbiased_plain(mask * K, mask * L)

    return sim(K, L) / (np.sqrt(sim(K, K) * sim(L, L)) + eps)


def pairs(f, xs, ys=None):
    ys = xs if ys is None else ys
    return np.array([[f(x, y) for y in ys] for x in xs])


def models(rng, n, widths, dtype=np.float64):
    return [(rng.standard_normal((n, d)) + rng.standard_normal(d)).astype(dtype) for d in widths]


def names(xs, side="a"):
    return [f"{side}[{i}]" for i in range(len(xs))]


# ---------------------------------------------------------------- the kNN table

SHAPES = [(3, 1, [2, 5]), (4, 2, [1, 3, 9]), (4, 3, [2, 6]), (37, 5, [1, 8, 50]), (61, 60, [4, 7])]


@pytest.mark.parametrize("n, k, widths", SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_knn_table_equals_stable_argsort(rng, n, k, widths, dtype):
    for x in models(rng, n, widths, dtype):
        want = knn_plain(x, k)
        got = knn.knn_table(x, k)
        assert got.dtype == np.int64 and got.shape == (n, k)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(knn.knn_table(torch.from_numpy(x), k), want)
        np.testing.assert_array_equal(knn.knn_table(x, k, budget=1), want)  # one row a block
        np.testing.assert_array_equal(knn.knn_table(torch.from_numpy(x), k, budget=1), want)
        g = knn.neighbours(x, k, budget=3 * n * 40)
        s = unit(x) @ unit(x).T
        np.testing.assert_allclose(g.sims, np.take_along_axis(s, want, 1), rtol=0, atol=1e-15)


def test_ties_go_to_the_lower_index_and_self_is_excluded():
    # rows 0 and 2 are duplicates, as are 1 and 3; every similarity is exact (0, 1 or 1/sqrt2)
    x = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [1, 1]], dtype=np.float64)
    want3 = [[2, 4, 1], [3, 4, 0], [0, 4, 1], [1, 4, 0], [0, 1, 2]]
    for arr in (x, x.astype(np.float32), torch.from_numpy(x)):
        np.testing.assert_array_equal(knn.knn_table(arr, 3), want3)
        np.testing.assert_array_equal(knn.knn_table(arr, 1), [[2], [3], [0], [1], [0]])
        np.testing.assert_array_equal(knn.knn_table(arr, 4, budget=1), knn_plain(x, 4))
    # d = 1: every cosine is +-1, so nearly everything ties
    y = np.array([[2.0], [-1.0], [0.5], [-4.0], [1.0], [3.0]])
    np.testing.assert_array_equal(
        knn.knn_table(y, 3), [[2, 4, 5], [3, 0, 2], [0, 4, 5], [1, 0, 2], [0, 2, 5], [0, 2, 4]]
    )
    np.testing.assert_array_equal(knn.knn_table(torch.from_numpy(y), 3), knn.knn_table(y, 3))


def test_table_is_invariant_to_rotation_row_scale_feature_order_and_power_of_two_scale(rng):
    x = rng.standard_normal((40, 12))
    want = knn.knn_table(x, 6)
    q = np.linalg.qr(rng.standard_normal((12, 12)))[0]
    np.testing.assert_array_equal(knn.knn_table(x @ q, 6), want)
    np.testing.assert_array_equal(knn.knn_table(x * rng.uniform(0.1, 10, (40, 1)), 6), want)
    np.testing.assert_array_equal(knn.knn_table(x[:, rng.permutation(12)], 6), want)
    for e in (-1000, -900, 900, 1000):
        np.testing.assert_array_equal(knn.knn_table(np.ldexp(x, e), 6), want)
    for e in (-120, 120):
        x32 = x.astype(np.float32)
        np.testing.assert_array_equal(knn.knn_table(np.ldexp(x32, e), 6), knn.knn_table(x32, 6))


# ---------------------------------------------------------------- mutual and Jaccard kNN


@pytest.mark.parametrize("n, k, widths", SHAPES)
def test_mutual_knn_equals_platonic_rep_definition(rng, n, k, widths):
    xs = models(rng, n, widths)
    got = knn.mutual_knn_matrix(xs, None, k=k, names_a=names(xs))
    np.testing.assert_allclose(got, pairs(lambda a, b: mutual_plain(a, b, k), xs), atol=1e-12)
    assert got.dtype == np.float64 and np.all(np.diag(got) == 1.0) and np.all(got == got.T)
    tx = [torch.from_numpy(x) for x in xs]
    np.testing.assert_array_equal(knn.mutual_knn_matrix(tx, None, k=k, names_a=names(xs)), got)


@pytest.mark.parametrize("n, k, widths", [(3, 1, [2, 5]), (4, 2, [2, 3, 9]), (37, 5, [3, 50])])
def test_jaccard_knn_equals_resi_with_scikit_learn(rng, n, k, widths):
    xs = models(rng, n, widths)
    got = knn.jaccard_knn_matrix(xs, None, k=k, names_a=names(xs))
    np.testing.assert_allclose(got, pairs(lambda a, b: jaccard_resi(a, b, k), xs), atol=1e-12)
    assert np.all(np.diag(got) == 1.0) and np.all(got == got.T)


def test_two_sets_give_the_blocks_of_all_pairs(rng):
    xs = models(rng, 30, [3, 8, 20, 5, 1])
    for f in (knn.mutual_knn_matrix, knn.jaccard_knn_matrix, knn.cknna_matrix):
        full = f(xs, None, k=4, names_a=names(xs))
        block = f(xs[:2], xs[2:], k=4, names_a=names(xs[:2]), names_b=names(xs[2:], "b"))
        np.testing.assert_allclose(block, full[:2, 2:], rtol=0, atol=1e-15)
        assert np.isfinite(full).all()


def test_k_extremes(rng):
    xs = models(rng, 9, [3, 7, 2])
    for f in (knn.mutual_knn_matrix, knn.jaccard_knn_matrix):
        np.testing.assert_array_equal(f(xs, None, k=8, names_a=names(xs)), np.ones((3, 3)))
    got = knn.mutual_knn_matrix(xs, None, k=1, names_a=names(xs))
    np.testing.assert_allclose(got, pairs(lambda a, b: mutual_plain(a, b, 1), xs), atol=1e-12)
    # k = 1: Jaccard is |∩| / (2 - |∩|), i.e. the same as mutual kNN (0 or 1 per row)
    np.testing.assert_array_equal(knn.jaccard_knn_matrix(xs, None, k=1, names_a=names(xs)), got)


def test_invariant_to_a_common_relabelling_of_the_images(rng):
    xs = models(rng, 25, [4, 9, 30])
    perm = rng.permutation(25)
    for f in (knn.mutual_knn_matrix, knn.jaccard_knn_matrix, knn.cknna_matrix):
        a = f(xs, None, k=5, names_a=names(xs))
        b = f([x[perm] for x in xs], None, k=5, names_a=names(xs))
        np.testing.assert_allclose(a, b, rtol=0, atol=ATOL)


# ---------------------------------------------------------------- CKNNA


@pytest.mark.parametrize("n, k, widths", [(4, 2, [3, 9]), (4, 3, [2, 5]), (23, 5, [4, 8, 50])])
def test_cknna_equals_platonic_rep_definition_in_both_orders(rng, n, k, widths):
    xs = models(rng, n, widths)
    got = knn.cknna_matrix(xs, None, k=k, names_a=names(xs))
    want = pairs(lambda a, b: cknna_plain(a, b, k), xs)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    assert np.all(np.diag(got) == 1.0)
    tx = [torch.from_numpy(x) for x in xs]
    np.testing.assert_allclose(knn.cknna_matrix(tx, None, k=k, names_a=names(xs)), got, atol=1e-14)


def test_cknna_is_not_symmetric_by_definition(rng):
    x, y = models(rng, 30, [5, 12])
    ab, ba = cknna_plain(x, y, 6), cknna_plain(y, x, 6)
    assert abs(ab - ba) > 1e-6  # the column sums of one masked Gram meet the row sums of the other
    got = knn.cknna_matrix([x], [y], k=6, names_a=["x"], names_b=["y"])
    np.testing.assert_allclose(got[0, 0], ab, rtol=0, atol=ATOL)
    g1, g2 = knn.neighbours(x, 6), knn.neighbours(y, 6)
    np.testing.assert_allclose([knn.cknna(g1, g2), knn.cknna(g2, g1)], [ab, ba], atol=ATOL)


def test_cknna_differs_from_platonic_rep_only_by_their_epsilon(rng):
    x, y = models(rng, 40, [6, 20])
    got = knn.cknna_matrix([x], [y], k=10, names_a=["x"], names_b=["y"])[0, 0]
    assert abs(got - cknna_plain(x, y, 10, eps=1e-6)) < 1e-3 * abs(got)


def test_cknna_with_all_neighbours_is_debiased_cka_of_the_unit_rows(rng):
    xs = models(rng, 12, [3, 8, 40])
    got = knn.cknna_matrix(xs, None, k=11, names_a=names(xs))
    want = similarity([unit(x) for x in xs], "cka", debiased=True)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_cknna_is_invariant_to_rotation_and_row_scale(rng):
    x, y = models(rng, 30, [10, 6])
    q = np.linalg.qr(rng.standard_normal((10, 10)))[0]
    a = knn.cknna_matrix([x], [y], k=5, names_a=["x"], names_b=["y"])
    b = knn.cknna_matrix([x @ q * 1e3], [y], k=5, names_a=["x"], names_b=["y"])
    np.testing.assert_allclose(a, b, rtol=0, atol=ATOL)


# ---------------------------------------------------------------- refusals


def test_refusals(rng):
    xs = models(rng, 6, [3, 4])
    nm = ["first", "second"]
    for f in (knn.mutual_knn_matrix, knn.jaccard_knn_matrix, knn.cknna_matrix):
        with pytest.raises(ValueError, match=r"k = 6 must be at most n - 1 = 5 .*first"):
            f(xs, None, k=6, names_a=nm)
        with pytest.raises(ValueError, match="k must be >= "):
            f(xs, None, k=0, names_a=nm)
        with pytest.raises(TypeError, match="k must be an int"):
            f(xs, None, k=2.0, names_a=nm)
        with pytest.raises(TypeError, match="k must be an int"):
            f(xs, None, k=True, names_a=nm)
        bad = xs[1].copy()
        bad[4] = 0.0
        with pytest.raises(ValueError, match=r"all zeros .*cosine is undefined.*second: row 4"):
            f([xs[0], bad], None, k=2, names_a=nm)
        with pytest.raises(ValueError, match=r"all zeros .*second: row 4"):
            f([xs[0]], [torch.from_numpy(bad)], k=2, names_a=nm[:1], names_b=nm[1:])
    small = models(rng, 2, [3])
    for f in (knn.mutual_knn_matrix, knn.jaccard_knn_matrix):
        with pytest.raises(ValueError, match=r"at least 3 images; tiny has n = 2"):
            f(small, None, k=1, names_a=["tiny"])
    with pytest.raises(ValueError, match=r"CKNNA needs at least 4 images; tiny has n = 3"):
        knn.cknna_matrix(models(rng, 3, [3]), None, k=2, names_a=["tiny"])
    with pytest.raises(ValueError, match="k must be >= 2"):
        knn.cknna_matrix(xs, None, k=1, names_a=nm)
    with pytest.raises(ValueError, match=r"at least 3 images"):
        knn.knn_table(small[0], 1, "tiny")


def test_cknna_refuses_a_model_whose_own_masked_hsic_is_not_positive():
    x = np.array(
        [
            [2.08, 1.1, -0.7, -0.6],
            [-2.64, -0.32, 1.42, -2.08],
            [0.95, 0.49, 1.46, -0.66],
            [0.15, 1.25, 0.39, 0.61],
        ]
    )
    ok = np.random.default_rng(3).standard_normal((4, 3))
    # the definition: h(x, x) < 0, so CKNNA(x, x) = -1 and CKNNA(ok, x) = NaN (sqrt of < 0)
    assert hsic_unbiased_plain(*(mask_plain(knn_plain(x, 2)) * (unit(x) @ unit(x).T),) * 2) < 0
    np.testing.assert_allclose(cknna_plain(x, x, 2), -1.0, rtol=0, atol=ATOL)
    with np.errstate(invalid="ignore"):
        assert np.isnan(cknna_plain(ok, x, 2))
    with pytest.raises(
        ValueError, match=r"^bad: its 2-NN-masked .*\(not positive\), so CKNNA is undefined"
    ):
        knn.cknna_matrix([ok], [x], k=2, names_a=["ok"], names_b=["bad"])
    g = knn.neighbours(x, 2)
    with pytest.raises(ValueError, match="not positive"):
        knn.cknna(g, g)
