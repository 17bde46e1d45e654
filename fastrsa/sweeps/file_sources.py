"""Sources that are files: features (n, d) in a .npy, .npz or zarr file, read in row batches
(FeatureSource), and precomputed RDMs (RDMSource). Files are read safely: no pickle, headers
checked against the bytes there."""

from __future__ import annotations

import os
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator

import numpy as np

from .. import io
from .._checks import check_choice
from .._memory import budget_for
from ..errors import MissingPackage
from ..reference import UNCORRECTED
from .feature_buffer import FeatureBuffer
from .image_set import ImageSet
from .source_base import FileSource, Keep, Source, hash_file, hash_tree

__all__ = [
    "FEATURE_SUFFIXES",
    "OPEN_FILES",
    "READINGS",
    "FeatureSource",
    "RDMSource",
    "check_rdm_file",
    "open_rdm_file",
]

FEATURE_SUFFIXES = (".npy", ".npz", ".zarr")


# ---- feature files ------------------------------------------------------------------------------


class FeatureSource(FileSource):
    """Features (n, d) of one source in a file: a .npy (one array), an .npz member (`key`), or
    a zarr array (a .zarr array, or the array `key` of a zarr group). Read in row batches of at
    most an eighth of the budget each (fastrsa.io.open_rows), never whole when large (only
    .npy headers of version 3 and Fortran-order arrays are read whole)."""

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

    def _open(self) -> io.RowReader:
        """The array's shape and dtype, and a reader of its rows (close it when done)."""
        self._exists()
        fmt = self._format()
        if fmt == "zarr":
            return self._open_zarr()
        if fmt == "npy" and self.key is not None:
            raise self._fail(f"is a .npy file: it has no array {self.key!r}")
        key = None
        if fmt == "npz":
            keys = self.keys() or []
            if self.key is None and len(keys) != 1:
                raise self._fail(f"holds {len(keys)} arrays; give key= one of {keys}")
            if self.key is not None and self.key not in keys:
                raise self._fail(f"has no array {self.key!r}; it has {keys}")
            key = self.key if self.key is not None else keys[0]
        try:
            return io.open_rows(self.path, key, what=self.who())
        except (zipfile.BadZipFile, OSError, EOFError, KeyError) as err:
            raise self._fail(f"cannot read it ({' '.join(str(err).split())})") from None

    def _open_zarr(self) -> io.RowReader:
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
        return io.rows_of(node)

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
                    rows = np.asarray(arr.read(start, min(step, n - start)))
                    if keep is not None:
                        keep(layer, start, rows)
                    buf.add(start, rows)
                out = buf.rdm(metric, backend, memory=budget // 2)
        finally:
            arr.close()
        yield layer, out


# ---- RDM files ----------------------------------------------------------------------------------


READINGS = io.READINGS  # how square 2-D arrays are read: "auto", "condensed", "square"

_OPEN: OrderedDict[tuple, io.RDMFile] = OrderedDict()  # the RDM files open in this process
OPEN_FILES = 4  # RDM files kept open (headers, and what their scan found)


def open_rdm_file(
    path: str | os.PathLike,
    reading: str = "auto",
    name: str | None = None,
    note: Callable[[str], None] | None = None,
) -> io.RDMFile:
    """The io.RDMFile of `path` (headers read; see fastrsa.io.RDMFile), opened once per process
    while the file is unchanged (the last OPEN_FILES stay open, with what their scan found).
    name: the file in errors (default "RDM file PATH"); note: notes on square arrays (default:
    none)."""
    name = name or f"RDM file {path}"
    try:
        st = os.stat(path)
    except OSError:  # RDMFile names what is wrong
        return io.RDMFile(path, name, reading, note or (lambda _: None))
    key = (os.path.realpath(path), reading, st.st_size, st.st_mtime_ns)
    rf = _OPEN.get(key)
    if rf is not None:
        _OPEN.move_to_end(key)
        return rf
    rf = io.RDMFile(path, name, reading, note or (lambda _: None))
    _OPEN[key] = rf
    while len(_OPEN) > OPEN_FILES:
        _OPEN.popitem(last=False)[1].close()
    return rf


def check_rdm_file(
    path: str | os.PathLike,
    reading: str = "auto",
    memory: int | str | None = None,
    name: str | None = None,
    note: Callable[[str], None] | None = None,
) -> io.RDMScan:
    """Every RDM of the file checked (fastrsa.io.RDMFile.scan, reading at most an eighth of the
    budget at a time), once per process while the file is unchanged: what it found."""
    rf = open_rdm_file(path, reading, name, note)
    return rf.found if rf.found is not None else rf.scan(budget_for(memory))


def _refusal(method: str) -> str | None:
    """What `method` cannot compare: "constant" RDMs, "zero" RDMs (cosine) or nothing."""
    return None if method in UNCORRECTED else "zero" if method == "cosine" else "constant"


class RDMSource(FileSource):
    """A precomputed RDM: the one labelled `key` in an RDM file (as fastrsa.io.load_rdms reads
    it: condensed (m,) or square (n, n) per .npz key, stacks labelled `key[i]`; also a zarr
    array or group). Without `key`, resolve_sources makes one source per RDM of the file,
    labelled as load_rdms labels them. The file is never read whole: its headers once per
    process (fastrsa.io.RDMFile), its values checked once (`check_rdms`) a block of RDMs at a
    time within the budget, and each source reads its own RDM. reading: how square 2-D arrays
    are read, as `fastrsa.io.load_rdms` (and the commands' --condensed / --square) say: "auto",
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

    def _file(self) -> io.RDMFile:
        self._exists()
        return open_rdm_file(self.path, self.reading)

    def _label(self) -> str:
        """The label of this source's RDM in the file."""
        labels = self._file().labels
        if self.key is None:
            if len(labels) != 1:
                raise self._fail(f"holds {len(labels)} RDMs; give key= one of {labels[:10]}")
            return labels[0]
        if self.key not in labels:
            raise self._fail(f"has no RDM {self.key!r}; it has {labels[:10]}")
        return self.key

    def fingerprint(self) -> str:
        self._exists()
        digest = self._keyed(hash_file(self.path))
        return digest if self.reading == "auto" else f"{digest}-{self.reading}"

    def expand(self) -> list[Source]:
        if self.key is not None:
            return [self]
        labels = self._file().labels
        if len(labels) == 1:
            label = None if self.auto_label else self.label
            return [RDMSource(self.path, label, labels[0], self.reading)]
        named = [(key if self.auto_label else f"{self.label}/{key}", key) for key in labels]
        return [RDMSource(self.path, label, key, self.reading) for label, key in named]

    def n_images(self) -> int | None:
        return self._file().n

    def check(self, layers: list[str], n: int | None) -> None:
        self._label()
        got = self.n_images()
        if n is not None and got != n:
            raise self._fail(f"is an RDM of {got} images; the sweep has {n}")

    def check_rdms(self, layers: list[str], method: str, memory: int | str | None = None) -> None:
        """Every RDM of the file checked (once per process: see check_rdm_file), and this one
        refused when `method` cannot compare it: constant (spearman, pearson, kendall) or all
        zeros (cosine)."""
        self._exists()
        found = check_rdm_file(self.path, self.reading, memory)
        at = self._file().index(self._label())
        refuse = _refusal(method)
        if refuse == "constant" and found.constant[at]:
            problem = "is constant (all its values are equal)"
        elif refuse == "zero" and found.zero[at]:
            problem = "is all zeros (its norm is 0)"
        else:
            return
        layer = self.layer_names(layers)[0]
        raise self._fail(
            f"layer {layer!r}: the RDM {problem}, so {method} cannot compare it; remove it "
            "from the sweep"
        )

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
        """The file's RDM (as stored: float32 or float64) under `layers[0]`: only this RDM is
        read (checked: finite; square ones symmetric with a zero diagonal)."""
        layer = self.layer_names(layers)[0]
        self.check([layer], images.n if images is not None else None)
        with self._named():
            rdm = self._file().rdm(self._label())
        yield layer, rdm
