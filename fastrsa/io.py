"""Reading and writing user files: .npy/.npz without pickle, JSON; every write is atomic.

Writes
------
- `atomic_write` (and `save_npz`, `save_json`): one file, through a temporary sibling
  `.NAME.<pid>-<host>-<random>.tmp`, renamed over the target: a reader sees the old file or the
  new one, never half of one.
- `write_set`: several files that belong together (a taxonomy's .json, .npz and figures). They
  are written into a temporary sibling folder `.MANIFEST.<pid>-<host>-<random>.tmp/`; when all
  are written the folder is renamed to `....commit` (the commit point: one atomic rename), then
  its files are moved into place, the manifest last, under an exclusive lock on the folder. A
  killed write before the commit point leaves the old set untouched (its temporary folder is
  removed by the next write); a write killed after it is completed ("rolled forward") by the next
  `write_set` or `recover` on that folder. The manifest records the SHA-256 of every member, so a
  reader can still tell a mixed set (`verify_set`) in the instant between two moves.
- Temporaries of killed writes are removed by the next write into the same folder. A temporary
  is left alone while the process that made it still runs (a concurrent writer); temporaries of
  another machine (shared file systems) are removed once a day old.
- Output paths that cannot be written (an existing folder, a file where a folder should be, no
  permission, a full disk) raise a one-line ValueError naming the path; nothing is left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
# .NAME.<pid>-<host>-<random>.tmp (a temporary) or .commit (a committed set not yet moved)
_TEMP = re.compile(r"^\..+\.(\d+)-([0-9a-f]{8})-[A-Za-z0-9_]+\.(tmp|commit)$")
_FOREIGN_AGE = 24 * 3600  # seconds after which another machine's temporary counts as dead
_JOURNAL = ".set.json"  # inside a set's temporary folder: its members, their order, removals
# An .npz member may inflate at most this much beyond its compressed size once it is larger than
# _BOMB_MIN bytes: real arrays (even sparse ReLU features) compress far less.
_BOMB_RATIO = 200
_BOMB_MIN = 64 * 2**20


def _tag() -> str:
    return f"{os.getpid()}-{_HOST}-"


def _umask() -> int:
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


def _reason(err: OSError) -> str:
    return err.strerror or " ".join(str(err).split()) or type(err).__name__


def _write_error(path: Path, err: OSError) -> ValueError:
    return ValueError(f"cannot write {path}: {_reason(err)}")


def _check_file_target(path: Path) -> None:
    """ValueError naming `path` when it cannot be a file: an existing folder, or below a file."""
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder; expected a file path")
    _check_folder_target(path.parent, path)


def _check_folder_target(folder: Path, shown: Path | None = None) -> None:
    shown = shown or folder
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ValueError(f"cannot write {shown}: {existing} is a file, not a folder")


def _make_folder(folder: Path, shown: Path) -> None:
    _check_folder_target(folder, shown)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(shown, err) from None


def _owner_gone(entry: os.DirEntry | Path) -> bool:
    """True when the process that made this temporary is no longer running."""
    name = entry.name
    m = _TEMP.match(name)
    if m and m.group(2) == _HOST:
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
        return time.time() - Path(entry).lstat().st_mtime > _FOREIGN_AGE
    except OSError:
        return False


def clean_temporaries(folder: str | os.PathLike[str]) -> list[str]:
    """Remove the temporary files and folders (`.NAME....tmp`) that killed writes left in
    `folder`; returns their names. Best effort: what cannot be removed stays."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue
        if not _owner_gone(entry):
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
    _check_file_target(path)
    _make_folder(path.parent, path)
    clean_temporaries(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name[:100]}.{_tag()}", suffix=".tmp"
        )
    except OSError as err:
        raise _write_error(path, err) from None
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise _write_error(path, err) from None
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


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive lock on `folder` (flock on the folder itself; no lock where flock is absent)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def file_sha256(path: Path) -> str:
    """The SHA-256 hex digest of a file's bytes, read 1 MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _roll_forward(commit: Path, folder: Path) -> None:
    """Move a committed set's files into `folder` (members, removals, the manifest last), then
    remove its folder. Idempotent: what was moved already is skipped."""
    try:
        journal = json.loads((commit / _JOURNAL).read_text())
        members, manifest = list(journal["members"]), journal["manifest"]
    except (OSError, ValueError, KeyError, TypeError):
        if not commit.exists():
            return
        shutil.rmtree(commit, ignore_errors=True)  # not a committed set of ours
        return
    for name in members:
        with contextlib.suppress(FileNotFoundError):
            os.replace(commit / name, folder / name)
    for name in journal.get("remove", []):
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    _fsync_folder(folder)
    with contextlib.suppress(FileNotFoundError):
        os.replace(commit / manifest, folder / manifest)
    _fsync_folder(folder)
    shutil.rmtree(commit, ignore_errors=True)


def _pending(folder: Path) -> list[Path]:
    """Committed sets not yet moved into `folder`, oldest first."""
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.name.startswith(".") and entry.name.endswith(".commit"):
                try:
                    seq = json.loads(Path(entry.path, _JOURNAL).read_text())["seq"]
                except (OSError, ValueError, KeyError, TypeError):
                    seq = 0
                found.append((seq, Path(entry.path)))
    return [p for _, p in sorted(found)]


def recover(folder: str | os.PathLike) -> None:
    """Finish the set writes that were killed after their commit point and remove the temporaries
    of killed writes in `folder` (what the next write into the folder does anyway)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    if _pending(folder):
        with _locked(folder):
            for commit in _pending(folder):
                _roll_forward(commit, folder)
    clean_temporaries(folder)


