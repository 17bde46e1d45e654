"""Triton kernels against the float64 reference. Without CUDA they run under TRITON_INTERPRET=1 on
tiny shapes (set by conftest); tests marked gpu need CUDA and use real sizes."""

import numpy as np
import pytest
from helpers import HAS_CUDA, HAS_TRITON
from scipy import stats

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not HAS_TRITON, reason="triton backend unavailable")

import fastrsa  # noqa: E402
from fastrsa.reference import compare_ref, rdm_ref  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"
# fp32 ("ieee") products: error vs float64 well under 1e-5 for unit-scale rows of d <= 2048.
ATOL = {torch.float32: 2e-5, torch.float16: 2e-5, torch.bfloat16: 2e-5}


def _k():
    from fastrsa.kernels import triton as k

    return k


def _ref_rdm(x: torch.Tensor, metric: str) -> np.ndarray:
    xs = x.double().cpu().numpy()
    n, d = xs.shape[-2:]
    return rdm_ref(xs.reshape(-1, n, d), metric).reshape(*xs.shape[:-2], -1)


def _features(rng, shape, dtype=torch.float32):
    return torch.tensor(rng.standard_normal(shape), dtype=dtype, device=DEVICE)


@pytest.mark.parametrize("metric", ["correlation", "cosine", "euclidean"])
@pytest.mark.parametrize(
    "shape,block_n,block_k",
    [
        ((1, 3, 4), 16, 16),
        ((3, 17, 5), 16, 16),
        ((2, 40, 33), 16, 16),
        ((2, 40, 32), 16, 16),
        ((1, 70, 20), 64, 32),
        ((1, 300, 16), 16, 16),
    ],  # the last: 190 tiles
    ids=str,
)
def test_rdm_kernel(rng, shape, metric, block_n, block_k):
    """n = 3, n not a multiple of the block, d not a multiple of BLOCK_K, B = 1 and B > 1."""
    x = _features(rng, shape)
    out = _k().rdm_triton(x, metric, config=(block_n, block_k, 4, 2))
    _assert_rdm_close(out, _ref_rdm(x, metric), metric)


def _assert_rdm_close(out, ref, metric):
    """1 - r within 2e-5; euclidean by the kernel's own bound: its Gram formula errs on the
    squared distance by ~fp32 rounding of the squared norms (near pairs lose relative accuracy;
    fastrsa.rdms sends euclidean through torch's float64 path, which recomputes them)."""
    out = out.cpu().numpy()
    if metric != "euclidean":
        np.testing.assert_allclose(out, ref, rtol=0, atol=2e-5)
        return
    np.testing.assert_allclose(out**2, ref**2, rtol=0, atol=2e-5 * (ref**2).max())


def test_rdm_kernel_writes_every_output(rng):
    """The output is poisoned first: every condensed entry must be overwritten."""
    x = _features(rng, (2, 21, 9))
    out = torch.full((2, 210), float("nan"), device=DEVICE)
    _k().rdm_triton(x, "correlation", config=(16, 16, 4, 2), out=out)
    assert torch.isfinite(out).all()
    np.testing.assert_allclose(out.cpu().numpy(), _ref_rdm(x, "correlation"), atol=2e-5)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_rdm_kernel_single_feature(rng, metric):
    x = _features(rng, (2, 9, 1))
    out = _k().rdm_triton(x, metric, config=(16, 16, 4, 2))
    _assert_rdm_close(out, _ref_rdm(x, metric), metric)


