"""Deprecated: the sweep's feature buffers moved to `fastrsa.sweeps.feature_buffer` (this name was
easily confused with fastrsa's host-to-GPU streaming). This module keeps old imports working,
with a DeprecationWarning."""

import warnings

from .feature_buffer import MIN_CHUNK, FeatureBuffer, read_exact
from .spill import spill_files

__all__ = ["MIN_CHUNK", "FeatureBuffer", "read_exact", "spill_files"]

warnings.warn(
    "fastrsa.sweeps.stream is deprecated: import from fastrsa.sweeps.feature_buffer",
    DeprecationWarning,
    stacklevel=2,
)
