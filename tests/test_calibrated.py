"""fastrsa.stats.calibrated (a measure against its permutation null) against a plain loop written
here: the same permutations (np.random.default_rng(seed).permuted of rows of arange(n), the
documented draw), each round every pair's measure computed plainly in float64 from its paper's
formula with the second model's rows relabelled, then the null's mean, std (ddof=0), the z-score
and the (1 + #)/(1 + K) p-values counted with the documented tie band.

Plain measures: linear CKA (Kornblith et al. 2019), RSA (correlation-distance RDMs compared by
Spearman's rho, scipy), mutual kNN (platonic-rep `mutual_knn`: cosine neighbours without self,
stable argsort; compared as integer counts), Procrustes angular distance (Williams et al. 2021:
arccos of the nuclear norm of Xcᵀ Yc over ‖Xc‖ ‖Yc‖; a distance, smaller = more similar).
Tolerances: score, null mean and std within 1e-10 (1e-9 for the arccos distance); p-values
exactly equal (counts).
"""

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from fastrsa.similarity import similarity
from fastrsa.stats import OverBudget, calibrated

TIE = 1e-10


# ---------------------------------------------------------------- plain references (float64)


def centred(x):
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0)


def cka_plain(x, y):
    x, y = centred(x), centred(y)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def rsa_plain(x, y):
    rx = pdist(np.asarray(x, dtype=np.float64), "correlation")
    ry = pdist(np.asarray(y, dtype=np.float64), "correlation")
    return spearmanr(rx, ry)[0]


def knn_plain(x, k):
    u = np.asarray(x, dtype=np.float64)
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    s = u @ u.T
    np.fill_diagonal(s, -1e8)
    table = np.argsort(-s, axis=1, kind="stable")[:, :k]
    mask = np.zeros(s.shape)
    mask[np.arange(len(s))[:, None], table] = 1.0
    return mask


def mutual_count(x, y, k=3):
    """n k times mutual kNN: the number of shared neighbours, an exact integer."""
    return int((knn_plain(x, k) * knn_plain(y, k)).sum())


def angular_plain(x, y):
    x, y = centred(x), centred(y)
    nuc = np.linalg.svd(x.T @ y, compute_uv=False).sum()
    return np.arccos(np.clip(nuc / (np.linalg.norm(x) * np.linalg.norm(y)), -1.0, 1.0))


# measure -> (plain pair function, its options, distance?, scale of a value for the tie band)
PLAIN = {
    "cka": (cka_plain, {}, False),
    "rsa": (rsa_plain, {}, False),
    "mutual-knn": (mutual_count, {"k": 3}, False),
    "procrustes": (angular_plain, {}, True),
}


def perms_of(seed, k, n):
    return np.random.default_rng(seed).permuted(np.tile(np.arange(n), (k, 1)), axis=1)


def plain_loop(measure, a, b, seed, k, max_over_pairs=False):
    """(score, mean, std, p) by the definition, one pair and one round at a time."""
    pair, _, distance = PLAIN[measure]
    second = a if b is None else b
    perms = perms_of(seed, k, a[0].shape[0])
    score = np.array([[pair(x, y) for y in second] for x in a], dtype=np.float64)
    null = np.array([[[pair(x, y[p]) for y in second] for x in a] for p in perms])
    if measure == "mutual-knn":  # counts -> the measure, for mean and std
        n, kk = a[0].shape[0], PLAIN[measure][1]["k"]
        scale = 1.0 / (n * kk)
    else:
        scale = 1.0
    sign = -1.0 if distance else 1.0
    signed = sign * null
    if max_over_pairs:
        signed = np.broadcast_to(signed.max(axis=(1, 2))[:, None, None], null.shape)
    band = TIE * np.maximum(np.maximum(np.abs(score), np.abs(signed)), 1.0)
    p = (1.0 + (signed >= sign * score - band).sum(axis=0)) / (1.0 + k)
    return score * scale, null.mean(axis=0) * scale, null.std(axis=0) * scale, p


def models(rng, n, widths):
    return [rng.normal(size=(n, d)) for d in widths]


WIDTHS = {"cka": (1, 5, 12), "procrustes": (1, 5, 12), "rsa": (3, 5, 12), "mutual-knn": (3, 5, 12)}


# ---------------------------------------------------------------- against the plain loop


