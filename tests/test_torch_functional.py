"""fastrsa.torch's functional ops (rdms, compare, rsa, cka, cka_matrix) against fastrsa's numpy
ops (fastrsa.rdms, fastrsa.compare, fastrsa.similarity "cka"), float64 gradcheck of every op and
argument, float32 against float64, invariances and refusals.

Tolerances: forward within 1e-10 (float64) and 1e-5 (float32) of the numpy ops in float64;
float32 gradients within 1e-4 · max|grad| (+1e-5) of the float64 gradients.
"""

import numpy as np
import pytest

import fastrsa

torch = pytest.importorskip("torch")

import fastrsa.torch as ft  # noqa: E402

F64, F32 = 1e-10, 1e-5
SHAPES = [(3, 2), (17, 5), (2, 9, 1), (2, 3, 6, 4)]  # n = 3, n odd, d = 1, batch dims


def features(rng, shape, offset=True):
    x = rng.standard_normal(shape)
    return x + rng.standard_normal(shape[:-1] + (1,)) if offset else x


def t(x, dtype=torch.float64, grad=False):
    return torch.tensor(x, dtype=dtype, requires_grad=grad)


# ---------------------------------------------------------------- forward vs numpy


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("metric", ["correlation", "cosine", "euclidean"])
def test_rdms_equal_fastrsa_rdms(rng, shape, metric):
    if metric == "correlation" and shape[-1] == 1:
        shape = shape[:-1] + (2,)  # a row of one value is constant: refused (below)
    x = features(rng, shape)
    want = np.asarray(fastrsa.rdms(x, metric))
    got = ft.rdms(t(x), metric)
    assert got.shape == want.shape and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=F64)
    got32 = ft.rdms(t(x, torch.float32), metric)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), want, rtol=0, atol=F32 * max(1, np.abs(want).max()))


@pytest.mark.parametrize("method", ["pearson", "cosine"])
@pytest.mark.parametrize("sizes", [(1, 1, 2), (4, 3, 10), (5, None, 37)])
def test_compare_equals_fastrsa_compare(rng, method, sizes):
    na, nb, m = sizes
    a = rng.standard_normal((na, m)) + 0.5
    b = None if nb is None else rng.standard_normal((nb, m))
    want = np.asarray(fastrsa.compare(a, b, method))
    got = ft.compare(t(a), None if b is None else t(b), method)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=F64)
    got32 = ft.compare(t(a, torch.float32), None if b is None else t(b, torch.float32), method)
    np.testing.assert_allclose(got32.numpy(), want, rtol=0, atol=F32)


def test_compare_one_vector_drops_its_dimension(rng):
    a, b = rng.standard_normal((3, 8)), rng.standard_normal(8)
    full = ft.compare(t(a), t(b[None]))
    assert ft.compare(t(a), t(b)).shape == (3,)
    assert ft.compare(t(b), t(a)).shape == (3,)
    assert ft.compare(t(b), t(b)).shape == ()
    np.testing.assert_allclose(ft.compare(t(a), t(b)).numpy(), full[:, 0].numpy(), atol=0)


@pytest.mark.parametrize("method", ["pearson", "cosine", "spearman"])
def test_compare_paired_is_the_diagonal_and_broadcasts(rng, method):
    a, b = t(rng.standard_normal((4, 9))), t(rng.standard_normal((4, 9)))
    full = ft.compare(a, b, method, 0.3)
    got = ft.compare(a, b, method, 0.3, paired=True)
    assert got.shape == (4,)
    np.testing.assert_allclose(got, full.diagonal(), rtol=0, atol=F64)
    one = ft.compare(a, b[1], method, 0.3, paired=True)  # one row of b for every row of a
    np.testing.assert_allclose(one, full[:, 1], rtol=0, atol=F64)
    grid = ft.compare(a[:, None], b[None], method, 0.3, paired=True)  # (4, 1) x (1, 4)
    np.testing.assert_allclose(grid, full, rtol=0, atol=F64)
    with pytest.raises(ValueError, match="needs b"):
        ft.compare(a, paired=True)
    with pytest.raises(ValueError, match="do not broadcast"):
        ft.compare(a, b[:3], paired=True)
    with pytest.raises(ValueError, match="same number"):
        ft.compare(a, b[:, :5], paired=True)
    with pytest.raises(TypeError, match="paired must be"):
        ft.compare(a, b, paired=1)


