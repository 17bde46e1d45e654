import os

import numpy as np
import pytest

try:  # without a GPU, Triton kernels run in its interpreter on CPU tensors (set before import)
    import torch

    HAS_CUDA = torch.cuda.is_available()
    if not HAS_CUDA:
        os.environ.setdefault("TRITON_INTERPRET", "1")
except ImportError:
    HAS_CUDA = False

import fastrsa  # noqa: E402

_AVAILABLE = fastrsa.available_backends()
# Backends run over the full CPU test matrix (torch computes on CPU tensors here).
CPU_BACKENDS = [b for b in ("numpy", "numba", "torch") if b in _AVAILABLE]
HAS_TRITON = "triton" in _AVAILABLE

# (dtype, atol) for results in [-2, 2] compared with the float64 reference on the same values.
# float32: Gram products of unit rows with d <= 2048 err by ~sqrt(d) * 6e-8 < 1e-5.
DTYPES = [(np.float64, 1e-10), (np.float32, 2e-5)]


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
