"""The one memory budget: parsing, the FASTRSA_MEMORY default, restoring it, and that a tiny
budget makes every chunked path chunk while results stay the same. Budgets are set only through
the public setting (fastrsa.set_memory_budget) or a call's memory= argument."""

import tracemalloc

import numpy as np
import pytest
from helpers import CPU_BACKENDS, HAS_TRITON

import fastrsa
from fastrsa import _memory
from fastrsa.reference import compare_ref, rank_ref, rdm_ref

GiB = 1 << 30


@pytest.fixture(autouse=True)
def default_budget(monkeypatch):
    """Each test starts from the default (no setting, no FASTRSA_MEMORY) and leaves it so."""
    monkeypatch.delenv("FASTRSA_MEMORY", raising=False)
    fastrsa.set_memory_budget(None)
    yield
    fastrsa.set_memory_budget(None)


@pytest.mark.parametrize(
    "value,expected",
    [
        (4096, 4096),
        (np.int64(1 << 20), 1 << 20),
        ("65536", 65536),
        ("4GB", 4 * 10**9),
        ("4gb", 4 * 10**9),
        ("4G", 4 * 10**9),
        ("512MiB", 512 << 20),
        (" 2 GiB ", 2 * GiB),
        ("1.5KiB", 1536),
        ("3kB", 3000),
        ("100B", 100),
        ("1e6", 10**6),
    ],
)
def test_parse(value, expected):
    fastrsa.set_memory_budget(value)
    assert fastrsa.get_memory_budget() == expected


@pytest.mark.parametrize(
    "value", [0, -1, "0", "-4GB", "", "lots", "4XB", "4 G B", "GB", True, float("nan"), [1], 0.5]
)
def test_bad_values_name_the_setting(value):
    with pytest.raises(ValueError, match="memory budget"):
        fastrsa.set_memory_budget(value)
    assert fastrsa.get_memory_budget() == _memory.default_memory_budget()  # unchanged


@pytest.mark.parametrize("call", ["rdms", "compare", "rank_transform"])
def test_bad_memory_argument_is_refused(call):
    x = np.random.default_rng(0).standard_normal((2, 5, 4))
    with pytest.raises(ValueError, match="memory"):
        getattr(fastrsa, call)(x[:, 0] if call == "compare" else x, memory="-1MB")


def test_default_is_a_quarter_of_physical_memory():
    assert fastrsa.get_memory_budget() == int(_memory.physical_memory() * 0.25)
    assert fastrsa.get_memory_budget() > 0


def test_env_var_sets_the_default(monkeypatch):
    monkeypatch.setenv("FASTRSA_MEMORY", "256MiB")
    assert fastrsa.get_memory_budget() == 256 << 20
    fastrsa.set_memory_budget("1GB")  # the setting wins over the environment
    assert fastrsa.get_memory_budget() == 10**9
    fastrsa.set_memory_budget(None)  # back to the environment's value
    assert fastrsa.get_memory_budget() == 256 << 20


def test_bad_env_var_names_it(monkeypatch):
    monkeypatch.setenv("FASTRSA_MEMORY", "plenty")
    with pytest.raises(ValueError, match="FASTRSA_MEMORY"):
        fastrsa.get_memory_budget()


def test_restore_default():
    default = fastrsa.get_memory_budget()
    fastrsa.set_memory_budget(12345)
    assert fastrsa.get_memory_budget() == 12345
    fastrsa.set_memory_budget(None)
    assert fastrsa.get_memory_budget() == default


# --- a tiny budget chunks; results stay the same ------------------------------------------------


def _features(rng, shape=(6, 9, 5)):
    x = rng.standard_normal(shape)
    x[:, 1] = x[:, 0] + 1e-9  # near-duplicate rows: euclidean recomputes them directly
    return x


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("metric", ["correlation", "cosine", "euclidean"])
def test_tiny_budget_same_rdms(rng, backend, metric):
    x = _features(rng)
    big = fastrsa.rdms(x, metric, backend=backend)
    tiny = fastrsa.rdms(x, metric, backend=backend, memory="1KB")
    np.testing.assert_allclose(tiny, big, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tiny, rdm_ref(x, metric), rtol=1e-10, atol=1e-10)
    fastrsa.set_memory_budget(1000)  # the setting works like the argument
    np.testing.assert_allclose(fastrsa.rdms(x, metric, backend=backend), tiny, rtol=0, atol=0)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine", "kendall"])
def test_tiny_budget_same_comparisons(rng, backend, method):
    a = np.round(rng.standard_normal((7, 40)), 1)  # ties
    b = np.round(rng.standard_normal((4, 40)), 1)
    for bb in (None, b):
        tiny = fastrsa.compare(a, bb, method, backend=backend, memory=2048)
        big = fastrsa.compare(a, bb, method, backend=backend)
        np.testing.assert_allclose(tiny, big, rtol=0, atol=1e-12)
        np.testing.assert_allclose(tiny, compare_ref(a, bb, method), rtol=0, atol=1e-10)


