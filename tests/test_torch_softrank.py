"""fastrsa.torch.softrank.soft_rank against a plain numpy reference of Blondel et al.'s (2020)
definition (projection onto the permutahedron: sort + sequential PAV, written here), the two
limits (exact ranks as regularization -> 0; an affine map of the values once every value pools),
float64 gradcheck, and refusals.

Tolerances: float64 within 1e-10 of the reference (ranks are O(m)); float32 input (computed in
float64, rounded once) within 1e-6 relative.
"""

import numpy as np
import pytest
from scipy.stats import rankdata

torch = pytest.importorskip("torch")

from fastrsa.torch import soft_rank  # noqa: E402
from fastrsa.torch.ops import pav_blocks, segment_mean  # noqa: E402


def pav_plain(y):
    """argmin_{v_1 >= ... >= v_m} ||v - y||², sequential pool adjacent violators."""
    blocks = []  # [sum, count]
    for value in y:
        blocks.append([value, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] <= blocks[-1][0] / blocks[-1][1]:
            s, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    return np.concatenate([np.full(c, s / c) for s, c in blocks])


def soft_rank_plain(theta, eps, descending=False):
    """Blondel et al. 2020: projection of ±theta/eps onto the permutahedron of (m, ..., 1)."""
    z = (-1 if descending else 1) * np.asarray(theta, dtype=np.float64) / eps
    order = np.argsort(-z, kind="stable")
    s = z[order]
    w = np.arange(len(z), 0, -1)
    out = np.empty(len(z))
    out[order] = s - pav_plain(s - w)
    return out


def reference(x, eps, descending=False):
    rows = x.reshape(-1, x.shape[-1])
    return np.stack([soft_rank_plain(r, eps, descending) for r in rows]).reshape(x.shape)


@pytest.mark.parametrize("shape", [(1,), (2,), (3,), (17,), (4, 50), (2, 3, 9)])
@pytest.mark.parametrize("eps", [1e-3, 0.1, 1.0, 30.0])
@pytest.mark.parametrize("direction", ["ascending", "descending"])
def test_soft_rank_equals_the_permutahedron_projection(rng, shape, eps, direction):
    x = rng.standard_normal(shape)
    got = soft_rank(torch.tensor(x), eps, direction)
    want = reference(x, eps, direction == "descending")
    assert got.shape == x.shape and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-10)
    x32 = torch.tensor(x, dtype=torch.float32)
    got32 = soft_rank(x32, eps, direction)
    assert got32.dtype == torch.float32
    want32 = reference(x32.double().numpy(), eps, direction == "descending")
    np.testing.assert_allclose(got32.numpy(), want32, rtol=1e-6, atol=1e-6)


def test_pav_blocks_equal_sequential_pav_with_long_merge_chains(rng):
    """Values whose gaps are near the regularisation: many rounds of successive merges."""
    m = 3000
    s = np.sort(rng.random((3, m)) * m, axis=1)[:, ::-1]
    y = torch.tensor(s - np.arange(m, 0, -1))
    blocks = pav_blocks(y)
    got = segment_mean(y, blocks).numpy()
    want = np.stack([pav_plain(r) for r in y.numpy()])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert (blocks.diff(dim=1) >= 0).all() and (blocks[:, 0] == 0).all()


@pytest.mark.parametrize("kind", ["chains", "ties", "sorted", "short"])
def test_numba_pav_gives_the_same_blocks(rng, kind):
    """The numba kernel (sequential PAV per row, the CPU path of soft_rank_forward) against the
    batched torch rounds: identical block ids, over long merge chains, exact ties (equal means
    pool), already-decreasing rows (no merge) and rows of 1 and 2 values."""
    numba_pav = pytest.importorskip("fastrsa.kernels.numba.pav").pav_blocks_numba
    m = {"chains": 3000, "ties": 400, "sorted": 50, "short": 2}[kind]
    if kind == "chains":
        y = np.sort(rng.random((3, m)) * m, axis=1)[:, ::-1] - np.arange(m, 0, -1)
    elif kind == "ties":
        y = rng.integers(0, 4, (5, m)).astype(np.float64)
    elif kind == "sorted":
        y = -np.cumsum(rng.random((4, m)) + 0.1, axis=1)
    else:
        y = np.array([[1.0, 2.0], [2.0, 1.0], [3.0, 3.0]])
    want = pav_blocks(torch.tensor(y)).numpy()
    got = numba_pav(y)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(numba_pav(y[:, :1]), np.zeros((len(y), 1), dtype=np.int64))
    np.testing.assert_array_equal(numba_pav(np.asfortranarray(y)), want)
    if kind == "sorted":
        np.testing.assert_array_equal(got, np.broadcast_to(np.arange(m), y.shape))
    with pytest.raises(ValueError, match=r"y must be \(B, m\)"):
        numba_pav(y[0])


