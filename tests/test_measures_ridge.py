"""Encoding predictivity (fastrsa/measures/ridge.py) against scikit-learn: `RidgeCV(alphas,
cv=None)` (efficient leave-one-out) or `RidgeCV(alphas, cv=KFold(inner))`, fitted on each outer
`KFold(folds, shuffle=False)` training part, its held-out predictions, and scipy's Pearson r
per unit, median over units; all float64.

Tolerances: predictions and r within 1e-8 of scikit-learn's; the alpha chosen in every fold
equal.
"""

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold

from fastrsa.measures import ridge as R

torch = pytest.importorskip("torch")

TOL = 1e-8
ALPHAS = R.DEFAULT_ALPHAS


def sklearn_cv(x, y, alphas, folds, inner):
    """Held-out predictions and per-fold alphas of RidgeCV, fitted fold by fold."""
    pred = np.empty_like(y)
    chosen = []
    for train, test in KFold(n_splits=folds, shuffle=False).split(x):
        cv = None if inner is None else KFold(n_splits=inner, shuffle=False)
        model = RidgeCV(alphas=alphas, cv=cv).fit(x[train], y[train])
        chosen.append(model.alpha_)
        pred[test] = model.predict(x[test]).reshape(len(test), -1)
    return pred, np.array(chosen)


def pearson_units(pred, y):
    return np.array([pearsonr(pred[:, j], y[:, j])[0] for j in range(y.shape[1])])


def pair(rng, n, d, units, noise):
    """A source (n, d) and a target (n, units) partly predictable from it, with offsets."""
    x = rng.standard_normal((n, d)) * rng.uniform(0.5, 3, d) + rng.standard_normal(d)
    y = x @ rng.standard_normal((d, units)) / np.sqrt(d) + noise * rng.standard_normal((n, units))
    return x, y + 5.0


CASES = [  # n, d, units, folds, inner, noise
    (23, 4, 3, 5, None, 1.0),  # n not a multiple of folds
    (17, 40, 6, 4, None, 0.5),  # d > n: eigen mode in sklearn
    (19, 1, 2, 3, None, 2.0),  # d = 1
    (30, 8, 20, 5, None, 3.0),  # units > rank: the C Cᵀ path of the LOO errors
    (4, 3, 2, 4, None, 0.3),  # n = 4, leave-one-out outside and inside
    (29, 6, 3, 5, 3, 1.0),  # inner k-fold
    (26, 35, 4, 3, 4, 0.5),  # inner k-fold, d > n
    (22, 1, 3, 4, 2, 2.0),  # inner k-fold, d = 1
]


@pytest.mark.parametrize("n, d, units, folds, inner, noise", CASES)
def test_ridge_cv_equals_sklearn_ridgecv(rng, n, d, units, folds, inner, noise):
    x, y = pair(rng, n, d, units, noise)
    want_pred, want_alpha = sklearn_cv(x, y, ALPHAS, folds, inner)
    got = R.ridge_cv(x, y, folds=folds, inner_folds=inner)
    np.testing.assert_array_equal(got.alphas, want_alpha)
    np.testing.assert_allclose(got.predictions, want_pred, rtol=0, atol=TOL)
    want_r = pearson_units(want_pred, y)
    np.testing.assert_allclose(got.r, want_r, rtol=0, atol=TOL)
    np.testing.assert_allclose(
        R.predictivity(x, y, folds=folds, inner_folds=inner), want_r, rtol=0, atol=TOL
    )


@pytest.mark.parametrize("n, folds", [(3, 3), (4, 2), (5, 2)])
def test_two_image_training_parts_tie_every_alpha_and_take_the_first(rng, n, folds):
    """Leaving one of 2 training images out leaves the intercept alone: every alpha has the
    same LOO error (RidgeCV's pick falls to rounding), so the first alpha is taken."""
    x, y = pair(rng, n, 5, 2, 0.3)
    got = R.ridge_cv(x, y, folds=folds)
    small = [len(t) == 2 for t, _ in KFold(n_splits=folds).split(x)]
    assert all(a == ALPHAS[0] for a, s in zip(got.alphas, small, strict=True) if s)
    want_pred, want_alpha = sklearn_cv(x, y, got.alphas[small][:1], folds, None)
    if all(small):
        np.testing.assert_allclose(got.predictions, want_pred, rtol=0, atol=TOL)
        np.testing.assert_allclose(got.r, pearson_units(want_pred, y), rtol=0, atol=TOL)


def test_alpha_selection_varies_and_matches(rng):
    """Noise levels that make RidgeCV pick different alphas; each is matched."""
    seen = set()
    for noise, inners in ((0.01, [None]), (0.3, [None, 3]), (3.0, [None]), (30.0, [None, 3])):
        x, y = pair(rng, 25, 10, 3, noise)
        for inner in inners:
            got = R.ridge_cv(x, y, folds=5, inner_folds=inner)
            np.testing.assert_array_equal(got.alphas, sklearn_cv(x, y, ALPHAS, 5, inner)[1])
            seen.update(got.alphas.tolist())
    assert len(seen) >= 3


