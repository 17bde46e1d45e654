"""A sweep store's arrays (zarr v3): made and grown one chunk per RDM row (crc32c-checked), and
rows read back, straight from their chunk files where the layout allows, every chunk verified.

    arr = open_array(store_path, "rdms/0")          # None when absent
    rows = read_rows(store_path, "rdms/0", arr, [0, 3, 4], m)   # CorruptChunk when one is bad
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import MissingPackage
from .storage import is_url

__all__ = [
    "READ_CONCURRENCY",
    "CorruptChunk",
    "chunk_folder",
    "ensure_array",
    "open_array",
    "read_chunk_rows",
    "read_rows",
    "zarr_module",
]

READ_CONCURRENCY = 64  # chunks read at once (about 32 MB in flight for n = 500)


class CorruptChunk(Exception):
    """A chunk that is missing, short or fails its checksum: `row`, its row (None: not found)."""

    def __init__(self, row: int | None) -> None:
        super().__init__(f"corrupt chunk at row {row}")
        self.row = row


def zarr_module() -> Any:
    """The zarr module, or MissingPackage saying how to install it."""
    try:
        import zarr
    except ImportError:
        raise MissingPackage("sweep stores need zarr 3: `pip install 'zarr>=3'`") from None
    return zarr


def open_array(store_path: str, name: str) -> Any:
    """The zarr array `name` ("rdms/0", "similarity/0/spearman", ...) of the store, or None."""
    zarr = zarr_module()
    try:
        return zarr.open_array(store=store_path, path=name, mode="r+")
    except FileNotFoundError:
        return None
    except Exception as err:  # zarr raises its own error for a missing node
        if type(err).__name__ in ("ArrayNotFoundError", "NodeNotFoundError", "GroupNotFoundError"):
            return None
        raise


def ensure_array(
    store_path: str, name: str, existing: Any, shape: tuple[int, int], chunks: tuple[int, int],
    dtype: str,
) -> None:  # fmt: skip
    """Create the array `name` (NaN-filled, chunks crc32c-checked) when `existing` is None, else
    grow it to `shape` when it has fewer rows."""
    zarr = zarr_module()
    from zarr.codecs import Crc32cCodec

    if existing is None:
        zarr.create_array(
            store=store_path,
            name=name,
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            compressors=[Crc32cCodec()],
            fill_value=np.nan,
        )
    elif existing.shape[0] < shape[0]:
        existing.resize(shape)


def read_chunk_rows(
    folder: str, rows: Sequence[int], m: int, dtype: np.dtype
) -> tuple[np.ndarray, int | None]:
    """(len(rows), m) rows of a zarr v3 array of (1, m) chunks stored as little-endian bytes plus
    a crc32c checksum (the v3 spec's codecs), each chunk file read straight into its row and
    checked: (rows, None), or (partial, the first row whose chunk is missing, short or fails its
    checksum). Faster than zarr's general path for many small reads (benchmarks/bench_sweep.py,
    case read)."""
    import google_crc32c

    out = np.empty((len(rows), m), dtype=dtype.newbyteorder("<"))
    size = m * out.itemsize
    for k, r in enumerate(rows):
        row = memoryview(out[k]).cast("B")
        try:
            with open(os.path.join(folder, "c", str(r), "0"), "rb", buffering=0) as f:
                got = f.readinto(row)
                tail = f.read(5)
        except FileNotFoundError:
            return out, r
        stored = int.from_bytes(tail, "little") if len(tail) == 4 else None
        if got != size or stored != google_crc32c.value(out[k]):
            return out, r
    return out, None


def chunk_folder(store_path: str, name: str, m: int) -> str | None:
    """The local folder of a row-chunked array whose chunks can be read straight from their
    files (the layout ensure_array makes: one (1, m) chunk per row, codecs bytes (little
    endian) + crc32c, "/"-separated keys), or None (a URL, another layout: read by zarr)."""
    if is_url(store_path):
        return None
    folder = os.path.join(store_path, *name.split("/"))
    try:
        with open(os.path.join(folder, "zarr.json"), "rb") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    codecs = meta.get("codecs", [])
    plain = (
        [c.get("name") for c in codecs] == ["bytes", "crc32c"]
        and codecs[0].get("configuration", {}).get("endian") == "little"
        and meta["chunk_grid"]["configuration"]["chunk_shape"] == [1, m]
        and meta["chunk_key_encoding"] == {"name": "default", "configuration": {"separator": "/"}}
    )
    return folder if plain else None


def read_rows(store_path: str, name: str, arr: Any, rows: Sequence[int], m: int) -> np.ndarray:
    """(len(rows), m) rows of the array `name` (opened as `arr`), in its dtype: straight from
    the chunk files when chunk_folder allows, else through zarr with many chunks in flight.
    CorruptChunk naming the first row whose chunk is missing, short or fails its checksum."""
    rows = list(rows)
    direct = chunk_folder(store_path, name, m)
    if direct is not None:
        out, bad = read_chunk_rows(direct, rows, m, np.dtype(arr.dtype))
        if bad is not None:
            raise CorruptChunk(bad)
        return out
    try:  # many chunks in flight: zarr's default (10) leaves most of the time in waits
        with zarr_module().config.set({"async.concurrency": READ_CONCURRENCY}):
            if rows and rows == list(range(rows[0], rows[0] + len(rows))):
                return arr[rows[0] : rows[0] + len(rows)]
            return np.stack([arr[r] for r in rows]) if rows else np.empty((0, m))
    except ValueError as err:
        if "checksum" not in str(err):
            raise
    for r in rows:  # which chunk: read them one at a time
        try:
            arr[r]
        except ValueError:
            raise CorruptChunk(r) from None
    raise CorruptChunk(None)
