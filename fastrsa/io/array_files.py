"""Reading .npy and .npz files safely: no pickle, headers checked against the bytes present, and
.npz members that would inflate far beyond their compressed size (decompression bombs) refused.
Whole (`load_arrays`) or a block of rows at a time (`open_rows`)."""

from __future__ import annotations

import math
import os
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import os_reason

__all__ = [
    "check_array_file",
    "BOMB_MIN",
    "BOMB_RATIO",
    "RowReader",
    "load_arrays",
    "npy_fortran_order",
    "open_rows",
    "rows_of",
    "read_npy_header",
    "too_big_error",
]

# An .npz member may inflate at most this much beyond its compressed size once it is larger than
# BOMB_MIN bytes: real arrays (even sparse ReLU features) compress far less.
BOMB_RATIO = 200
BOMB_MIN = 64 * 2**20

# ---- reading arrays -----------------------------------------------------------------------------


def read_npy_header(f, what: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, bytes of data) from an .npy header, without reading the data. ValueError
    (with `what` in its text) for a header that is not valid or an object (pickle) dtype."""
    fmt = np.lib.format
    try:
        major, minor = fmt.read_magic(f)
        if (major, minor) == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f, max_header_size=10000)
        elif (major, minor) in ((2, 0), (3, 0)):
            if (major, minor) == (3, 0):  # 2.0 with a UTF-8 header: same layout
                shape, dtype = _read_header_v3(f, what)
            else:
                shape, _, dtype = fmt.read_array_header_2_0(f, max_header_size=10000)
        else:
            raise ValueError(f"unknown .npy format version {major}.{minor}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as err:
        raise ValueError(
            f"{what} is not a valid .npy array ({' '.join(str(err).split())})"
        ) from None
    return _sized(shape, dtype, what)


def _read_header_v3(f, what: str):
    import ast
    import struct

    (hlen,) = struct.unpack("<I", f.read(4))
    if hlen > 100_000:
        raise ValueError(f"{what} is not a valid .npy array (header of {hlen:,} bytes)")
    header = f.read(hlen).decode("utf8")
    d = ast.literal_eval(header)
    if not isinstance(d, dict) or not {"descr", "shape", "fortran_order"} <= set(d):
        raise ValueError(f"{what} is not a valid .npy array (bad header)")
    return tuple(d["shape"]), np.lib.format.descr_to_dtype(d["descr"])


def _sized(shape, dtype: np.dtype, what: str) -> tuple[tuple[int, ...], np.dtype, int]:
    if dtype.hasobject:
        raise ValueError(
            f"{what}: could not read it: it holds Python objects (a pickle), which are refused "
            "because loading them can run code"
        )
    if not all(isinstance(s, int) and s >= 0 for s in shape):
        raise ValueError(f"{what} is not a valid .npy array (shape {shape})")
    return tuple(shape), dtype, math.prod(shape) * dtype.itemsize


def too_big_error(claimed: int, available: int, shape, what: str) -> ValueError:
    return ValueError(
        f"{what} claims shape {shape} ({claimed:,} bytes) but holds only {available:,} bytes of "
        "data: truncated or forged"
    )


def _load_npy(path: Path, name: str) -> np.ndarray:
    what = f"{name}: {path}"
    with open(path, "rb") as f:
        shape, _, need = read_npy_header(f, what)
        have = os.fstat(f.fileno()).st_size - f.tell()
        if need > have:
            raise too_big_error(need, have, shape, what)
        f.seek(0)
        try:
            return np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            reason = " ".join(str(err).split())
            raise ValueError(f"{name}: could not read {path} as .npy ({reason})") from None


def _load_npz(path: Path, name: str) -> dict[str, np.ndarray]:
    size = path.stat().st_size
    arrays = {}
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            for info in infos:
                what = f"{name}: {path}, member {info.filename!r}"
                if info.is_dir() or not info.filename.endswith(".npy"):
                    raise ValueError(f"{what} is not an .npy array (an .npz holds only arrays)")
                if info.compress_size > size:
                    raise ValueError(f"{what} claims more bytes than the file holds: forged")
                if info.file_size > BOMB_MIN and info.file_size > BOMB_RATIO * max(
                    info.compress_size, 1
                ):
                    raise ValueError(
                        f"{what} would inflate from {info.compress_size:,} to "
                        f"{info.file_size:,} bytes: refused as a decompression bomb"
                    )
                with zf.open(info) as f:
                    shape, _, need = read_npy_header(f, what)
                    have = info.file_size - f.tell()
                    if need > have:
                        raise too_big_error(need, have, shape, what)
                    f.seek(0)
                    try:
                        arr = np.lib.format.read_array(f, allow_pickle=False)
                    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
                        reason = " ".join(str(err).split())
                        raise ValueError(f"{what} could not be read ({reason})") from None
                arrays[info.filename[: -len(".npy")]] = arr
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as err:
        reason = " ".join(str(err).split())
        raise ValueError(f"{name}: could not read {path} as .npz ({reason})") from None
    return arrays


def check_array_file(path: Path, name: str, expected: str = "a .npy or .npz file") -> None:
    """`path` is an existing .npy or .npz file that starts as one (its magic bytes); errors name
    `name` and the file (FileNotFoundError when missing, else ValueError)."""
    if not path.is_file():
        if path.is_dir():
            raise ValueError(f"{name}: {path} is a folder; expected a .npy or .npz file")
        raise FileNotFoundError(f"{name}: no such file: {path}")
    if path.suffix not in (".npy", ".npz"):
        raise ValueError(f"{name}: expected {expected}; got {path.name}")
    magic = {".npy": b"\x93NUMPY", ".npz": b"PK"}[path.suffix]
    try:
        with open(path, "rb") as f:
            head = f.read(len(magic))
    except OSError as err:
        raise ValueError(f"{name}: cannot read {path}: {os_reason(err)}") from None
    if head != magic:
        raise ValueError(
            f"{name}: {path} is not a valid {path.suffix} file (corrupt or another format)"
        )


def load_arrays(path: str | os.PathLike, name: str = "file") -> dict[str, np.ndarray]:
    """Arrays of a .npy (one, keyed by the file's stem) or .npz (all, by their keys) file.

    Pickled objects are refused without running them. Before anything is allocated, each array's
    header is checked against the bytes really there (a .npy's file size, an .npz member's size in
    the zip directory), and an .npz member that would inflate more than 200-fold beyond 64 MiB
    is refused as a decompression bomb. A missing, corrupt, forged or empty file, or an .npz
    member that is not an .npy array, raises an error naming `name`, the file and the member.
    """
    path = Path(path)
    check_array_file(path, name)
    if path.suffix == ".npy":
        arrays = {path.stem: _load_npy(path, name)}
    else:
        arrays = _load_npz(path, name)
    if not arrays:
        raise ValueError(f"{name}: {path} holds no arrays")
    return arrays


# ---- reading rows -------------------------------------------------------------------------------


def npy_fortran_order(f) -> bool | None:
    """The fortran_order flag of an .npy header (f at its start; left at the data), or None for
    a header version this does not parse (3.0: then the array is read whole)."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        return bool(fmt.read_array_header_1_0(f, max_header_size=10000)[1])
    if version == (2, 0):
        return bool(fmt.read_array_header_2_0(f, max_header_size=10000)[1])
    return None


class RowReader:
    """Rows of an array in a file: `shape`, `dtype`, `read(start, count)` -> rows start ..
    start + count - 1 (count, *shape[1:]) as a new array, `close()`."""

    def __init__(
        self,
        shape: tuple[int, ...],
        dtype: np.dtype,
        read: Callable[[int, int], np.ndarray],
        close: Callable[[], None] = lambda: None,
    ):
        self.shape, self.dtype, self.read, self.close = shape, dtype, read, close

    def __enter__(self) -> RowReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def rows_of(arr: Any) -> RowReader:
    """An array in memory (or a zarr array: read by slices) as a RowReader."""
    return RowReader(tuple(arr.shape), np.dtype(arr.dtype), lambda s, c: np.asarray(arr[s : s + c]))


def _file_rows(
    f: Any, shape: tuple[int, ...], dtype: np.dtype, what: str, close: Callable[[], None]
) -> RowReader:
    """Rows of a C-order array whose data start at f's position (f seekable)."""
    base = f.tell()
    row_bytes = math.prod(shape[1:]) * dtype.itemsize

    def read(start: int, count: int) -> np.ndarray:
        out = np.empty((count, *shape[1:]), dtype=dtype)
        f.seek(base + start * row_bytes)
        view, done = out.data.cast("B"), 0
        while done < len(view):
            got = f.readinto(view[done:])
            if not got:
                raise ValueError(f"{what} is truncated")
            done += got
        return out

    return RowReader(shape, dtype, read, close)


def _stored_start(raw: Any, info: zipfile.ZipInfo) -> int:
    """Where an uncompressed member's bytes start in the zip file (after its local header)."""
    raw.seek(info.header_offset)
    head = raw.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad local file header")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    return info.header_offset + 30 + name_len + extra_len


def open_rows(
    path: str | os.PathLike, key: str | None = None, name: str = "file", what: str | None = None
) -> RowReader:
    """A reader of the rows of the .npy file `path`, or of the member `key` of the .npz `path`,
    checked as `load_arrays` checks them (no pickle, the header against the bytes there, no
    decompression bomb) without reading the data. Rows are read with a seek: directly in a .npy
    and in uncompressed .npz members, by decompressing forward in compressed ones (reading rows
    in order costs one pass). Fortran-order arrays and .npy headers of version 3.0 are read
    whole (rare layouts). Errors name `what` (default: `name`, the file and the member). Close
    it when done (or use it as a context manager)."""
    path = Path(path)
    if path.suffix == ".npy":
        what = what or f"{name}: {path}"
        npy = open(path, "rb")
        try:
            shape, dtype, need = read_npy_header(npy, what)
            npy.seek(0)
            fortran = npy_fortran_order(npy)
            have = os.fstat(npy.fileno()).st_size - npy.tell()
            if need > have:
                raise too_big_error(need, have, shape, what)
        except BaseException:
            npy.close()
            raise
        if fortran is None or fortran:
            npy.close()
            return rows_of(load_arrays(path, name)[path.stem])
        return _file_rows(npy, shape, dtype, what, npy.close)
    if key is None:
        raise ValueError(f"{name}: {path}: give the member (key) of the .npz to read")
    what = what or f"{name}: {path}, member {key!r}"
    zf = zipfile.ZipFile(path)
    f: Any = None
    try:
        info = zf.getinfo(f"{key}.npy")
        if info.compress_size > path.stat().st_size:
            raise ValueError(f"{what} claims more bytes than the file holds: forged")
        if info.file_size > BOMB_MIN and info.file_size > BOMB_RATIO * max(info.compress_size, 1):
            raise ValueError(
                f"{what} would inflate from {info.compress_size:,} to {info.file_size:,} bytes: "
                "refused as a decompression bomb"
            )
        if info.compress_type == zipfile.ZIP_STORED:  # read in place: a seek is a seek
            f = open(path, "rb")
            start = _stored_start(f, info)
        else:
            f, start = zf.open(info), 0
        f.seek(start)
        shape, dtype, need = read_npy_header(f, what)
        f.seek(start)
        fortran = npy_fortran_order(f)
        have = info.file_size - (f.tell() - start)
        if need > have:
            raise too_big_error(need, have, shape, what)
    except BaseException:
        if f is not None:
            f.close()
        zf.close()
        raise

    def close() -> None:
        f.close()
        zf.close()

    if fortran is None or fortran:
        close()
        return rows_of(load_arrays(path, name)[key])
    return _file_rows(f, shape, dtype, what, close)
