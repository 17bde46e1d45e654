"""The sources of a sweep: what gives one RDM per (source, layer).

    ONNXSource("depth.onnx")                   # an ONNX encoder (as fastrsa.features.extract)
    ModuleSource(model, "run3/epoch10")        # a torch.nn.Module, layers = submodule names
    FeatureSource("feats.npz", key="taskA")    # features (n, d): .npy, .npz member, zarr array
    RDMSource("rdms.npz", key="taskA")         # a precomputed RDM

`resolve_sources` turns what the user gave (paths, modules, Source objects, or a {label: ...}
dict) into a list of sources with unique labels. Every source is small and picklable (a path and
a label, or the module itself), so that executors can send it to another process; sessions and
files are opened where the work runs.

Encoders run once over the image batches for all requested layers; each layer's rows go into
its own FeatureBuffer (fastrsa.sweep.stream), in memory or spilled to a file, and its RDM comes
out when the pass is done. Feature files are read in row batches. Every `check` runs before any
work and names the source's label and path in its errors.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from .._memory import get_memory_budget, parse_memory
from .images import ImageSet
from .stream import FeatureBuffer

Keep = Callable[[str, int, np.ndarray], None]

FEATURE_SUFFIXES = (".npy", ".npz", ".zarr")


class Source:
    """One source of RDMs (see the module docstring). Concrete: ONNXSource, ModuleSource,
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

    def n_images(self) -> int | None:
        """The images this source was computed on, when it knows (files); None for encoders."""
        return None

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
        `layers`. memory: the budget of this call (bytes; None: fastrsa's budget). keep(layer,
        start, rows) gets every batch of features (b, d) when given."""
        raise NotImplementedError

    def _fail(self, message: str, kind: type[Exception] = ValueError) -> Exception:
        return kind(f"{self.who()}: {message}")


def _budget(memory: int | str | None) -> int:
    return get_memory_budget() if memory is None else parse_memory(memory, "memory")


def _check_layers(layers: Any) -> list[str]:
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


def _hash_file(path: Path) -> str:
    """io.file_sha256 of a file, remembered while its size and mtime stay the same."""
    st = path.stat()
    return _file_hash(str(path.resolve()), st.st_size, st.st_mtime_ns)


def _hash_tree(folder: Path) -> str:
    """sha256 over a folder's files (relative path, size, bytes), in sorted order."""
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(folder).as_posix()} {p.stat().st_size}\n".encode())
        h.update(bytes.fromhex(_hash_file(p)))
    return h.hexdigest()


# ---- encoders -----------------------------------------------------------------------------------


