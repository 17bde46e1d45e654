"""Fixtures and hooks of the test suite. Shared constants live in helpers.py (imported first: it
sets TRITON_INTERPRET before torch and triton are imported)."""

import os

import numpy as np
import pytest
from helpers import CPU_BACKENDS, HAS_CUDA


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not HAS_CUDA:
            item.add_marker(skip)


@pytest.fixture
def rng():
    """A fresh generator per test, seeded 0 by default so CI never flakes; FASTRSA_SEED=<n>
    replays a seed, FASTRSA_SEED=random draws one (printed, to replay a failure)."""
    seed = os.environ.get("FASTRSA_SEED", "0")
    seed = np.random.SeedSequence().entropy % 2**32 if seed == "random" else int(seed)
    print(f"seed = {seed}")
    return np.random.default_rng(seed)


@pytest.fixture(params=CPU_BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster (2 CPUs, no GPU) for a module's tests, started when none is running
    and shut down after them; skipped without ray. (test_sweep_executors has its own.)"""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()
