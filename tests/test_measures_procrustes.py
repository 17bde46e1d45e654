"""fastrsa.measures.procrustes (netrep's generalised shape metrics, NBS) against netrep's
LinearMetric fit/score written out plainly here (github ahwillia/netrep `netrep/metrics/linear.py`
and `netrep/utils.py` whiten / angular_distance / check_equal_shapes: zero-pad, centre, partially
whiten, SVD alignment, score) one pair at a time in float64, and against rsatoolbox's `bures`
comparison of RDMs.

Tolerances: ATOL = 1e-9 against the plain references (arccos near 0 and netrep's eigh-based
whitening cost a little; angles lie in [0, pi/2], similarities in [0, 1]); invariances that hold
exactly in exact arithmetic within 1e-12 (the residual path makes θ accurate near 0).
"""

import itertools

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from fastrsa.measures import procrustes as P

torch = pytest.importorskip("torch")

ATOL = 1e-9
EXACT = 1e-12
# arccos(c) near c = 1 (and rsatoolbox's sqrt of rounded zero eigenvalues) turns a rounding
# error of 1e-16 into ~1e-8: the plain references are checked at this tolerance, and the cosines
# behind them at ATOL.
SQRT_ATOL = 1e-7


def check(got, want_fn, xs, score, diag=0.0):
    """got against the plain reference; for angles also cos(got) against the reference's
    cosine (tight), since the reference's own arccos near 0 is only good to SQRT_ATOL."""
    if score != "angular":
        np.testing.assert_allclose(
            got, all_pairs(lambda x, y: want_fn(x, y, score), xs, diag), rtol=0, atol=ATOL
        )
        return
    np.testing.assert_allclose(
        got, all_pairs(lambda x, y: want_fn(x, y, score), xs), rtol=0, atol=SQRT_ATOL
    )
    np.testing.assert_allclose(
        np.cos(got), all_pairs(lambda x, y: want_fn(x, y, "cos"), xs, 1.0), rtol=0, atol=ATOL
    )


# ---------------------------------------------------------------- plain references (float64)


def pad(x, width):
    return np.pad(x, ((0, 0), (0, width - x.shape[1])))


def netrep_whiten(x, alpha, eigval_tol=1e-7):
    """netrep.utils.whiten(X, alpha, preserve_variance=True) as written there."""
    if alpha > 1 - eigval_tol:
        return x
    lam, v = np.linalg.eigh(x.T @ x)
    lam = np.maximum(lam, eigval_tol)
    d = alpha + (1 - alpha) * lam ** (-1 / 2)
    new_var = np.sum(alpha**2 * lam + 2 * alpha * (1 - alpha) * lam**0.5 + (1 - alpha) ** 2)
    d *= np.sqrt(np.sum(lam) / new_var)
    return x @ ((v * d[None, :]) @ v.T)


def exact_whiten(x, alpha):
    """The module's documented definition: netrep's whitening over the nonzero spectrum only
    (null directions dropped), total variance preserved exactly."""
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    r = np.count_nonzero(s > s[0] * max(x.shape) * np.finfo(float).eps)
    d = alpha * s[:r] + (1 - alpha)
    d *= np.linalg.norm(s) / np.linalg.norm(d)
    return (u[:, :r] * d) @ vt[:r]


def linear_metric(x, y, alpha, score, whiten=netrep_whiten):
    """LinearMetric(alpha, center_columns=True, zero_pad=True, score_method).fit_score(x, y)."""
    width = max(x.shape[1], y.shape[1])
    x, y = pad(x, width), pad(y, width)
    xw = whiten(x - x.mean(axis=0), alpha)
    yw = whiten(y - y.mean(axis=0), alpha)
    u, _, vt = np.linalg.svd(xw.T @ yw)
    tx, ty = xw @ u, yw @ vt.T
    if score in ("angular", "cos"):
        corr = np.dot(tx.ravel(), ty.ravel()) / (np.linalg.norm(tx) * np.linalg.norm(ty))
        return np.arccos(np.clip(corr, -1.0, 1.0)) if score == "angular" else corr
    return np.linalg.norm(tx - ty, ord="fro")


def bures_gram(x, y):
    """tr((K^½ L K^½)^½) / sqrt(tr K tr L) on the centred Grams."""
    k = (x - x.mean(0)) @ (x - x.mean(0)).T
    l_ = (y - y.mean(0)) @ (y - y.mean(0)).T
    va, ua = np.linalg.eigh(k)
    root = ua @ (np.sqrt(np.maximum(va, 0))[:, None] * ua.T)
    inner = np.linalg.eigvalsh(root @ l_ @ root)
    inner[inner < inner.max() * len(inner) * 1e-15] = 0  # rounding of the null space: 0
    return np.sqrt(inner).sum() / np.sqrt(np.trace(k) * np.trace(l_))


def all_pairs(f, xs, diag=0.0):
    """f on every pair; the diagonal (a model with itself) is `diag` exactly: arccos of a
    rounded 1 is ~1e-8, not 0, in the plain references."""
    return np.array(
        [[diag if i == j else f(x, y) for j, y in enumerate(xs)] for i, x in enumerate(xs)]
    )