def test_rdm_kernel_strided_and_non_contiguous(rng):
    base = _features(rng, (3, 12, 19))
    x = base.transpose(1, 2)[::2]  # (2, 19, 12), non-contiguous, batch stride doubled
    assert not x.is_contiguous()
    out = _k().rdm_triton(x, "correlation", config=(16, 16, 4, 2))
    np.testing.assert_allclose(out.cpu().numpy(), _ref_rdm(x, "correlation"), atol=2e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_rdm_kernel_half_inputs(rng, dtype):
    """Half-precision features are read as they are and summed in fp32: the error against the
    float64 reference on the same (rounded) values is fp32-sized."""
    x = _features(rng, (2, 13, 24), dtype)
    out = _k().rdm_triton(x, "correlation", config=(16, 16, 4, 2))
    np.testing.assert_allclose(out.cpu().numpy(), _ref_rdm(x, "correlation"), atol=ATOL[dtype])


def test_rdm_kernel_offset_features(rng):
    """ReLU-like features far from 0: the centring happens before the product."""
    x = _features(rng, (2, 20, 32)) + 100.0
    out = _k().rdm_triton(x, "correlation", config=(16, 16, 4, 2))
    np.testing.assert_allclose(out.cpu().numpy(), _ref_rdm(x, "correlation"), atol=1e-4)


@pytest.mark.parametrize(
    "make",
    [
        lambda r: r.standard_normal((3, 50)),  # no ties
        lambda r: r.integers(0, 4, (4, 300)),  # many ties, runs crossing chunks of 64
        lambda r: np.repeat(r.integers(0, 2, (2, 1)), 200, axis=1) * 1.0,  # constant rows
        lambda r: np.where(r.random((2, 130)) < 0.5, -0.0, 0.0),  # -0.0 ties with 0.0
    ],
)
def test_rank_kernel_is_exact(rng, make):
    x = torch.tensor(make(rng), dtype=torch.float32, device=DEVICE)
    out = _k().rank_triton(x, config=(64, 4))
    assert out.dtype == torch.float64
    np.testing.assert_array_equal(out.cpu().numpy(), stats.rankdata(x.cpu().numpy(), axis=-1))
    centred = _k().rank_triton(x, centred=True, out_dtype=torch.float32, config=(64, 4))
    expect = stats.rankdata(x.cpu().numpy(), axis=-1) - (x.shape[1] + 1) / 2
    np.testing.assert_array_equal(centred.cpu().numpy(), expect)


@pytest.mark.parametrize("centre", [True, False])
@pytest.mark.parametrize("na,nb,m", [(1, 1, 2), (3, 5, 40), (20, 7, 333)])
def test_corr_kernel(rng, na, nb, m, centre):
    a = _features(rng, (na, m))
    b = _features(rng, (nb, m))
    out = _k().corr_triton(a, b, centre=centre, config=(16, 16, 4, 2))
    method = "pearson" if centre else "cosine"
    ref = compare_ref(a.cpu().numpy(), b.cpu().numpy(), method)
    np.testing.assert_allclose(out.cpu().numpy(), ref, rtol=0, atol=2e-5)


def test_corr_kernel_strided(rng):
    a = _features(rng, (40, 6)).T  # (6, 40) with stride (1, 6)
    out = _k().corr_triton(a, None, config=(16, 16, 4, 2))
    np.testing.assert_allclose(
        out.cpu().numpy(), compare_ref(a.cpu().numpy(), None, "pearson"), atol=2e-5
    )


@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine", "kendall"])
def test_api_pipeline_on_triton(rng, method):
    """features -> RDMs -> similarity through the public API; the result stays a tensor on the
    input's device."""
    x = _features(rng, (2, 2, 11, 7))  # 4-D: (tasks, layers, n, d)
    r = fastrsa.rdms(x, backend="triton")
    assert isinstance(r, torch.Tensor) and r.device == x.device and r.shape == (2, 2, 55)
    sim = fastrsa.compare(r.reshape(4, -1), method=method, backend="triton")
    assert sim.device == x.device and sim.dtype == torch.float32
    ref = compare_ref(rdm_ref(x.double().cpu().numpy().reshape(4, 11, 7)), None, method)
    np.testing.assert_allclose(sim.cpu().numpy(), ref, atol=1e-4)
    assert (torch.diagonal(sim) == 1).all()


def test_api_numpy_in_numpy_out_and_float64(rng):
    x = rng.standard_normal((2, 9, 4))
    out = fastrsa.rdms(x, backend="triton")  # float64 runs through cuBLAS DGEMM via torch
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, rdm_ref(x), atol=1e-10)
    ranks = fastrsa.rank_transform(np.round(x.reshape(2, -1), 1), backend="triton")
    np.testing.assert_array_equal(ranks, stats.rankdata(np.round(x.reshape(2, -1), 1), axis=-1))