@pytest.mark.parametrize("measure", list(PLAIN))
@pytest.mark.parametrize("with_other", [False, True])
def test_equals_plain_loop(measure, with_other):
    rng = np.random.default_rng(24)
    n, k, seed = 7, 25, 5
    a = models(rng, n, WIDTHS[measure])
    b = models(rng, n, (2, 9)) if with_other else None
    if with_other and measure in ("rsa", "mutual-knn"):
        b = models(rng, n, (4, 9))
    opts = PLAIN[measure][1]
    got = calibrated(a, measure, other=b, permutations=k, seed=seed, **opts)
    score, mean, std, p = plain_loop(measure, a, b, seed, k)
    atol = 1e-9 if measure == "procrustes" else 1e-10
    if measure == "procrustes" and not with_other:
        np.fill_diagonal(score, 0.0)  # fastrsa's exact diagonal; arccos(1 - eps) is ~1e-8
    if measure == "cka" and not with_other:
        np.fill_diagonal(score, 1.0)
    np.testing.assert_allclose(got.score, score, rtol=0, atol=atol)
    np.testing.assert_allclose(got.null_mean, mean, rtol=0, atol=atol)
    np.testing.assert_allclose(got.null_std, std, rtol=0, atol=atol)
    np.testing.assert_array_equal(got.p_value, p)
    np.testing.assert_allclose(got.calibrated, (got.score - mean) / std, rtol=1e-8)
    assert got.distance is (measure == "procrustes")
    assert got.score.dtype == np.float64 and got.p_value.shape == score.shape


@pytest.mark.parametrize("measure", ["cka", "procrustes"])
def test_max_over_pairs_equals_plain_loop_and_bounds_the_plain_p(measure):
    rng = np.random.default_rng(7)
    a, b = models(rng, 9, (2, 6)), models(rng, 9, (1, 3, 11))
    plain = calibrated(a, measure, other=b, permutations=40, seed=3)
    got = calibrated(a, measure, other=b, permutations=40, seed=3, max_over_pairs=True)
    np.testing.assert_array_equal(got.p_value, plain_loop(measure, a, b, 3, 40, True)[3])
    assert (got.p_value >= plain.p_value).all() and got.max_over_pairs
    np.testing.assert_array_equal(got.score, plain.score)  # the same draws, the same null
    np.testing.assert_array_equal(got.null_mean, plain.null_mean)


def test_smallest_n_and_a_permutation_null_of_3_images():
    rng = np.random.default_rng(3)
    a = models(rng, 3, (1, 4))  # n = 3: six permutations, the identity among them (a tie)
    got = calibrated(a, "cka", permutations=30, seed=0)
    score, mean, std, p = plain_loop("cka", a, None, 0, 30)
    np.testing.assert_allclose(got.null_mean, mean, atol=1e-10)
    np.testing.assert_array_equal(got.p_value, p)
    assert np.isfinite(got.calibrated).all()


# ---------------------------------------------------------------- behaviour


@pytest.mark.parametrize("measure", list(PLAIN))
def test_a_model_against_itself_has_the_smallest_p(measure):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(30, 6))
    k = 49
    got = calibrated([x], measure, other=[x], permutations=k, seed=2, **PLAIN[measure][1])
    assert got.p_value[0, 0] == 1 / (k + 1)
    on_diagonal = calibrated([x, x[:, ::-1]], measure, permutations=k, seed=2, **PLAIN[measure][1])
    assert (on_diagonal.p_value == 1 / (k + 1)).all()  # x[:, ::-1]: the same geometry
    z = got.calibrated[0, 0]
    assert (z < -3) if got.distance else (z > 3)


@pytest.mark.parametrize("measure", ["cka", "rsa", "mutual-knn", "procrustes"])
def test_independent_models_give_spread_p_values(measure):
    rng = np.random.default_rng(2024)
    a = models(rng, 30, (3, 8, 20, 50))
    off = ~np.eye(4, dtype=bool)
    opts = PLAIN[measure][1]
    got = calibrated(a, measure, permutations=99, seed=8, **opts)
    p = got.p_value[off]
    assert (p > 0.01).mean() >= 0.85
    assert 0.25 < p.mean() < 0.75
    assert np.abs(got.calibrated[off]).max() < 4
    best = calibrated(a, measure, permutations=99, seed=8, max_over_pairs=True, **opts)
    assert (best.p_value[off] > 0.05).all()  # no pair "significant" after the correction


