"""fastrsa.similarity and the measures behind it (CKA, DDS, SVCCA) against the papers' formulas
and the authors' definitions, written out plainly here one pair at a time in float64.

Tolerances: float64 results within ATOL = 1e-10 of the plain float64 formulas (all measures lie
in [-1, 1]); float32 results within 2e-5 of the float64 ones.
"""

import numpy as np
import pytest
from helpers_differential import (
    NORMS,
    all_pairs,
    cka_plain,
    dds_matrix_plain,
    gram_plain,
    hsic_biased,
    hsic_unbiased,
    linear_cka_features,
    svcca_plain,
)
from scipy.spatial.distance import cdist, pdist, squareform

import fastrsa
from fastrsa.measures import cka as cka_mod
from fastrsa.similarity import similarity

torch = pytest.importorskip("torch")

ATOL = 1e-10
F32_ATOL = 2e-5


# ---------------------------------------------------------------- plain references (float64):
# tests/helpers_differential.py (shared with tests/test_trust_numerics.py)


def models(rng, n, widths, scale=1.0):
    return [scale * rng.standard_normal((n, d)) + rng.standard_normal(d) for d in widths]


# ---------------------------------------------------------------- CKA


@pytest.mark.parametrize("n, widths", [(6, [1, 3, 7]), (40, [5, 12, 64, 2]), (25, [30, 30])])
def test_linear_cka_equals_feature_space_formula(rng, n, widths):
    xs = models(rng, n, widths)
    got = similarity(xs, "cka")
    np.testing.assert_allclose(got, all_pairs(linear_cka_features, xs), rtol=0, atol=ATOL)
    assert got.dtype == np.float64 and np.all(np.diag(got) == 1.0)


@pytest.mark.parametrize("n, widths", [(5, [2, 4]), (30, [3, 17, 50])])
def test_debiased_cka_equals_unbiased_hsic_formula(rng, n, widths):
    xs = models(rng, n, widths)
    got = similarity(xs, "cka", debiased=True)
    want = all_pairs(lambda x, y: cka_plain(x @ x.T, y @ y.T, debiased=True), xs)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("kernel, threshold", [("rbf", 1.0), ("rbf", 0.5), ("laplacian", 1.0)])
def test_kernel_cka_equals_plain(rng, kernel, threshold, debiased):
    xs = models(rng, 24, [3, 8, 20])
    got = similarity(xs, "cka", kernel=kernel, threshold=threshold, debiased=debiased)
    want = all_pairs(
        lambda x, y: cka_plain(
            gram_plain(x, kernel, threshold), gram_plain(y, kernel, threshold), debiased
        ),
        xs,
    )
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_cka_invariances(rng):
    """Invariant to orthogonal transforms and isotropic scaling, not to invertible linear maps
    (Kornblith et al. 2019, section 3)."""
    n, d = 50, 10
    x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d)) @ rng.standard_normal((d, d))
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    a = rng.standard_normal((d, d)) @ np.diag(np.geomspace(1, 30, d))  # invertible, not orthogonal
    for kernel in ("linear", "rbf"):
        for debiased in (False, True):
            s = similarity([x, x @ q, 7.5 * x, y, x @ a], "cka", kernel=kernel, debiased=debiased)
            np.testing.assert_allclose(s[0, 1:3], 1.0, rtol=0, atol=ATOL)
            np.testing.assert_allclose(s[3, 1:3], s[3, 0], rtol=0, atol=ATOL)
            assert s[0, 4] < 0.95  # a general invertible map changes CKA


def test_debiased_hsic_of_independent_data_averages_zero():
    """Over 400 draws of independent X, Y (n = 12), the unbiased HSIC's mean lies within 4
    standard errors of 0, while the biased one's is far above 0. Fixed seed: cannot flake."""
    rng = np.random.default_rng(20240601)
    n, draws = 12, 400
    unbiased, biased = [], []
    for _ in range(draws):
        x, y = rng.standard_normal((n, 3)), rng.standard_normal((n, 4))
        for flag, out in ((True, unbiased), (False, biased)):
            kx = cka_mod.centred_gram(x, "linear", 1.0, flag)
            ky = cka_mod.centred_gram(y, "linear", 1.0, flag)
            out.append((kx * ky).sum() * cka_mod.hsic_scale(n, flag))
        np.testing.assert_allclose(
            unbiased[-1], hsic_unbiased(x @ x.T, y @ y.T), rtol=1e-9, atol=1e-12
        )
    unbiased, biased = np.array(unbiased), np.array(biased)
    se = unbiased.std(ddof=1) / np.sqrt(draws)
    assert abs(unbiased.mean()) < 4 * se
    assert biased.mean() > 10 * biased.std(ddof=1) / np.sqrt(draws)


