"""Reading and writing user files: .npy/.npz without pickle, JSON; every write is atomic."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Write through a temporary file in the same folder, then rename it over `path`.

    A crash midway leaves the old file (if any) untouched, never a half-written one. The file
    gets the permissions a plain open() would give (0666 less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """Atomically save arrays to an uncompressed .npz (the name is kept as given)."""
    return atomic_write(
        path, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
    )


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically save `obj` as indented JSON."""
    return atomic_write(path, lambda f: json.dump(obj, f, indent=2), mode="w")


def load_arrays(path: str | os.PathLike, name: str = "file") -> dict[str, np.ndarray]:
    """Arrays of a .npy (one, keyed by the file's stem) or .npz (all, by their keys) file.

    Pickled objects are refused. A missing, corrupt or empty file raises an error naming `name`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file: {path}")
    if path.suffix not in (".npy", ".npz"):
        raise ValueError(f"{name}: expected a .npy or .npz file; got {path.name}")
    magic = {".npy": b"\x93NUMPY", ".npz": b"PK"}[path.suffix]
    with open(path, "rb") as f:
        if f.read(len(magic)) != magic:
            raise ValueError(
                f"{name}: {path} is not a valid {path.suffix} file (corrupt or another format)"
            )
    try:
        if path.suffix == ".npy":
            arrays = {path.stem: np.load(path, allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as loaded:
                arrays = dict(loaded.items())
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{name}: could not read {path} as {path.suffix} ({err})") from None
    if not arrays:
        raise ValueError(f"{name}: {path} holds no arrays")
    return arrays
