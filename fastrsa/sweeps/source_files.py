"""Deprecated: the file sources moved to `fastrsa.sweeps.file_sources` (and are exported by
`fastrsa.sweeps`: `from fastrsa.sweeps import FeatureSource, RDMSource`). This module keeps old
imports working, with a DeprecationWarning."""

import warnings

from .file_sources import FEATURE_SUFFIXES, READINGS, FeatureSource, RDMSource

__all__ = ["FEATURE_SUFFIXES", "READINGS", "FeatureSource", "RDMSource"]

warnings.warn(
    "fastrsa.sweeps.source_files is deprecated: import FeatureSource and RDMSource from "
    "fastrsa.sweeps (they live in fastrsa.sweeps.file_sources)",
    DeprecationWarning,
    stacklevel=2,
)