def test_spearman_limits(rng):
    """Exact Spearman's rho for regularization below the gaps; exactly Pearson once every value
    pools (regularization >= 2 (max - min) / m)."""
    a, b = rng.standard_normal((3, 40)), rng.standard_normal((2, 40))
    exact = np.asarray(fastrsa.compare(a, b, "spearman"))
    got = ft.compare(t(a), t(b), "spearman", regularization=1e-6)
    np.testing.assert_allclose(got.numpy(), exact, rtol=0, atol=F64)
    big = ft.compare(t(a), t(b), "spearman", regularization=10.0)
    np.testing.assert_allclose(big.numpy(), np.asarray(fastrsa.compare(a, b, "pearson")), atol=F64)


@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
def test_rsa_equals_rdms_then_compare_per_batch_element(rng, metric):
    x, y = features(rng, (2, 3, 11, 4)), features(rng, (3, 11, 7))  # batch dims broadcast
    got = ft.rsa(t(x), t(y), metric)
    assert got.shape == (2, 3)
    rx, ry = np.asarray(fastrsa.rdms(x, metric)), np.asarray(fastrsa.rdms(y, metric))
    for i in range(2):
        for j in range(3):
            want = np.asarray(fastrsa.compare(rx[i, j][None], ry[j][None], "pearson"))[0, 0]
            assert abs(float(got[i, j]) - want) < F64
    got32 = ft.rsa(t(x, torch.float32), t(y, torch.float32), metric)
    np.testing.assert_allclose(got32.numpy(), got.numpy(), rtol=0, atol=F32)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("n, widths", [(4, [1, 3]), (13, [5, 2, 20])])
def test_cka_and_cka_matrix_equal_fastrsa_similarity(rng, kernel, debiased, n, widths):
    xs = [features(rng, (n, d), offset=False) + rng.standard_normal(d) for d in widths]
    want = np.asarray(fastrsa.similarity(xs, "cka", kernel=kernel, debiased=debiased))
    got = ft.cka_matrix([t(x) for x in xs], kernel, debiased)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=F64)
    got32 = ft.cka_matrix([t(x, torch.float32) for x in xs], kernel, debiased)
    np.testing.assert_allclose(got32.numpy(), want, rtol=0, atol=F32)
    pair = ft.cka(t(xs[0]), t(xs[1]), kernel, debiased)
    assert abs(float(pair) - want[0, 1]) < F64
    # a (B, n, d) batch (one width), and cka broadcasting its batch dims
    batch = np.stack([xs[-1], 2 * xs[-1] + 1, features(rng, xs[-1].shape)])
    want_b = np.asarray(fastrsa.similarity(batch, "cka", kernel=kernel, debiased=debiased))
    got_b = ft.cka_matrix(t(batch), kernel, debiased)
    np.testing.assert_allclose(got_b.numpy(), want_b, rtol=0, atol=F64)
    paired = ft.cka(t(batch[:, None]), t(batch[None]), kernel, debiased)  # broadcast
    np.testing.assert_allclose(paired.numpy(), want_b, rtol=0, atol=F64)


def test_debiased_cka_may_be_negative_and_is_not_nan(rng):
    vals = [
        float(ft.cka(t(features(rng, (6, 2))), t(features(rng, (6, 2))), debiased=True))
        for _ in range(20)
    ]
    assert np.isfinite(vals).all() and min(vals) < 0


# ---------------------------------------------------------------- gradients


