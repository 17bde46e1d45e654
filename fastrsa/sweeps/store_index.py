"""A sweep store's index (fastrsa.json) and the keys that make its work idempotent.

The index (and its copy, COPY, which a sweep writes first and reads when the index is damaged)
holds the format and version, n, the metric, the image set's fingerprint, every
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
    "COPY",
    "FORMAT",
    "INDEX",
    "RANK_FLOAT32_LIMIT",
    "VERSION",
    "content_key",
    "index_problems",
    "lost_index",
    "new_index",
    "parse_index",
    "rank_dtype",
    "read_index",
]

FORMAT = "fastrsa-sweep"
VERSION = 1
INDEX = "fastrsa.json"
COPY = "fastrsa.copy.json"  # the index's copy, written first (so never older than the index)
RANK_FLOAT32_LIMIT = 2**23  # average-tie ranks (halves) of up to this many values are exact


def content_key(*parts: Any) -> str:
    """A short sha256 hex digest of JSON-serialisable parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def rank_dtype(m: int) -> str:
    """The dtype of the stored ranks of RDMs of m values: float32 while exact, else float64."""
    return "float32" if m < RANK_FLOAT32_LIMIT else "float64"


def _field_problem(index: dict) -> str | None:
    """What is wrong with the fields of a parsed index (None: nothing)."""
    kinds = {"n": int, "metric": str, "labels": list, "sources": dict, "layers": dict}
    for name, kind in kinds.items():
        if not isinstance(index.get(name), kind) or isinstance(index.get(name), bool):
            return f"its field {name!r} is missing or not a {kind.__name__}"
    if index["n"] < 3:
        return f"its field 'n' is {index['n']}"
    if index.get("images") is not None and not isinstance(index["images"], str):
        return "its field 'images' is not a string"
    ids = set()
    for layer, info in index["layers"].items():
        if not isinstance(info, dict):
            return f"layer {layer!r} is not an object"
        rows, keys = info.get("rows"), info.get("keys")
        tile = info.get("tile_rows")
        if (
            not isinstance(info.get("id"), str)
            or info["id"] in ids
            or info.get("dtype") not in ("float32", "float64")
            or not isinstance(rows, list)
            or not isinstance(keys, dict)
            or any(not isinstance(keys.get(r), str) or r not in index["labels"] for r in rows)
            or len(set(rows)) != len(rows)
            or not isinstance(info.get("methods"), list)
            or not (tile is None or (isinstance(tile, int) and tile >= 1))
        ):
            return f"layer {layer!r} lacks a field or holds a bad one (id, dtype, rows, keys, ...)"
        ids.add(info["id"])
    return None


def parse_index(data: bytes | None) -> tuple[dict | None, str | None]:
    """(index, None) for a readable index, (None, None) when absent, else (None, what is wrong).
    An index of another format version is not damage: UserError."""
    if data is None:
        return None, None
    try:
        index = json.loads(data)
    except ValueError:
        return None, "it is not valid JSON (truncated or overwritten?)"
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        return None, "it is not a fastrsa sweep store's index"
    if index.get("version") != VERSION:
        raise UserError(
            f"has format version {index.get('version')}; this fastrsa reads version {VERSION}"
        )
    problem = _field_problem(index)
    return (None, problem) if problem else (index, None)


def read_index(path: str, files: Files) -> dict | None:
    """The store's index, or None when it has none. An index that is missing or damaged while
    its copy (COPY, written before it, so never older) is whole: the copy (a sweep rewrites the
    index). UserError naming the file, the store and what is wrong when neither can be read."""
    try:
        index, problem = parse_index(files.read(INDEX))
        if index is not None:
            return index
        copy, copy_problem = parse_index(files.read(COPY))
    except (IsADirectoryError, NotADirectoryError, PermissionError) as err:
        raise UserError(f"store {path}: cannot read its index ({err})") from None
    except UserError as err:
        raise UserError(f"store {path} {err}") from None
    if copy is not None:
        return copy
    if problem is None and copy_problem is None:
        return None
    said = [f"{INDEX} is {'missing' if problem is None else 'damaged: ' + problem}"]
    said.append(f"its copy {COPY} is {'missing' if copy_problem is None else 'damaged too'}")
    raise UserError(
        f"store {path}: {'; '.join(said)}: its results can no longer be matched to their "
        f"sources; restore {INDEX} from a backup, or delete the store and run the sweep again"
    )


def lost_index(files: Files) -> bool:
    """Whether the store holds a sweep store's files (its root group's zarr.json, done-markers)
    though neither its index nor the index's copy is there."""
    try:
        root = json.loads(files.read("zarr.json") or b"null")
    except ValueError:
        root = None
    ours = isinstance(root, dict) and root.get("attributes", {}).get("fastrsa") == FORMAT
    return ours or bool(files.list("done"))


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
