"""The layers of a model and their output shapes, from one forward pass; and layer names or glob
patterns resolved against them.

    fastrsa.layers(model, torch.zeros(1, 3, 224, 224))   # [("conv1", (1, 64, 112, 112)), ...]
    fastrsa.layers("depth.onnx")                          # [("block4", (1, 64, 4, 4)), ...]
    select_layers(names, ["blocks.*", "head"])            # names and patterns, in model order

torch and onnxruntime are optional; each is imported on first use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MissingPackage
from .layer_names import first_tensor, has_glob, select_layers
from .onnx import input_size as onnx_input_size
from .onnx import session as onnx_session
from .zoo.capture import HIDDEN_STATES
from .zoo.model import Model, brings_preprocessing
from .zoo.spec import is_spec

__all__ = ["first_tensor", "has_glob", "layers", "select_layers"]


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
    - a model by name (a spec such as "timm:resnet18@random" or "hf:DIR", a fastrsa.zoo.Model,
      or a timm / Hugging Face model object): its submodules as above, plus "hidden_states.N"
      for a Hugging Face model, for one input through the model's own preprocessing:
      `example` is a list of PIL images or of strings (default: one gray 256 x 256 image, or
      one sentence for a text model). Presets ("@blocks"): fastrsa.zoo.Model.load().presets.
    """
    if isinstance(model, str) and is_spec(model):
        model = Model(model)
    elif not isinstance(model, Model) and brings_preprocessing(model):
        model = Model.from_object(model)
    if isinstance(model, Model):
        return _model_layers(model, example)
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


def _model_layers(model: Model, example: Any) -> list[tuple[str, tuple[int, ...]]]:
    import torch

    loaded = model.load()
    if example is None:
        if loaded.modality == "text":
            example = ["A sentence to list the layers with."]
        else:
            from PIL import Image

            example = [Image.new("RGB", (256, 256), (128, 128, 128))]
    inputs = loaded.prepare(example)
    hidden = any(name.startswith(HIDDEN_STATES) for name in loaded.layer_names)
    shapes = _shapes(torch, loaded.module, lambda: loaded.forward(inputs, hidden))
    return [(name, shapes[name]) for name in loaded.layer_names if name in shapes]


def _shapes(torch: Any, module: Any, run: Any) -> dict[str, tuple[int, ...]]:
    """{submodule name: its first output's shape} (and "hidden_states.N" from the output) of
    one forward pass `run()`, in eval mode under torch.no_grad()."""
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
            output = run()
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    for i, state in enumerate(getattr(output, "hidden_states", None) or ()):
        shapes[f"{HIDDEN_STATES}{i}"] = tuple(int(x) for x in state.shape)
    return shapes


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
    shapes = _shapes(torch, module, lambda: module(example))
    named = [name for name, _ in module.named_modules() if name]
    return [(name, shapes[name]) for name in named if name in shapes]


def _onnx_layers(path: Path, example: Any) -> list[tuple[str, tuple[int, ...]]]:
    sess = onnx_session(path, "cpu")
    if example is None:
        size = onnx_input_size({path.name: sess})
        example = np.zeros((1, 3, size, size), dtype=np.float32)
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, {sess.get_inputs()[0].name: np.asarray(example)})
    return [(name, tuple(int(x) for x in out.shape)) for name, out in zip(names, outs, strict=True)]