def check_grads(fn, *arrays):
    """gradcheck in float64; float32 gradients within 1e-4 max|g| + 1e-5 of the float64 ones."""
    inputs = [t(a, grad=True) for a in arrays]
    assert torch.autograd.gradcheck(fn, inputs)
    g64 = torch.autograd.grad(fn(*inputs).sum(), inputs)
    inputs32 = [t(a, torch.float32, grad=True) for a in arrays]
    g32 = torch.autograd.grad(fn(*inputs32).sum(), inputs32)
    for a, b in zip(g32, g64, strict=True):
        np.testing.assert_allclose(a.double(), b, rtol=0, atol=1e-4 * b.abs().max() + 1e-5)


@pytest.mark.parametrize("metric", ["correlation", "cosine", "euclidean"])
@pytest.mark.parametrize("shape", [(3, 2), (2, 5, 3)])
def test_rdms_gradcheck(rng, metric, shape):
    check_grads(lambda x: ft.rdms(x, metric), features(rng, shape))


@pytest.mark.parametrize("method, eps", [("pearson", 1.0), ("cosine", 1.0), ("spearman", 0.1)])
def test_compare_gradcheck(rng, method, eps):
    a, b = rng.standard_normal((3, 7)), rng.standard_normal((2, 7))
    check_grads(lambda u, v: ft.compare(u, v, method, eps), a, b)
    check_grads(lambda u: ft.compare(u, None, method, eps), a)


@pytest.mark.parametrize("metric, method", [("correlation", "pearson"), ("cosine", "spearman")])
def test_rsa_gradcheck(rng, metric, method):
    x, y = features(rng, (2, 5, 3)), features(rng, (5, 4))
    check_grads(lambda u, v: ft.rsa(u, v, metric, method, 0.05), x, y)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("debiased", [False, True])
def test_cka_gradcheck(rng, kernel, debiased):
    x, y = features(rng, (2, 6, 3)), features(rng, (6, 1))
    check_grads(lambda u, v: ft.cka(u, v, kernel, debiased, 0.8), x, y)
    check_grads(lambda u: ft.cka_matrix(u, kernel, debiased), features(rng, (3, 5, 2)))
    check_grads(lambda u, v: ft.cka_matrix([u, v], kernel, debiased), x[0], y)


# ---------------------------------------------------------------- invariances


def test_invariances(rng):
    """Scale and row offsets (rdms, rsa), scale (cka), image order (rsa, cka: permuting the
    images of both inputs alike)."""
    x, y = features(rng, (12, 5)), features(rng, (12, 8))
    rx = ft.rdms(t(x))
    np.testing.assert_allclose(ft.rdms(t(3e3 * x + rng.standard_normal((12, 1)))), rx, atol=1e-12)
    p = rng.permutation(12)
    for fn in (ft.rsa, ft.cka, lambda u, v: ft.cka(u, v, "rbf", True)):
        base = fn(t(x), t(y))
        np.testing.assert_allclose(fn(t(1e-3 * x), t(7e2 * y)), base, rtol=0, atol=1e-12)
        np.testing.assert_allclose(fn(t(x[p]), t(y[p])), base, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        ft.rsa(t(1e30 * x, torch.float32), t(y, torch.float32)), ft.rsa(t(x), t(y)), atol=F32
    )


# ---------------------------------------------------------------- refusals