def test_torch_kernels_chunk_under_a_tiny_budget(rng, monkeypatch):
    """The torch backend on CPU tensors (resident: no streaming): a budget below one matrix's
    temporaries computes one matrix per chunk, and ranks one row per chunk."""
    torch = pytest.importorskip("torch")
    from fastrsa.kernels.torch import rdm as rdm_module

    grams = []
    real_matmul = rdm_module.matmul_t
    monkeypatch.setattr(
        rdm_module, "matmul_t", lambda a, b: grams.append(a.shape[0]) or real_matmul(a, b)
    )
    x = torch.from_numpy(_features(rng, (6, 9, 5)))
    big = fastrsa.rdms(x, backend="torch")
    assert grams == [6]
    grams.clear()
    tiny = fastrsa.rdms(x, backend="torch", memory="4KB")
    assert grams == [1] * 6
    np.testing.assert_allclose(tiny.numpy(), big.numpy(), rtol=0, atol=1e-12)

    sorts = []
    real_sort = torch.sort
    monkeypatch.setattr(
        torch, "sort", lambda v, **kw: sorts.append(v.shape[0]) or real_sort(v, **kw)
    )
    r = torch.from_numpy(np.round(rng.standard_normal((5, 30)), 1))
    ranks = fastrsa.rank_transform(r, backend="torch", memory=1800)
    assert sorts == [1] * 5  # a row's sort workspace: 30 values * 40 bytes
    np.testing.assert_array_equal(ranks.numpy(), rank_ref(r.numpy()))
    sorts.clear()
    sim = fastrsa.compare(r, method="spearman", backend="torch", memory=1800)
    assert sorts == [1] * 5
    np.testing.assert_allclose(sim.numpy(), compare_ref(r.numpy()), rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_host_input_streams_under_the_budget(rng, backend, monkeypatch):
    """numpy input for a torch-kind backend goes to the device in pieces within half the budget:
    RDMs by batch chunks, ranks by row chunks, comparisons by row blocks; results unchanged."""
    if backend == "triton" and not HAS_TRITON:
        pytest.skip("triton is not available")
    pytest.importorskip("torch")
    import dataclasses

    from fastrsa import _backend

    real = _backend.get_backend(backend)
    calls = {"rdm": [], "rank": [], "compare": []}

    def spy(op):
        def counted(x, *args, **kwargs):
            calls[op].append(x.shape[0])
            return getattr(real, op)(x, *args, **kwargs)

        return counted

    counted = dataclasses.replace(real, **{op: spy(op) for op in calls})
    monkeypatch.setattr(_backend, "_load", lambda name: counted)
    x = rng.standard_normal((5, 10, 6)).astype(np.float32)
    per_item = 10 * 6 * 4 + 45 * 4  # a model's features and its RDM
    out = fastrsa.rdms(x, backend=backend, memory=2 * 2 * per_item)
    assert calls["rdm"] == [2, 2, 1]
    np.testing.assert_allclose(out, rdm_ref(x), atol=2e-5)

    r = np.round(rng.standard_normal((5, 45)), 1)
    ranks = fastrsa.rank_transform(r, backend=backend, memory=2 * 2 * 45 * 16)
    assert calls["rank"] == [2, 2, 1]
    np.testing.assert_array_equal(ranks, rank_ref(r))

    calls["rank"].clear()
    sim = fastrsa.compare(r, method="spearman", backend=backend, memory=2 * 2 * 2 * 45 * 8)
    assert calls["rank"] == [2, 2, 1] and len(calls["compare"]) == 6  # 3 blocks: 6 pairs
    np.testing.assert_allclose(sim, compare_ref(r), rtol=0, atol=1e-10)
    calls["compare"].clear()
    fastrsa.compare(r, method="pearson", backend=backend)  # fits the default: one piece
    assert len(calls["compare"]) == 1


def test_numpy_peak_memory_follows_the_budget(rng):
    """tracemalloc sees numpy's allocations: with a budget of one matrix's temporaries the peak
    is far below the whole batch's."""
    x = rng.standard_normal((40, 60, 50))

    def peak(memory):
        tracemalloc.start()
        try:
            fastrsa.rdms(x, backend="numpy", memory=memory)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    one_matrix = (60 * 50 + 3 * 60 * 60) * 8
    assert peak(one_matrix) < 0.5 * peak(None)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not available")
def test_triton_kernels_chunk_under_a_tiny_budget(rng):
    """Direct kernel calls take chunk_bytes: the smallest budget (one piece at a time) gives the
    same ranks and correlations as the default."""
    import torch
    from fastrsa.kernels import triton as k

    x = torch.tensor(np.round(rng.standard_normal((3, 40)), 1), dtype=torch.float32)
    np.testing.assert_array_equal(k.rank_triton(x, chunk_bytes=1).numpy(), rank_ref(x.numpy()))
    a = torch.tensor(rng.standard_normal((5, 600)), dtype=torch.float32)
    cfg = (16, 16, 4, 2)
    tiny = k.corr_triton(a, chunk_bytes=1, config=cfg)  # one slice of M per launch
    big = k.corr_triton(a, config=cfg)
    np.testing.assert_allclose(tiny.numpy(), big.numpy(), rtol=0, atol=1e-6)
    f = torch.tensor(rng.standard_normal((3, 9, 5)), dtype=torch.float32)
    tiny = k.rdm_triton(f, chunk_bytes=1, config=(16, 16, 4, 2))  # one matrix per launch
    np.testing.assert_allclose(tiny.numpy(), rdm_ref(f.numpy()), atol=2e-5)
