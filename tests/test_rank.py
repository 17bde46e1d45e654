"""fastrsa.rank_transform against scipy.stats.rankdata(method="average"): exact equality."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

import fastrsa


def _scipy(x):
    return stats.rankdata(x, method="average", axis=-1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1,), (2,), (5, 3), (3, 1000), (2, 3, 257)], ids=str)
def test_random_values(backend, rng, shape, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(fastrsa.rank_transform(x, backend=backend), _scipy(x))


def test_quantised_values_have_ties(backend, rng):
    x = np.round(rng.standard_normal((4, 5000)) * 3) / 3  # few distinct values, long tie runs
    out = fastrsa.rank_transform(x, backend=backend)
    np.testing.assert_array_equal(out, _scipy(x))
    assert (out % 1 != 0).any()  # the test does exercise averaged (half-integer) ranks


@pytest.mark.parametrize(
    "row",
    [
        [0, 2, 3, 2],  # scipy's docstring example -> 1, 2.5, 4, 2.5
        [3, 3, 3, 3],
        [1, 1, 2, 2, 2, 3],
        [5, 4, 3, 2, 1],
        [-0.0, 0.0, -1.0, 1.0],  # -0.0 and 0.0 are equal
        [np.finfo(np.float64).max, -np.finfo(np.float64).max, 0.0, np.finfo(np.float64).tiny],
        [1e-310, -1e-310, 0.0],  # subnormals
    ],
)
def test_scipy_tie_cases(backend, row):
    x = np.asarray(row, dtype=np.float64)
    np.testing.assert_array_equal(fastrsa.rank_transform(x, backend=backend), _scipy(x))
    if np.abs(x).max() < 3e38:
        x32 = x.astype(np.float32)
        np.testing.assert_array_equal(fastrsa.rank_transform(x32, backend=backend), _scipy(x32))


def test_integer_input(backend, rng):
    x = rng.integers(-5, 5, size=(3, 40))
    np.testing.assert_array_equal(fastrsa.rank_transform(x, backend=backend), _scipy(x))


def test_torch_in_torch_out(backend, rng):
    torch = pytest.importorskip("torch")
    x = torch.tensor(rng.integers(0, 4, (3, 30)).astype(np.float32))
    out = fastrsa.rank_transform(x, backend=backend)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), _scipy(x.numpy()))


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=40),
        elements=st.floats(-1e6, 1e6, width=32),
    ),
    backend=st.sampled_from(["numpy", "numba"]),
)
def test_property_equals_scipy(x, backend):
    np.testing.assert_array_equal(fastrsa.rank_transform(x, backend=backend), _scipy(x))
