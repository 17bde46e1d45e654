"""Atomic writes of one file: `atomic_write`, `save_npz`, `save_json` (see `fastrsa.io`), and
the clean-up of temporaries that killed writes left."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FOREIGN_AGE",
    "HOST",
    "JOURNAL",
    "TEMPORARY",
    "atomic_write",
    "check_file_target",
    "check_folder_target",
    "clean_temporaries",
    "json_bytes",
    "make_folder",
    "os_reason",
    "owner_gone",
    "save_json",
    "save_npz",
    "temp_tag",
    "umask",
    "write_error",
]

HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
# .NAME.<pid>-<host>-<random>.tmp (a temporary) or .commit (a committed set not yet moved)
TEMPORARY = re.compile(r"^\..+\.(\d+)-([0-9a-f]{8})-[A-Za-z0-9_]+\.(tmp|commit)$")
FOREIGN_AGE = 24 * 3600  # seconds after which another machine's temporary counts as dead
JOURNAL = ".set.json"  # inside a set's temporary folder: its members, their order, removals


def temp_tag() -> str:
    return f"{os.getpid()}-{HOST}-"


def umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux's
    /proc/self/status): setting and restoring it would let another thread create a file with
    umask 0 in between."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)  # no /proc: the only portable way to read it
    os.umask(mask)
    return mask


def os_reason(err: OSError) -> str:
    return err.strerror or " ".join(str(err).split()) or type(err).__name__


def write_error(path: Path, err: OSError) -> ValueError:
    return ValueError(f"cannot write {path}: {os_reason(err)}")


def check_file_target(path: Path) -> None:
    """ValueError naming `path` when it cannot be a file: an existing folder, or below a file."""
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder; expected a file path")
    check_folder_target(path.parent, path)


def check_folder_target(folder: Path, shown: Path | None = None) -> None:
    shown = shown or folder
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ValueError(f"cannot write {shown}: {existing} is a file, not a folder")


def make_folder(folder: Path, shown: Path) -> None:
    check_folder_target(folder, shown)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(shown, err) from None


def owner_gone(entry: os.DirEntry | Path) -> bool:
    """True when the process that made this temporary is no longer running."""
    name = entry.name
    m = TEMPORARY.match(name)
    if m and m.group(2) == HOST:
        pid = int(m.group(1))
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except (PermissionError, OSError):
            return False  # alive (another user's process)
        return False
    try:  # another machine's, or not ours at all: by age
        return time.time() - Path(entry).lstat().st_mtime > FOREIGN_AGE
    except OSError:
        return False


def clean_temporaries(
    folder: str | os.PathLike[str], match: Callable[[str], bool] | None = None
) -> list[str]:
    """Remove the temporary files and folders (`.NAME....tmp`, or the names `match` accepts)
    that processes now gone left in `folder` (`owner_gone`: a running process's stay); returns
    their names. Best effort: what cannot be removed stays."""
    if match is None:

        def match(name: str) -> bool:
            return name.startswith(".") and name.endswith(".tmp")

    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not match(entry.name) or not owner_gone(entry):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            pass
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Write through a temporary file in the same folder, then rename it over `path`.

    A crash midway leaves the old file (if any) untouched, never a half-written one; the
    temporaries of earlier killed writes into the folder are removed first. The file gets the
    permissions a plain open() would give (0666 less the umask). A path that cannot be written
    raises ValueError naming it, and no temporary file is left behind.
    """
    path = Path(path)
    check_file_target(path)
    make_folder(path.parent, path)
    clean_temporaries(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name[:100]}.{temp_tag()}", suffix=".tmp"
        )
    except OSError as err:
        raise write_error(path, err) from None
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(path, err) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    """Atomically save arrays to an uncompressed .npz (the name is kept as given)."""

    def write(f: Any) -> None:
        payload: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
        np.savez(f, **payload)

    return atomic_write(path, write)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _first_nonfinite(obj: Any, where: str = "") -> tuple[str, Any] | None:
    """(JSON path, value) of the first NaN or infinity in `obj`, or None."""
    if isinstance(obj, (float, np.floating)):
        return None if math.isfinite(obj) else (where or "the value", float(obj))
    if isinstance(obj, np.ndarray) and obj.dtype.kind in "fc":
        bad = ~np.isfinite(obj)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            return f"{where}{list(idx)}", obj[idx].item()
        return None
    if isinstance(obj, dict):
        items = ((f"{where}.{k}" if where else str(k), v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    for key, value in items:
        found = _first_nonfinite(value, key)
        if found:
            return found
    return None


def json_bytes(obj: Any, name: str = "JSON") -> bytes:
    """`obj` as indented UTF-8 JSON; numpy scalars and arrays become numbers and lists. NaN and
    infinities are refused (JSON has none) with a ValueError naming where they are."""
    bad = _first_nonfinite(obj)
    if bad:
        raise ValueError(
            f"{name}: {bad[0]} is {bad[1]}; JSON cannot hold NaN or Infinity, nothing was written"
        )
    try:
        return json.dumps(obj, indent=2, allow_nan=False, default=_json_default).encode()
    except (TypeError, ValueError) as err:
        raise type(err)(f"{name}: cannot be written as JSON ({err})") from None


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically save `obj` as indented JSON. NaN and infinities are refused (ValueError naming
    the path and the key): they would make the file invalid JSON."""
    data = json_bytes(obj, str(path))
    return atomic_write(path, lambda f: f.write(data))


# ---- sets of files ------------------------------------------------------------------------------
