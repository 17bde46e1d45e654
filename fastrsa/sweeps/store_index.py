"""A sweep store's index (fastrsa.json) and the keys that make its work idempotent.

The index holds the format and version, n, the metric, the image set's fingerprint, every
source, the labels, the layers (rows, content keys, dtype, block size of tiles) and package
versions. A content key hashes what a result depends on, so that a result whose inputs changed is
computed again and one whose inputs did not is reused.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from .._versions import package_versions
from ..errors import UserError
from .storage import Files

__all__ = [
    "FORMAT",
    "INDEX",
    "RANK_FLOAT32_LIMIT",
    "VERSION",
    "content_key",
    "index_problems",
    "new_index",
    "rank_dtype",
    "read_index",
]

FORMAT = "fastrsa-sweep"
VERSION = 1
INDEX = "fastrsa.json"
RANK_FLOAT32_LIMIT = 2**23  # average-tie ranks (halves) of up to this many values are exact


def content_key(*parts: Any) -> str:
    """A short sha256 hex digest of JSON-serialisable parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def rank_dtype(m: int) -> str:
    """The dtype of the stored ranks of RDMs of m values: float32 while exact, else float64."""
    return "float32" if m < RANK_FLOAT32_LIMIT else "float64"


def read_index(path: str, files: Files) -> dict | None:
    """The store's index, or None when it has none. UserError naming the path for an index that
    cannot be read, is not JSON, is not a sweep store's, or has another format version."""
    try:
        data = files.read(INDEX)
    except (IsADirectoryError, NotADirectoryError, PermissionError) as err:
        raise UserError(f"store {path}: cannot read its index ({err})") from None
    if data is None:
        return None
    try:
        index = json.loads(data)
    except ValueError:
        raise UserError(f"store {path}: {INDEX} is not valid JSON") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise UserError(f"store {path}: {INDEX} is not a fastrsa sweep store's index")
    if index.get("version") != VERSION:
        raise UserError(
            f"store {path} has format version {index.get('version')}; this fastrsa reads "
            f"version {VERSION}"
        )
    return index


def new_index(n: int, metric: str, images: str | None) -> dict:
    """The index of a new, empty store of n images, `metric` and the image set's fingerprint."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "n": n,
        "metric": metric,
        "images": images,
        "created": time.strftime("%FT%T%z"),
        "versions": package_versions(),
        "sources": {},
        "labels": [],
        "layers": {},
    }


def index_problems(index: dict, n: int, metric: str, images: str | None) -> list[str]:
    """What keeps a sweep of n images, `metric` and image set `images` (None: no images) from
    adding to a store with this index ([] when nothing does)."""
    problems = []
    if index["n"] != n:
        problems.append(f"{index['n']} images, not {n}")
    if index["metric"] != metric:
        problems.append(f"metric {index['metric']!r}, not {metric!r}")
    if images is not None and index.get("images") not in (None, images):
        problems.append("another image set (its images' content differs)")
    return problems
