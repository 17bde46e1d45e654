"""Triton GPU kernels. Importing compiles nothing and touches no device: kernels compile on first
launch. Under TRITON_INTERPRET=1 (set before import) they run on CPU tensors, for tests."""

from .corr import corr_triton
from .prepare import prepare_rows_triton
from .rank import rank_triton
from .rdm import rdm_triton

__all__ = ["corr_triton", "rank_triton", "prepare_rows_triton", "rdm_triton"]
