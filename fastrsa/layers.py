"""The layers of a model and their output shapes, from one forward pass; and layer names or glob
patterns resolved against them.

    fastrsa.layers(model, torch.zeros(1, 3, 224, 224))   # [("conv1", (1, 64, 112, 112)), ...]
    fastrsa.layers("depth.onnx")                          # [("block4", (1, 64, 4, 4)), ...]
    select_layers(names, ["blocks.*", "head"])            # names and patterns, in model order

torch and onnxruntime are optional; each is imported on first use.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MissingPackage
from .onnx import input_size as onnx_input_size
from .onnx import session as onnx_session

__all__ = ["first_tensor", "has_glob", "layers", "select_layers"]


def has_glob(names: list[str] | str) -> bool:
    """Whether `names` (a name or names) hold a glob pattern (a *, ? or [)."""
    names = [names] if isinstance(names, str) else names
    return any(c in name for name in names for c in "*?[")


def select_layers(
    available: list[str], requested: list[str] | str, name: str = "layers"
) -> list[str]:
    """The layers of `available` (the model's, in model order) that `requested` names: exact
    names, or fnmatch glob patterns ("blocks.*", "layer[1-4]"); a name that is a layer is taken
    as it is, even with glob characters in it. Each layer once, in model order. A name or
    pattern that matches nothing is refused, before any work, with a one-line ValueError naming
    it and the closest layer names (`name`: the argument, in the message)."""
    if isinstance(requested, str):
        requested = [requested]
    requested = list(requested)
    if not requested or not all(isinstance(x, str) for x in requested):
        raise ValueError(f"{name} must be a non-empty list of names; got {requested!r}")
    available = list(available)
    chosen: set[str] = set()
    for item in requested:
        if item in available:
            matched = [item]
        elif has_glob(item):
            matched = [
                x for x in available if fnmatch.fnmatchcase(x, item)
            ]  # any OS: case-sensitive
        else:
            matched = []
        if not matched:
            raise ValueError(
                f"{name}: {item!r} matches no layer of the model; {_closest(item, available)}"
            )
        chosen.update(matched)
    return [x for x in available if x in chosen]


def _closest(item: str, available: list[str]) -> str:
    close = difflib.get_close_matches(item, available, n=5, cutoff=0.5)
    if not close:  # a pattern: compare its literal part
        literal = "".join(c for c in item if c not in "*?[]")
        close = difflib.get_close_matches(literal, available, n=5, cutoff=0.5) if literal else []
    if close:
        return "closest: " + ", ".join(repr(x) for x in close)
    shown = ", ".join(repr(x) for x in available[:8])
    more = ", ..." if len(available) > 8 else ""
    return f"it has {shown}{more}" if available else "it has no layers"


def first_tensor(output: Any) -> Any:
    """The tensor a layer's output stands for (hidden state first): the output itself when it
    is a tensor; else the first tensor of a tuple or list, or of a dict's values (a Hugging Face
    ModelOutput), searched depth first; None when it holds none."""
    if hasattr(output, "shape") and hasattr(output, "dtype"):
        return output
    if isinstance(output, dict):
        items = list(output.values())
    elif isinstance(output, (tuple, list)):
        items = list(output)
    else:
        return None
    for item in items:
        found = first_tensor(item)
        if found is not None:
            return found
    return None


def layers(model: Any, example: Any = None) -> list[tuple[str, tuple[int, ...]]]:
    """Every layer of `model` with its output shape for one input, from one forward pass:
    [(name, shape)], in model order.

    - a torch.nn.Module: its submodules, named as `named_modules()` names them (the root
      left out), caught with forward hooks. `example` is required: the input, a tensor (e.g.
      `torch.zeros(1, 3, 224, 224)`) or a shape (a tuple of ints: zeros of that shape, float32,
      on the module's device). A layer whose output is a tuple, list or dict (a Hugging Face
      ModelOutput) has the shape of its first tensor (the hidden state first); submodules that
      do not run in the pass, or give no tensor, are left out; one that runs several times has
      its first output's shape. Run in eval mode under torch.no_grad(); the module's training
      mode is restored afterwards.
    - an ONNX file (a path ending in .onnx): its graph outputs (the layers fastrsa's ONNX
      sources read), with shapes from one onnxruntime run on CPU on zeros of the model's
      (1, 3, S, S) input; `example` (an array) replaces the zeros.
    """
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.suffix.lower() != ".onnx":
            raise ValueError(f"model: {path} is not an .onnx file (or a torch.nn.Module)")
        return _onnx_layers(path, example)
    torch = _torch(model)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module or an .onnx path; got {type(model).__name__}"
        )
    return _module_layers(torch, model, example)


def _torch(model: Any) -> Any:
    try:
        import torch
    except ImportError:
        raise MissingPackage(
            f"model: a {type(model).__name__} is not an .onnx path, and torch modules need "
            "PyTorch: `pip install torch`"
        ) from None
    return torch


def _module_layers(torch: Any, module: Any, example: Any) -> list[tuple[str, tuple[int, ...]]]:
    param = next(module.parameters(), None)
    where = param.device if param is not None else torch.device("cpu")
    if example is None:
        raise ValueError(
            "example is required for a torch module: one input, e.g. torch.zeros(1, 3, 224, 224) "
            "or its shape (1, 3, 224, 224)"
        )
    if isinstance(example, tuple) and all(isinstance(x, int) for x in example):
        example = torch.zeros(example, dtype=torch.float32, device=where)
    if not isinstance(example, torch.Tensor):
        raise TypeError(f"example must be a tensor or a shape; got {type(example).__name__}")
    shapes: dict[str, tuple[int, ...]] = {}

    def hook_for(name: str):
        def hook(_mod, _inputs, output):
            t = first_tensor(output)
            if t is not None and name not in shapes:
                shapes[name] = tuple(int(x) for x in t.shape)

        return hook

    named = [(name, sub) for name, sub in module.named_modules() if name]
    handles = [sub.register_forward_hook(hook_for(name)) for name, sub in named]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(example)
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    return [(name, shapes[name]) for name, _ in named if name in shapes]


def _onnx_layers(path: Path, example: Any) -> list[tuple[str, tuple[int, ...]]]:
    sess = onnx_session(path, "cpu")
    if example is None:
        size = onnx_input_size({path.name: sess})
        example = np.zeros((1, 3, size, size), dtype=np.float32)
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, {sess.get_inputs()[0].name: np.asarray(example)})
    return [(name, tuple(int(x) for x in out.shape)) for name, out in zip(names, outs, strict=True)]