def test_custom_alpha_grid(rng):
    x, y = pair(rng, 21, 7, 2, 1.0)
    alphas = (0.05, 0.7, 4.0, 60.0)
    want_pred, want_alpha = sklearn_cv(x, y, alphas, 4, None)
    got = R.ridge_cv(x, y, alphas=alphas, folds=4)
    np.testing.assert_array_equal(got.alphas, want_alpha)
    np.testing.assert_allclose(got.predictions, want_pred, rtol=0, atol=TOL)


@pytest.mark.parametrize("score", ["median", "mean"])
def test_ridge_matrix_all_pairs_and_two_sets(rng, score):
    n = 19
    xs = [pair(rng, n, d, 1, 0.0)[0] for d in (1, 5, 30)]
    names = ["a", "b", "c"]
    summary = np.median if score == "median" else np.mean
    want = np.empty((3, 3))
    for i, x in enumerate(xs):
        for j, y in enumerate(xs):
            want[i, j] = summary(pearson_units(sklearn_cv(x, y, ALPHAS, 5, None)[0], y))
    got = R.ridge_matrix(xs, None, score=score, names_a=names)
    assert got.dtype == np.float64 and got.shape == (3, 3)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    assert not np.allclose(got, got.T)  # asymmetric: row = source, column = target
    two = R.ridge_matrix(xs[:2], xs[1:], score=score, names_a=names[:2], names_b=names[1:])
    np.testing.assert_allclose(two, want[:2, 1:], rtol=0, atol=TOL)


def test_ridge_matrix_skips_constant_target_units(rng):
    x, y = pair(rng, 20, 4, 5, 1.0)
    y[:, [1, 3]] = 2.5
    keep = y[:, [0, 2, 4]]
    want = np.median(pearson_units(sklearn_cv(x, keep, ALPHAS, 5, None)[0], keep))
    got = R.ridge_matrix([x], [y], names_a=["x"], names_b=["y"])
    np.testing.assert_allclose(got, [[want]], rtol=0, atol=TOL)


def test_torch_and_float32_inputs(rng):
    x, y = pair(rng, 18, 6, 3, 1.0)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    want = R.predictivity(x32.astype(np.float64), y32.astype(np.float64))
    np.testing.assert_allclose(R.predictivity(x32, y32), want, rtol=0, atol=TOL)
    got = R.predictivity(torch.from_numpy(x), torch.from_numpy(y))
    np.testing.assert_allclose(got, R.predictivity(x, y), rtol=0, atol=TOL)
    mat = R.ridge_matrix([torch.from_numpy(x)], [torch.from_numpy(y)], names_a=["x"], names_b=["y"])
    np.testing.assert_allclose(mat, [[np.median(R.predictivity(x, y))]], rtol=0, atol=TOL)


def test_invariances(rng):
    """Rotating or permuting the source's features and scaling or shifting the target change
    nothing; scaling the source by c changes nothing when the alphas scale by c²."""
    x, y = pair(rng, 24, 5, 4, 1.0)
    base = R.ridge_cv(x, y)
    q = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    for x2, y2 in ((x @ q, y), (x[:, ::-1], y), (x, -3.0 * y + 7.0), (x, y * 2.0**-600)):
        other = R.ridge_cv(x2, y2)
        np.testing.assert_array_equal(other.alphas, base.alphas)
        np.testing.assert_allclose(np.abs(other.r), np.abs(base.r), rtol=0, atol=TOL)
    big = R.ridge_cv(x * 2.0**300, y, alphas=np.array(ALPHAS) * 2.0**600)
    np.testing.assert_allclose(big.r, base.r, rtol=0, atol=TOL)
    np.testing.assert_array_equal(big.alphas, base.alphas * 2.0**600)
    for scale in (1e-200, 1e200):  # alpha >> s² (the training means) and alpha << s²
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            assert np.isfinite(R.ridge_cv(x * scale, y).r).all()


def test_constant_predictions_give_zero_not_nan(rng):
    x = np.zeros((10, 2))
    x[0, 0] = 1.0  # constant in every training part that leaves image 0 out
    y = rng.standard_normal((10, 2))
    r = R.predictivity(x, y, folds=10)
    assert np.isfinite(r).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"folds": 30}, "folds=30 is more than the 20 images"),
        ({"folds": 1}, "folds must be an integer >= 2"),
        ({"folds": 2.0}, "folds must be an integer >= 2"),
        ({"alphas": (1.0, 0.0)}, "alphas must be finite and positive"),
        ({"alphas": (1.0, -2.0)}, "alphas must be finite and positive"),
        ({"alphas": ()}, "alphas must be finite and positive"),
        ({"alphas": (1.0, np.inf)}, "alphas must be finite and positive"),
        ({"inner_folds": 1}, "inner_folds must be None or an integer >= 2"),
        ({"inner_folds": 9}, "inner_folds=9 leaves inner held-out blocks of < 2 images"),
    ],
)
def test_refusals_of_options(rng, kwargs, match):
    x, y = pair(rng, 20, 3, 2, 1.0)
    with pytest.raises(ValueError, match=match):
        R.predictivity(x, y, **kwargs)


