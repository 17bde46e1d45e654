"""Features of many ONNX encoders on one image set, with onnxruntime, ready for fastrsa.rdms.

    feats = extract(["depth.onnx", "normal.onnx"], "images/", layers=["block4", "compressed"])
    rdms = fastrsa.rdms(feats.stack("compressed"))      # (models, n*(n-1)//2)

onnxruntime and onnxruntime-gpu install the same module `onnxruntime`; install one of them
(`pip install fastrsa[onnx]` or `fastrsa[onnx-gpu]`), never both.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import io
from .errors import MissingPackage, NeedsDevice

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class Features:
    """Features per (model, layer): data[layer] is (models, images, d) float32, in model order
    (numpy arrays, or torch tensors when extracted with output="torch")."""

    models: list[str]
    layers: list[str]
    data: dict[str, np.ndarray] = field(default_factory=dict)

    def stack(self, layer: str) -> np.ndarray:
        """(models, images, d) features of one layer: the input fastrsa.rdms takes."""
        if layer not in self.data:
            raise KeyError(f"layer {layer!r} was not extracted; have {self.layers}")
        return self.data[layer]

    def save(self, path: str | os.PathLike) -> Path:
        """One .npz array per (model, layer), keyed "model.layer" (atomic)."""
        arrays = {
            f"{model}.{layer}": _to_numpy(self.data[layer][i])
            for layer in self.layers
            for i, model in enumerate(self.models)
        }
        return io.save_npz(path, **arrays)


def onnxruntime():
    """The onnxruntime module, or an ImportError that says how to install it."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingPackage(
            "fastrsa.features needs onnxruntime: `pip install fastrsa[onnx]` (CPU) or "
            "`pip install fastrsa[onnx-gpu]` (CUDA) — one of the two, never both"
        ) from None
    return ort


_CUDA_N = re.compile(r"cuda:(\d+)")


def _cuda_index(device: str) -> int | None:
    """N for device "cuda:N"; None for "auto", "cuda" (onnxruntime's default, device 0) and
    "cpu"; ValueError for anything else."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a string; got {type(device).__name__}")
    m = _CUDA_N.fullmatch(device)
    if m:
        return int(m.group(1))
    if device not in ("auto", "cuda", "cpu"):
        raise ValueError(f"device must be 'auto', 'cuda', 'cuda:N' or 'cpu'; got {device!r}")
    return None


def providers(device: str = "auto") -> list[str]:
    """onnxruntime execution providers for "auto" (CUDA when onnxruntime has it), "cuda" or
    "cuda:N" (GPU N), "cpu"."""
    _cuda_index(device)  # refuses anything but auto, cuda, cuda:N, cpu
    available = onnxruntime().get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device.startswith("cuda") and not has_cuda:
        raise NeedsDevice(
            f"device={device!r} needs onnxruntime-gpu with CUDAExecutionProvider; this "
            f"onnxruntime has {available}"
        )
    if device != "cpu" and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def image_paths(folder: str | os.PathLike) -> list[Path]:
    """The image files of a folder, sorted by name.

    Hidden files (".name") and sub-folders are skipped; any other file that is not an image, and
    a symbolic link that dangles or loops, is an error naming it (never skipped silently).
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"images: no such folder: {folder}")
    if not folder.is_dir():
        raise ValueError(f"images: {folder} is a file; expected a folder of images")
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as err:
        raise ValueError(f"images: cannot list {folder} ({err.strerror})") from None
    files = []
    for p in entries:
        try:
            st = p.stat()  # follows symbolic links: a dangling or looping one raises here
        except OSError as err:
            what = "a symbolic link that dangles or loops" if p.is_symlink() else "unreadable"
            raise ValueError(f"images: {p} is {what} ({err.strerror})") from None
        if stat.S_ISDIR(st.st_mode):
            continue
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"images: {p} is not a regular file")
        files.append(p)
    others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        raise ValueError(f"images: {folder} holds files that are not images: {others[:5]}")
    if not files:
        raise ValueError(f"images: {folder} holds no images")
    return files


def load_images(images: Any, size: int = 256) -> np.ndarray:
    """Images as (N, 3, size, size) float32 in [-1, 1] (pixel / 127.5 - 1 for 8-bit images).

    images: a folder, a list of paths (read with PIL, converted to RGB, resized to size x size;
    16-bit images are scaled from 0..65535, so they land in [-1, 1] too), or an array: uint8
    (N, size, size, 3) in [0, 255], or float (N, 3, size, size) already in [-1, 1] (values
    outside it are refused). An image whose declared size exceeds PIL's Image.MAX_IMAGE_PIXELS
    (a decompression bomb) is refused without decoding it.
    """
    return _load_images(images, size)[0]


