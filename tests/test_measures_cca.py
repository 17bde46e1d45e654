"""Mean CCA and PWCCA (fastrsa.measures.svcca.cca_matrix) against plain float64 references:

- a port of the authors' google/svcca `cca_core.get_cca_similarity` + `pwcca.compute_pwcca`
  (epsilon 0; (neurons, datapoints) inputs, more datapoints than neurons, first model no wider
  than the second: the branch of `compute_pwcca` that weights acts1). Unmodified, it equals the
  paper's PWCCA when the first model's centred neurons are orthogonal with equal norms (its
  canonical directions omit Σxx^-1/2, its weights use uncentred neurons); with Σxx^-1/2 put
  back (the paper's canonical variates, Morcos et al. 2018 section 2.3) on centred inputs, for
  any features;
- the paper's formulas with scipy.linalg (CCA of the SVD-reduced sets, canonical variates,
  weights over the first model's neurons), and scipy.linalg.subspace_angles for mean CCA.

Tolerances: float64 within 1e-10 (1e-9 where the reference takes matrix square roots of
covariances); float32 within 1e-4 of float64.
"""

import numpy as np
import pytest
import scipy.linalg

from fastrsa.measures import svcca as S

torch = pytest.importorskip("torch")

ATOL = 1e-10
SQRTM_ATOL = 1e-9
F32_ATOL = 1e-4


# ---------------------------------------------------------------- plain references (float64)


def _psd_sqrt(c):  # cca_core.positivedef_matrix_sqrt
    w, v = np.linalg.eigh(c)
    return v @ np.diag(np.sqrt(w)) @ v.conj().T


def google_pwcca(acts1, acts2, fixed=False):
    """cca_core.get_cca_similarity(epsilon=0) + pwcca.compute_pwcca on (neurons, datapoints)
    arrays; returns (pwcca, mean of cca_coef1). `fixed`: canonical directions coef_x @ invsqrt_xx
    (the paper's) instead of coef_x."""
    numx, numy = acts1.shape[0], acts2.shape[0]
    assert numx <= numy < acts1.shape[1]  # the branch that weights acts1; their assertion
    cov = np.cov(acts1, acts2)
    sxx, sxy, syy = cov[:numx, :numx], cov[:numx, numx:], cov[numx:, numx:]
    xmax, ymax = np.max(np.abs(sxx)), np.max(np.abs(syy))
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / np.sqrt(xmax * ymax)
    invsqrt_xx = _psd_sqrt(np.linalg.pinv(sxx))
    invsqrt_yy = _psd_sqrt(np.linalg.pinv(syy))
    u, s, _ = np.linalg.svd(invsqrt_xx @ sxy @ invsqrt_yy)
    coefs = np.abs(s)
    coef_x = u.T @ invsqrt_xx if fixed else u.T
    means = acts1.mean(axis=1, keepdims=True)
    dirns = coef_x @ (acts1 - means) + means
    p, _ = np.linalg.qr(dirns.T)
    weights = np.sum(np.abs(p.T @ acts1.T), axis=1)
    weights = weights / np.sum(weights)
    return np.sum(weights * coefs), np.mean(coefs)


def reduce(z, variance):
    """Centred features projected on the top SVD directions keeping `variance` (Raghu et al.)."""
    z = z - z.mean(0)
    _, s, vt = scipy.linalg.svd(z, full_matrices=False)
    share = np.cumsum(s**2) / np.sum(s**2)
    k = int(np.argmax(share >= variance - 1e-12)) + 1
    return z, z @ vt[:k].T


def plain_cca(x, y, variance, weighting):
    """Morcos et al. (2018): CCA of the reduced sets a, b (scipy); canonical variates
    h_i = a Caa^-1/2 p_i normalised; weights sum_j |<h_i, z_j>| over x's centred neurons z_j."""
    xc, a = reduce(x, variance)
    b = reduce(y, variance)[1]
    inv_sqrt = lambda c: scipy.linalg.inv(scipy.linalg.sqrtm(c).real)  # noqa: E731
    p, rho, _ = scipy.linalg.svd(
        inv_sqrt(a.T @ a) @ (a.T @ b) @ inv_sqrt(b.T @ b), full_matrices=False
    )
    rho = np.clip(rho, 0, 1)
    if weighting == "mean":
        return rho.mean()
    h = a @ inv_sqrt(a.T @ a) @ p
    h /= np.linalg.norm(h, axis=0)
    w = np.abs(xc.T @ h).sum(axis=0)
    return np.sum(w * rho) / np.sum(w)


def mean_cca_angles(x, y):
    """Mean cosine of the principal angles between the centred column spaces (scipy)."""
    return np.cos(scipy.linalg.subspace_angles(x - x.mean(0), y - y.mean(0))).mean()


def cca(xs, ys=None, **kw):
    names_a = [f"features[{i}]" for i in range(len(xs))]
    names_b = [f"other[{i}]" for i in range(len(ys))] if ys is not None else ()
    return S.cca_matrix(xs, ys, names_a=names_a, names_b=names_b, **kw)


