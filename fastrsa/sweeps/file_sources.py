"""Sources that are files: features (n, d) in a .npy, .npz or zarr file, read in row batches
(FeatureSource), and precomputed RDMs (RDMSource). Files are read safely: no pickle, headers
checked against the bytes there."""

from __future__ import annotations

import functools
import os
import warnings
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .. import io
from .._checks import check_choice
from .._condensed import n_from_condensed
from .._memory import budget_for
from ..errors import MissingPackage
from .feature_buffer import FeatureBuffer, read_exact
from .images import ImageSet
from .source_base import FileSource, Keep, Source, hash_file, hash_tree

__all__ = ["FEATURE_SUFFIXES", "READINGS", "FeatureSource", "RDMSource"]

FEATURE_SUFFIXES = (".npy", ".npz", ".zarr")


# ---- feature files ------------------------------------------------------------------------------


class _Array:
    """A readable (n, d) array in a file: shape, dtype, read(rows) -> the next rows, close()."""

    def __init__(
        self,
        shape: tuple[int, ...],
        dtype: np.dtype,
        read: Callable[[int], Any],
        close: Callable[[], None] = lambda: None,
    ):
        self.shape, self.dtype, self.read, self.close = shape, dtype, read, close


class FeatureSource(FileSource):
    """Features (n, d) of one source in a file: a .npy (one array), an .npz member (`key`), or
    a zarr array (a .zarr array, or the array `key` of a zarr group). Read in row batches of at
    most an eighth of the budget each (.npz members in one sequential pass), never whole when
    large (only .npy headers of version 3 and Fortran-order arrays are read whole)."""

    kind = "features"
    member = "array"

    def _format(self) -> str:
        suffix = self.path.suffix.lower()
        if suffix in (".npy", ".npz"):
            return suffix[1:]
        if suffix == ".zarr" or (self.path / "zarr.json").is_file():
            return "zarr"
        raise self._fail("is not a feature file: expected .npy, .npz or .zarr")

    def fingerprint(self) -> str:
        self._exists()
        if self._format() != "zarr":
            return self._keyed(hash_file(self.path))
        return self._keyed(hash_tree(self.path / self.key if self.key is not None else self.path))

    def keys(self) -> list[str] | None:
        """The arrays of an .npz or zarr group (None for a .npy or a zarr array)."""
        self._exists()
        fmt = self._format()
        if fmt == "npz":
            try:
                with zipfile.ZipFile(self.path) as zf:
                    names = [i.filename for i in zf.infolist()]
            except (zipfile.BadZipFile, OSError) as err:
                raise self._fail(f"cannot read it as .npz ({err})") from None
            bad = [k for k in names if not k.endswith(".npy")]
            if bad:
                raise self._fail(f"member {bad[0]!r} is not an .npy array")
            return [k[: -len(".npy")] for k in names]
        if fmt == "zarr":
            node = self._zarr_root()
            if hasattr(node, "array_keys"):
                return sorted(node.array_keys())
        return None

    def expand(self) -> list[Source]:
        if self.key is not None:
            return [self]
        keys = self.keys()
        if keys is None:
            return [self]
        if not keys:
            raise self._fail("holds no arrays")
        if len(keys) == 1 and not self.auto_label:
            return [FeatureSource(self.path, self.label, keys[0])]
        return [
            FeatureSource(self.path, key if self.auto_label else f"{self.label}/{key}", key)
            for key in keys
        ]

    def _zarr_root(self):
        try:
            import zarr
        except ImportError:
            raise MissingPackage("zarr feature files need zarr: `pip install zarr`") from None
        try:
            return zarr.open(str(self.path), mode="r")
        except FileNotFoundError:
            raise self._fail("no such file", FileNotFoundError) from None
        except Exception as err:  # zarr's own errors for what is not a zarr store
            raise self._fail(f"cannot read it as zarr ({' '.join(str(err).split())})") from None

    def _open(self) -> _Array:
        """The array's shape and dtype, and a reader of its rows (close it when done)."""
        self._exists()
        fmt = self._format()
        if fmt == "zarr":
            return self._open_zarr()
        if fmt == "npz":
            return self._open_npz()
        return self._open_npy()

    def _open_zarr(self) -> _Array:
        node = self._zarr_root()
        if hasattr(node, "array_keys"):
            keys = sorted(node.array_keys())
            if self.key is None:
                raise self._fail(f"is a zarr group; give key= one of {keys}")
            if self.key not in keys:
                raise self._fail(f"has no array {self.key!r}; it has {keys}")
            node = node[self.key]
        elif self.key is not None:
            raise self._fail(f"is a zarr array, not a group: it has no array {self.key!r}")
        return _sliced(node)

    def _open_npy(self) -> _Array:
        if self.key is not None:
            raise self._fail(f"is a .npy file: it has no array {self.key!r}")
        try:
            f = open(self.path, "rb")
        except OSError as err:
            raise self._fail(f"cannot read it ({err.strerror})") from None
        try:
            shape, dtype, need = io.read_npy_header(f, self.who())
            f.seek(0)
            fortran = _fortran_order(f)
            start = f.tell() if fortran is not None else 0
            have = os.fstat(f.fileno()).st_size - start
            if need > have:
                raise io.too_big_error(need, have, shape, self.who())
        except BaseException:
            f.close()
            raise
        if fortran is None or fortran:  # a rare layout: read whole, safely
            f.close()
            return _sliced(io.load_arrays(self.path, self.who())[self.path.stem])
        return _Array(shape, dtype, self._reader(f, shape, dtype), f.close)

    def _open_npz(self) -> _Array:
        keys = self.keys() or []
        if self.key is None:
            if len(keys) != 1:
                raise self._fail(f"holds {len(keys)} arrays; give key= one of {keys}")
            key = keys[0]
        elif self.key not in keys:
            raise self._fail(f"has no array {self.key!r}; it has {keys}")
        else:
            key = self.key
        what = self.who()
        size = self.path.stat().st_size
        try:
            zf = zipfile.ZipFile(self.path)
            info = zf.getinfo(f"{key}.npy")
            if info.compress_size > size:
                raise self._fail("claims more bytes than the file holds: forged")
            f = zf.open(info)
            shape, dtype, need = io.read_npy_header(f, what)
            f.close()
            f = zf.open(info)
            fortran = _fortran_order(f)
        except (zipfile.BadZipFile, OSError, KeyError) as err:
            raise self._fail(f"cannot read it as .npz ({err})") from None

        def close() -> None:
            f.close()
            zf.close()

        have = info.file_size - f.tell()
        if need > have:
            close()
            raise io.too_big_error(need, have, shape, what)
        if fortran is None or fortran:
            close()
            return _sliced(io.load_arrays(self.path, what)[key])
        return _Array(shape, dtype, self._reader(f, shape, dtype), close)

    def _reader(self, f: Any, shape: tuple[int, ...], dtype: np.dtype) -> Callable[[int], Any]:
        """read(rows) -> the next rows of a C-order array whose data `f` is at."""

        def read(rows: int) -> np.ndarray:
            out = np.empty((rows, *shape[1:]), dtype=dtype)
            if not read_exact(f, out):
                raise self._fail("is truncated")
            return out

        return read

    def _shape(self) -> tuple[tuple[int, ...], np.dtype]:
        arr = self._open()
        try:
            return arr.shape, arr.dtype
        finally:
            arr.close()

    def n_images(self) -> int | None:
        shape, _ = self._shape()
        return int(shape[0]) if shape else None

    def check(self, layers: list[str], n: int | None) -> None:
        shape, dtype = self._shape()
        if dtype.kind not in "fiub":
            raise self._fail(f"holds {dtype}, not real numbers")
        if len(shape) != 2:
            raise self._fail(f"features must be (n images, d features); got shape {shape}")
        if shape[1] < 1:
            raise self._fail(f"has d = 0 features (shape {shape})")
        if shape[0] < 3:
            raise self._fail(f"needs at least 3 images (rows) for an RDM; got {shape[0]}")
        if n is not None and shape[0] != n:
            raise self._fail(f"holds features of {shape[0]} images; the sweep has {n}")

    def rdms(
        self,
        layers: list[str],
        images: ImageSet | None,
        metric: str,
        backend: str,
        memory: int | str | None,
        spill_dir: str | os.PathLike,
        batch_size: int = 64,
        device: str = "auto",
        keep: Keep | None = None,
    ) -> Iterator[tuple[str, np.ndarray]]:
        """The features' RDM under `layers[0]`: rows read in batches into a FeatureBuffer (in
        memory when they fit half the budget: then exactly fastrsa.rdms of the array)."""
        layer = self.layer_names(layers)[0]
        self.check([layer], images.n if images is not None else None)
        budget = budget_for(memory)
        arr = self._open()
        n, d = arr.shape
        step = max(1, min(n, (budget // 8) // max(1, d * arr.dtype.itemsize)))
        try:
            with self._named(), FeatureBuffer(n, d, arr.dtype, budget, spill_dir) as buf:
                for start in range(0, n, step):
                    rows = np.asarray(arr.read(min(step, n - start)))
                    if keep is not None:
                        keep(layer, start, rows)
                    buf.add(start, rows)
                out = buf.rdm(metric, backend, memory=budget // 2)
        finally:
            arr.close()
        yield layer, out


def _fortran_order(f) -> bool | None:
    """The fortran_order flag of an .npy header (f at its start; left at the data), or None for
    a header version this does not parse (then the caller reads the array whole)."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        return bool(fmt.read_array_header_1_0(f, max_header_size=10000)[1])
    if version == (2, 0):
        return bool(fmt.read_array_header_2_0(f, max_header_size=10000)[1])
    return None


def _sliced(arr: Any) -> _Array:
    """An array (numpy, or zarr: read by slices) as an _Array."""
    at = 0

    def read(rows: int) -> np.ndarray:
        nonlocal at
        out = np.asarray(arr[at : at + rows])
        at += rows
        return out

    return _Array(tuple(arr.shape), np.dtype(arr.dtype), read)


# ---- RDM files ----------------------------------------------------------------------------------


READINGS = io.READINGS  # how square 2-D arrays are read: "auto", "condensed", "square"


@functools.lru_cache(maxsize=2)
def _rdm_file(path: str, reading: str, size: int, mtime_ns: int) -> tuple[list[str], np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "read as one square RDM" notes
        return io.load_rdms(path, "rdms", reading)


class RDMSource(FileSource):
    """A precomputed RDM: the one labelled `key` in an RDM file (as fastrsa.io.load_rdms reads
    it: condensed (m,) or square (n, n) per .npz key, stacks labelled `key[i]`). Without `key`,
    resolve_sources makes one source per RDM of the file, labelled as load_rdms labels them.
    The file is read whole (RDM files are small beside features), once per process while it
    is unchanged (the last two files read stay cached). reading: how square 2-D arrays are
    read, as `fastrsa.io.load_rdms` (and the commands' --condensed / --square) say: "auto",
    "condensed" or "square"."""

    kind = "rdms"
    member = "RDM"

    def __init__(
        self,
        path: str | os.PathLike,
        label: str | None = None,
        key: str | None = None,
        reading: str = "auto",
    ):
        self.reading = check_choice(reading, READINGS, "reading")
        super().__init__(path, label, key)

    def _load(self) -> tuple[list[str], np.ndarray]:
        self._exists()
        st = self.path.stat()
        try:
            return _rdm_file(str(self.path), self.reading, st.st_size, st.st_mtime_ns)
        except (ValueError, TypeError) as err:
            raise self._fail(str(err)) from None

    def _row(self) -> np.ndarray:
        labels, rdms = self._load()
        if self.key is None:
            if len(labels) != 1:
                raise self._fail(f"holds {len(labels)} RDMs; give key= one of {labels[:10]}")
            return rdms[0]
        if self.key not in labels:
            raise self._fail(f"has no RDM {self.key!r}; it has {labels[:10]}")
        return rdms[labels.index(self.key)]

    def fingerprint(self) -> str:
        self._exists()
        digest = self._keyed(hash_file(self.path))
        return digest if self.reading == "auto" else f"{digest}-{self.reading}"

    def expand(self) -> list[Source]:
        if self.key is not None:
            return [self]
        labels, _ = self._load()
        if len(labels) == 1:
            label = None if self.auto_label else self.label
            return [RDMSource(self.path, label, labels[0], self.reading)]
        named = [(key if self.auto_label else f"{self.label}/{key}", key) for key in labels]
        return [RDMSource(self.path, label, key, self.reading) for label, key in named]

    def n_images(self) -> int | None:
        return n_from_condensed(len(self._row()), self.who())

    def check(self, layers: list[str], n: int | None) -> None:
        got = self.n_images()
        if n is not None and got != n:
            raise self._fail(f"is an RDM of {got} images; the sweep has {n}")

    def rdms(
        self,
        layers: list[str],
        images: ImageSet | None,
        metric: str,
        backend: str,
        memory: int | str | None,
        spill_dir: str | os.PathLike,
        batch_size: int = 64,
        device: str = "auto",
        keep: Keep | None = None,
    ) -> Iterator[tuple[str, np.ndarray]]:
        """The file's RDM (as stored: float32 or float64) under `layers[0]`."""
        layer = self.layer_names(layers)[0]
        self.check([layer], images.n if images is not None else None)
        yield layer, np.array(self._row())