def shape(xs, ys=None, **kw):
    names = [f"m{i}" for i in range(len(xs))]
    names_b = () if ys is None else [f"b{i}" for i in range(len(ys))]
    return P.shape_matrix(xs, ys, names_a=names, names_b=names_b, **kw)


def models(rng, n, widths, scale=1.0):
    return [scale * rng.standard_normal((n, d)) + rng.standard_normal(d) for d in widths]


# ---------------------------------------------------------------- against netrep


@pytest.mark.parametrize("score", ["angular", "euclidean"])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("n, d", [(4, 2), (3, 2), (17, 5), (31, 1)])
def test_equals_netrep_full_rank_equal_widths(rng, n, d, alpha, score):
    """Full column rank (d <= n - 1), equal widths: netrep's definition, unchanged."""
    xs = models(rng, n, [d, d, d], scale=2.0)
    got = shape(xs, alpha=alpha, score=score)
    check(got, lambda x, y, sc: linear_metric(x, y, alpha, sc), xs, score)
    assert got.dtype == np.float64 and np.all(np.diag(got) == 0.0)


@pytest.mark.parametrize("score", ["angular", "euclidean"])
@pytest.mark.parametrize("n, widths", [(4, [1, 3, 7]), (13, [2, 5, 20, 13]), (3, [1, 2, 4])])
def test_procrustes_equals_netrep_any_widths(rng, n, widths, score):
    """alpha = 1 (no whitening): zero padding and d > n change nothing."""
    xs = models(rng, n, widths)
    got = shape(xs, alpha=1.0, score=score)
    check(got, lambda x, y, sc: linear_metric(x, y, 1.0, sc), xs, score)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5])
def test_angular_equals_netrep_with_padding(rng, alpha):
    """Different widths, each of full column rank: the padded zero columns lie in the null space
    of Xc, so netrep's clipped eigenvalues there do not change the angle."""
    xs = models(rng, 23, [2, 5, 9, 9])
    got = shape(xs, alpha=alpha)
    check(got, lambda x, y, sc: linear_metric(x, y, alpha, sc), xs, "angular")


@pytest.mark.parametrize("score", ["angular", "euclidean"])
@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("n, widths", [(4, [1, 3, 7]), (11, [2, 14, 30, 5])])
def test_equals_exact_whitening_when_rank_deficient(rng, n, widths, alpha, score):
    """d >= n or padding with alpha < 1: netrep's absolute eigenvalue clip is ill-defined; the
    module follows netrep over the nonzero spectrum (documented), written plainly here."""
    xs = models(rng, n, widths)
    got = shape(xs, alpha=alpha, score=score)
    check(got, lambda x, y, sc: linear_metric(x, y, alpha, sc, exact_whiten), xs, score)


def test_cross_matrix_and_symmetry(rng):
    xs, ys = models(rng, 9, [3, 4, 12]), models(rng, 9, [1, 6])
    for score in P.SCORES:
        for alpha in (0.0, 0.5, 1.0):
            ab = shape(xs, ys, alpha=alpha, score=score)
            ba = shape(ys, xs, alpha=alpha, score=score)
            full = shape(xs + ys, alpha=alpha, score=score)
            assert ab.shape == (3, 2)
            np.testing.assert_allclose(ab, ba.T, rtol=0, atol=EXACT)
            np.testing.assert_allclose(ab, full[:3, 3:], rtol=0, atol=EXACT)
            np.testing.assert_allclose(full, full.T, rtol=0, atol=0)


# ---------------------------------------------------------------- NBS


@pytest.mark.parametrize("n, widths", [(3, [1, 2, 5]), (4, [3, 1]), (19, [4, 25, 8])])
def test_nbs_equals_rsatoolbox_bures(rng, n, widths):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    xs = models(rng, n, widths)
    got = shape(xs, score="nbs")
    rdms = [
        rsatoolbox.rdm.RDMs(
            pdist(x, "sqeuclidean")[None], dissimilarity_measure="squared euclidean"
        )
        for x in xs
    ]
    want = all_pairs(lambda a, b: rsatoolbox.rdm.compare(a, b, method="bures")[0, 0], rdms, 1.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=SQRT_ATOL)
    np.testing.assert_allclose(got, all_pairs(bures_gram, xs, 1.0), rtol=0, atol=ATOL)
    np.testing.assert_allclose(np.cos(shape(xs)), got, rtol=0, atol=ATOL)
    assert np.all(np.diag(got) == 1.0) and np.all((got >= 0) & (got <= 1))


# ---------------------------------------------------------------- invariances, metric