def test_determinism_and_the_recorded_seed():
    rng = np.random.default_rng(1)
    a = models(rng, 10, (3, 4))
    one = calibrated(a, "cka", permutations=20, seed=4)
    two = calibrated(a, "cka", permutations=20, seed=4)
    for name in ("score", "null_mean", "null_std", "calibrated", "p_value"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    drawn = calibrated(a, "cka", permutations=20)
    again = calibrated(a, "cka", permutations=20, seed=drawn.seed)
    np.testing.assert_array_equal(drawn.null_mean, again.null_mean)
    other = calibrated(a, "cka", permutations=20, seed=5)
    assert not np.array_equal(one.null_mean, other.null_mean)


def test_keep_null_holds_every_round():
    rng = np.random.default_rng(6)
    a, b = models(rng, 8, (2, 5)), models(rng, 8, (3,))
    got = calibrated(a, "cka", other=b, permutations=12, seed=9, keep_null=True, memory="1GB")
    np.testing.assert_array_equal(got.permutations, perms_of(9, 12, 8))
    assert got.null.shape == (12, 2, 1)
    for null, p in zip(got.null, got.permutations, strict=True):
        np.testing.assert_array_equal(null, similarity(a, "cka", other=[b[0][p]]))
    np.testing.assert_allclose(got.null_mean, got.null.mean(axis=0), atol=1e-15)
    np.testing.assert_allclose(got.null_std, got.null.std(axis=0), atol=1e-15)
    plain = calibrated(a, "cka", other=b, permutations=12, seed=9)
    assert plain.null is None and plain.permutations is None
    np.testing.assert_array_equal(plain.p_value, got.p_value)


def test_a_null_that_never_moves_gives_no_nan():
    rng = np.random.default_rng(0)
    a = models(rng, 5, (3, 4))  # k = n - 1: every row's neighbours are all the others
    got = calibrated(a, "mutual-knn", permutations=10, seed=0, k=4)
    assert (got.score == 1).all() and (got.null_std == 0).all()
    assert (got.calibrated == 0).all() and (got.p_value == 1).all()


def test_invariances_rotation_scale_and_feature_order():
    rng = np.random.default_rng(12)
    a = models(rng, 11, (4, 6, 3))
    q = [np.linalg.qr(rng.normal(size=(x.shape[1],) * 2))[0] for x in a]
    moved = [1024.0 * (x @ r)[:, ::-1] for x, r in zip(a, q, strict=True)]
    for measure in ("cka", "procrustes"):
        one = calibrated(a, measure, permutations=30, seed=1)
        two = calibrated(moved, measure, permutations=30, seed=1)
        np.testing.assert_allclose(one.null_mean, two.null_mean, atol=1e-10)
        np.testing.assert_allclose(one.calibrated, two.calibrated, rtol=1e-7)
        np.testing.assert_array_equal(one.p_value, two.p_value)


def test_input_forms_stack_dict_float32_and_torch():
    rng = np.random.default_rng(13)
    stack = rng.normal(size=(3, 9, 4))
    want = calibrated(stack, "cka", permutations=15, seed=2)
    keyed = calibrated(
        {"a": stack[0], "b": stack[1], "c": stack[2]}, "cka", permutations=15, seed=2
    )
    np.testing.assert_array_equal(keyed.p_value, want.p_value)
    narrow = calibrated(stack.astype(np.float32), "cka", permutations=15, seed=2)
    np.testing.assert_allclose(narrow.null_mean, want.null_mean, atol=1e-5)
    torch = pytest.importorskip("torch")
    tensors = calibrated(torch.from_numpy(stack), "cka", permutations=15, seed=2)
    assert isinstance(tensors.score, np.ndarray)
    np.testing.assert_allclose(tensors.null_mean, want.null_mean, atol=1e-10)
    np.testing.assert_array_equal(tensors.p_value, want.p_value)


# ---------------------------------------------------------------- refusals


def test_refusals():
    rng = np.random.default_rng(0)
    a = models(rng, 6, (2, 3))
    with pytest.raises(ValueError, match=r"permutations must be >= 1; got 0"):
        calibrated(a, "cka", permutations=0)
    with pytest.raises(TypeError, match="permutations must be an int"):
        calibrated(a, "cka", permutations=10.0)
    with pytest.raises(TypeError, match="permutations must be an int"):
        calibrated(a, "cka", permutations=True)
    with pytest.raises(ValueError, match="measure must be one of 'rsa', 'cka'"):
        calibrated(a, "cosine")
    with pytest.raises(ValueError, match="measure must be one of"):
        calibrated(a, "attribution")
    with pytest.raises(ValueError, match=r"at least 3 images .* got n = 2"):
        calibrated(models(rng, 2, (2, 3)), "cka", permutations=5)
    with pytest.raises(ValueError, match=r"at least 3 images .* got n = 2"):
        calibrated(a, "cka", other=[np.ones((2, 3))], permutations=5)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        calibrated(a, "cka", seed=-1)
    with pytest.raises(TypeError, match="max_over_pairs must be True or False"):
        calibrated(a, "cka", max_over_pairs="yes")
    with pytest.raises(TypeError, match="keep_null must be True or False"):
        calibrated(a, "cka", keep_null=1)
    with pytest.raises(TypeError, match="unknown option"):
        calibrated(a, "cka", permutations=5, k=3)
    with pytest.raises(ValueError, match="features holds no models"):
        calibrated([], "cka")
    with pytest.raises(OverBudget, match="permutations: 1000000 rounds"):
        calibrated(a, "cka", permutations=10**6, keep_null=True, memory="1MB")
    with pytest.raises(ValueError, match="other.* has 5 images"):
        calibrated(a, "cka", other=models(rng, 5, (2,)), permutations=5)
