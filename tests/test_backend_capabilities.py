"""Backends declare their capabilities; the API layer asks them, never a backend's name."""

import ast
import contextlib
import dataclasses
import pathlib

import numpy as np
import pytest
from helpers import AVAILABLE, HAS_TRITON

import fastrsa
from fastrsa import _backend
from fastrsa.reference import METHODS, rdm_ref

X = np.random.default_rng(0).standard_normal((2, 6, 4))


@pytest.fixture
def fresh_loads():
    _backend._load.cache_clear()
    yield
    _backend._load.cache_clear()


def test_registry_declares_every_backend():
    assert fastrsa.BACKENDS == tuple(_backend.REGISTRY)
    for name in fastrsa.BACKENDS:
        caps = _backend.capabilities(name)
        assert caps.kind in ("numpy", "torch")
        assert set(caps.devices) <= {"cpu", "cuda"}
        assert "ieee" in caps.precisions
        assert set(caps.native_methods) <= set(METHODS)
    for name in AVAILABLE:  # a loaded backend carries what its registry entry declares
        assert _backend.get_backend(name).capabilities == _backend.capabilities(name)


def test_declared_capabilities():
    caps = _backend.capabilities
    assert caps("numpy").kind == caps("numba").kind == "numpy"
    assert caps("torch").kind == caps("triton").kind == "torch"
    assert caps("torch").devices == ("cpu", "cuda") and caps("triton").devices == ("cuda",)
    assert caps("triton").precisions == ("ieee", "tf32x3", "tf32")
    assert _backend.supporting(precisions="tf32") == ["triton"]
    assert "float64" not in caps("triton").dtypes  # float64 goes through torch
    for name in ("torch", "triton"):  # kendall has no GPU kernel: it runs on the CPU
        assert "kendall" not in caps(name).native_methods
    for name in ("numpy", "numba", "reference"):
        assert set(caps(name).native_methods) == set(METHODS)


def test_statistics_ops_are_declared():
    """The statistics kernels (permutation test's gather and products, bootstrap's weighted
    ranks) are declared ops: every backend here declares both, a loaded backend carries a
    callable for each op it declares, and supporting() finds them."""
    assert _backend.STATS_OPS == ("permute", "weighted_ranks")
    for name in fastrsa.BACKENDS:
        caps = _backend.capabilities(name)
        assert caps.stats_ops == _backend.STATS_OPS, name
        assert caps.weighted_ranks_bytes > 0, name
    for op in _backend.STATS_OPS:
        assert _backend.supporting(stats_ops=op) == list(fastrsa.BACKENDS)
    fields = {"permute": "permuted_products", "weighted_ranks": "weighted_ranks"}
    for name in AVAILABLE:
        be = _backend.get_backend(name)
        for op in be.capabilities.stats_ops:
            assert callable(getattr(be, fields[op])), (name, op)
        with be.loop_context():  # a context manager on every backend
            pass
    assert _backend.capabilities("numba").weighted_ranks_bytes == 30  # measured: kernels' memory
    assert _backend.capabilities("numpy").weighted_ranks_bytes == 120
    assert _backend.capabilities("torch").weighted_ranks_bytes == 140


def _without_stats(name):
    """Registry entry of backend `name` with no statistics ops declared (and none carried)."""
    caps = dataclasses.replace(_backend.capabilities(name), stats_ops=())
    loaded = _backend.get_backend(name)
    bare = dataclasses.replace(
        loaded, capabilities=caps, permuted_products=None, weighted_ranks=None
    )
    return caps, lambda: bare


def test_a_backend_without_a_statistics_op_fails_loudly(monkeypatch, fresh_loads):
    """An explicit backend lacking the op that a statistic needs is refused, naming the backends
    that have it; methods that need no op still run on it."""
    from fastrsa import stats

    monkeypatch.setitem(_backend.REGISTRY, "fake", _without_stats("numpy"))
    rows = np.random.default_rng(1).random((3, 28))
    with pytest.raises(ValueError, match="backend 'fake' has no 'permute' kernel.*'numpy'"):
        stats.permutation_test(rows, n_perm=5, seed=0, backend="fake")
    with pytest.raises(ValueError, match="backend 'fake' has no 'weighted_ranks' kernel"):
        stats.bootstrap(rows, n_boot=3, seed=0, backend="fake")
    with pytest.raises(ValueError, match="op must be one of"):
        _backend.get_backend("numpy", op="sort")
    slow = stats.permutation_test(rows, method="kendall", n_perm=5, seed=0, backend="fake")
    want = stats.permutation_test(rows, method="kendall", n_perm=5, seed=0, backend="numpy")
    np.testing.assert_array_equal(slow.p, want.p)
    boot = stats.bootstrap(rows, "pearson", n_boot=3, seed=0, backend="fake")  # no kernel op
    want = stats.bootstrap(rows, "pearson", n_boot=3, seed=0, backend="numpy")
    np.testing.assert_array_equal(boot.samples, want.samples)


@pytest.mark.skipif("numba" not in AVAILABLE, reason="numba is not installed")
def test_auto_skips_a_backend_without_the_op(monkeypatch, fresh_loads):
    assert _backend.get_backend("auto", op="weighted_ranks").name == "numba"
    monkeypatch.setitem(_backend.REGISTRY, "numba", _without_stats("numba"))
    assert _backend.get_backend("auto").name == "numba"
    for op in _backend.STATS_OPS:
        assert _backend.get_backend("auto", op=op).name == "numpy"
    from fastrsa import stats

    rows = np.random.default_rng(2).random((3, 28))
    got = stats.permutation_test(rows, n_perm=6, seed=1, return_null=True)
    want = stats.permutation_test(rows, n_perm=6, seed=1, return_null=True, backend="numpy")
    np.testing.assert_allclose(got.null, want.null, atol=1e-12)