@pytest.mark.parametrize("debiased", [True, False])
@pytest.mark.parametrize("n, m", [(40, 10), (43, 10), (41, 10), (20, 20)])
def test_minibatch_cka_equals_averaged_hsic(rng, n, m, debiased):
    """Nguyen et al. (2021): HSIC averaged over consecutive minibatches (a last batch shorter
    than 4 images dropped), then normalised."""
    xs = models(rng, n, [4, 9, 15])
    got = similarity(xs, "cka", minibatch=m, debiased=debiased)
    hsic = hsic_unbiased if debiased else hsic_biased
    starts = [s for s in range(0, n, m) if n - s >= 4 or s == 0]

    def mb(x, y):
        h = [hsic(x[s : s + m] @ x[s : s + m].T, y[s : s + m] @ y[s : s + m].T) for s in starts]
        return np.mean(h)

    want = all_pairs(lambda x, y: mb(x, y) / np.sqrt(mb(x, x) * mb(y, y)), xs)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_minibatch_defaults_to_unbiased(rng):
    xs = models(rng, 30, [4, 6])
    np.testing.assert_array_equal(
        similarity(xs, "cka", minibatch=8), similarity(xs, "cka", minibatch=8, debiased=True)
    )


# ---------------------------------------------------------------- DDS


@pytest.mark.parametrize("kernel", ["linear", "rbf", "laplacian", "pearson", "euclidean", "cosine"])
@pytest.mark.parametrize("normalization", ["znorm", "none", "centering"])
def test_dds_equals_their_definitions(rng, normalization, kernel):
    xs = models(rng, 15, [6, 11, 3], scale=2.0)
    got = similarity(xs, "dds", normalization=normalization, kernel=kernel)
    norm = NORMS[normalization]
    want = all_pairs(
        lambda x, y: cka_plain(
            dds_matrix_plain(norm(x, None), kernel), dds_matrix_plain(norm(y, None), kernel), True
        ),
        xs,
    )
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize("normalization", ["group", "instance", "layer", "batch"])
@pytest.mark.parametrize("kernel", ["linear", "pearson"])
def test_dds_shaped_normalisations(rng, normalization, kernel):
    shape = (3, 2, 4)
    xs = models(rng, 12, [24, 24, 24], scale=3.0)
    got = similarity(xs, "dds", normalization=normalization, kernel=kernel, shape=shape)
    norm = NORMS[normalization]
    want = all_pairs(
        lambda x, y: cka_plain(
            dds_matrix_plain(norm(x, shape), kernel), dds_matrix_plain(norm(y, shape), kernel), True
        ),
        xs,
    )
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_dds_znorm_matches_sklearn_and_biased_option(rng):
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    xs = models(rng, 20, [5, 9])
    xs[0][:, 2] = 3.0  # a constant column: StandardScaler only centres it
    got = similarity(xs, "dds", kernel="euclidean", debiased=False)
    z = [preprocessing.StandardScaler().fit_transform(x) for x in xs]
    want = cka_plain(cdist(z[0], z[0]), cdist(z[1], z[1]), debiased=False)
    np.testing.assert_allclose(got[0, 1], want, rtol=0, atol=ATOL)


# ---------------------------------------------------------------- SVCCA


@pytest.mark.parametrize("variance", [0.99, 0.9, 0.5])
def test_svcca_equals_svd_plus_scipy_cca(rng, variance):
    n = 80
    xs = [
        rng.standard_normal((n, d))
        @ np.diag(np.geomspace(1, 0.05, d))
        @ rng.standard_normal((d, d))
        for d in (4, 9, 15)
    ]
    got = similarity(xs, "svcca", variance=variance)
    want = all_pairs(lambda x, y: svcca_plain(x, y, variance), xs)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)  # sqrtm/inv of Cxx: ~1e-10 here


# ---------------------------------------------------------------- the entry point


def test_dict_and_array_and_leading_dims(rng):
    xs = models(rng, 16, [8, 8, 8, 8])
    arr = np.stack(xs)
    want = similarity(xs, "cka")
    np.testing.assert_array_equal(similarity(arr, "cka"), want)
    np.testing.assert_allclose(similarity(arr.reshape(2, 2, 16, 8), "cka"), want, atol=0)
    labelled = {"c": xs[2], "a": xs[0], "b": xs[1]}
    np.testing.assert_allclose(
        similarity(labelled, "cka"), want[np.ix_([2, 0, 1], [2, 0, 1])], rtol=0, atol=ATOL
    )


@pytest.mark.parametrize("measure", ["rsa", "cka", "dds", "svcca"])
def test_other_is_the_off_diagonal_block(rng, measure):
    xs = models(rng, 14, [3, 7, 5, 10, 2])
    full = similarity(xs, measure)
    block = similarity(xs[:2], measure, other={"p": xs[2], "q": xs[3], "r": xs[4]})
    assert block.shape == (2, 3)
    np.testing.assert_allclose(block, full[:2, 2:], rtol=0, atol=ATOL)