def test_refusals_of_inputs(rng):
    x, y = pair(rng, 20, 3, 3, 1.0)
    y[:, 1] = 4.0
    with pytest.raises(ValueError, match="target unit 1 is constant over all images"):
        R.predictivity(x, y)
    with pytest.raises(ValueError, match="v1 has no unit that varies"):
        R.ridge_matrix([x], [np.ones((20, 2))], names_a=["x"], names_b=["v1"])
    with pytest.raises(ValueError, match="m2 is constant"):
        R.ridge_matrix([x, np.full((20, 4), 3.0)], [x], names_a=["m1", "m2"], names_b=["t"])
    with pytest.raises(ValueError, match="score must be one of"):
        R.ridge_matrix([x], None, score="max", names_a=["x"])
    with pytest.raises(ValueError, match="target has 19 images but source has 20"):
        R.predictivity(x, y[:19])
    with pytest.raises(ValueError, match="source must be 2-D"):
        R.predictivity(x[:, 0], y)
    with pytest.raises(ValueError, match="target holds NaN"):
        R.predictivity(x, np.full((20, 2), np.nan))
    with pytest.raises(ValueError, match="folds=2 leaves 1 training image"):
        R.predictivity(x[:3], x[:3] ** 2, folds=2)


def wide_models(rng, n, widths, rank=None):
    """Models wider than n (features > training images: the kernel form and the Gram route),
    sharing a latent signal so that the chosen alphas differ; `rank` < n makes the first one
    rank-deficient (U does not span every centred direction)."""
    latent = rng.standard_normal((n, 3))
    out = []
    for i, d in enumerate(widths):
        x = latent @ rng.standard_normal((3, d)) + (0.2 + i) * rng.standard_normal((n, d))
        out.append(x * rng.uniform(0.5, 2.0, d) + rng.standard_normal(d))
    if rank is not None:
        out[0] = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, widths[0])) + 4.0
    return out


@pytest.mark.parametrize(
    "n, widths, folds, rank",
    [(13, (20, 27, 41), 5, None), (4, (5, 9), 4, None), (17, (30, 18, 25, 60), 3, 6)],
)
def test_gram_route_equals_sklearn_ridgecv(rng, monkeypatch, n, widths, folds, rank):
    """All pairs of wide models (d > m, units >= n): the LOO losses from the targets' Grams and
    the (n, n) prediction maps give scikit-learn's RidgeCV loop (alphas and r)."""
    xs = wide_models(rng, n, widths, rank)
    calls = []
    gram_fits = R._gram_fits
    monkeypatch.setattr(R, "_gram_fits", lambda *a: calls.append(1) or gram_fits(*a))
    names = [f"m{i}" for i in range(len(xs))]
    got = R.ridge_matrix(xs, None, folds=folds, names_a=names)
    assert len(calls) == len(xs)  # every source took the Gram route
    want = np.array(
        [
            [np.median(pearson_units(sklearn_cv(x, y, ALPHAS, folds, None)[0], y)) for y in xs]
            for x in xs
        ]
    )
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


def test_gram_route_equals_the_per_target_route(rng, monkeypatch):
    """Larger (n = 61, 5 folds, 6 models of 70-130 features): the Gram route and the per-target
    fits (the route tested against scikit-learn above, forced by GRAM_BYTES = 0) agree."""
    xs = wide_models(rng, 61, (70, 90, 130, 75, 100, 80), rank=None)
    names = [f"m{i}" for i in range(6)]
    fast = R.ridge_matrix(xs, None, names_a=names, score="mean")
    monkeypatch.setattr(R, "GRAM_BYTES", 0)
    slow = R.ridge_matrix(xs, None, names_a=names, score="mean")
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    assert len(np.unique(np.round(fast, 6))) == fast.size  # scores differ, none degenerate


def test_gram_route_skipped_for_narrow_targets_and_sources(rng, monkeypatch):
    """A target with fewer units than images or a source narrower than the training part takes
    the per-target route; results equal scikit-learn's either way."""
    xs = wide_models(rng, 15, (30, 22), rank=None)
    narrow = xs[1][:, :5]
    calls = []
    gram_fits = R._gram_fits
    monkeypatch.setattr(R, "_gram_fits", lambda *a: calls.append(1) or gram_fits(*a))
    mixed = R.ridge_matrix(xs, [xs[0], narrow], names_a=["a", "b"], names_b=["a", "n"])
    src = R.ridge_matrix([narrow], xs, names_a=["n"], names_b=["a", "b"])
    assert calls == []
    for x, row in ((xs[0], mixed[0]), (xs[1], mixed[1])):
        for y, v in zip((xs[0], narrow), row, strict=True):
            want = np.median(pearson_units(sklearn_cv(x, y, ALPHAS, 5, None)[0], y))
            np.testing.assert_allclose(v, want, rtol=0, atol=TOL)
    for y, v in zip(xs, src[0], strict=True):
        want = np.median(pearson_units(sklearn_cv(narrow, y, ALPHAS, 5, None)[0], y))
        np.testing.assert_allclose(v, want, rtol=0, atol=TOL)