class _Encoder(Source):
    needs_images = True

    def check(self, layers: list[str], n: int | None) -> None:
        raise NotImplementedError

    def _split(self, sizes: dict[str, int], budget: int) -> dict[str, bool]:
        """{layer: spill?}: the layers whose features fit, smallest first, are kept in memory
        as long as together they take at most half the budget; the others spill."""
        room = budget // 2
        spill = {}
        for layer in sorted(sizes, key=lambda x: sizes[x]):
            spill[layer] = sizes[layer] > room
            if not spill[layer]:
                room -= sizes[layer]
        return spill

    def _stream(
        self,
        layers: list[str],
        batches: Iterator[tuple[int, dict[str, np.ndarray]]],
        n: int,
        metric: str,
        backend: str,
        memory: int | str | None,
        spill_dir: str | os.PathLike,
        keep: Keep | None,
    ) -> Iterator[tuple[str, np.ndarray]]:
        """Feed each batch's rows {layer: (b, d)} into one FeatureBuffer per layer, then yield
        the RDMs. Memory: the buffers held in memory take at most half the budget together;
        each RDM is computed within the other half."""
        budget = _budget(memory)
        buffers: dict[str, FeatureBuffer] = {}
        try:
            for start, outs in batches:
                if not buffers:
                    sizes = {layer: n * outs[layer][0].nbytes for layer in layers}
                    spill = self._split(sizes, budget)
                    for layer in layers:
                        try:
                            buffers[layer] = FeatureBuffer(
                                n,
                                outs[layer].shape[1],
                                outs[layer].dtype,
                                budget // 2,
                                spill_dir,
                                name=f"features of layer {layer!r}",
                                spill=spill[layer],
                            )
                        except ValueError as err:
                            raise self._fail(str(err)) from None
                for layer in layers:
                    rows = outs[layer]
                    if not np.isfinite(rows).all():
                        i = start + int(np.argmax(~np.isfinite(rows).all(axis=1)))
                        raise self._fail(f"gives NaN or Inf at layer {layer!r} for image {i}")
                    if keep is not None:
                        keep(layer, start, rows)
                    try:
                        buffers[layer].add(start, rows)
                    except ValueError as err:
                        raise self._fail(str(err)) from None
            for layer in layers:
                try:
                    out = buffers[layer].rdm(metric, backend, memory=budget // 2)
                except ValueError as err:
                    raise self._fail(str(err)) from None
                buffers.pop(layer).close()
                yield layer, out
        finally:
            for buf in buffers.values():
                buf.close()


class ONNXSource(_Encoder):
    """An ONNX encoder file (as fastrsa.features.extract takes them: input (batch, 3, S, S),
    one output per layer). Run with onnxruntime on `device` ("auto", "cpu", "cuda", "cuda:N")."""

    kind = "onnx"

    def __init__(self, path: str | os.PathLike, label: str | None = None):
        self.path = Path(path)
        super().__init__(label)

    def _default_label(self) -> str:
        return self.path.stem

    def _where(self) -> str:
        return str(self.path)

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.path)}

    def fingerprint(self) -> str:
        self._check_file()
        return _hash_file(self.path)

    def layer_names(self, layers: list[str] | None) -> list[str]:
        return _check_layers(layers if layers else ["compressed"])

    def _check_file(self) -> None:
        if not self.path.exists():
            raise self._fail("no such file", FileNotFoundError)
        if not self.path.is_file():
            raise self._fail("is not a file (expected an .onnx model)")

    def _session(self, device: str = "cpu"):
        from .. import features as F

        self._check_file()
        try:
            return F._session(self.path, device)
        except ValueError as err:
            raise self._fail(str(err)) from None

    def input_size(self, session: Any = None) -> int:
        """The image size S of the model's (batch, 3, S, S) input."""
        from .. import features as F

        session = session if session is not None else self._session()
        try:
            return F._input_size({self.label: session})
        except ValueError as err:
            raise self._fail(str(err)) from None

    def check(self, layers: list[str], n: int | None) -> None:
        session = self._session()
        outputs = [o.name for o in session.get_outputs()]
        missing = [layer for layer in layers if layer not in outputs]
        if missing:
            raise self._fail(f"has no output {missing}; it has {outputs}")
        self.input_size(session)

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
        """One pass of onnxruntime over the image batches for all `layers` (features as
        float32, as extract gives them); see Source.rdms."""
        layers = _check_layers(layers)
        if images is None:
            raise self._fail("needs images")
        session = self._session(device)
        size = self.input_size(session)
        name = session.get_inputs()[0].name

        def batches():
            for start, pixels in images.batches(size, batch_size):
                outs = session.run(layers, {name: pixels})
                rows = {}
                for layer, out in zip(layers, outs, strict=True):
                    if out.shape[0] != len(pixels):
                        raise self._fail(
                            f"returned {out.shape[0]} images for a batch of {len(pixels)} "
                            f"(output {layer!r})"
                        )
                    rows[layer] = out.reshape(len(pixels), -1).astype(np.float32, copy=False)
                yield start, rows

        yield from self._stream(
            layers, batches(), images.n, metric, backend, memory, spill_dir, keep
        )


