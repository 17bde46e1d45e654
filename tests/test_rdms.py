"""fastrsa.rdms on every CPU backend against scipy's pdist (float64 reference)."""

import numpy as np
import pytest
from helpers import DTYPES

import fastrsa
from fastrsa.reference import METRICS, rdm_ref


def _ref(x, metric):
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape[-2:]
    return rdm_ref(x.reshape(-1, n, d), metric).reshape(*x.shape[:-2], -1)


SHAPES = [(3, 4), (7, 5), (33, 17), (2, 3, 3), (4, 31, 65), (2, 3, 10, 6), (1, 500, 40)]


@pytest.mark.parametrize("dtype,atol", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("metric", METRICS)
def test_matches_reference(backend, rng, shape, metric, dtype, atol):
    x = rng.standard_normal(shape).astype(dtype)
    out = fastrsa.rdms(x, metric=metric, backend=backend)
    n = shape[-2]
    assert out.shape == shape[:-2] + (n * (n - 1) // 2,)
    assert out.dtype == dtype
    ref = _ref(x, metric)
    scale = 1.0 if metric != "euclidean" else np.abs(ref).max()
    np.testing.assert_allclose(out, ref, rtol=0, atol=atol * scale)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_single_feature(backend, rng, metric):
    x = rng.standard_normal((2, 9, 1))
    np.testing.assert_allclose(fastrsa.rdms(x, metric, backend), _ref(x, metric), atol=1e-12)


def test_reference_backend_is_scipy(rng):
    x = rng.standard_normal((3, 6, 4))
    np.testing.assert_array_equal(fastrsa.rdms(x, backend="reference"), _ref(x, "correlation"))


def test_integer_and_repeated_rows(backend, rng):
    """Integer features are accepted (float64 out); repeated rows give exact-zero-ish distances."""
    x = rng.integers(-3, 4, size=(2, 12, 6))
    x[:, 5] = x[:, 2]
    x[x.std(-1) == 0, 0] += 1  # no constant rows
    out = fastrsa.rdms(x, backend=backend)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, _ref(x, "correlation"), atol=1e-12)


def test_large_offset_is_well_conditioned(backend, rng):
    """Features with a mean far from 0 (ReLU-like): centring must happen before the product."""
    x = (100.0 + rng.standard_normal((2, 20, 64))).astype(np.float32)
    np.testing.assert_allclose(fastrsa.rdms(x, backend=backend), _ref(x, "correlation"), atol=5e-5)


def test_torch_in_torch_out(backend, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 8, 5))
    for dtype in (torch.float64, torch.float32, torch.float16):
        t = torch.tensor(x, dtype=dtype)
        out = fastrsa.rdms(t, backend=backend)
        assert isinstance(out, torch.Tensor) and out.device == t.device
        assert out.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        ref = _ref(t.double().numpy(), "correlation")
        np.testing.assert_allclose(out.double().numpy(), ref, atol=2e-5)


def test_no_copy_of_float32_input_is_modified(backend, rng):
    x = rng.standard_normal((2, 9, 5)).astype(np.float32)
    before = x.copy()
    fastrsa.rdms(x, backend=backend)
    np.testing.assert_array_equal(x, before)


def test_squareform_round_trip(rng):
    from scipy.spatial.distance import squareform as sp_squareform

    v = rng.random((3, 2, 10))
    sq = fastrsa.squareform(v)
    assert sq.shape == (3, 2, 5, 5)
    np.testing.assert_array_equal(sq[1, 0], sp_squareform(v[1, 0]))
    np.testing.assert_array_equal(fastrsa.squareform(sq), v)
    np.testing.assert_array_equal(fastrsa.squareform(sp_squareform(v[0, 0])), v[0, 0])
    # a batch of 3 condensed vectors of length 3 is ambiguous: `to` settles it
    w = rng.random((3, 3))
    assert fastrsa.squareform(w, to="square").shape == (3, 3, 3)


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.array([[0.0, 1.0], [2.0, 0.0]]), "not symmetric"),
        (np.array([[1.0, 1.0], [1.0, 0.0]]), "non-zero diagonal"),
        (np.ones(4), "not n\\*\\(n-1\\)/2"),
        (np.ones((3, 4)), "not n\\*\\(n-1\\)/2"),
    ],
)
def test_squareform_refuses(bad, match):
    with pytest.raises(ValueError, match=match):
        fastrsa.squareform(bad)
