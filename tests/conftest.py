import os

import numpy as np
import pytest

import fastrsa

CPU_BACKENDS = [b for b in ("numpy", "numba") if b in fastrsa.available_backends()]

# (dtype, atol) for results in [-2, 2] compared with the float64 reference on the same values.
# float32: Gram products of unit rows with d <= 2048 err by ~sqrt(d) * 6e-8 < 1e-5.
DTYPES = [(np.float64, 1e-10), (np.float32, 2e-5)]


@pytest.fixture
def rng():
    """A fresh generator per test; its seed is printed so a failure can be replayed with
    FASTRSA_SEED=<seed>."""
    seed = int(os.environ.get("FASTRSA_SEED", np.random.SeedSequence().entropy % 2**32))
    print(f"seed = {seed}")
    return np.random.default_rng(seed)


@pytest.fixture(params=CPU_BACKENDS)
def backend(request):
    return request.param
