"""A sweep store's arrays (zarr v3): made and grown by zarr, one chunk per RDM row and one per
tile, each chunk its little-endian bytes plus a crc32c checksum (the v3 spec's codecs); read back
straight from the chunk files, every chunk checked (present, its size, its checksum), and their
metadata (zarr.json) checked against what the store's index says they are.

    arr = open_array(store_path, "rdms/0")                    # None when absent (zarr, writes)
    rows = read_rows(files, "rdms/0", [0, 3, 4], m, dtype)    # CorruptChunk when one is bad
    meta_problem(files.read("rdms/0/zarr.json"), array_meta((rows, m), (1, m), dtype))
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..errors import MissingPackage
from .storage import Files, LocalFiles

__all__ = [
    "GROUP_META",
    "READ_CONCURRENCY",
    "CorruptChunk",
    "array_meta",
    "chunk_problem",
    "ensure_array",
    "meta_problem",
    "open_array",
    "read_chunk_rows",
    "read_rows",
    "read_similarity",
    "read_tile",
    "zarr_module",
]

READ_CONCURRENCY = 64  # chunks read at once from an object store (about 32 MB for n = 500)
GROUP_META = {"attributes": {}, "zarr_format": 3, "node_type": "group"}


class CorruptChunk(Exception):
    """A chunk that is missing, of the wrong size or fails its checksum: `key` (its file under
    the store), `problem` (which of these), `row` (its row, for row-chunked arrays) or `tile`
    ((i, j) of the tile that wrote it, for similarity arrays)."""

    def __init__(self, key: str, problem: str, row: int | None = None, tile=None) -> None:
        super().__init__(f"chunk {key} is {problem}")
        self.key, self.problem, self.row = key, problem, row
        self.tile: tuple[int, int] | None = tile


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


def array_meta(shape: tuple[int, int], chunks: tuple[int, int], dtype: str) -> dict:
    """The zarr.json that ensure_array writes for an array (the zarr v3 spec's fields)."""
    return {
        "shape": list(shape),
        "data_type": str(dtype),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": "NaN",
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
        "attributes": {},
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }


def meta_problem(data: bytes | None, want: dict) -> str | None:
    """What is wrong with an array's zarr.json (None: nothing) against `want` (array_meta of
    the rows the index holds): its layout must be want's, its shape at least want's (a store
    grows), and square when want's is (similarity)."""
    if data is None:
        return "missing"
    try:
        meta = json.loads(data)
    except ValueError:
        return "not valid JSON (truncated or overwritten?)"
    if not isinstance(meta, dict):
        return "not a zarr array's metadata"
    keys = ("zarr_format", "node_type", "data_type", "chunk_grid", "chunk_key_encoding", "codecs")
    wrong = [k for k in keys if meta.get(k) != want[k]]
    if wrong:
        return f"not the array the index describes (its {', '.join(wrong)} differ)"
    shape, need = meta.get("shape"), want["shape"]
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(s, int) for s in shape)
        or shape[0] < need[0]
        or (shape[1] != need[1] if need[0] != need[1] else shape[0] != shape[1])
    ):
        return f"not the array the index describes (shape {shape}, index {need})"
    return None


def chunk_problem(data: bytes | memoryview | None, nbytes: int) -> str | None:
    """What is wrong with a chunk file's bytes (None: nothing): missing, the wrong size (its
    `nbytes` values plus the 4-byte crc32c), or a checksum that does not match."""
    import google_crc32c

    if data is None:
        return "missing"
    if len(data) != nbytes + 4:
        return f"the wrong size ({len(data)} bytes, not {nbytes + 4})"
    body = np.frombuffer(data, dtype=np.uint8, count=nbytes)  # no copy
    if int.from_bytes(bytes(data[nbytes:]), "little") != google_crc32c.value(body):
        return "corrupt (its checksum does not match)"
    return None


