"""ONNX encoders with onnxruntime: the module (or how to install it), execution providers for a
device, an inference session on the chosen GPU, the image size a model takes, and where a
session's outputs live.

    sess = session(Path("depth.onnx"), "auto")     # CUDA when onnxruntime has it, else CPU
    size = input_size({"depth": sess})             # S of its (batch, 3, S, S) input

onnxruntime and onnxruntime-gpu install the same module `onnxruntime`; install one of them
(`pip install fastrsa[onnx]` or `fastrsa[onnx-gpu]`), never both. It is imported on first use.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ._checks import one_line
from .errors import MissingPackage, NeedsDevice

__all__ = [
    "cuda_device_id",
    "cuda_index",
    "input_size",
    "on_cuda",
    "onnxruntime",
    "providers",
    "session",
    "torch_device",
]


def onnxruntime() -> Any:
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


def cuda_index(device: str) -> int | None:
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
    cuda_index(device)  # refuses anything but auto, cuda, cuda:N, cpu
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


def session(model: Path, device: str) -> Any:
    """An onnxruntime InferenceSession of the model file on `device` (see `providers`; "cuda:N"
    runs on GPU N). FileNotFoundError for a missing file, ValueError for a file onnxruntime
    cannot load as a model."""
    ort = onnxruntime()
    if not model.is_file():
        raise FileNotFoundError(f"models: no such file: {model}")
    names = providers(device)
    index = cuda_index(device)
    options = None
    if index is not None:  # the GPU the caller chose; onnxruntime's default is device 0
        options = [{"device_id": str(index)} if p == "CUDAExecutionProvider" else {} for p in names]
    try:
        return ort.InferenceSession(str(model), providers=names, provider_options=options)
    except Exception as err:  # onnxruntime raises its own error types for bad files
        raise ValueError(
            f"models: could not load {model} as an ONNX model ({one_line(err)})"
        ) from None


def input_size(sessions: dict) -> int:
    """The square input size all models share (their ONNX input is (batch, 3, size, size));
    sessions: {label: session}. ValueError naming a model with another input layout, or the
    sizes when they differ."""
    sizes = {}
    for label, sess in sessions.items():
        shape = sess.get_inputs()[0].shape
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


def on_cuda(sess: Any) -> bool:
    """True when the session runs on its CUDA provider."""
    return sess.get_providers()[0] == "CUDAExecutionProvider"


def cuda_device_id(sess: Any) -> int:
    """The GPU a CUDA session runs on: its CUDA provider's device_id (0 unless chosen)."""
    try:
        options = sess.get_provider_options().get("CUDAExecutionProvider", {})
        return int(options.get("device_id", 0))
    except (AttributeError, TypeError, ValueError):
        return 0


def torch_device(sess: Any) -> str:
    """The torch device of the session's outputs: "cuda:<its device_id>" or "cpu"."""
    return f"cuda:{cuda_device_id(sess)}" if on_cuda(sess) else "cpu"
