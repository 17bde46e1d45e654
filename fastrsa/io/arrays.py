"""Reading .npy and .npz files safely: no pickle, headers checked against the bytes present, and
.npz members that would inflate far beyond their compressed size (decompression bombs) refused."""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

from .atomic import os_reason

__all__ = [
    "BOMB_MIN",
    "BOMB_RATIO",
    "load_arrays",
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


def load_arrays(path: str | os.PathLike, name: str = "file") -> dict[str, np.ndarray]:
    """Arrays of a .npy (one, keyed by the file's stem) or .npz (all, by their keys) file.

    Pickled objects are refused without running them. Before anything is allocated, each array's
    header is checked against the bytes really there (a .npy's file size, an .npz member's size in
    the zip directory), and an .npz member that would inflate more than 200-fold beyond 64 MiB
    is refused as a decompression bomb. A missing, corrupt, forged or empty file, or an .npz
    member that is not an .npy array, raises an error naming `name`, the file and the member.
    """
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise ValueError(f"{name}: {path} is a folder; expected a .npy or .npz file")
        raise FileNotFoundError(f"{name}: no such file: {path}")
    if path.suffix not in (".npy", ".npz"):
        raise ValueError(f"{name}: expected a .npy or .npz file; got {path.name}")
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
    if path.suffix == ".npy":
        arrays = {path.stem: _load_npy(path, name)}
    else:
        arrays = _load_npz(path, name)
    if not arrays:
        raise ValueError(f"{name}: {path} holds no arrays")
    return arrays
