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
