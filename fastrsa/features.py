"""Features of many ONNX encoders on one image set, with onnxruntime, ready for fastrsa.rdms.

    feats = extract(["depth.onnx", "normal.onnx"], "images/", layers=["block4", "compressed"])
    rdms = fastrsa.rdms(feats.stack("compressed"))      # (models, n*(n-1)//2)

onnxruntime and onnxruntime-gpu install the same module `onnxruntime`; install one of them
(`pip install fastrsa[onnx]` or `fastrsa[onnx-gpu]`), never both.

Images are read by `fastrsa.images` and sessions made by `fastrsa.onnx`; `image_paths`,
`load_images`, `IMAGE_SUFFIXES`, `onnxruntime` and `providers` are re-exported here (their
old home).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import io
from ._checks import check_choice, check_count
from .images import IMAGE_SUFFIXES, image_paths, load_images, load_images_and_names
from .onnx import (
    cuda_device_id,
    cuda_index,
    input_size,
    on_cuda,
    onnxruntime,
    providers,
    session,
    torch_device,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "Features",
    "extract",
    "image_paths",
    "load_images",
    "onnxruntime",
    "providers",
    "unique_label",
]


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

    check_choice(output, ("numpy", "torch"), "output")
    cuda_index(device)  # a bad device is refused before any model is loaded
    batch_size = check_count(batch_size, "batch_size")
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
    sessions = {label: session(path, device) for label, path in named.items()}
    for label, sess in sessions.items():  # every model checked before any inference
        outputs = [o.name for o in sess.get_outputs()]
        missing = [layer for layer in layers if layer not in outputs]
        if missing:
            raise ValueError(f"models: {named[label]} has no output {missing}; it has {outputs}")
    size = input_size(sessions)
    pixels, names = load_images_and_names(images, size)
    image_key = hashlib.sha256(pixels.tobytes()).hexdigest()[:16]
    data: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    n_batches = -(-len(pixels) // batch_size)
    bar = tqdm(total=len(named) * n_batches, desc="features", unit="batch", disable=not progress)
    try:  # closed on errors too, so a message starts on its own line
        for label, sess in sessions.items():
            model_key = io.file_sha256(named[label])[:16]
            keys = {layer: f"{model_key}-{image_key}-{layer}" for layer in layers}
            cached = _read_cache(cache, keys, len(pixels), _feature_sizes(sess, layers))
            if cached is None:
                cached = _run(sess, pixels, layers, batch_size, label, bar, output)
                _check_finite(cached, named[label], names)
                _write_cache(cache, keys, cached)
            else:
                if output == "torch":
                    cached = {k: _to_torch(v, torch_device(sess)) for k, v in cached.items()}
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
            named[unique_label(path, clashes)] = path
    if not named:
        raise ValueError("models is empty")
    return named


def unique_label(path: Path, clashes: list[Path]) -> str:
    """The label of `path` among files that share its stem (`clashes`, itself included): as
    many trailing folders (without the suffix) as tell them all apart, e.g. "a/enc" beside
    "b/enc"; the path itself when they differ only by the suffix's case."""

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
        layer: _allocate(len(pixels), output, torch_device(session), out.reshape(len(first), -1))
        for layer, out in zip(layers, outs, strict=True)
    }
    bar.update(1)
    binding = session.io_binding()
    device = "cuda" if on_cuda(session) and output == "torch" else "cpu"
    device_id = cuda_device_id(session) if device == "cuda" else 0
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


def _allocate(n: int, output: str, device: str, first: np.ndarray):
    """An (n, d) float32 result holding `first` in its leading rows: numpy, or a torch tensor
    on `device` (the session's, see fastrsa.onnx.torch_device)."""
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
