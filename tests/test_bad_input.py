"""Every bad input of the public API gets a clear error naming the argument; nothing comes back
silently NaN."""

import numpy as np
import pytest

import fastrsa

GOOD = np.random.default_rng(0).standard_normal((2, 6, 4))


def _with(value, index):
    x = GOOD.copy()
    x[index] = value
    return x


@pytest.mark.parametrize("backend", ["reference", "numpy", "numba", "torch"])
@pytest.mark.parametrize(
    "features,kwargs,error,match",
    [
        (
            _with(np.nan, (1, 2, 3)),
            {},
            ValueError,
            r"features holds NaN or Inf \(first at index \(1, 2, 3\)\)",
        ),
        (_with(np.inf, (0, 0, 0)), {}, ValueError, "features holds NaN or Inf"),
        (_with(-np.inf, (0, 1, 0)), {"metric": "euclidean"}, ValueError, "NaN or Inf"),
        (_with(3.0, (1, 4)), {}, ValueError, "constant .*batch index 1, row 4"),
        (_with(0.0, (0, 2)), {"metric": "cosine"}, ValueError, "all zeros.*batch index 0, row 2"),
        (GOOD[0, :2], {}, ValueError, "at least 3 images.*n = 2"),
        (GOOD[:, :, :0], {}, ValueError, "d = 0"),
        (np.zeros((0, 5, 3)), {}, ValueError, "features is empty"),
        (GOOD[0, 0], {}, ValueError, "features must be at least 2-D"),
        (np.float64(1.0), {}, ValueError, "features must be at least 2-D"),
        (GOOD.astype(np.complex128), {}, TypeError, "features must be real"),
        (GOOD.astype(str), {}, TypeError, "features must hold numbers"),
        ([[1, 2], [3]], {}, (TypeError, ValueError), "features"),
        (GOOD, {"metric": "manhattan"}, ValueError, "metric must be one of"),
        (GOOD, {"backend": "cuda"}, ValueError, "backend must be 'auto' or one of"),
        (GOOD, {"precision": "fp8"}, ValueError, "precision must be 'ieee', 'tf32x3' or 'tf32'"),
        (GOOD, {"precision": "tf32"}, ValueError, "precision='tf32' needs the triton backend"),
    ],
)
def test_rdms_refuses(features, kwargs, error, match, backend):
    kwargs = {"backend": backend, **kwargs}
    with pytest.raises(error, match=match):
        fastrsa.rdms(features, **kwargs)


def test_constant_row_named_in_2d_input():
    x = GOOD[0].copy()
    x[3] = 7.0
    with pytest.raises(ValueError, match="row 3"):
        fastrsa.rdms(x)


def test_single_feature_correlation_is_refused():
    """With d = 1 every centred row is zero: the correlation distance is undefined."""
    with pytest.raises(ValueError, match="constant"):
        fastrsa.rdms(GOOD[..., :1])


V = np.random.default_rng(1).standard_normal((3, 10))


@pytest.mark.parametrize("backend", ["reference", "numpy", "numba", "torch"])
@pytest.mark.parametrize(
    "a,b,kwargs,error,match",
    [
        (V, V[:, :9], {}, ValueError, "same number of values per row; got 10 and 9"),
        (V[0], None, {}, ValueError, r"a must be 2-D .*a\[None\]"),
        (V[None], None, {}, ValueError, "a must be 2-D.*squareform"),
        (V, V[0], {}, ValueError, "b must be 2-D"),
        (V[:0], None, {}, ValueError, "a is empty"),
        (V[:, :1], None, {}, ValueError, "at least 2 values"),
        (np.where(np.arange(10) == 4, np.nan, V), None, {}, ValueError, "a holds NaN or Inf"),
        (V, np.where(np.arange(10) == 4, np.inf, V), {}, ValueError, "b holds NaN or Inf"),
        (np.vstack([V, np.ones(10)]), None, {}, ValueError, r"vector is constant.*a\[3\]"),
        (V, np.vstack([np.ones(10), V]), {"method": "kendall"}, ValueError, r"constant.*b\[0\]"),
        (np.vstack([V, np.zeros(10)]), None, {"method": "cosine"}, ValueError, "all zeros"),
        (V.astype(np.complex64), None, {}, TypeError, "a must be real"),
        (V, None, {"method": "distance"}, ValueError, "method must be one of"),
        (V, None, {"backend": "gpu"}, ValueError, "backend must be"),
    ],
)
def test_compare_refuses(a, b, kwargs, error, match, backend):
    with pytest.raises(error, match=match):
        fastrsa.compare(a, b, **{"backend": backend, **kwargs})


def test_constant_vector_is_fine_for_cosine():
    a = np.vstack([V, np.ones(10)])
    out = fastrsa.compare(a, method="cosine")
    assert np.isfinite(out).all()


@pytest.mark.parametrize(
    "x,error,match",
    [
        (np.array([1.0, np.nan]), ValueError, "x holds NaN"),
        (np.array([]), ValueError, "x is empty"),
        (np.float64(3.0), ValueError, "x must be at least 1-D"),
        (np.array(["a", "b"]), TypeError, "x must hold numbers"),
    ],
)
def test_rank_transform_refuses(x, error, match):
    with pytest.raises(error, match=match):
        fastrsa.rank_transform(x)


def test_numba_backend_missing_is_loud(monkeypatch):
    """An explicit request for a backend that cannot run fails loudly; auto falls back."""
    import sys

    import fastrsa.kernels

    from fastrsa import _backend

    for name in [m for m in sys.modules if m.split(".")[0] == "numba" or "kernels.numba" in m]:
        monkeypatch.delitem(sys.modules, name)  # restored afterwards
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba -> ImportError
    monkeypatch.delattr(fastrsa.kernels, "numba", raising=False)
    _backend._load.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="needs the numba package"):
            fastrsa.rdms(GOOD, backend="numba")
        assert _backend.get_backend("auto").name == "numpy"
    finally:
        _backend._load.cache_clear()


def test_an_import_error_inside_fastrsa_is_not_a_missing_package(monkeypatch):
    """Only a missing third-party package reads as "install X"; fastrsa's own ImportError (a
    bug) propagates as it is."""
    import sys

    import fastrsa.kernels

    from fastrsa import _backend

    for name in [m for m in sys.modules if "kernels.numba" in m]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastrsa.kernels.numba.rank", None)  # a broken module
    monkeypatch.delattr(fastrsa.kernels, "numba", raising=False)
    _backend._load.cache_clear()
    try:
        with pytest.raises(ImportError, match="fastrsa.kernels.numba.rank"):
            fastrsa.rdms(GOOD, backend="numba")
    finally:
        _backend._load.cache_clear()


def test_triton_without_a_gpu_fails_loudly(monkeypatch):
    torch = pytest.importorskip("torch")
    from fastrsa import _backend

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _backend._load.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="triton.*needs"):
            fastrsa.rdms(GOOD, backend="triton")
        assert _backend.get_backend("auto", cuda=True).name == "torch"
    finally:
        _backend._load.cache_clear()