@pytest.mark.parametrize("measure", ["rsa", "cka", "dds", "svcca"])
def test_torch_in_torch_out(rng, measure):
    xs = models(rng, 20, [6, 13, 4])
    want = similarity(xs, measure)
    got = similarity([torch.from_numpy(x) for x in xs], measure)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=ATOL)
    got32 = similarity([torch.from_numpy(x).float() for x in xs], measure)
    assert got32.dtype == torch.float32
    # rsa: float32 RDMs rank differently from float64 ones near ties; compare like with like
    want32 = similarity([x.astype(np.float32) for x in xs], measure) if measure == "rsa" else want
    np.testing.assert_allclose(got32.numpy(), want32, rtol=0, atol=F32_ATOL)
    via_torch = similarity(xs, measure, backend="torch")  # numpy in, torch computes
    assert isinstance(via_torch, np.ndarray)
    np.testing.assert_allclose(via_torch, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize("backend", ["numpy", "numba", "reference"])
def test_cpu_backends_agree(rng, backend):
    if backend not in fastrsa.available_backends():
        pytest.skip(f"{backend} not installed")
    xs = models(rng, 12, [5, 8])
    for measure in ("cka", "dds", "svcca", "rsa"):
        np.testing.assert_allclose(
            similarity(xs, measure, backend=backend), similarity(xs, measure), rtol=0, atol=ATOL
        )


def test_float32_numpy(rng):
    xs = models(rng, 30, [10, 20, 5])
    got = similarity([x.astype(np.float32) for x in xs], "cka", kernel="rbf")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, similarity(xs, "cka", kernel="rbf"), rtol=0, atol=F32_ATOL)


def test_tiny_memory_budget_groups_models(rng):
    """A budget too small for all Grams at once: models in groups, Grams recomputed, the same
    result."""
    xs = models(rng, 20, [4, 6, 3, 9, 5])
    for measure in ("cka", "dds"):
        small = similarity(xs, measure, memory=3 * 20 * 20 * 8)
        np.testing.assert_allclose(small, similarity(xs, measure), rtol=0, atol=1e-14)
        small_other = similarity(xs[:2], measure, other=xs[2:], memory=20 * 20 * 8)
        np.testing.assert_allclose(small_other, similarity(xs, measure)[:2, 2:], atol=1e-14)


def test_rsa_is_rdms_then_compare(rng):
    xs = models(rng, 10, [4, 9, 6])
    for metric, method in (("correlation", "spearman"), ("euclidean", "pearson")):
        rdms = np.stack([fastrsa.rdms(x, metric) for x in xs])
        np.testing.assert_allclose(
            similarity(xs, metric=metric, method=method),
            fastrsa.compare(rdms, method=method),
            rtol=0,
            atol=ATOL,
        )
    # integers are taken exactly
    ints = [rng.integers(0, 1000, (10, 6)), rng.integers(0, 1000, (10, 4))]
    assert similarity(ints).dtype == np.float64


def test_attribution_delegates(rng):
    try:
        from fastrsa.measures.attribution import attribution_similarity
    except ImportError:
        pytest.skip("fastrsa.measures.attribution not there yet")
    maps = rng.standard_normal((3, 5, 2, 4, 4))
    np.testing.assert_array_equal(similarity(maps, "attribution"), attribution_similarity(maps))
    with pytest.raises(TypeError, match="kernel"):
        similarity(maps, "attribution", kernel="rbf")


@pytest.mark.parametrize(
    "features, options, error, match",
    [
        ([], {}, ValueError, "features holds no models"),
        ({}, {}, ValueError, "features holds no models"),
        (np.zeros((5, 3)), {}, ValueError, r"\(B, n, d\).*features\[None\]"),
        ([np.ones((5, 3)), np.ones((6, 3))], {}, ValueError, r"features\[1\] has 6 images"),
        ([np.ones((5, 3)), np.ones((5, 3, 1))], {}, ValueError, r"features\[1\] must be 2-D"),
        ([np.ones((5, 0))], {}, ValueError, r"features\[0\] is empty"),
        ({"a": np.array([[0.0, np.nan]] * 5)}, {}, ValueError, r"features\['a'\] holds NaN"),
        ([np.ones((5, 2)) * np.inf], {}, ValueError, r"features\[0\] holds NaN or Inf"),
        ([np.ones((5, 2), dtype=complex)], {}, TypeError, "real"),
        ([np.eye(5)], {"colour": 1}, TypeError, r"unknown option\(s\) 'colour'"),
        ([np.eye(5)], {"method": "pearson", "kernel": "rbf"}, TypeError, "'method'"),
        ([np.eye(3)], {"debiased": True}, ValueError, "at least 4 images"),
        ([np.eye(5)], {"kernel": "poly"}, ValueError, "kernel must be"),
        ([np.eye(5)], {"minibatch": 2}, ValueError, "minibatch must be at least 4"),
        ([np.eye(5)], {"threshold": -1.0, "kernel": "rbf"}, ValueError, "threshold"),
        ([np.eye(5)], {"debiased": "yes"}, TypeError, "debiased must be True or False"),
        ([np.eye(5), np.ones((5, 3))], {}, ValueError, r"features\[1\]: its centred Gram"),
    ],
)
def test_bad_input_cka(features, options, error, match):
    with pytest.raises(error, match=match):
        similarity(features, "cka", **options)