def _torch_soft_rank(theta):
    """The torch path of soft_rank_forward (what runs off the CPU): sort, PAV rounds, scatter."""
    s, order = theta.sort(dim=1, descending=True, stable=True)
    y = s - torch.arange(theta.shape[1], 0, -1, dtype=torch.float64)
    blocks = pav_blocks(y)
    primal = s - segment_mean(y, blocks)
    return torch.empty_like(primal).scatter_(1, order, primal), order, blocks


@pytest.mark.parametrize("m", [1, 2, 7, 1000])
def test_numba_soft_rank_equals_the_torch_path(rng, m):
    """soft_rank_numba (radix sort + sequential PAV, the CPU path) against the torch path: the
    same order and blocks, ranks within 1e-9 (sums in another order); exact ties, -0.0 beside
    0.0 and values far apart included."""
    kernel = pytest.importorskip("fastrsa.kernels.numba.pav").soft_rank_numba
    theta = rng.standard_normal((4, m)) * m
    theta[1] = np.round(theta[1] / m)  # many exact ties
    theta[2, : m // 2] = 0.0
    theta[2, m // 2 :: 2] = -0.0
    theta[3] *= 1e6  # no pooling: exact ranks
    ranks, order, blocks = kernel(theta)
    want = _torch_soft_rank(torch.tensor(theta))
    np.testing.assert_allclose(ranks, want[0].numpy(), rtol=0, atol=1e-9 * m)
    np.testing.assert_array_equal(blocks, want[2].numpy())
    np.testing.assert_array_equal(order[[0, 3]], want[1].numpy()[[0, 3]])  # no ties there
    np.testing.assert_allclose(ranks[3], rankdata(theta[3]), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match=r"theta must be \(B, m\)"):
        kernel(theta[0])


@pytest.mark.parametrize("m", [1, 2, 5, 200])
def test_small_regularization_gives_exact_ranks(rng, m):
    x = rng.standard_normal((3, m))  # distinct values
    gap = np.diff(np.sort(x, axis=1), axis=1).min() if m > 1 else 1.0
    got = soft_rank(torch.tensor(x), gap / 2).numpy()
    np.testing.assert_allclose(got, rankdata(x, axis=1), rtol=0, atol=1e-9)
    down = soft_rank(torch.tensor(x), gap / 2, "descending").numpy()
    np.testing.assert_allclose(down, m + 1 - rankdata(x, axis=1), rtol=0, atol=1e-9)


def test_large_regularization_is_affine_in_the_values(rng):
    """eps >= 2 (max - min) / m: one block, r = (x - mean x)/eps + (m + 1)/2."""
    m = 40
    x = rng.standard_normal(m)
    eps = 2 * np.ptp(x) / m
    got = soft_rank(torch.tensor(x), eps).numpy()
    np.testing.assert_allclose(got, (x - x.mean()) / eps + (m + 1) / 2, rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape, eps", [((3,), 0.3), ((2, 7), 0.2), ((2, 2, 5), 1.0), ((9,), 5.0)])
@pytest.mark.parametrize("direction", ["ascending", "descending"])
def test_soft_rank_gradcheck(rng, shape, eps, direction):
    x = torch.tensor(rng.standard_normal(shape), requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: soft_rank(v, eps, direction), (x,))


def test_soft_rank_gradient_is_block_averaging(rng):
    """The Jacobian is (I - Pᵀ A P)/eps: rows of a pooled block share their gradient."""
    x = torch.tensor(rng.standard_normal(30), requires_grad=True)
    eps = 0.05
    jac = torch.autograd.functional.jacobian(lambda v: soft_rank(v, eps), x).numpy()
    want = np.empty((30, 30))
    base = soft_rank_plain(x.detach().numpy(), eps)
    for k in range(30):  # finite differences of the reference (piecewise linear: exact)
        step = np.zeros(30)
        step[k] = 1e-7
        want[:, k] = (soft_rank_plain(x.detach().numpy() + step, eps) - base) / 1e-7
    np.testing.assert_allclose(jac, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(jac.sum(axis=0), 0, atol=1e-12)  # ranks sum to m(m+1)/2


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((np.ones(3),), TypeError, "values must be a torch.Tensor"),
        ((torch.arange(3),), TypeError, "floating-point"),
        ((torch.tensor(1.0),), ValueError, r"values must be \(\.\.\., m\)"),
        ((torch.ones(2, 0),), ValueError, "at least 1 value"),
        ((torch.ones(3), 0.0), ValueError, "regularization must be a finite float > 0"),
        ((torch.ones(3), float("nan")), ValueError, "regularization"),
        ((torch.ones(3), True), TypeError, "regularization"),
        ((torch.ones(3), 1.0, "up"), ValueError, "direction must be one of"),
        ((torch.tensor([1.0, float("nan")]),), ValueError, r"values holds NaN or Inf .*\(1,\)"),
    ],
)
def test_soft_rank_refusals(args, error, match):
    with pytest.raises(error, match=match):
        soft_rank(*args)
