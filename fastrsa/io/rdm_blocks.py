"""RDM files read a block of RDMs at a time (`RDMFile`): the files, labels, readings, notes and
errors of `load_rdms`, in memory bounded by a budget whatever the file's size.

    rf = RDMFile("rdms.npz", "--rdms", reading="auto")   # headers only: labels, n, dtype
    found = rf.scan(budget)      # every RDM checked, a block at a time; constant / all-zero rows
    rdm = rf.rdm("taskA")        # one condensed RDM (m,), checked
    rf.close()
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._condensed import n_from_condensed, squareform
from .array_files import RowReader, check_array_file, open_rows, rows_of
from .rdm_files import READINGS, check_rdm_length, rdm_kind, rdm_length, rdm_problem

__all__ = ["RDMFile", "RDMScan"]


@dataclass
class _Entry:
    """One array of the file: its key, shape, dtype, how it is read (rdm_kind) and its labels'
    place in the file's labels (first .. first + count - 1)."""

    key: str
    shape: tuple[int, ...]
    dtype: np.dtype
    kind: str
    first: int
    count: int
    what: str


@dataclass
class RDMScan:
    """What `RDMFile.scan` found, per label: `constant` (all values equal) and `zero` (all 0)."""

    constant: np.ndarray
    zero: np.ndarray


