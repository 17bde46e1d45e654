"""Encoders whose representations fastrsa compares, and their export to ONNX.

- `TaskonomyEncoder`: the Taskonomy ResNet-50 encoder in the PyTorch form that visualpriors 0.3.5
  distributes, with the same parameter names, so its `<task>_encoder*.pth` checkpoints load as
  they are. Input (B, 3, 256, 256) scaled to [-1, 1] -> (B, 8, 16, 16).
- `SmallEncoder`: the paper's Table S1 encoder (3x3 convs, 16/32/64/64/8 channels).
- `load_taskonomy(path)`, `export_onnx(model, path, layers)`.

Both encoders name their intermediate outputs alike: block1..block4 and "compressed" (the paper's
Figure 5 compares these layers).
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "Bottleneck",
    "export_onnx",
    "LAYERS",
    "load_taskonomy",
    "SmallEncoder",
    "TaskonomyEncoder",
]

LAYERS = ("block1", "block2", "block3", "block4", "compressed")


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 -> 3x3 (carries the stride) -> 1x1 (x4 channels), plus shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def _taskonomy_layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """Taskonomy's layer: the first block widens (1x1 conv + BN shortcut), the last carries the
    stride (with a 1x1 stride-s max-pool as its shortcut)."""
    widen = nn.Sequential(
        nn.Conv2d(inplanes, planes * 4, kernel_size=1, bias=False), nn.BatchNorm2d(planes * 4)
    )
    layers = [Bottleneck(inplanes, planes, downsample=widen)]
    layers += [Bottleneck(planes * 4, planes) for _ in range(blocks - 2)]
    pool = nn.Sequential(nn.MaxPool2d(kernel_size=1, stride=stride)) if stride != 1 else None
    layers.append(Bottleneck(planes * 4, planes, stride=stride, downsample=pool))
    return nn.Sequential(*layers)


class TaskonomyEncoder(nn.Module):
    """Taskonomy's ResNet-50 encoder (visualpriors 0.3.5 parameter names).

    (B, 3, 256, 256) in [-1, 1] -> (B, 8, 16, 16); `forward(x, layers)` returns a dict of the
    requested LAYERS instead: block1 (256, 32, 32), block2 (512, 16, 16), block3 (1024, 16, 16),
    block4 (2048, 16, 16), compressed (8, 16, 16). `normalize_outputs` adds an affine-free
    GroupNorm(8, 8) after the compression (off by default, as in Taskonomy's own networks).
    """

    def __init__(self, normalize_outputs: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
        self.layer1 = _taskonomy_layer(64, 64, 3, stride=2)
        self.layer2 = _taskonomy_layer(256, 128, 4, stride=2)
        self.layer3 = _taskonomy_layer(512, 256, 6, stride=1)
        self.layer4 = _taskonomy_layer(1024, 512, 3, stride=1)
        self.compress1 = nn.Conv2d(2048, 8, kernel_size=3, stride=1, padding=1, bias=False)
        self.compress_bn = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU(inplace=True)
        self.groupnorm = nn.GroupNorm(8, 8, affine=False)
        self.normalize_outputs = normalize_outputs
        self.eval()

    def forward(self, x: torch.Tensor, layers=None):
        x = F.pad(x, (3, 3, 3, 3))  # zero-pad 3, then a 7x7 stride-2 conv without padding
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = {}
        blocks = (self.layer1, self.layer2, self.layer3, self.layer4)
        for name, layer in zip(LAYERS[:4], blocks, strict=True):
            x = layer(x)
            out[name] = x
        x = self.relu1(self.compress_bn(self.compress1(x)))
        if self.normalize_outputs:
            x = self.groupnorm(x)
        out["compressed"] = x
        return x if layers is None else {name: out[name] for name in layers}


class SmallEncoder(nn.Module):
    """The paper's Table S1 encoder: 3x3 convs of 16 (stride 2), 32/2, 64/2, 64/2, 8/1 channels,
    each followed by BatchNorm and ReLU. (B, 3, H, W) -> (B, 8, H/16, W/16)."""

    def __init__(self):
        super().__init__()
        widths = [(3, 16, 2), (16, 32, 2), (32, 64, 2), (64, 64, 2), (64, 8, 1)]
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=3, stride=s, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )
            for cin, cout, s in widths
        )
        self.eval()

    def forward(self, x: torch.Tensor, layers=None):
        out = {}
        for name, block in zip(LAYERS, self.blocks, strict=True):
            x = block(x)
            out[name] = x
        return x if layers is None else {name: out[name] for name in layers}


def load_taskonomy(path: str | os.PathLike, normalize_outputs: bool = False) -> TaskonomyEncoder:
    """A TaskonomyEncoder with the weights of a Taskonomy checkpoint (`<task>_encoder*.pth`).

    Read with torch.load(weights_only=True) from a local file; the state dict may sit under
    "state_dict". Missing or unexpected keys and wrong shapes raise a ValueError naming them.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no such file: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"checkpoint: could not read {path} ({err})") from None
    except Exception as err:  # pickled objects other than tensors are refused by weights_only
        raise ValueError(f"checkpoint: {path} is not a plain state dict ({err})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint: {path} holds a {type(state).__name__}, not a state dict")
    model = TaskonomyEncoder(normalize_outputs=normalize_outputs)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong),
        ):
            if items:
                shown = ", ".join(items[:5]) + (
                    f" and {len(items) - 5} more" if len(items) > 5 else ""
                )
                parts.append(f"{label} keys: {shown}")
        raise ValueError(f"checkpoint {path} does not fit TaskonomyEncoder: " + "; ".join(parts))
    model.load_state_dict(state)
    return model.eval()