def test_api_refuses_bad_tensors(rng):
    x = _features(rng, (2, 6, 4))
    x[1, 3] = 5.0
    with pytest.raises(ValueError, match="batch index 1, row 3"):
        fastrsa.rdms(x, backend="triton")
    x[1, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        fastrsa.rdms(x, backend="triton")


# ---- real GPU only ----------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("b,n,d", [(1, 500, 2048), (7, 613, 96), (200, 50, 33)])
def test_gpu_rdm_real_sizes(rng, b, n, d):
    x = _features(rng, (b, n, d))
    out = _k().rdm_triton(x, "correlation")
    np.testing.assert_allclose(out.cpu().numpy(), _ref_rdm(x, "correlation"), atol=2e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("precision,bound", [("ieee", 1e-6), ("tf32x3", 2e-6), ("tf32", 5e-4)])
def test_gpu_precision_error_is_as_documented(rng, precision, bound):
    x = _features(rng, (2, 300, 1024))
    out = fastrsa.rdms(x, backend="triton", precision=precision)
    err = np.abs(out.cpu().numpy() - _ref_rdm(x, "correlation"))
    assert err.max() < bound


@pytest.mark.gpu
def test_gpu_rank_long_rows_exact(rng):
    m = 2_000_000  # n = 2000 images
    x = torch.tensor(np.round(rng.random((2, m)), 4), dtype=torch.float32, device="cuda")
    out = _k().rank_triton(x)
    ref = stats.rankdata(x.double().cpu().numpy(), axis=-1)  # float64 reference
    np.testing.assert_array_equal(out.cpu().numpy(), ref)


@pytest.mark.gpu
def test_gpu_pipeline_no_copy_of_cuda_input(rng):
    x = _features(rng, (20, 100, 64))
    r = fastrsa.rdms(x)  # auto -> triton on CUDA tensors
    sim = fastrsa.compare(r)
    assert sim.is_cuda and r.is_cuda
    ref = compare_ref(rdm_ref(x.double().cpu().numpy()))
    np.testing.assert_allclose(sim.cpu().numpy(), ref, atol=1e-4)


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_host_input_is_streamed_in_batch_chunks(rng, backend, monkeypatch):
    """numpy input for a GPU backend moves to the device a chunk of the batch at a time."""
    import dataclasses

    from fastrsa import _backend

    x = rng.standard_normal((5, 3, 12, 6)).astype(np.float32)
    calls = []
    real = _backend.get_backend(backend)

    def counting(chunk, metric, **kwargs):
        calls.append(chunk.shape[0])
        return real.rdm(chunk, metric, **kwargs)

    counted = dataclasses.replace(real, rdm=counting)
    monkeypatch.setattr(_backend, "_load", lambda name: counted)
    # half the budget holds a chunk's input and RDMs: 2 models per chunk
    out = fastrsa.rdms(x, backend=backend, memory=2 * 2 * (12 * 6 * 4 + 66 * 4))
    assert isinstance(out, np.ndarray) and out.shape == (5, 3, 66)
    np.testing.assert_allclose(out, _ref_rdm(torch.tensor(x), "correlation"), atol=2e-5)
    assert calls == [2] * 7 + [1]


@pytest.mark.gpu
def test_gpu_rank_exact_at_fifty_million():
    """M = 5e7 (the RDM of n = 10,000 images): ranks stay exact beyond float32's 2**24."""
    m = 50_000_000
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randint(0, 1_000_000, (1, m), device="cuda", generator=gen).float()  # many ties
    out = _k().rank_triton(x)
    # float64 reference: SciPy 1.18 returns float32 ranks for float32 input, inexact above 2**24
    ref = stats.rankdata(x.double().cpu().numpy(), axis=-1)
    assert ref.dtype == np.float64
    assert np.array_equal(out.cpu().numpy(), ref)


@pytest.mark.gpu
def test_gpu_streams_numpy_input(rng):
    x = rng.standard_normal((10, 40, 16)).astype(np.float32)
    out = fastrsa.rdms(x, backend="triton", memory=2 * 3 * (40 * 16 * 4 + 780 * 4))  # 3 a piece
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, rdm_ref(x), atol=2e-5)


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine", "kendall"])
@pytest.mark.parametrize("with_b", [False, True])
@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_host_compare_in_row_blocks(rng, backend, method, with_b, dtype, atol):
    """Host input larger than one piece is ranked and compared in blocks of rows."""
    a = np.round(rng.standard_normal((7, 90)), 1).astype(dtype)  # ties
    b = np.round(rng.standard_normal((5, 90)), 1).astype(dtype) if with_b else None
    memory = 2 * 2 * 2 * 90 * 8  # half of it: 2 float64 rows per block
    out = fastrsa.compare(a, b, method=method, backend=backend, memory=memory)
    assert isinstance(out, np.ndarray) and out.dtype == dtype
    np.testing.assert_allclose(out, compare_ref(a, b, method), rtol=0, atol=atol)