def write_set(
    folder: str | os.PathLike,
    files: dict[str, Callable[[Any], None]],
    manifest: str,
    make_manifest: Callable[[dict[str, str]], bytes],
    remove: Iterable[str] = (),
) -> Path:
    """Write a set of files into `folder` so that it changes from one complete set to the next.

    files: {name: write(binary file)} for the members; manifest: the name of the file written
    last, whose bytes `make_manifest({name: sha256 hex of that member})` returns (so it can record
    what it belongs with; see `verify_set`); remove: names of former members to delete (e.g.
    figures not written this time). Returns the manifest's path. See the module docstring for
    the scheme; a folder that cannot be written raises ValueError naming it.
    """
    folder = Path(folder)
    names = [*files, manifest]
    for name in names:
        if not name or name.startswith(".") or Path(name).name != name:
            raise ValueError(f"write_set: {name!r} is not a plain file name")
    if len(set(names)) != len(names):
        raise ValueError(f"write_set: file names repeat: {names}")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"cannot write into {folder}: it is a file, not a folder")
    _make_folder(folder, folder)
    for name in names:
        if (folder / name).is_dir():
            raise ValueError(f"cannot write {folder / name}: it is a folder; expected a file")
    recover(folder)
    try:
        stage = Path(tempfile.mkdtemp(dir=folder, prefix=f".{manifest}.{_tag()}", suffix=".tmp"))
    except OSError as err:
        raise _write_error(folder / manifest, err) from None
    unfinished: Path | None = stage  # removed on failure until the commit point
    mode = 0o666 & ~_umask()
    current = folder / manifest
    try:
        hashes = {}
        for name, write in files.items():
            current = folder / name
            with open(stage / name, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(stage / name, mode)
            hashes[name] = file_sha256(stage / name)
        current = folder / manifest
        data = make_manifest(hashes)
        with open(stage / manifest, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(stage / manifest, mode)
        journal: dict[str, Any] = {
            "manifest": manifest,
            "members": list(files),
            "remove": [r for r in remove if r not in names],
        }
        os.chmod(stage, 0o777 & ~_umask())
        with _locked(folder):
            journal["seq"] = time.time_ns()
            (stage / _JOURNAL).write_text(json.dumps(journal))
            commit = stage.with_name(stage.name[: -len(".tmp")] + ".commit")
            os.rename(stage, commit)  # the commit point
            unfinished = None
            _fsync_folder(folder)
            for pending in _pending(folder):  # older sets first, this one last
                _roll_forward(pending, folder)
    except OSError as err:
        if unfinished is not None:
            shutil.rmtree(unfinished, ignore_errors=True)
            raise _write_error(current, err) from None
        raise ValueError(
            f"cannot finish writing {folder / manifest}: {_reason(err)}; the next write into "
            f"{folder} (or fastrsa.io.recover) completes it"
        ) from None
    except BaseException:
        if unfinished is not None:
            shutil.rmtree(unfinished, ignore_errors=True)
        raise
    return folder / manifest


def verify_set(folder: str | os.PathLike, hashes: dict[str, str], manifest: str) -> None:
    """Check the members of a set written by `write_set` against the SHA-256 its manifest
    records: ValueError naming the folder and the member that belongs to another write (a mixed
    set). Members that are absent (deleted by the user) are not an error."""
    folder = Path(folder)
    for name, digest in hashes.items():
        path = folder / name
        if Path(name).name != name or not path.is_file():
            continue
        if file_sha256(path) != digest:
            raise ValueError(
                f"{folder}: {name} does not belong with {manifest} (they come from different "
                "saves: a save into this folder was interrupted or is under way); save again"
            )


# ---- reading arrays -----------------------------------------------------------------------------


def _read_header(f, what: str) -> tuple[tuple[int, ...], np.dtype, int]:
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


def _too_big(claimed: int, available: int, shape, what: str) -> ValueError:
    return ValueError(
        f"{what} claims shape {shape} ({claimed:,} bytes) but holds only {available:,} bytes of "
        "data: truncated or forged"
    )


def _load_npy(path: Path, name: str) -> np.ndarray:
    what = f"{name}: {path}"
    with open(path, "rb") as f:
        shape, _, need = _read_header(f, what)
        have = os.fstat(f.fileno()).st_size - f.tell()
        if need > have:
            raise _too_big(need, have, shape, what)
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
                if info.file_size > _BOMB_MIN and info.file_size > _BOMB_RATIO * max(
                    info.compress_size, 1
                ):
                    raise ValueError(
                        f"{what} would inflate from {info.compress_size:,} to "
                        f"{info.file_size:,} bytes: refused as a decompression bomb"
                    )
                with zf.open(info) as f:
                    shape, _, need = _read_header(f, what)
                    have = info.file_size - f.tell()
                    if need > have:
                        raise _too_big(need, have, shape, what)
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
        raise ValueError(f"{name}: cannot read {path}: {_reason(err)}") from None
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


# ---- reading RDM files --------------------------------------------------------------------------

READINGS = ("auto", "condensed", "square")


def _condensed_length(k: int) -> bool:
    """Whether k = n*(n-1)/2 for some n >= 3: a length condensed RDMs can have."""
    from .rdms import n_from_condensed

    try:
        return n_from_condensed(k) >= 3
    except ValueError:
        return False


def _rdm_problem(err: ValueError) -> str:
    """What squareform found wrong with a square array, without its internal name "x"."""
    text = str(err)
    if "symmetric" in text:
        return "not symmetric"
    if "diagonal" in text:
        return "non-zero diagonal"
    return re.sub(r"^x ", "", text)


def _warn_note(message: str) -> None:
    import warnings

    warnings.warn(message, UserWarning, stacklevel=3)


def rdms_from_arrays(
    arrays: dict[str, np.ndarray],
    name: str = "rdms",
    reading: str | None = None,
    note: Callable[[str], None] | None = None,
) -> tuple[list[str], np.ndarray]:
    """(labels, condensed RDMs (K, m)) from {key: array}, where each array is one condensed RDM
    (m,), one square RDM (n, n), a stack of square RDMs (k, n, n) or a batch of condensed RDMs
    (k, m); a stack or batch is labelled `key[0]`, `key[1]`, ...

    reading: "auto" (None), "condensed" or "square" (the CLI's --condensed / --square). A square
    (k, k) array can be one square RDM or k condensed RDMs of length k: "square" reads every
    square 2-D array as one square RDM, "condensed" every 2-D array as rows. With "auto", a valid
    RDM (symmetric, zero diagonal) is one square RDM and any other square array k condensed rows
    (when k is a condensed length); whenever both readings were possible, `note` (default: a
    UserWarning) says which was taken and how to choose.

    Every RDM must be real and finite, of a condensed length n*(n-1)/2 with n >= 3, all of the
    same length. Integers become float64; float32 and float64 stay as they are. Errors
    (ValueError, TypeError for non-numbers) name `name`, the array and the label.
    """
    from .rdms import n_from_condensed, squareform

    reading = "auto" if reading is None else reading
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {READINGS} or None; got {reading!r}")
    note = note or _warn_note
    labels, rows = [], []
    for key, arr in arrays.items():
        what = f"{name}: array {key!r} of shape {arr.shape}"
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{what} holds {arr.dtype}, not numbers")
        if arr.size == 0:
            raise ValueError(f"{what} is empty")
        if arr.ndim == 2 and arr.shape[0] == arr.shape[1] and reading != "condensed":
            k = arr.shape[0]
            try:
                arr = np.asarray(squareform(arr, to="condensed"))
            except ValueError as err:
                if reading == "square" or not _condensed_length(k):
                    hint = "; pass --condensed if its rows are condensed RDMs"
                    raise ValueError(
                        f"{what} is not a square RDM ({_rdm_problem(err)})"
                        + (hint if _condensed_length(k) else "")
                    ) from None
                note(
                    f"{what} is not a symmetric zero-diagonal RDM, so it was read as {k} "
                    "condensed RDMs (rows); pass --condensed or --square to choose"
                )
            else:
                if reading == "auto" and _condensed_length(k):
                    note(
                        f"{what} was read as one square RDM of {k} images; pass --condensed if "
                        f"it holds {k} condensed RDMs (rows)"
                    )
        elif reading == "square" and arr.ndim == 2:
            raise ValueError(f"{what} is not square, but --square was given")
        elif arr.ndim == 3 and reading != "condensed" and arr.shape[1] == arr.shape[2]:
            try:
                arr = np.asarray(squareform(arr, to="condensed"))
            except ValueError as err:
                raise ValueError(
                    f"{what} is not a stack of square RDMs ({_rdm_problem(err)})"
                ) from None
        if arr.ndim == 1:
            labels.append(key)
            rows.append(arr)
        elif arr.ndim == 2:
            labels += [f"{key}[{i}]" for i in range(arr.shape[0])]
            rows += list(arr)
        else:
            raise ValueError(f"{what} is not an RDM, nor a batch of RDMs")
        m = len(rows[-1])
        if not _condensed_length(m):
            try:
                n = n_from_condensed(m)
                why = f"RDMs of {n} images cannot be compared (at least 3 are needed)"
            except ValueError:
                why = f"{m} is not n*(n-1)/2 for any n >= 3: not a condensed RDM"
            raise ValueError(
                f"{what} holds RDMs of length {m}; {why} (features are read with --features)"
            )
    for label, row in zip(labels, rows, strict=True):
        if row.dtype.kind == "f" and not np.isfinite(row).all():
            first = int(np.argmax(~np.isfinite(row)))
            raise ValueError(f"{name}: RDM {label!r} holds NaN or Inf (first at value {first})")
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        sizes = ", ".join(f"{lab}: {len(r)}" for lab, r in zip(labels, rows, strict=True))
        raise ValueError(f"{name}: RDMs of different sizes cannot be compared ({sizes})")
    twice = sorted({lab for lab in labels if labels.count(lab) > 1})
    if twice:
        raise ValueError(f"{name}: the labels {twice} name more than one RDM")
    out = np.stack(rows)
    return labels, out if out.dtype.kind == "f" else out.astype(np.float64)


def load_rdms(
    path: str | os.PathLike,
    name: str = "rdms",
    reading: str | None = None,
    note: Callable[[str], None] | None = None,
) -> tuple[list[str], np.ndarray]:
    """(labels, condensed RDMs (K, m)) from an RDM file: the one reader of every command that
    takes RDMs (`fastrsa compare`, `taxonomy --rdms`, `rank`, `evaluate --rdms`, `demo
    --real-data`).

    path: an .npz with one RDM per label (condensed (m,) or square (n, n)) or stacked batches
    ((k, m) or (k, n, n), labelled `key[i]`), or an .npy holding one RDM or a stack (B, m) /
    (B, n, n) (labelled by the file's stem, `stem[i]` for a stack). Read safely with
    `load_arrays` (no pickle, checked headers); `reading` and `note`: see `rdms_from_arrays`.
    """
    return rdms_from_arrays(load_arrays(path, name), name, reading, note)
