"""Backends declare their capabilities; the API layer asks them, never a backend's name."""

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
    for module in ("rdms.py", "compare.py", "_stream.py", "_backend.py"):
        text = (root / module).read_text()
        for pattern in ('.name == "', '.name != "', ".name in ("):
            assert pattern not in text, (module, pattern)


def test_cli_backends_lists_every_backend(capsys):
    from fastrsa.cli import main

    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    for name in fastrsa.BACKENDS:
        assert name in out