def _load_images(images: Any, size: int) -> tuple[np.ndarray, list[str] | None]:
    """(pixels, the images' names for messages: paths, or None for an array)."""
    if isinstance(images, np.ndarray):
        return _from_array(images, size), None
    if isinstance(images, (str, os.PathLike)):
        paths = image_paths(images)
    elif isinstance(images, (list, tuple)) and all(
        isinstance(p, (str, os.PathLike)) for p in images
    ):
        paths = [Path(p) for p in images]
        if not paths:
            raise ValueError("images is an empty list")
    else:
        raise TypeError(
            "images must be a folder, a list of image paths or a numpy array; got "
            f"{type(images).__name__}"
        )
    out = np.empty((len(paths), 3, size, size), dtype=np.float32)
    for i, path in enumerate(paths):
        out[i] = _read_image(Path(path), size)
    return out, [str(p) for p in paths]


_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def _read_image(path: Path, size: int) -> np.ndarray:
    """One image file as (3, size, size) float32 in [-1, 1]."""
    import warnings

    from PIL import Image

    if not path.exists():
        raise FileNotFoundError(f"images: no such file: {path}")
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that; refuse before decoding
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.mode in _SIXTEEN_BIT or (img.mode == "I" and img.format == "PNG"):
                    gray = np.asarray(img, dtype=np.float32)  # 0..65535
                    small = Image.fromarray(gray, mode="F").resize((size, size), Image.BILINEAR)  # type: ignore[attr-defined]
                    plane = np.asarray(small, dtype=np.float32) / 32767.5 - 1.0
                    return np.repeat(plane[None], 3, axis=0)
                if img.mode in ("I", "F"):
                    raise ValueError(
                        f"images: {path} holds {'32-bit integer' if img.mode == 'I' else 'float'}"
                        " pixels of unknown range; save it as an 8- or 16-bit image"
                    )
                rgb = img.convert("RGB").resize((size, size), Image.BILINEAR)  # type: ignore[attr-defined]
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(
            f"images: {path} declares more pixels than PIL's limit Image.MAX_IMAGE_PIXELS = "
            f"{Image.MAX_IMAGE_PIXELS} (a decompression bomb?); raise the limit if it is genuine"
        ) from None
    except FileNotFoundError:
        raise FileNotFoundError(f"images: no such file: {path}") from None
    except ValueError as err:
        if str(err).startswith("images: "):
            raise
        raise ValueError(f"images: {path} is not a readable image ({_one_line(err)})") from None
    except (OSError, SyntaxError, EOFError, struct.error, zlib.error) as err:
        # PIL's decoders raise all of these for broken files (UnidentifiedImageError is OSError)
        raise ValueError(f"images: {path} is not a readable image ({_one_line(err)})") from None
    return np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _from_array(images: np.ndarray, size: int) -> np.ndarray:
    if images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3:
        if images.shape[1:3] != (size, size):
            raise ValueError(f"images: expected (N, {size}, {size}, 3); got {images.shape}")
        return images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0
    if images.dtype.kind == "f" and images.ndim == 4 and images.shape[1:] == (3, size, size):
        if len(images) == 0:
            raise ValueError(f"images is empty (shape {images.shape})")
        bad = ~np.isfinite(images)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"images holds NaN or Inf (first at index {first})")
        bad = (images < -1.0) | (images > 1.0)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"images: float pixels must lie in [-1, 1]; got values in "
                f"[{float(images.min()):.4g}, {float(images.max()):.4g}] (first outside at index "
                f"{first}); scale 0..255 pixels by x / 127.5 - 1, or pass uint8 (N, H, W, 3)"
            )
        return images.astype(np.float32, copy=False)
    raise ValueError(
        f"images: expected uint8 (N, {size}, {size}, 3) or float (N, 3, {size}, {size}) in "
        f"[-1, 1]; got {images.dtype} {images.shape}"
    )


def _session(model: Path, device: str):
    ort = onnxruntime()
    if not model.is_file():
        raise FileNotFoundError(f"models: no such file: {model}")
    names = providers(device)
    index = _cuda_index(device)
    options = None
    if index is not None:  # the GPU the caller chose; onnxruntime's default is device 0
        options = [{"device_id": str(index)} if p == "CUDAExecutionProvider" else {} for p in names]
    try:
        return ort.InferenceSession(str(model), providers=names, provider_options=options)
    except Exception as err:  # onnxruntime raises its own error types for bad files
        raise ValueError(
            f"models: could not load {model} as an ONNX model ({_one_line(err)})"
        ) from None