def test_invariances(rng):
    """Translation, rotation, feature permutation (all alpha); isotropic scale (alpha 0 and 1,
    angular and nbs; euclidean scales with it); any invertible map (alpha = 0)."""
    n, d = 14, 6
    x, y = rng.standard_normal((n, d)), rng.standard_normal((n, 9))
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    perm = rng.permutation(d)
    m = rng.standard_normal((d, d)) @ np.diag(np.geomspace(1, 30, d))  # invertible
    for alpha in (0.0, 0.5, 1.0):
        for score in ("angular", "euclidean"):
            s = shape([x, x @ q + 3.0, x[:, perm] - 10.0, y], alpha=alpha, score=score)
            np.testing.assert_allclose(s[0, 1:3], 0.0, rtol=0, atol=EXACT)
            np.testing.assert_allclose(s[3, 1:3], s[3, 0], rtol=0, atol=EXACT)
    for alpha in (0.0, 1.0):
        for score in ("angular", "nbs"):
            s = shape([x, 7.5 * x, y, y / 3], alpha=alpha, score=score)
            np.testing.assert_allclose(s[0, 1], s[0, 0], rtol=0, atol=EXACT)
            np.testing.assert_allclose(s[[0, 1, 0, 1], [2, 2, 3, 3]], s[0, 2], rtol=0, atol=EXACT)
    e = shape([x, y], [5 * x, 5 * y], score="euclidean")  # ‖5 Xc - Xc‖ = 4 ‖Xc‖
    norms = [np.linalg.norm(m - m.mean(0)) for m in (x, y)]
    np.testing.assert_allclose(np.diag(e), 4 * np.array(norms), rtol=1e-13)
    np.testing.assert_allclose(
        shape([5 * x, 5 * y], score="euclidean"),
        5 * shape([x, y], score="euclidean"),  # euclidean: in the features' units
        rtol=1e-13,
    )
    s = shape([x, x @ m], alpha=0.0)
    assert s[0, 1] < EXACT
    assert shape([x, x @ m], alpha=1.0)[0, 1] > 0.1  # Procrustes sees the stretch


def test_nearly_equal_models_are_accurate(rng):
    """θ = 2 asin(‖A_x P - A_y R‖ / 2) near 0, not arccos (which would lose half the digits)."""
    x = rng.standard_normal((30, 8))
    eps = 1e-9
    y = x + eps * rng.standard_normal((30, 8))
    got = shape([x, y])[0, 1]
    # netrep's aligned residual, computed directly, of the unit-norm centred models: 2 sin(θ/2)
    xc, yc = (m - m.mean(0) for m in (x, y))
    rho = linear_metric(xc / np.linalg.norm(xc), yc / np.linalg.norm(yc), 1.0, "euclidean")
    np.testing.assert_allclose(got, 2 * np.arcsin(rho / 2), rtol=1e-6)
    assert 1e-11 < got < 1e-8


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_triangle_inequality(rng, alpha):
    xs = models(rng, 12, [3, 5, 8, 20, 2, 11])
    for score in ("angular", "euclidean"):
        s = shape(xs, alpha=alpha, score=score)
        assert np.all(s >= 0)
        for i, j, k in itertools.permutations(range(len(xs)), 3):
            assert s[i, k] <= s[i, j] + s[j, k] + EXACT
        if score == "angular":
            assert np.all(s <= np.pi / 2)


def test_extreme_scales_and_dtypes(rng):
    xs = models(rng, 10, [4, 7, 12])
    base = shape(xs)
    for f in (2.0**600, 2.0**-600, 2.0**-1000):
        np.testing.assert_allclose(shape([f * x for x in xs]), base, rtol=0, atol=EXACT)
        got = shape([f * x for x in xs], alpha=0.5)
        assert np.all(np.isfinite(got))
    x32 = [x.astype(np.float32) for x in xs]
    want = shape([x.astype(np.float64) for x in x32], alpha=0.5, score="euclidean")
    np.testing.assert_array_equal(shape(x32, alpha=0.5, score="euclidean"), want)


def test_torch_equals_numpy(rng):
    xs = models(rng, 9, [2, 5, 13])
    for score in P.SCORES:
        for alpha in (0.0, 0.5, 1.0):
            got = shape([torch.from_numpy(x) for x in xs], alpha=alpha, score=score)
            np.testing.assert_allclose(got, shape(xs, alpha=alpha, score=score), atol=EXACT)
            assert isinstance(got, np.ndarray) and got.dtype == np.float64


# ---------------------------------------------------------------- refusals


def test_refusals(rng):
    xs = models(rng, 6, [3, 4])
    for alpha in (-0.1, 1.5, float("nan"), "x", None):
        with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\]"):
            shape(xs, alpha=alpha)
    with pytest.raises(ValueError, match="score must be one of"):
        shape(xs, score="bures")
    with pytest.raises(ValueError, match="m0 has 2 images .* at least 3"):
        shape(models(rng, 2, [3, 4]))
    bad = [xs[0], np.full((6, 4), 2.5)]
    with pytest.raises(ValueError, match="m1 has constant features"):
        shape(bad)
    with pytest.raises(ValueError, match="b0 has constant features"):
        shape(xs, [np.ones((6, 1))])
    huge = [1e308 * np.sign(x) for x in xs]  # finite, but ‖Xc‖_F is not
    assert np.all(np.isfinite(shape(huge))) and np.all(np.isfinite(shape(huge, alpha=0.5)))
    with pytest.raises(ValueError, match="overflows float64"):
        shape(huge, score="euclidean")