X = torch.randn(5, 3, dtype=torch.float64)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: ft.rdms(np.ones((4, 3))), TypeError, "x must be a torch.Tensor"),
        (lambda: ft.rdms(torch.ones(4, 3, dtype=torch.int64)), TypeError, "floating-point"),
        (lambda: ft.rdms(X[:2]), ValueError, "at least 3 images"),
        (lambda: ft.rdms(X[:, :0]), ValueError, "d = 0"),
        (lambda: ft.rdms(X[0]), ValueError, r"x must be \(\.\.\., n images"),
        (lambda: ft.rdms(X, "manhattan"), ValueError, "metric must be one of"),
        (lambda: ft.rdms(X[:, :1]), ValueError, r"x: row \(0,\) is constant"),
        (lambda: ft.rdms(torch.cat([X, X[:1] * 0]), "cosine"), ValueError, "row .5,. is all zero"),
        (lambda: ft.rdms(X.index_fill(0, torch.tensor([2]), float("nan"))), ValueError, "NaN"),
        (lambda: ft.compare(X, X[:, :2]), ValueError, "same number of values"),
        (lambda: ft.compare(X[:, :1]), ValueError, "at least 2 values"),
        (lambda: ft.compare(X[None]), ValueError, "a must be"),
        (lambda: ft.compare(X, method="kendall"), ValueError, "method must be one of"),
        (lambda: ft.compare(X, regularization=-1.0), ValueError, "regularization"),
        (lambda: ft.compare(torch.ones(2, 4), method="spearman"), ValueError, "a: row .0,. is "),
        (lambda: ft.rsa(X, X[:4]), ValueError, "same number of images"),
        (lambda: ft.cka(X, X[:4]), ValueError, "same number of images"),
        (lambda: ft.cka(X, X, kernel="laplacian"), ValueError, "kernel must be one of"),
        (lambda: ft.cka(X, X, threshold=0.0), ValueError, "threshold"),
        (lambda: ft.cka(X[:3], X[:3], debiased=True), ValueError, "at least 4 images"),
        (lambda: ft.cka(X, torch.ones(5, 2)), ValueError, "y: model 0 .* constant features"),
        (
            lambda: ft.cka(X, torch.ones(5, 2).index_fill(0, torch.tensor([0]), 2.0), "rbf"),
            ValueError,
            "bandwidth is 0",
        ),
        (lambda: ft.cka_matrix(X), ValueError, r"xs must be \(B, n, d\)"),
        (lambda: ft.cka_matrix([]), TypeError, "non-empty list"),
        (lambda: ft.cka_matrix([X, X[:4]]), ValueError, r"xs\[1\] must be \(n, d\)"),
    ],
)
def test_refusals(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.gpu
def test_cuda_equals_cpu(rng):
    x, y = features(rng, (2, 20, 6)), features(rng, (20, 9))
    for fn in (
        lambda u, v: ft.rsa(u, v, method="spearman", regularization=0.01),
        lambda u, v: ft.cka(u, v, "rbf", True),
        lambda u, v: ft.cka_matrix(u).sum() + ft.rsa(u, v).sum(),
    ):
        cpu = [t(x, grad=True), t(y, grad=True)]
        gpu = [a.detach().cuda().requires_grad_(True) for a in cpu]
        out_c, out_g = fn(*cpu), fn(*gpu)
        np.testing.assert_allclose(out_g.cpu().detach(), out_c.detach(), rtol=0, atol=F64)
        for a, b in zip(
            torch.autograd.grad(out_g.sum(), gpu),
            torch.autograd.grad(out_c.sum(), cpu),
            strict=True,
        ):
            np.testing.assert_allclose(a.cpu(), b, rtol=0, atol=1e-9)


def test_spearman_regularization_is_in_rank_units():
    """Each row is scaled by m / std before the soft rank, so the default (1.0: about one rank
    of a spread-out row) gives nearly Spearman's rho whatever the values' scale and length, far
    from Pearson's r of a monotone but non-linear relation, and the same value for any
    rescaling. (Heavy-tailed rows, whose std the tails set, need a smaller regularization.)"""
    from scipy.stats import pearsonr, spearmanr

    g = torch.Generator().manual_seed(5)
    for m in (50, 3000):
        a = torch.randn(m, generator=g, dtype=torch.float64)
        b = torch.exp(a) + 0.3 * torch.randn(m, generator=g, dtype=torch.float64)
        rho = spearmanr(a.numpy(), b.numpy()).statistic
        r = pearsonr(a.numpy(), b.numpy()).statistic
        got = float(ft.compare(a[None], b[None], "spearman")[0, 0])
        assert abs(got - rho) < 0.02 < abs(r - rho), (m, got, rho, r)
        again = float(ft.compare(1e-6 * a[None], 1e4 * b[None], "spearman")[0, 0])
        assert abs(again - got) < 1e-12
