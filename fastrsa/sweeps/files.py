"""Deprecated: the store's file access moved to `fastrsa.sweeps.storage` (a clearer name beside
the file *sources*). This module keeps old imports working, with a DeprecationWarning."""

import warnings

from .storage import Files, FsspecFiles, LocalFiles, files_for, holder, is_url

__all__ = ["Files", "FsspecFiles", "LocalFiles", "files_for", "holder", "is_url"]

warnings.warn(
    "fastrsa.sweeps.files is deprecated: import from fastrsa.sweeps.storage",
    DeprecationWarning,
    stacklevel=2,
)