def test_statistics_ask_the_backend_for_their_kernels(monkeypatch, fresh_loads):
    """A new backend's statistics ops are one registry entry: permutation_test and bootstrap
    call the ops it declares (its permuted products, its weighted ranks, its loop context)."""
    from fastrsa import stats

    numpy = _backend.get_backend("numpy")
    seen = []

    def products(ra, rb, perms, n, rounds):
        seen.append("permute")
        yield from numpy.permuted_products(ra, rb, perms, n, rounds)

    def ranker(rows, n):
        seen.append("weighted_ranks")
        return numpy.weighted_ranks(rows, n)

    @contextlib.contextmanager
    def loop():
        seen.append("loop")
        yield

    fake = dataclasses.replace(
        numpy, name="fake", permuted_products=products, weighted_ranks=ranker, loop_context=loop
    )
    monkeypatch.setitem(_backend.REGISTRY, "fake", (numpy.capabilities, lambda: fake))
    rows = np.random.default_rng(3).random((3, 28))
    got = stats.permutation_test(rows, n_perm=6, seed=1, backend="fake", return_null=True)
    want = stats.permutation_test(rows, n_perm=6, seed=1, backend="numpy", return_null=True)
    np.testing.assert_array_equal(got.null, want.null)
    boot = stats.bootstrap(rows, n_boot=4, seed=1, backend="fake")
    want = stats.bootstrap(rows, n_boot=4, seed=1, backend="numpy")
    np.testing.assert_array_equal(boot.samples, want.samples)
    assert seen == ["permute", "weighted_ranks", "loop"]


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not available")
def test_triton_precisions_match_its_kernel():
    from fastrsa.kernels.triton.rdm import PRECISIONS

    assert _backend.capabilities("triton").precisions == PRECISIONS


def test_precision_needs_a_backend_declaring_it():
    with pytest.raises(ValueError, match="precision='tf32x3' needs the triton backend"):
        fastrsa.rdms(X, backend="numpy", precision="tf32x3")


def test_a_registered_backend_is_used_by_its_capabilities(monkeypatch, fresh_loads):
    """A new backend is one registry entry: its declared precisions are accepted, and its ops
    receive the precision and the call's budget."""
    numpy = _backend.get_backend("numpy")
    seen = []

    def rdm(x, metric, precision, budget):
        seen.append((precision, budget))
        return numpy.rdm(x, metric, precision="ieee", budget=budget)

    caps = _backend.Capabilities(precisions=("ieee", "tf32"))
    fake = dataclasses.replace(numpy, name="fake", rdm=rdm, capabilities=caps)
    monkeypatch.setitem(_backend.REGISTRY, "fake", (caps, lambda: fake))
    out = fastrsa.rdms(X, backend="fake", precision="tf32", memory="1MiB")
    np.testing.assert_allclose(out, rdm_ref(X), atol=1e-12)
    assert seen == [("tf32", 1 << 20)]


def test_explicit_backend_that_cannot_run_fails_loudly(monkeypatch, fresh_loads):
    def cannot():
        raise RuntimeError("backend 'numba' needs the numba package; install it")

    monkeypatch.setitem(_backend.REGISTRY, "numba", (_backend.capabilities("numba"), cannot))
    with pytest.raises(RuntimeError, match="needs the numba package"):
        fastrsa.rdms(X, backend="numba")
    assert _backend.get_backend("auto").name == "numpy"  # auto falls back
    assert "numba" not in fastrsa.available_backends()


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend must be 'auto' or one of"):
        fastrsa.rdms(X, backend="cuda")


def test_device_for_asks_devices():
    torch = pytest.importorskip("torch")
    t = torch.zeros(3)
    assert _backend.device_for(_backend.get_backend("numpy"), t) is None
    assert _backend.device_for(_backend.get_backend("torch"), t) == t.device  # computes on CPU
    if HAS_TRITON and not torch.cuda.is_available():  # CUDA-only: to CUDA if any, else the CPU
        assert _backend.device_for(_backend.get_backend("triton"), t).type == "cpu"


def test_api_layer_never_compares_backend_names():
    root = pathlib.Path(fastrsa.__file__).parent
    stats = sorted(str(p.relative_to(root)) for p in (root / "stats").glob("*.py"))
    assert "stats/permutation.py" in stats and "stats/bootstrap.py" in stats
    for module in ("rdms.py", "compare.py", "_gpu_stream.py", "_backend.py", "support.py", *stats):
        text = (root / module).read_text()
        for pattern in ('.name == "', '.name != "', ".name in ("):
            assert pattern not in text, (module, pattern)


# The only modules of fastrsa that import fastrsa.kernels: the backend registry (every kernel is
# chosen there) and the condensed-index arithmetic (plain integer formulas, no compute).
KERNEL_IMPORTERS = {"_backend.py", "_condensed.py"}


def test_only_the_backend_registry_imports_kernels():
    """fastrsa reaches kernels only through fastrsa._backend (the statistics too, through the
    backends' declared ops; the sweep's spilled RDM through _backend's Gram ops)."""
    root = pathlib.Path(fastrsa.__file__).parent
    paths = [p for p in root.rglob("*.py") if "kernels" not in p.relative_to(root).parts]
    assert len(paths) > 60 and any(p.parent.name == "stats" for p in paths)
    importers = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(a.name for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any("kernels" in name.split(".") for name in names):
                importers.add(str(path.relative_to(root)))
    assert importers == KERNEL_IMPORTERS


def test_cli_backends_lists_every_backend(capsys):
    from fastrsa.cli import main

    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    for name in fastrsa.BACKENDS:
        assert name in out