class RDMFile:
    """An RDM file (as `load_rdms` reads it: an .npz of arrays, an .npy, or a zarr array or
    group) opened for reading a block of RDMs at a time.

    Opening reads the headers only (and a square 2-D array whose reading depends on its values,
    whole: it is one RDM or as many values): `labels`, `m` (values per condensed RDM), `n`
    (images) and `dtype` (float32 / float64 as the file holds; integers read as float64), with
    `load_rdms`'s errors (TypeError / ValueError naming `name`, the array and the label) and its
    notes on square arrays (`note`, default a UserWarning). `scan(budget)` then checks every
    value, a block of RDMs at a time; `rdm(label)` reads and checks one. Compressed .npz members
    are decompressed forward: reading labels in file order costs one pass. Close it when done.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        name: str = "rdms",
        reading: str = "auto",
        note: Callable[[str], None] | None = None,
    ):
        if reading not in READINGS:
            raise ValueError(f"reading must be one of {READINGS}; got {reading!r}")
        self.path, self.name, self.reading = Path(path), name, reading
        self._reader: tuple[str, RowReader] | None = None
        self._zarr: Any = None
        self.found: RDMScan | None = None  # what the last scan found
        self.entries: list[_Entry] = []
        self.labels: list[str] = []
        note = note or _warn
        try:
            for key, shape, dtype in self._arrays():
                self._add(key, shape, dtype, note)
        except BaseException:
            self.close()
            raise
        twice = sorted({lab for lab in self.labels if self.labels.count(lab) > 1})
        if twice:
            raise ValueError(f"{name}: the labels {twice} name more than one RDM")
        sizes = {rdm_length(e.kind, e.shape) for e in self.entries}
        if len(sizes) > 1:
            shown = ", ".join(
                f"{self.labels[i]}: {rdm_length(e.kind, e.shape)}"
                for e in self.entries
                for i in range(e.first, e.first + e.count)
            )
            raise ValueError(f"{name}: RDMs of different sizes cannot be compared ({shown})")
        self.m = sizes.pop()
        self.n = n_from_condensed(self.m)
        wide = any(e.dtype.kind != "f" or e.dtype.itemsize > 4 for e in self.entries)
        self.dtype = np.dtype(np.float64 if wide else np.float32)
        self._index = {label: i for i, label in enumerate(self.labels)}

    # ---- the arrays of the file -----------------------------------------------------------------

    def _arrays(self) -> Iterator[tuple[str, tuple[int, ...], np.dtype]]:
        """(key, shape, dtype) of every array, checked as load_arrays checks them."""
        path, name = self.path, self.name
        if path.is_dir() and (path.suffix.lower() == ".zarr" or (path / "zarr.json").is_file()):
            yield from self._zarr_arrays()
            return
        check_array_file(path, name, "a .npy, .npz or .zarr file")
        keys = [path.stem] if path.suffix == ".npy" else self._members()
        if not keys:
            raise ValueError(f"{name}: {path} holds no arrays")
        for key in keys:
            with self._open_reader(key) as r:
                yield key, r.shape, r.dtype

    def _members(self) -> list[str]:
        try:
            with zipfile.ZipFile(self.path) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            reason = " ".join(str(err).split())
            raise ValueError(
                f"{self.name}: could not read {self.path} as .npz ({reason})"
            ) from None
        for info in infos:
            if info.is_dir() or not info.filename.endswith(".npy"):
                raise ValueError(
                    f"{self.name}: {self.path}, member {info.filename!r} is not an .npy array (an "
                    ".npz holds only arrays)"
                )
        return [info.filename[: -len(".npy")] for info in infos]

    def _zarr_arrays(self) -> Iterator[tuple[str, tuple[int, ...], np.dtype]]:
        try:
            import zarr
        except ImportError:
            raise ValueError(f"{self.name}: zarr RDM files need zarr: `pip install zarr`") from None
        try:
            node = zarr.open(str(self.path), mode="r")
        except Exception as err:  # zarr's own errors for what is not a zarr store
            reason = " ".join(str(err).split())
            raise ValueError(f"{self.name}: cannot read {self.path} as zarr ({reason})") from None
        arrays: dict[str, Any] = (
            {k: node[k] for k in sorted(node.array_keys())}
            if hasattr(node, "array_keys")
            else {self.path.stem: node}
        )
        if not arrays:
            raise ValueError(f"{self.name}: {self.path} holds no arrays")
        self._zarr = arrays
        for key, arr in arrays.items():
            yield key, tuple(arr.shape), np.dtype(arr.dtype)

    def _open_reader(self, key: str) -> RowReader:
        if self._zarr is not None:
            return rows_of(self._zarr[key])
        try:
            return open_rows(self.path, None if self.path.suffix == ".npy" else key, self.name)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as err:
            reason = " ".join(str(err).split())
            raise ValueError(f"{self.name}: could not read {self.path} ({reason})") from None

    def _rows(self, key: str) -> RowReader:
        """The reader of array `key`, kept open for the next read of the same array."""
        if self._reader is None or self._reader[0] != key:
            self.close()
            self._reader = (key, self._open_reader(key))
        return self._reader[1]

    def _add(self, key: str, shape: tuple[int, ...], dtype: np.dtype, note) -> None:
        what = f"{self.name}: array {key!r} of shape {shape}"

        def square_problem() -> str | None:
            try:
                squareform(self._rows(key).read(0, shape[0]), to="condensed")
            except ValueError as err:
                return rdm_problem(err)
            return None

        kind = rdm_kind(what, shape, dtype, self.reading, square_problem, note)
        check_rdm_length(what, rdm_length(kind, shape))
        count = shape[0] if kind in ("rows", "stack") else 1
        self.entries.append(_Entry(key, shape, dtype, kind, len(self.labels), count, what))
        self.labels += [key] if kind in ("one", "square") else [f"{key}[{i}]" for i in range(count)]

    # ---- reading --------------------------------------------------------------------------------

    def _block(self, e: _Entry, start: int, count: int) -> np.ndarray:
        """Condensed RDMs (count, m) of entry e's RDMs start .. start + count - 1, checked."""
        r = self._rows(e.key)
        if e.kind == "one":
            out = r.read(0, e.shape[0])[None]
        elif e.kind == "rows":
            out = r.read(start, count)
        else:
            raw = r.read(0, e.shape[0]) if e.kind == "square" else r.read(start, count)
            try:
                out = np.asarray(squareform(raw, to="condensed")).reshape(count, -1)
            except ValueError as err:
                how = "a square RDM" if e.kind == "square" else "a stack of square RDMs"
                raise ValueError(f"{e.what} is not {how} ({rdm_problem(err)})") from None
            del raw
        out = out.astype(self.dtype, copy=False)
        bad = ~np.isfinite(out)
        if bad.any():
            i, j = (int(v) for v in np.argwhere(bad)[0])
            label = self.labels[e.first + start + i]
            raise ValueError(f"{self.name}: RDM {label!r} holds NaN or Inf (first at value {j})")
        return out

    def index(self, label: str) -> int:
        """Where `label` is in `labels` (KeyError when the file has none)."""
        return self._index[label]

    def rdm(self, label: str) -> np.ndarray:
        """The condensed RDM (m,) labelled `label` (KeyError when the file has none)."""
        at = self._index[label]
        for e in self.entries:
            if e.first <= at < e.first + e.count:
                return self._block(e, at - e.first, 1)[0]
        raise KeyError(label)

    def scan(self, budget: int) -> RDMScan:
        """Check every RDM (finite; square ones symmetric with a zero diagonal), reading at most
        an eighth of `budget` bytes of the file at a time; which are constant, which all zero
        (also kept as `found`)."""
        constant = np.zeros(len(self.labels), dtype=bool)
        zero = np.zeros(len(self.labels), dtype=bool)
        for e in self.entries:
            per = max(1, int(np.prod(e.shape[1:])) * max(e.dtype.itemsize, self.dtype.itemsize))
            step = 1 if e.count == 1 else max(1, min(e.count, (budget // 8) // per))
            for start in range(0, e.count, step):
                block = self._block(e, start, min(step, e.count - start))
                lo, hi = block.min(axis=1), block.max(axis=1)
                at = slice(e.first + start, e.first + start + len(block))
                constant[at], zero[at] = lo == hi, (lo == 0) & (hi == 0)
        self.found = RDMScan(constant, zero)
        return self.found

    def close(self) -> None:
        """Close the array kept open (idempotent; the file can still be read: it reopens)."""
        if self._reader is not None:
            self._reader[1].close()
            self._reader = None

    def __enter__(self) -> RDMFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=4)
