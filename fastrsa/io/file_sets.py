"""Sets of files written together (a taxonomy's .json, .npz and figures): `write_set`,
`recover`, `verify_set` (see `fastrsa.io` for the commit protocol)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .atomic import JOURNAL, clean_temporaries, make_folder, os_reason, temp_tag, umask, write_error

__all__ = [
    "file_sha256",
    "recover",
    "verify_set",
    "write_set",
]


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
        journal = json.loads((commit / JOURNAL).read_text())
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
                    seq = json.loads(Path(entry.path, JOURNAL).read_text())["seq"]
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
    make_folder(folder, folder)
    for name in names:
        if (folder / name).is_dir():
            raise ValueError(f"cannot write {folder / name}: it is a folder; expected a file")
    recover(folder)
    try:
        stage = Path(
            tempfile.mkdtemp(dir=folder, prefix=f".{manifest}.{temp_tag()}", suffix=".tmp")
        )
    except OSError as err:
        raise write_error(folder / manifest, err) from None
    unfinished: Path | None = stage  # removed on failure until the commit point
    mode = 0o666 & ~umask()
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
        os.chmod(stage, 0o777 & ~umask())
        with _locked(folder):
            journal["seq"] = time.time_ns()
            (stage / JOURNAL).write_text(json.dumps(journal))
            commit = stage.with_name(stage.name[: -len(".tmp")] + ".commit")
            os.rename(stage, commit)  # the commit point
            unfinished = None
            _fsync_folder(folder)
            for pending in _pending(folder):  # older sets first, this one last
                _roll_forward(pending, folder)
    except OSError as err:
        if unfinished is not None:
            shutil.rmtree(unfinished, ignore_errors=True)
            raise write_error(current, err) from None
        raise ValueError(
            f"cannot finish writing {folder / manifest}: {os_reason(err)}; the next write into "
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
