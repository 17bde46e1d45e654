"""Where a sweep store lives: a local folder or an fsspec URL, and its small files there (the
index, done-markers, the lock); every write is whole or absent, never half written. `writing`
turns a full disk into one clear error. (The store's arrays are zarr's: see store_arrays.)"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import MissingPackage, UserError

__all__ = [
    "Files",
    "FsspecFiles",
    "LocalFiles",
    "files_for",
    "holder",
    "is_url",
    "writing",
]


def is_url(path: str) -> bool:
    """True for an fsspec URL ("s3://bucket/x", "memory://x", "file:///x"), False for a path."""
    return "://" in path


@contextlib.contextmanager
def writing(store_path: str) -> Iterator[None]:
    """A full disk (or quota) while writing to the store: one clear error. Files are written
    whole or not at all, so nothing is left half written; the next run redoes this unit."""
    try:
        yield
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(
                f"store {store_path}: no space left on the device ({err.strerror}); nothing was "
                "half written: free some space and run the sweep again to continue"
            ) from None
        raise


class Files:
    """Keys are "/"-separated paths under the store's root."""

    root: str

    def read(self, key: str) -> bytes | None:  # None when absent
        raise NotImplementedError

    def write(self, key: str, data: bytes) -> None:  # atomic: whole or absent
        raise NotImplementedError

    def remove(self, key: str) -> None:  # absent already: fine
        raise NotImplementedError

    def list(self, prefix: str) -> list[str]:  # names directly under prefix ([] if none)
        raise NotImplementedError

    def sizes(self, prefix: str) -> dict[str, int]:  # {key under prefix: bytes}, every depth
        raise NotImplementedError

    def lock(self, holder: dict[str, Any]) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def clean_partials(self) -> int:
        """Removes the temporary files of writes a killed process left unfinished (a sweep calls
        it under its lock); returns how many. Object stores have none."""
        return 0

    def read_json(self, key: str) -> Any:
        data = self.read(key)
        return None if data is None else json.loads(data)

    def write_json(self, key: str, obj: Any) -> None:
        self.write(key, json.dumps(obj, indent=1, sort_keys=True).encode())


def holder() -> dict[str, Any]:
    """Who holds a lock: host, pid and start time (for the error another writer gets)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%FT%T%z")}


def _busy(root: str, info: Any, remedy: str) -> UserError:
    who = (
        f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"
        if isinstance(info, dict)
        else "another process"
    )
    return UserError(f"store {root} is being written by another sweep ({who}); {remedy}")


class LocalFiles(Files):
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = str(root)
        self._path = Path(root)

    def _p(self, key: str) -> Path:
        return self._path / key

    def read(self, key: str) -> bytes | None:
        try:
            return self._p(key).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        path = self._p(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.partial")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def remove(self, key: str) -> None:
        self._p(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self._p(prefix)) if ".partial" not in e.name)
        except FileNotFoundError:
            return []

    def sizes(self, prefix: str) -> dict[str, int]:
        top = self._p(prefix)
        out = {}
        for folder, _, names in os.walk(top):
            rel = Path(folder).relative_to(top).as_posix()
            for name in names:
                if ".partial" in name:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    key = name if rel == "." else f"{rel}/{name}"
                    out[key] = os.stat(os.path.join(folder, name)).st_size
        return out

    def clean_partials(self) -> int:
        count = 0
        for folder, _, names in os.walk(self._path):
            for name in names:
                if name.endswith(".partial"):  # ours and zarr's LocalStore's temporaries
                    Path(folder, name).unlink(missing_ok=True)
                    count += 1
        return count

    @contextlib.contextmanager
    def lock(self, holder: dict[str, Any]) -> Iterator[None]:
        """An exclusive flock on ROOT/.lock for the sweep's duration; released by the kernel if
        the process dies, so a killed sweep never leaves a stale lock."""
        import fcntl

        self._path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._p(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    info = json.loads(os.pread(fd, 4096, 0) or b"null")
                except ValueError:
                    info = None
                raise _busy(self.root, info, "wait for it to finish") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
            yield
        finally:
            os.close(fd)  # closing releases the flock


class FsspecFiles(Files):
    """Object stores have no locks: the lock is a lock.json object, written when absent and
    deleted at the end; one left by a killed sweep must be deleted by hand (the error says so)."""

    def __init__(self, url: str) -> None:
        try:
            import fsspec
        except ImportError:
            raise MissingPackage(
                f"store {url}: URLs need the fsspec package: `pip install fsspec`"
            ) from None
        self.root = url.rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.root)

    def _p(self, key: str) -> str:
        return f"{self._base}/{key}"

    def read(self, key: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._p(key))
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._p(key), data)  # an object store's put is atomic

    def remove(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._p(key))

    def list(self, prefix: str) -> list[str]:
        try:
            entries = self.fs.ls(self._p(prefix), detail=False)
        except FileNotFoundError:
            return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def sizes(self, prefix: str) -> dict[str, int]:
        top = self._p(prefix).rstrip("/")
        try:
            found = self.fs.find(top, detail=True)
        except FileNotFoundError:
            return {}
        out = {}
        for name, info in found.items():
            key = str(name).lstrip("/")[len(top.lstrip("/")) + 1 :]
            if key:
                out[key] = int(info.get("size") or 0)
        return out

    @contextlib.contextmanager
    def lock(self, holder: dict[str, Any]) -> Iterator[None]:
        existing = self.read_json("lock.json")
        if existing is not None:
            raise _busy(
                self.root, existing, f"if no sweep is running, delete {self.root}/lock.json"
            )
        self.write_json("lock.json", holder)
        try:
            yield
        finally:
            self.remove("lock.json")


def files_for(path: str) -> Files:
    """The store's files at `path`: FsspecFiles for a URL, else LocalFiles."""
    return FsspecFiles(path) if is_url(path) else LocalFiles(path)