def read_chunk_rows(
    folder: str, rows: Sequence[int], m: int, dtype: np.dtype
) -> tuple[np.ndarray, int | None, str]:
    """(len(rows), m) rows of a local array of (1, m) chunks, each chunk file read straight into
    its row and checked: (rows, None, ""), or (partial, the first bad row, its problem). Faster
    than zarr's general path for many small reads (benchmarks/bench_sweep.py, case read)."""
    import google_crc32c

    out = np.empty((len(rows), m), dtype=np.dtype(dtype).newbyteorder("<"))
    size = m * out.itemsize
    for k, r in enumerate(rows):
        row = memoryview(out[k]).cast("B")
        try:
            with open(os.path.join(folder, "c", str(r), "0"), "rb", buffering=0) as f:
                got = f.readinto(row)
                tail = f.read(5)
        except FileNotFoundError:
            return out, r, "missing"
        if got != size or len(tail) != 4:
            total = (got or 0) + len(tail)
            return out, r, f"the wrong size ({total} bytes, not {size + 4})"
        if int.from_bytes(tail, "little") != google_crc32c.value(out[k]):
            return out, r, "corrupt (its checksum does not match)"
    return out, None, ""


def _chunk(data: bytes, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"), count=int(np.prod(shape)))


def read_rows(files: Files, name: str, rows: Sequence[int], m: int, dtype: Any) -> np.ndarray:
    """(len(rows), m) rows of the row-chunked array `name` (array_meta's layout, checked by the
    caller), in `dtype`: straight from the chunk files on a local disk, else many chunks in
    flight. CorruptChunk naming the first row whose chunk is missing, short or corrupt."""
    rows = list(rows)
    if isinstance(files, LocalFiles):
        folder = os.path.join(files.root, *name.split("/"))
        out, bad, problem = read_chunk_rows(folder, rows, m, np.dtype(dtype))
        if bad is not None:
            raise CorruptChunk(f"{name}/c/{bad}/0", problem, bad)
        return out
    nbytes = m * np.dtype(dtype).itemsize
    with ThreadPoolExecutor(min(READ_CONCURRENCY, max(1, len(rows)))) as pool:
        datas = list(pool.map(lambda r: files.read(f"{name}/c/{r}/0"), rows))
    out = np.empty((len(rows), m), dtype=np.dtype(dtype).newbyteorder("<"))
    for k, (r, data) in enumerate(zip(rows, datas, strict=True)):
        wrong = chunk_problem(data, nbytes)
        if wrong is not None:
            raise CorruptChunk(f"{name}/c/{r}/0", wrong, r)
        out[k] = _chunk(data, (m,), dtype)  # type: ignore[arg-type]
    return out


def read_tile(files: Files, name: str, i: int, j: int, b: int) -> np.ndarray:
    """The (b, b) float64 chunk (i, j) of a similarity array (chunks (b, b)), checked;
    CorruptChunk when it is missing, short or corrupt."""
    key = f"{name}/c/{i}/{j}"
    data = files.read(key)
    problem = chunk_problem(data, b * b * 8)
    if problem is not None:
        raise CorruptChunk(key, problem)
    return _chunk(data, (b, b), "float64").reshape(b, b)  # type: ignore[arg-type]


def read_similarity(
    files: Files, name: str, tiles: Sequence[tuple[int, int]], b: int, count: int
) -> np.ndarray:
    """(count, count) float64 from the chunks of a similarity array (chunks (b, b)) that the
    tiles (i, j), i <= j, wrote: (i, j) and its mirror (j, i). CorruptChunk (with .tile) for
    the first chunk missing, short or corrupt."""
    out = np.empty((count, count))
    for i, j in tiles:
        for p, q in {(i, j), (j, i)}:
            try:
                chunk = read_tile(files, name, p, q, b)
            except CorruptChunk as bad:
                raise CorruptChunk(bad.key, bad.problem, tile=(i, j)) from None
            r, c = min(count, (p + 1) * b) - p * b, min(count, (q + 1) * b) - q * b
            out[p * b : p * b + r, q * b : q * b + c] = chunk[:r, :c]
    return out