class _LayerOutputs(nn.Module):
    """Wraps an encoder so that it returns the requested layers as a tuple (for ONNX export)."""

    def __init__(self, model: nn.Module, layers: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.layers = layers

    def forward(self, images: torch.Tensor):
        out = self.model(images, layers=self.layers)
        return tuple(out[name] for name in self.layers)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    layers: tuple[str, ...] | list[str] = ("compressed",),
    image_size: int = 256,
    opset: int = 17,
    rtol: float = 1e-4,
) -> Path:
    """Export `model` to ONNX with one named output per layer and a dynamic batch axis, then check
    it against torch on random input (relative error <= rtol; needs onnxruntime). Atomic write.

    Returns the path. Input name: "images", (batch, 3, image_size, image_size) float32.
    """
    layers = tuple(layers)
    unknown = [name for name in layers if name not in LAYERS]
    if unknown or not layers:
        raise ValueError(f"layers must be a non-empty subset of {LAYERS}; got {list(layers)}")
    if opset < 17:
        raise ValueError(f"opset must be 17 or newer; got {opset}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    # The wrapper must be in eval mode too: the exporter restores the wrapper's mode afterwards,
    # and a training-mode wrapper would switch every BatchNorm inside to batch statistics.
    wrapper = _LayerOutputs(model, layers).eval()
    # random inputs from a generator of our own: the caller's global torch RNG is left as it was
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(2, 3, image_size, image_size, generator=generator) * 2 - 1
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        _export(wrapper, example, tmp, layers, opset)
        _check_against_torch(tmp, wrapper, image_size, rtol, generator)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        model.train(was_training)
    os.replace(tmp, path)
    return path


def _export(wrapper: nn.Module, example: torch.Tensor, tmp: Path, layers, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter
        warnings.simplefilter("ignore", UserWarning)  # its constant-folding notes
        torch.onnx.export(
            wrapper,
            (example,),
            str(tmp),
            input_names=["images"],
            output_names=list(layers),
            dynamic_axes={"images": {0: "batch"}, **{name: {0: "batch"} for name in layers}},
            opset_version=opset,
            dynamo=False,
        )


def _check_against_torch(
    path: Path, wrapper: _LayerOutputs, image_size: int, rtol: float, generator: torch.Generator
) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        warnings.warn(
            "onnxruntime is not installed: the exported model was not checked", stacklevel=3
        )
        return
    images = (
        torch.rand(3, 3, image_size, image_size, generator=generator) * 2 - 1
    )  # batch 3: the batch axis is dynamic
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        want = [t.numpy() for t in wrapper(images)]
    for name, g, w in zip(wrapper.layers, got, want, strict=True):
        err = float(np.linalg.norm(g - w)) / max(float(np.linalg.norm(w)), 1e-12)
        if not err <= rtol:
            raise RuntimeError(f"ONNX output {name!r} differs from torch: relative error {err:.2e}")