class ModuleSource(_Encoder):
    """A torch.nn.Module; its layers are the names of submodules (`dict(module.named_modules())`)
    whose outputs (tensors, flattened per image) are caught with forward hooks. Run in eval mode
    under torch.no_grad() on the module's own device (its first parameter's), on images
    resized to `input_size`; the module's training mode is restored afterwards."""

    kind = "module"

    def __init__(self, module: Any, label: str, input_size: int = 256):
        torch = _torch()
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module must be a torch.nn.Module; got {type(module).__name__}")
        if label is None:
            raise ValueError(
                "a torch.nn.Module needs a label: ModuleSource(module, label) or {label: module}"
            )
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
            raise ValueError(f"input_size must be a positive integer; got {input_size!r}")
        self.module = module
        self._input_size = input_size
        super().__init__(label)

    def _class(self) -> str:
        cls = type(self.module)
        return f"{cls.__module__}.{cls.__qualname__}"

    def _where(self) -> str:
        return f"module {type(self.module).__name__}"

    def describe(self) -> dict:
        return {"kind": self.kind, "class": self._class(), "input_size": self._input_size}

    def fingerprint(self) -> str:
        """sha256 over the class name and every state_dict entry's name, shape, dtype, bytes."""
        h = hashlib.sha256(f"{self._class()}\n".encode())
        for key, value in self.module.state_dict().items():
            h.update(f"{key} {tuple(value.shape)} {value.dtype}\n".encode())
            t = value.detach().cpu().contiguous().reshape(-1)
            h.update(t.view(_torch().uint8).numpy().tobytes())
        return h.hexdigest()

    def layer_names(self, layers: list[str] | None) -> list[str]:
        if not layers:
            raise ValueError(
                f"{self.who()}: layers are required for a torch module (names of its "
                "submodules, e.g. 'layer4')"
            )
        return _check_layers(layers)

    def input_size(self, session: Any = None) -> int:
        return self._input_size

    def check(self, layers: list[str], n: int | None) -> None:
        names = dict(self.module.named_modules())
        missing = [layer for layer in layers if layer not in names]
        if missing:
            shown = [k for k in names if k][:12]
            more = " ..." if len(names) > 13 else ""
            raise self._fail(f"has no submodule {missing}; it has {shown}{more}")

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
        """One forward pass per image batch for all `layers`; see Source.rdms. `device` is not
        used: the module runs where its parameters lie."""
        torch = _torch()
        layers = _check_layers(layers)
        if images is None:
            raise self._fail("needs images")
        self.check(layers, images.n)
        module = self.module
        param = next(module.parameters(), None)
        where = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        caught: dict[str, Any] = {}
        named = dict(module.named_modules())

        def hook_for(layer: str):
            def hook(_mod, _inputs, output):
                if layer in caught:
                    raise self._fail(
                        f"layer {layer!r} ran more than once in one forward pass; hook a "
                        "submodule that runs once"
                    )
                if not isinstance(output, torch.Tensor):
                    raise self._fail(
                        f"layer {layer!r} returns a {type(output).__name__}, not a tensor"
                    )
                caught[layer] = output.detach().clone()  # later in-place ops (ReLU)

            return hook

        def batches():
            for start, pixels in images.batches(self._input_size, batch_size):
                caught.clear()
                module(torch.from_numpy(pixels).to(device=where, dtype=dtype))
                rows = {}
                for layer in layers:
                    if layer not in caught:
                        raise self._fail(f"layer {layer!r} did not run in the forward pass")
                    t = caught[layer]
                    if t.ndim == 0 or t.shape[0] != len(pixels):
                        raise self._fail(
                            f"layer {layer!r} gave shape {tuple(t.shape)} for a batch of "
                            f"{len(pixels)} images (expected the batch first)"
                        )
                    t = t.reshape(len(pixels), -1)
                    if t.dtype not in (torch.float32, torch.float64):
                        t = t.float()
                    rows[layer] = t.cpu().numpy()
                caught.clear()
                yield start, rows

        handles = [named[layer].register_forward_hook(hook_for(layer)) for layer in layers]
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                yield from self._stream(
                    layers, batches(), images.n, metric, backend, memory, spill_dir, keep
                )
        finally:
            for handle in handles:
                handle.remove()
            module.train(was_training)


def _torch():
    try:
        import torch
    except ImportError:
        from ..errors import MissingPackage

        raise MissingPackage("torch modules as sources need PyTorch: `pip install torch`") from None
    return torch


# ---- feature files ------------------------------------------------------------------------------


class _Array:
    """A readable (n, d) array in a file: shape, dtype, and rows read in batches."""

    def __init__(
        self,
        shape: tuple[int, ...],
        dtype: np.dtype,
        read: Callable[[int], Any],
        close: Callable[[], None] = lambda: None,
    ):
        self.shape, self.dtype, self.read, self.close = shape, dtype, read, close