def models(rng, n, widths):
    """Correlated models: shared latents through random maps, plus noise and offsets."""
    z = rng.standard_normal((n, 6))
    return [
        z @ rng.standard_normal((6, d)) + 0.7 * rng.standard_normal((n, d)) + rng.normal(0, 3, d)
        for d in widths
    ]


def pairs(fn, xs, ys=None):
    ys = xs if ys is None else ys
    return np.array([[fn(x, y) for y in ys] for x in xs])


# ---------------------------------------------------------------- the authors' code


def test_pwcca_equals_unmodified_google_code_on_whitened_first_model(rng):
    """Centred first model with orthogonal equal-norm neurons: compute_pwcca as published."""
    n = 53
    for da, db in [(3, 3), (4, 7), (1, 5), (6, 11)]:
        z = rng.standard_normal((n, da))
        x = np.linalg.qr(z - z.mean(0))[0] * 2.5  # centred, orthogonal, equal norms
        y = x @ rng.standard_normal((da, db)) + 0.8 * rng.standard_normal((n, db))
        want, want_mean = google_pwcca(x.T, y.T)
        got = cca([x + 7.0], [y - 3.0], weighting="pwcca")[0, 0]
        np.testing.assert_allclose(got, want, rtol=0, atol=SQRTM_ATOL)
        got_mean = cca([x], [y], weighting="mean")[0, 0]
        np.testing.assert_allclose(got_mean, want_mean, rtol=0, atol=SQRTM_ATOL)


@pytest.mark.parametrize("n, widths", [(37, [1, 4, 9, 9]), (61, [5, 12, 20])])
def test_pwcca_equals_google_code_with_paper_directions(rng, n, widths):
    xs = models(rng, n, widths)
    got = cca(xs, weighting="pwcca")
    got_mean = cca(xs, weighting="mean")
    for i, x in enumerate(xs):
        for j, y in enumerate(xs):
            if x.shape[1] <= y.shape[1]:
                want, want_mean = google_pwcca((x - x.mean(0)).T, (y - y.mean(0)).T, fixed=True)
                np.testing.assert_allclose(got[i, j], want, rtol=0, atol=SQRTM_ATOL)
                np.testing.assert_allclose(got_mean[i, j], want_mean, rtol=0, atol=SQRTM_ATOL)


# ---------------------------------------------------------------- the papers' formulas


@pytest.mark.parametrize("weighting", ["mean", "pwcca"])
@pytest.mark.parametrize("variance", [1.0, 0.99, 0.8, 0.5])
@pytest.mark.parametrize("n, widths", [(3, [1, 2, 5]), (4, [3, 1]), (29, [2, 7, 40, 13])])
def test_equals_plain_formula(rng, n, widths, variance, weighting):
    """n = 3 (the least), d = 1, d > n, widths differing, every reduction level."""
    xs = models(rng, n, widths)
    got = cca(xs, variance=variance, weighting=weighting)
    want = pairs(lambda x, y: plain_cca(x, y, variance, weighting), xs)
    np.testing.assert_allclose(got, want, rtol=0, atol=SQRTM_ATOL)
    assert got.dtype == np.float64 and got.shape == (len(xs), len(xs))
    assert np.all((got >= 0) & (got <= 1))
    np.testing.assert_allclose(np.diag(got), 1.0, rtol=0, atol=ATOL)
    if weighting == "mean":
        np.testing.assert_array_equal(got, got.T)


@pytest.mark.parametrize("weighting", ["mean", "pwcca"])
def test_other_models_and_all_pairs_agree(rng, weighting):
    xs, ys = models(rng, 41, [3, 8, 15]), models(rng, 41, [6, 2])
    got = cca(xs, ys, variance=0.9, weighting=weighting)
    want = pairs(lambda x, y: plain_cca(x, y, 0.9, weighting), xs, ys)
    np.testing.assert_allclose(got, want, rtol=0, atol=SQRTM_ATOL)
    np.testing.assert_allclose(
        cca(xs, weighting=weighting), cca(xs, xs, weighting=weighting), rtol=0, atol=ATOL
    )


def test_mean_cca_equals_principal_angles(rng):
    xs = models(rng, 47, [1, 4, 10, 30])
    got = cca(xs)
    np.testing.assert_allclose(got, pairs(mean_cca_angles, xs), rtol=0, atol=ATOL)


def test_svcca_is_mean_cca_at_099(rng):
    xs = models(rng, 35, [4, 9, 20])
    names = [f"features[{i}]" for i in range(3)]
    np.testing.assert_array_equal(
        S.svcca_matrix(xs, None, names_a=names), cca(xs, variance=0.99, weighting="mean")
    )
    np.testing.assert_array_equal(
        S.svcca_matrix(xs, None, variance=0.7, names_a=names), cca(xs, variance=0.7)
    )


