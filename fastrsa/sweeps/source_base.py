"""The Source contract (see fastrsa.sweeps.sources) and the small helpers its kinds share."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from .image_set import ImageSet

__all__ = ["FileSource", "Keep", "Source", "check_layers", "hash_file", "hash_tree"]

# keep(layer, start, rows): sees every batch of features rows (b, d) at rows start .. start + b - 1
Keep = Callable[[str, int, np.ndarray], None]


class Source:
    """One source of RDMs (see fastrsa.sweeps.sources). Concrete: ONNXSource, ModuleSource,
    FeatureSource, RDMSource."""

    kind: str = ""
    needs_images: bool = False

    def __init__(self, label: str | None):
        if label is not None and (not isinstance(label, str) or not label):
            raise TypeError(f"label must be a non-empty string; got {label!r}")
        self.auto_label = label is None  # derived from the path: resolve_sources may lengthen it
        self.label: str = label if label is not None else self._default_label()

    def _default_label(self) -> str:
        raise TypeError(f"{type(self).__name__} needs a label")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r}, {self.describe()})"

    def who(self) -> str:
        """The source in errors: its label and where it comes from."""
        return f"source {self.label!r} ({self._where()})"

    def _where(self) -> str:
        return ""

    def describe(self) -> dict:
        """JSON-able description: kind and path/key or the module's class."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """sha256 hex of the source's content."""
        raise NotImplementedError

    def layer_names(self, layers: list[str] | None) -> list[str]:
        """The layers this source gives for the sweep's `layers` (files: one, named
        `layers[0]` if given, else "default")."""
        return [layers[0]] if layers else ["default"]

    def check(self, layers: list[str], n: int | None) -> None:
        """Before any work: readable, `layers` exist, shapes fit `n` images (None: unknown)."""
        raise NotImplementedError

    def check_rdms(self, layers: list[str], method: str, memory: int | str | None = None) -> None:
        """Before any work, after `check`: a source of precomputed RDMs (RDMSource) reads its
        values within `memory` and refuses an RDM that the tiles of `method` cannot compare
        (constant; all zeros for cosine), naming itself and the layer. Others: nothing to do
        (their RDMs do not exist yet)."""

    def n_images(self) -> int | None:
        """The images this source was computed on, when it knows (files); None for encoders."""
        return None

    def input_size(self, session: Any = None) -> int:
        """The image size S of an encoder's (batch, 3, S, S) input; files take no images."""
        raise TypeError(f"{self.who()} takes no images")

    def expand(self) -> list[Source]:
        """This source as one or more sources of one array each (a file of several arrays gives
        one per array)."""
        return [self]

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
        """(layer, condensed RDM (n*(n-1)//2,) float32/float64 numpy) per layer, in the order of
        `layers`. memory: the budget of this call (bytes; None: fastrsa's budget). keep: see
        Keep."""
        raise NotImplementedError

    def _fail(self, message: str, kind: type[Exception] = ValueError) -> Exception:
        return kind(f"{self.who()}: {message}")

    @contextlib.contextmanager
    def _named(self) -> Iterator[None]:
        """ValueErrors raised inside, reraised naming this source (once)."""
        try:
            yield
        except ValueError as err:
            if str(err).startswith(self.who()):
                raise
            raise self._fail(str(err)) from None


class FileSource(Source):
    """A file (`path`), or the array / RDM `key` of it."""

    member = ""  # what `key` names, in errors

    def __init__(self, path: str | os.PathLike, label: str | None = None, key: str | None = None):
        self.path = Path(path)
        self.key = key
        super().__init__(label)

    def _default_label(self) -> str:
        return self.key if self.key is not None else self.path.stem

    def _where(self) -> str:
        return str(self.path) + (f", {self.member} {self.key!r}" if self.key is not None else "")

    def describe(self) -> dict:
        out = {"kind": self.kind, "path": str(self.path)}
        if self.key is not None:
            out["key"] = self.key
        return out

    def _exists(self) -> None:
        if not self.path.exists():
            raise self._fail("no such file", FileNotFoundError)

    def _keyed(self, digest: str) -> str:
        """The fingerprint of `key` in a file (or folder) of sha256 `digest`."""
        if self.key is None:
            return digest
        return hashlib.sha256(f"{digest} {self.key}".encode()).hexdigest()


def check_layers(layers: Any) -> list[str]:
    """`layers` (a name or names) as a list; ValueError when empty, not all strings, or a name
    is given twice."""
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers or not all(isinstance(x, str) for x in layers):
        raise ValueError(f"layers must be a non-empty list of names; got {layers!r}")
    twice = sorted({x for x in layers if layers.count(x) > 1})
    if twice:
        raise ValueError(f"layers: {twice} given more than once")
    return layers


@functools.lru_cache(maxsize=64)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    return io.file_sha256(Path(path))


def hash_file(path: Path) -> str:
    """io.file_sha256 of a file, remembered while its size and mtime stay the same."""
    st = path.stat()
    return _file_hash(str(path.resolve()), st.st_size, st.st_mtime_ns)


def hash_tree(folder: Path) -> str:
    """sha256 over a folder's files (relative path, size, bytes), in sorted order."""
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(folder).as_posix()} {p.stat().st_size}\n".encode())
        h.update(bytes.fromhex(hash_file(p)))
    return h.hexdigest()
