"""fastrsa.compare on every CPU backend against scipy's per-pair statistics (float64)."""

import numpy as np
import pytest
from helpers import DTYPES
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastrsa
from fastrsa.reference import METHODS, UNCORRECTED, compare_ref


@pytest.mark.parametrize("dtype,atol", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("ba,bb,m", [(1, 1, 2), (3, None, 3), (5, 4, 57), (20, None, 1225)])
def test_matches_reference(backend, rng, method, ba, bb, m, dtype, atol):
    a = rng.standard_normal((ba, m)).astype(dtype)
    b = None if bb is None else rng.standard_normal((bb, m)).astype(dtype)
    out = fastrsa.compare(a, b, method=method, backend=backend)
    ref = compare_ref(a, b, method)  # on the same (possibly float32) values, in float64
    want = np.float64 if method in UNCORRECTED else dtype  # rho-a, tau-a: always float64
    assert out.shape == ref.shape and out.dtype == want
    np.testing.assert_allclose(out, ref, rtol=0, atol=atol)


@pytest.mark.parametrize("method", METHODS)
def test_all_pairs_is_symmetric_with_unit_diagonal(backend, rng, method):
    a = rng.standard_normal((6, 40))
    out = fastrsa.compare(a, method=method, backend=backend)
    np.testing.assert_array_equal(out, out.T)
    np.testing.assert_array_equal(np.diag(out), 1.0)
    assert np.all(np.abs(out) <= 1.0)


@pytest.mark.parametrize("method", METHODS)
def test_ties(backend, rng, method):
    """Tied values (quantised RDMs, repeated entries) in both inputs."""
    a = rng.integers(0, 4, size=(4, 300)).astype(np.float64)
    b = rng.integers(0, 7, size=(3, 300)).astype(np.float64)
    b[0] = a[0]  # identical vectors
    b[1] = 3 - a[1]  # exactly reversed order
    out = fastrsa.compare(a, b, method=method, backend=backend)
    np.testing.assert_allclose(out, compare_ref(a, b, method), atol=1e-12)
    if method not in ("cosine", *UNCORRECTED):  # rho-a, tau-a: < 1 for tied identical rows
        assert out[0, 0] == pytest.approx(1.0) and out[1, 1] == pytest.approx(-1.0)


def test_rdms_to_similarity_pipeline(backend, rng):
    """The paper's pipeline: features -> RDMs -> Spearman of RDMs, against scipy end to end."""
    from fastrsa.reference import rdm_ref

    feats = rng.standard_normal((5, 30, 16))
    sim = fastrsa.compare(fastrsa.rdms(feats, backend=backend), backend=backend)
    np.testing.assert_allclose(sim, compare_ref(rdm_ref(feats)), atol=1e-10)


def test_torch_in_torch_out(backend, rng):
    torch = pytest.importorskip("torch")
    a = torch.tensor(rng.standard_normal((3, 20)))
    out = fastrsa.compare(a, backend=backend)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 3)
    np.testing.assert_allclose(out.numpy(), compare_ref(a.numpy()), atol=1e-12)


def _non_constant(arr):
    return (arr != arr[:, :1]).any(axis=1).all()


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    method=st.sampled_from(METHODS),
    backend=st.sampled_from(["numpy", "numba"]),
)
def test_property_equals_reference(data, method, backend):
    m = data.draw(st.integers(2, 60))
    elements = st.integers(-3, 3).map(float)  # small integers: many ties
    a = data.draw(hnp.arrays(np.float64, (data.draw(st.integers(1, 4)), m), elements=elements))
    b = data.draw(hnp.arrays(np.float64, (data.draw(st.integers(1, 4)), m), elements=elements))
    if method in UNCORRECTED:  # defined for constant rows
        ok = True
    elif method == "cosine":
        ok = (a != 0).any(axis=1).all() and (b != 0).any(axis=1).all()
    else:
        ok = _non_constant(a) and _non_constant(b)
    if not ok:
        with pytest.raises(ValueError, match="constant|all zeros"):
            fastrsa.compare(a, b, method=method, backend=backend)
        return
    out = fastrsa.compare(a, b, method=method, backend=backend)
    np.testing.assert_allclose(out, compare_ref(a, b, method), atol=1e-12)