def extract(
    models: Any,
    images: Any,
    layers: list[str] | tuple[str, ...] = ("compressed",),
    batch_size: int = 64,
    device: str = "auto",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    output: str = "numpy",
) -> Features:
    """Run every ONNX encoder over one image set; returns Features (models x layers).

    models: ONNX paths or a {label: path} dict. Paths are labelled by their file stem; files
    that share a stem (a/enc.onnx, b/enc.onnx) are labelled by as many trailing folders as tell
    them apart ("a/enc", "b/enc"), so no two models are merged under one label; the same file
    given twice is an error. images: see load_images (resized to the models' input size).
    layers: output names (fastrsa's exports name them block1..block4, compressed). With
    `cache_dir`, each (model, layer) result is saved keyed by the model file's hash, the images
    and the layer, so a re-run skips finished work and a killed run resumes; a cached entry of
    the wrong shape or dtype is recomputed, and `cache_dir` is checked (created) before any
    inference runs. device: "auto" uses onnxruntime's CUDA provider when it has one, "cuda" or
    "cuda:N" require it (GPU 0, or GPU N), "cpu" never uses it.

    A model whose output holds NaN or Inf is refused (ValueError naming the model, the layer
    and the first such image), never returned or cached.

    output: "numpy" (host arrays) or "torch": tensors on the device the models ran on. With the
    CUDA provider, IO binding has onnxruntime write every batch's outputs straight into CUDA
    memory, so `fastrsa.rdms(feats.stack(layer))` runs the GPU kernels with no host round trip.
    """
    from tqdm.auto import tqdm

    if output not in ("numpy", "torch"):
        raise ValueError(f"output must be 'numpy' or 'torch'; got {output!r}")
    _cuda_index(device)  # a bad device is refused before any model is loaded
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an integer; got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise ValueError("layers is empty")
    twice = sorted({layer for layer in layers if layers.count(layer) > 1})
    if twice:
        raise ValueError(f"layers: {twice} given more than once")
    named = _labelled_models(models)
    cache = _cache_folder(cache_dir)
    sessions = {label: _session(path, device) for label, path in named.items()}
    for label, session in sessions.items():  # every model checked before any inference
        outputs = [o.name for o in session.get_outputs()]
        missing = [layer for layer in layers if layer not in outputs]
        if missing:
            raise ValueError(f"models: {named[label]} has no output {missing}; it has {outputs}")
    size = _input_size(sessions)
    pixels, names = _load_images(images, size)
    image_key = hashlib.sha256(pixels.tobytes()).hexdigest()[:16]
    data: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    n_batches = -(-len(pixels) // batch_size)
    bar = tqdm(total=len(named) * n_batches, desc="features", unit="batch", disable=not progress)
    try:  # closed on errors too, so a message starts on its own line
        for label, session in sessions.items():
            model_key = io.file_sha256(named[label])[:16]
            keys = {layer: f"{model_key}-{image_key}-{layer}" for layer in layers}
            cached = _read_cache(cache, keys, len(pixels), _feature_sizes(session, layers))
            if cached is None:
                cached = _run(session, pixels, layers, batch_size, label, bar, output)
                _check_finite(cached, named[label], names)
                _write_cache(cache, keys, cached)
            else:
                if output == "torch":
                    cached = {k: _to_torch(v, _torch_device(session)) for k, v in cached.items()}
                bar.update(n_batches)
            for layer in layers:
                data[layer].append(cached[layer])
    finally:
        bar.close()
    return Features(list(named), layers, {layer: _stack(v) for layer, v in data.items()})


def _labelled_models(models: Any) -> dict[str, Path]:
    """{label: path}: a dict as given; paths by file stem, with as many trailing folders as it
    takes to tell apart different files that share a stem."""
    if isinstance(models, (str, os.PathLike)):
        models = [models]
    if isinstance(models, dict):
        named = {str(label): Path(path) for label, path in models.items()}
    else:
        paths = [Path(m) for m in models]
        seen: dict[Path, Path] = {}
        for path in paths:
            key = Path(os.path.realpath(path))
            if key in seen:
                raise ValueError(f"models: {seen[key]} and {path} are the same file, given twice")
            seen[key] = path
        named = {}
        for path in paths:
            clashes = [p for p in paths if p.stem == path.stem]
            named[_unique_label(path, clashes)] = path
    if not named:
        raise ValueError("models is empty")
    return named


def _unique_label(path: Path, clashes: list[Path]) -> str:
    def label(p: Path, k: int) -> str:
        parts = Path(os.path.abspath(p)).with_suffix("").parts[1:]
        return "/".join(parts[-k:])

    depth = max(len(Path(os.path.abspath(p)).parts) for p in clashes)
    for k in range(1, depth):
        if len({label(p, k) for p in clashes}) == len(clashes):
            return label(path, k)
    return str(path)  # they differ only by suffix: enc.onnx and enc.ONNX


def _cache_folder(cache_dir: str | os.PathLike | None) -> Path | None:
    """The cache folder, created now (before any inference) so a bad path fails at once."""
    if cache_dir is None:
        return None
    cache = Path(cache_dir)
    if cache.exists() and not cache.is_dir():
        raise ValueError(f"cache_dir: {cache} is a file; expected a folder")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cache_dir: cannot create the folder {cache} ({err.strerror})") from None
    if not os.access(cache, os.W_OK | os.X_OK):
        raise ValueError(f"cache_dir: cannot write in {cache} (permission denied)")
    return cache


def _feature_sizes(session, layers: list[str]) -> dict[str, int | None]:
    """{layer: d} where the model's output shape fixes d (all dims after the batch static)."""
    shapes = {o.name: o.shape for o in session.get_outputs()}
    sizes: dict[str, int | None] = {}
    for layer in layers:
        dims = shapes[layer][1:] if shapes[layer] else None
        if dims is not None and all(isinstance(d, int) and d > 0 for d in dims):
            sizes[layer] = int(np.prod(dims))
        else:
            sizes[layer] = None
    return sizes


def _check_finite(result: dict, model: Path, names: list[str] | None) -> None:
    """ValueError naming the model, layer and first image when an output holds NaN or Inf."""
    for layer, rows in result.items():
        if isinstance(rows, np.ndarray):
            bad = ~np.isfinite(rows).all(axis=1)
            if not bad.any():
                continue
            index, count = int(np.argmax(bad)), int(bad.sum())
        else:
            import torch

            bad_t = ~torch.isfinite(rows).all(dim=1)
            if not bool(bad_t.any()):
                continue
            index, count = int(torch.argmax(bad_t.to(torch.uint8))), int(bad_t.sum())
        image = names[index] if names is not None else f"images[{index}]"
        raise ValueError(
            f"models: {model} gives NaN or Inf at layer {layer!r} for {count} image(s), the first "
            f"{image}"
        )


def _stack(arrays: list):
    if isinstance(arrays[0], np.ndarray):
        return np.stack(arrays)
    import torch

    return torch.stack(arrays)


def _to_torch(array: np.ndarray, device: str):
    import torch

    return torch.from_numpy(array).to(device)


def _to_numpy(array) -> np.ndarray:
    return array if isinstance(array, np.ndarray) else array.detach().cpu().numpy()


def _input_size(sessions: dict) -> int:
    """The square input size all models share (their ONNX input is (batch, 3, size, size))."""
    sizes = {}
    for label, session in sessions.items():
        shape = session.get_inputs()[0].shape
        if (
            len(shape) != 4
            or shape[1] != 3
            or not isinstance(shape[2], int)
            or shape[2] != shape[3]
        ):
            raise ValueError(f"models: {label} takes input {shape}; expected (batch, 3, S, S)")
        sizes[label] = shape[2]
    if len(set(sizes.values())) > 1:
        raise ValueError(f"models take different image sizes: {sizes}")
    return next(iter(sizes.values()))


def _run(
    session,
    pixels: np.ndarray,
    layers: list[str],
    batch_size: int,
    label: str,
    bar,
    output: str = "numpy",
):
    """{layer: (N, d) float32} for one model, batch by batch.

    The first batch runs plainly (it gives each layer's d and checks the batch axis); every later
    batch runs with IO binding, onnxruntime writing each layer straight into its rows of the
    result: a numpy array, or with output="torch" a tensor on the device the model runs on (CUDA
    memory with the CUDA provider: nothing goes through the host).
    """
    name = session.get_inputs()[0].name
    first = pixels[:batch_size]
    outs = session.run(layers, {name: first})
    for layer, out in zip(layers, outs, strict=True):
        _check_batch(out.shape[0], len(first), label, layer)
    result = {
        layer: _allocate(len(pixels), output, _torch_device(session), out.reshape(len(first), -1))
        for layer, out in zip(layers, outs, strict=True)
    }
    bar.update(1)
    binding = session.io_binding()
    device = "cuda" if _on_cuda(session) and output == "torch" else "cpu"
    device_id = _cuda_device_id(session) if device == "cuda" else 0
    types = {o.name: o.type for o in session.get_outputs()}
    bindable = all(types[layer] == "tensor(float)" for layer in layers)  # else: plain runs, cast
    for start in range(batch_size, len(pixels), batch_size):
        batch = np.ascontiguousarray(pixels[start : start + batch_size])
        if not bindable:
            for layer, out in zip(layers, session.run(layers, {name: batch}), strict=True):
                _check_batch(out.shape[0], len(batch), label, layer)
                _put(result[layer], start, out.reshape(len(batch), -1))
            bar.update(1)
            continue
        binding.bind_cpu_input(name, batch)
        for layer, out in zip(layers, outs, strict=True):
            rows = result[layer][start : start + len(batch)]
            binding.bind_output(
                layer, device, device_id, np.float32, (len(batch), *out.shape[1:]), _pointer(rows)
            )
        try:
            session.run_with_iobinding(binding)
        except Exception as err:  # onnxruntime's own error types: an output of another shape
            raise ValueError(
                f"models: {label} returned outputs that do not fit a batch of {len(batch)} images "
                f"(expected {[(len(batch), *o.shape[1:]) for o in outs]}): {err}"
            ) from None
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        bar.update(1)
    if device == "cuda":
        binding.synchronize_outputs()
    return result


def _check_batch(got: int, want: int, label: str, layer: str) -> None:
    if got != want:
        raise ValueError(
            f"models: {label} returned {got} images for a batch of {want} (output {layer!r})"
        )


def _on_cuda(session) -> bool:
    return session.get_providers()[0] == "CUDAExecutionProvider"


def _cuda_device_id(session) -> int:
    """The GPU a CUDA session runs on: its CUDA provider's device_id (0 unless chosen)."""
    try:
        options = session.get_provider_options().get("CUDAExecutionProvider", {})
        return int(options.get("device_id", 0))
    except (AttributeError, TypeError, ValueError):
        return 0


def _torch_device(session) -> str:
    """The torch device of the session's outputs: "cuda:<its device_id>" or "cpu"."""
    return f"cuda:{_cuda_device_id(session)}" if _on_cuda(session) else "cpu"


def _allocate(n: int, output: str, device: str, first: np.ndarray):
    """An (n, d) float32 result holding `first` in its leading rows: numpy, or a torch tensor
    on `device` (the session's, see _torch_device)."""
    out: Any  # a numpy array or a torch tensor
    if output == "numpy":
        out = np.empty((n, first.shape[1]), dtype=np.float32)
    else:
        import torch

        out = torch.empty((n, first.shape[1]), dtype=torch.float32, device=device)
    _put(out, 0, first)
    return out


def _put(result, start: int, rows: np.ndarray) -> None:
    if isinstance(result, np.ndarray):
        result[start : start + len(rows)] = rows
    else:
        import torch

        result[start : start + len(rows)] = torch.from_numpy(rows.astype(np.float32, copy=False))


def _pointer(rows) -> int:
    """Address of a C-contiguous block of rows (numpy array or torch tensor)."""
    return rows.data_ptr() if hasattr(rows, "data_ptr") else rows.ctypes.data


def _read_cache(
    cache: Path | None, keys: dict[str, str], n: int, sizes: dict[str, int | None]
) -> dict[str, np.ndarray] | None:
    """The cached results, or None when any is missing, unreadable or not what the model gives:
    float32 (n, d), finite (then the caller recomputes and overwrites them)."""
    if cache is None or not all((cache / f"{k}.npy").is_file() for k in keys.values()):
        return None
    out = {}
    for layer, key in keys.items():
        try:
            array = io.load_arrays(cache / f"{key}.npy", "cache")[key]
        except (ValueError, OSError):
            return None
        d = sizes[layer]
        if (
            array.dtype != np.float32
            or array.ndim != 2
            or array.shape[0] != n
            or array.shape[1] < 1
            or (d is not None and array.shape[1] != d)
            or not np.isfinite(array).all()
        ):
            return None
        out[layer] = array
    return out


def _write_cache(cache: Path | None, keys: dict[str, str], arrays: dict[str, np.ndarray]) -> None:
    if cache is None:
        return
    for layer, key in keys.items():
        array = _to_numpy(arrays[layer])
        io.atomic_write(cache / f"{key}.npy", functools.partial(np.save, arr=array))