def test_bad_input_other_measures(rng):
    x = rng.standard_normal((6, 4))
    with pytest.raises(ValueError, match="measure must be one of"):
        similarity([x], "bures")
    with pytest.raises(ValueError, match=r"other\[0\] has 7 images"):
        similarity([x], "cka", other=[rng.standard_normal((7, 4))])
    with pytest.raises(ValueError, match=r"other\[0\] holds NaN"):
        similarity([x], "svcca", other=[np.full((6, 2), np.nan)])
    with pytest.raises(ValueError, match="needs shape"):
        similarity([x], "dds", normalization="group")
    with pytest.raises(ValueError, match="h\\*w\\*c = 8"):
        similarity([x], "dds", normalization="batch", shape=(2, 2, 2))
    with pytest.raises(ValueError, match="groups must divide"):
        similarity([rng.standard_normal((6, 6))], "dds", normalization="group", shape=(1, 2, 3))
    with pytest.raises(ValueError, match="normalization must be"):
        similarity([x], "dds", normalization="l2")
    with pytest.raises(ValueError, match="variance must be"):
        similarity([x], "svcca", variance=1.5)
    with pytest.raises(ValueError, match=r"features\[1\] has zero variance"):
        similarity([x, np.ones((6, 3))], "svcca")
    with pytest.raises(ValueError, match=r"features\[1\]: .*constant"):
        similarity([x, np.ones((6, 3))], "rsa")
    with pytest.raises(ValueError, match="metric must be"):
        similarity([x], "rsa", metric="manhattan")
    with pytest.raises(ValueError, match="backend must be"):
        similarity([x], "cka", backend="cuda")


@pytest.mark.parametrize("n", [15, 16])  # an odd and an even count of squared distances
@pytest.mark.parametrize(
    "options",
    [
        {"kernel": "rbf", "threshold": 0.7},
        {"kernel": "laplacian", "debiased": True},
        {"kernel": "rbf", "minibatch": 6},
    ],
)
def test_torch_kernels_and_minibatch(rng, n, options):
    """torch's median (even counts: mean of the two middle values, as np.median), cdist and
    minibatches agree with numpy."""
    xs = models(rng, n, [3, 7])
    want = similarity(xs, "cka", **options)
    got = similarity([torch.from_numpy(x) for x in xs], "cka", **options)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=ATOL)
    dds = similarity([torch.from_numpy(x) for x in xs], "dds", kernel=options["kernel"])
    np.testing.assert_allclose(
        dds.numpy(), similarity(xs, "dds", kernel=options["kernel"]), rtol=0, atol=ATOL
    )


def test_cka_of_matrices_equals_the_formula(rng):
    """Precomputed matrices (RDMs: the DDS paper's "rdm" variant): plain HSIC ratios."""
    from fastrsa.measures.cka import cka_of_matrices

    x = rng.standard_normal((3, 9, 5))
    mats = np.stack([squareform(pdist(f, "correlation")) for f in x])
    n = mats.shape[1]
    h = np.eye(n) - 1.0 / n

    def hsic(k, g):  # biased: tr(K H G H) / (n-1)^2
        return np.trace(k @ h @ g @ h) / (n - 1) ** 2

    def u_centre(k):  # Szekely-Rizzo U-centring, written out
        k = k.copy()
        np.fill_diagonal(k, 0)
        r = k.sum(0)
        out = k - r[:, None] / (n - 2) - r[None, :] / (n - 2) + k.sum() / ((n - 1) * (n - 2))
        np.fill_diagonal(out, 0)
        return out

    got = cka_of_matrices(mats)
    got_u = cka_of_matrices(mats, debiased=True)
    for i in range(3):
        for j in range(3):
            want = hsic(mats[i], mats[j]) / np.sqrt(hsic(mats[i], mats[i]) * hsic(mats[j], mats[j]))
            assert abs(got[i, j] - want) < 1e-10
            a, b = u_centre(mats[i]), u_centre(mats[j])
            want_u = (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())
            assert abs(got_u[i, j] - want_u) < 1e-10
    with pytest.raises(ValueError, match=r"\(B, n, n\)"):
        cka_of_matrices(mats[0])