def test_pwcca_is_asymmetric_weighted_by_first(rng):
    x, y = models(rng, 50, [4, 12])
    got = cca([x, y], weighting="pwcca")
    assert abs(got[0, 1] - got[1, 0]) > 1e-3
    np.testing.assert_allclose(got[0, 1], plain_cca(x, y, 1.0, "pwcca"), rtol=0, atol=SQRTM_ATOL)
    np.testing.assert_allclose(got[1, 0], plain_cca(y, x, 1.0, "pwcca"), rtol=0, atol=SQRTM_ATOL)
    # weights differ from uniform: PWCCA differs from the mean canonical correlation
    assert abs(got[0, 1] - cca([x], [y])[0, 0]) > 1e-3


def test_d_above_n_keeps_n_minus_1_directions(rng):
    """Two models of width >= n - 1 span the same centred space: every correlation is 1."""
    xs = [rng.standard_normal((7, d)) for d in (6, 9, 30)]
    for weighting in ("mean", "pwcca"):
        np.testing.assert_allclose(cca(xs, weighting=weighting), 1.0, rtol=0, atol=ATOL)


# ---------------------------------------------------------------- invariances


def test_invariances(rng):
    n, da, db = 60, 6, 9
    x, y = models(rng, n, [da, db])
    base = {w: cca([x], [y], weighting=w)[0, 0] for w in ("mean", "pwcca")}
    perm, signs = rng.permutation(da), rng.choice([-1.0, 1.0], da)
    lin_b = rng.standard_normal((db, db)) @ np.diag(np.geomspace(1, 50, db))  # invertible
    rot_a = np.linalg.qr(rng.standard_normal((da, da)))[0]
    # scale and offset of either, any invertible map of the second model
    for xa, yb in [(1e-30 * x, 1e30 * y), (x + 1e3, y - 2), (x, y @ lin_b)]:
        for w in ("mean", "pwcca"):
            np.testing.assert_allclose(cca([xa], [yb], weighting=w)[0, 0], base[w], atol=1e-9)
    # permutation and sign flips of the first model's neurons
    np.testing.assert_allclose(
        cca([x[:, perm] * signs], [y], weighting="pwcca")[0, 0], base["pwcca"], atol=ATOL
    )
    # mean CCA: any invertible map of the first too; PWCCA: not even a rotation
    np.testing.assert_allclose(cca([x @ rot_a], [y])[0, 0], base["mean"], atol=ATOL)
    assert abs(cca([x @ rot_a], [y], weighting="pwcca")[0, 0] - base["pwcca"]) > 1e-4
    # variance < 1: mean CCA (SVCCA) is invariant to rotations of either (not to linear maps)
    rot_b = np.linalg.qr(rng.standard_normal((db, db)))[0]
    np.testing.assert_allclose(
        cca([x @ rot_a], [y @ rot_b], variance=0.8)[0, 0],
        cca([x], [y], variance=0.8)[0, 0],
        atol=ATOL,
    )


# ---------------------------------------------------------------- numpy and torch, float32


@pytest.mark.parametrize("weighting", ["mean", "pwcca"])
def test_torch_and_float32(rng, weighting):
    xs = models(rng, 45, [3, 10, 16])
    want = cca(xs, weighting=weighting, variance=0.95)
    got_t = cca([torch.from_numpy(x) for x in xs], weighting=weighting, variance=0.95)
    assert isinstance(got_t, np.ndarray) and got_t.dtype == np.float64
    np.testing.assert_allclose(got_t, want, rtol=0, atol=ATOL)
    for f32 in ([x.astype(np.float32) for x in xs], [torch.from_numpy(x).float() for x in xs]):
        got = cca(f32, weighting=weighting, variance=0.95)
        np.testing.assert_allclose(got, want, rtol=0, atol=F32_ATOL)
        assert np.all(np.isfinite(got))


# ---------------------------------------------------------------- refusals


def test_refusals(rng):
    x = rng.standard_normal((6, 3))
    for bad in (0, 0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"^variance must be in \(0, 1\]; got"):
            cca([x], variance=bad)
        with pytest.raises(ValueError, match=r"^variance must be in \(0, 1\]"):
            S.svcca_matrix([x], None, variance=bad, names_a=["features[0]"])
    for bad in (True, "0.9", None):
        with pytest.raises(TypeError, match=r"^variance must be a number in \(0, 1\]"):
            cca([x], variance=bad)
    with pytest.raises(ValueError, match=r"^weighting must be one of \('mean', 'pwcca'\); got"):
        cca([x], weighting="projection")
    for w, label in (("mean", "CCA"), ("pwcca", "PWCCA")):
        with pytest.raises(ValueError, match=rf"^features\[0\] has n = 2 images; {label} needs"):
            cca([x[:2]], weighting=w)
        with pytest.raises(
            ValueError, match=rf"^features\[1\] has zero variance \(constant features\), so {label}"
        ):
            cca([x, np.ones((6, 2))], weighting=w)
        with pytest.raises(ValueError, match=r"^other\[0\] has zero variance"):
            cca([x], [np.full((6, 4), 3.0)], weighting=w)
    with pytest.raises(ValueError, match=r"^features\[0\] has zero variance.*so SVCCA"):
        cca([np.ones((6, 2))], variance=0.9)