class FeatureSource(Source):
    """Features (n, d) of one source in a file: a .npy (one array), an .npz member (`key`), or
    a zarr array (a .zarr array, or the array `key` of a zarr group). Read in row batches (at
    most an eighth of the budget each; .npz members in one sequential pass), never whole when
    large. Files are read safely: no pickle, headers checked against the bytes there."""

    kind = "features"

    def __init__(self, path: str | os.PathLike, label: str | None = None, key: str | None = None):
        self.path = Path(path)
        self.key = key
        super().__init__(label)

    def _default_label(self) -> str:
        return self.key if self.key is not None else self.path.stem

    def _where(self) -> str:
        return str(self.path) + (f", array {self.key!r}" if self.key is not None else "")

    def describe(self) -> dict:
        out = {"kind": self.kind, "path": str(self.path)}
        if self.key is not None:
            out["key"] = self.key
        return out

    def _format(self) -> str:
        suffix = self.path.suffix.lower()
        if suffix in (".npy", ".npz"):
            return suffix[1:]
        if suffix == ".zarr" or (self.path / "zarr.json").is_file():
            return "zarr"
        raise self._fail("is not a feature file: expected .npy, .npz or .zarr")

    def _exists(self) -> None:
        if not self.path.exists():
            raise self._fail("no such file", FileNotFoundError)

    def fingerprint(self) -> str:
        self._exists()
        if self._format() == "zarr":
            node = self.path / self.key if self.key is not None else self.path
            digest = _hash_tree(node)
        else:
            digest = _hash_file(self.path)
        if self.key is None:
            return digest
        return hashlib.sha256(f"{digest} {self.key}".encode()).hexdigest()

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
        out: list[Source] = []
        for key in keys:
            label = key if self.auto_label else f"{self.label}/{key}"
            out.append(FeatureSource(self.path, label, key))
        return out

    def _zarr_root(self):
        try:
            import zarr
        except ImportError:
            from ..errors import MissingPackage

            raise MissingPackage("zarr feature files need zarr: `pip install zarr`") from None
        try:
            return zarr.open(str(self.path), mode="r")
        except FileNotFoundError:
            raise self._fail("no such file", FileNotFoundError) from None
        except Exception as err:  # zarr's own errors for what is not a zarr store
            raise self._fail(f"cannot read it as zarr ({' '.join(str(err).split())})") from None

    def _open(self) -> _Array:
        """The array's shape and dtype, and a reader of rows: read(rows) -> next rows."""
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
            if self.key is None:
                raise self._fail(f"is a zarr group; give key= one of {sorted(node.array_keys())}")
            if self.key not in set(node.array_keys()):
                raise self._fail(f"has no array {self.key!r}; it has {sorted(node.array_keys())}")
            node = node[self.key]
        elif self.key is not None:
            raise self._fail(f"is a zarr array, not a group: it has no array {self.key!r}")
        state = {"at": 0}

        def read(rows: int):
            at = state["at"]
            state["at"] = at + rows
            return np.asarray(node[at : at + rows])

        return _Array(tuple(node.shape), np.dtype(node.dtype), read)

    def _open_npy(self) -> _Array:
        if self.key is not None:
            raise self._fail(f"is a .npy file: it has no array {self.key!r}")
        what = f"{self.who()}"
        try:
            f = open(self.path, "rb")
        except OSError as err:
            raise self._fail(f"cannot read it ({err.strerror})") from None
        with f:
            shape, dtype, need = io._read_header(f, what)
            f.seek(0)
            fortran = _fortran_order(f)
            start = f.tell() if fortran is not None else 0
            have = os.fstat(f.fileno()).st_size - start
        if need > have:
            raise io._too_big(need, have, shape, what)
        if fortran is None or fortran:  # a rare layout: read whole, safely
            arr = io.load_arrays(self.path, self.who())[self.path.stem]
            return _whole(arr)
        return _Array(shape, dtype, _row_reader(self.path, start, shape, dtype, self))

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
            shape, dtype, need = io._read_header(f, what)
            f.close()
            f = zf.open(info)
            fortran = _fortran_order(f)
        except (zipfile.BadZipFile, OSError, KeyError) as err:
            raise self._fail(f"cannot read it as .npz ({err})") from None
        have = info.file_size - f.tell()
        if need > have:
            f.close()
            zf.close()
            raise io._too_big(need, have, shape, what)
        if fortran is None or fortran:
            f.close()
            zf.close()
            return _whole(io.load_arrays(self.path, what)[key])
        d = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1

        def read(rows: int):
            buf = f.read(rows * d * dtype.itemsize)
            if len(buf) < rows * d * dtype.itemsize:
                raise self._fail("is truncated")
            return np.frombuffer(buf, dtype=dtype).reshape(rows, *shape[1:])

        def close() -> None:
            f.close()
            zf.close()

        return _Array(shape, dtype, read, close)

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
        budget = _budget(memory)
        arr = self._open()
        n, d = arr.shape
        step = max(1, min(n, (budget // 8) // max(1, d * arr.dtype.itemsize)))
        try:
            with FeatureBuffer(n, d, arr.dtype, budget, spill_dir, name="features") as buf:
                for start in range(0, n, step):
                    rows = np.asarray(arr.read(min(step, n - start)))
                    if keep is not None:
                        keep(layer, start, rows)
                    buf.add(start, rows)
                out = buf.rdm(metric, backend, memory=budget // 2)
        except ValueError as err:
            if str(err).startswith(self.who()):
                raise
            raise self._fail(str(err)) from None
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


def _whole(arr: np.ndarray) -> _Array:
    state = {"at": 0}

    def read(rows: int):
        at = state["at"]
        state["at"] = at + rows
        return arr[at : at + rows]

    return _Array(arr.shape, arr.dtype, read)


def _row_reader(path: Path, start: int, shape: tuple, dtype: np.dtype, src: Source):
    """read(rows) -> the next rows of a C-order .npy array, read with plain file reads."""
    d = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    state = {"at": 0}

    def read(rows: int):
        out = np.empty((rows, *shape[1:]), dtype=dtype)
        view = out.data.cast("B")
        with open(path, "rb", buffering=0) as f:
            f.seek(start + state["at"] * d * dtype.itemsize)
            done = 0
            while done < len(view):
                got = f.readinto(view[done:])
                if not got:
                    raise src._fail("is truncated")
                done += got
        state["at"] += rows
        return out

    return read


# ---- RDM files ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _rdm_file(path: str, size: int, mtime_ns: int) -> tuple[list[str], np.ndarray]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "read as one square RDM" notes
        return io.load_rdms(path, "rdms")


class RDMSource(Source):
    """A precomputed RDM: the one labelled `key` in an RDM file (as fastrsa.io.load_rdms reads
    it: condensed (m,) or square (n, n) per .npz key, stacks labelled `key[i]`). Without `key`,
    resolve_sources makes one source per RDM of the file, labelled as load_rdms labels them.
    The file is read whole (RDM files are small beside features), once per process while it
    is unchanged."""

    kind = "rdms"

    def __init__(self, path: str | os.PathLike, label: str | None = None, key: str | None = None):
        self.path = Path(path)
        self.key = key
        super().__init__(label)

    def _default_label(self) -> str:
        return self.key if self.key is not None else self.path.stem

    def _where(self) -> str:
        return str(self.path) + (f", RDM {self.key!r}" if self.key is not None else "")

    def describe(self) -> dict:
        out = {"kind": self.kind, "path": str(self.path)}
        if self.key is not None:
            out["key"] = self.key
        return out

    def _load(self) -> tuple[list[str], np.ndarray]:
        if not self.path.exists():
            raise self._fail("no such file", FileNotFoundError)
        st = self.path.stat()
        try:
            return _rdm_file(str(self.path), st.st_size, st.st_mtime_ns)
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
        if not self.path.exists():
            raise self._fail("no such file", FileNotFoundError)
        digest = _hash_file(self.path)
        if self.key is None:
            return digest
        return hashlib.sha256(f"{digest} {self.key}".encode()).hexdigest()

    def expand(self) -> list[Source]:
        if self.key is not None:
            return [self]
        labels, _ = self._load()
        if len(labels) == 1:
            return [RDMSource(self.path, None if self.auto_label else self.label, labels[0])]
        return [
            RDMSource(self.path, key if self.auto_label else f"{self.label}/{key}", key)
            for key in labels
        ]

    def n_images(self) -> int | None:
        from ..rdms import n_from_condensed

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


# ---- resolving what the user gave ---------------------------------------------------------------


def _from_path(path: str | os.PathLike, label: str | None) -> Source:
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        return ONNXSource(p, label)
    if suffix in FEATURE_SUFFIXES or (p.is_dir() and (p / "zarr.json").is_file()):
        return FeatureSource(p, label)
    shown = label if label is not None else p.stem
    raise ValueError(
        f"sources: {shown!r} ({p}) is not a source: expected an .onnx model or a .npy, .npz or "
        ".zarr feature file (RDM files: RDMSource(path), or --rdms on the command line)"
    )


def _is_module(obj: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _one(obj: Any, label: str | None) -> Source:
    if isinstance(obj, Source):
        if label is None:
            return obj
        out = copy.copy(obj)
        out.label, out.auto_label = label, False
        return out
    if isinstance(obj, (str, os.PathLike)):
        return _from_path(obj, label)
    if _is_module(obj):
        if label is None:
            raise ValueError(
                f"sources: a torch module ({type(obj).__name__}) needs a label: pass "
                "{label: module} or ModuleSource(module, label)"
            )
        return ModuleSource(obj, label)
    raise TypeError(
        "sources must be paths, torch modules or Source objects; got "
        f"{type(obj).__name__}" + (f" for {label!r}" if label is not None else "")
    )


def _source_path(src: Source) -> Path | None:
    return getattr(src, "path", None)


def _lengthen_labels(sources: list[Source]) -> None:
    """Automatic labels (file stems) that clash between different files get as many trailing
    folders as tell them apart (as fastrsa.features labels models); the same file given twice
    is an error."""
    from ..features import _unique_label

    auto = [s for s in sources if s.auto_label and _source_path(s) is not None]
    seen: dict[tuple[str, str | None], Source] = {}
    for s in auto:
        path = _source_path(s)
        assert path is not None
        ident = (os.path.realpath(path), getattr(s, "key", None))
        if ident in seen:
            raise ValueError(
                f"sources: {seen[ident].who()} and {s.who()} are the same file, given twice"
            )
        seen[ident] = s
    stems: dict[str, list[Source]] = {}
    for s in auto:
        stems.setdefault(s.label, []).append(s)
    for clashing in stems.values():
        paths = {_source_path(s) for s in clashing}
        if len(clashing) < 2 or len(paths) < 2:
            continue
        plist = [p for p in paths if p is not None]
        for s in clashing:
            path = _source_path(s)
            assert path is not None
            label = _unique_label(path, plist)
            key = getattr(s, "key", None)
            if key is not None and key == s.label:  # an array of a file: label is its key
                label = f"{label}/{key}"
            s.label = label


def resolve_sources(sources: Any, layers: list[str] | None = None) -> list[Source]:
    """The sweep's sources, one array or model each, with unique labels.

    sources: a path, module or Source, a list of them, or a {label: path | module | Source}
    dict. Paths: *.onnx -> ONNXSource; *.npy, *.npz, *.zarr -> FeatureSource; an .npz or a zarr
    group gives one source per array, labelled by its key (under a dict label L: "L/key" when
    there are several). RDM files only as RDMSource(...) (one source per RDM of the file).
    Labels: the dict key, else the file stem, with as many trailing folders as tell apart
    different files of one stem. Modules need a label. Errors: duplicate labels (ValueError
    naming them), a module without a label, a path of an unknown kind, a source without the
    layers it needs (`layers`: the sweep's, checked with each source's layer_names).
    """
    items: list[tuple[str | None, Any]]
    if isinstance(sources, dict):
        items = [(str(k), v) for k, v in sources.items()]
    elif isinstance(sources, (list, tuple)):
        items = [(None, v) for v in sources]
    else:
        items = [(None, sources)]
    if not items:
        raise ValueError("sources is empty")
    out: list[Source] = []
    for label, obj in items:
        out.extend(_one(obj, label).expand())
    _lengthen_labels(out)
    labels = [s.label for s in out]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        who = "; ".join(s.who() for s in out if s.label in twice)
        raise ValueError(f"sources: the labels {twice} name more than one source ({who})")
    for s in out:
        s.layer_names(layers)
    return out
