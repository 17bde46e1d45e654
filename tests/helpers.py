"""Shared constants of the test suite, imported by test modules (`from helpers import ...`) and by
conftest.py. Fixtures stay in conftest.py; test modules never import from conftest.

Importing this module first sets TRITON_INTERPRET=1 when there is no CUDA device, so the Triton
kernels run in Triton's interpreter on CPU tensors: it must be set before triton is imported,
which is why conftest.py imports this module before anything else does.
"""

import os

import numpy as np

try:  # without a GPU, Triton kernels run in its interpreter on CPU tensors (set before import)
    import torch

    HAS_CUDA = torch.cuda.is_available()
    if not HAS_CUDA:
        os.environ.setdefault("TRITON_INTERPRET", "1")
except ImportError:
    HAS_CUDA = False

import fastrsa  # noqa: E402

AVAILABLE = fastrsa.available_backends()
# Backends run over the full CPU test matrix (torch computes on CPU tensors here).
CPU_BACKENDS = [b for b in ("numpy", "numba", "torch") if b in AVAILABLE]
HAS_TRITON = "triton" in AVAILABLE

# (dtype, atol) for results in [-2, 2] compared with the float64 reference on the same values.
# float32: Gram products of unit rows with d <= 2048 err by ~sqrt(d) * 6e-8 < 1e-5.
DTYPES = [(np.float64, 1e-10), (np.float32, 2e-5)]
