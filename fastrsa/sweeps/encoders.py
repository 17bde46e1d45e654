"""Encoder sources: an ONNX file or a torch.nn.Module, run once over the image batches for all
requested layers. Each layer's rows go into its own FeatureBuffer (in memory or spilled to a
file); its RDM comes out when the pass is done."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_choice, check_count
from .._memory import budget_for
from ..errors import MissingPackage
from ..layer_names import has_glob, select_layers
from ..onnx import input_size as onnx_input_size
from ..onnx import session as onnx_session
from ..zoo.capture import capture
from ..zoo.pooling import POOLINGS, pool, resolve_pool
from .feature_buffer import FeatureBuffer
from .image_set import ImageSet
from .source_base import Keep, Source, check_layers, hash_file

__all__ = ["Encoder", "ModuleSource", "ONNXSource"]


class Encoder(Source):
    """A model run over the stimuli: its layers' features go into FeatureBuffers (`stream`)."""

    needs_images = True

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

    def stream(
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
        budget = budget_for(memory)
        buffers: dict[str, FeatureBuffer] = {}
        try:
            for start, outs in batches:
                if not buffers:
                    spill = self._split({x: n * outs[x][0].nbytes for x in layers}, budget)
                    for layer in layers:
                        with self._named():
                            buffers[layer] = FeatureBuffer(
                                n,
                                outs[layer].shape[1],
                                outs[layer].dtype,
                                budget // 2,
                                spill_dir,
                                name=f"features of layer {layer!r}",
                                spill=spill[layer],
                            )
                for layer in layers:
                    rows = outs[layer]
                    if not np.isfinite(rows).all():
                        i = start + int(np.argmax(~np.isfinite(rows).all(axis=1)))
                        raise self._fail(f"gives NaN or Inf at layer {layer!r} for image {i}")
                    if keep is not None:
                        keep(layer, start, rows)
                    with self._named():
                        buffers[layer].add(start, rows)
            for layer in layers:
                with self._named():
                    out = buffers[layer].rdm(metric, backend, memory=budget // 2)
                buffers.pop(layer).close()
                yield layer, out
        finally:
            for buf in buffers.values():
                buf.close()


class ONNXSource(Encoder):
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
        return hash_file(self.path)

    def layer_names(self, layers: list[str] | None) -> list[str]:
        """The outputs named by `layers` (default "compressed"); glob patterns ("block*") are
        expanded against the model's outputs, in their order."""
        layers = check_layers(layers if layers else ["compressed"])
        if not has_glob(layers):
            return layers
        with self._named():
            return select_layers(self._outputs(), layers)

    def _outputs(self, session: Any = None) -> list[str]:
        sess = session if session is not None else self._session()
        return [o.name for o in sess.get_outputs()]

    def _check_file(self) -> None:
        if not self.path.exists():
            raise self._fail("no such file", FileNotFoundError)
        if not self.path.is_file():
            raise self._fail("is not a file (expected an .onnx model)")

    def _session(self, device: str = "cpu"):
        self._check_file()
        with self._named():
            return onnx_session(self.path, device)

    def input_size(self, session: Any = None) -> int:
        """The image size S of the model's (batch, 3, S, S) input."""
        sess = session if session is not None else self._session()
        with self._named():
            return onnx_input_size({self.label: sess})

    def check(self, layers: list[str], n: int | None) -> None:
        session = self._session()
        with self._named():  # a name of no output: refused with the closest names
            select_layers(self._outputs(session), layers)
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
        layers = check_layers(layers)
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

        yield from self.stream(
            layers, batches(), images.n, metric, backend, memory, spill_dir, keep
        )


class ModuleSource(Encoder):
    """A torch.nn.Module; its layers are the names of submodules (`dict(module.named_modules())`)
    whose outputs are caught with forward hooks (a tuple or ModelOutput: its first tensor, the
    hidden state first), pooled by `pool` ("auto" and "flatten": flattened per image; "gap",
    "cls", "mean", "last": see fastrsa.zoo.pool). Run in eval mode under torch.no_grad() on the
    module's own device (its first parameter's), on images prepared the Taskonomy way (resized
    to `input_size` x `input_size`, in [-1, 1]; for a model's own preprocessing give a
    fastrsa.zoo.Model); the module's training mode is restored afterwards. Features are
    float32, or float64 where the layer gives float64."""

    kind = "module"

    def __init__(self, module: Any, label: str, input_size: int = 256, pool: str = "auto"):
        torch = _torch()
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module must be a torch.nn.Module; got {type(module).__name__}")
        if label is None:
            raise ValueError(
                "a torch.nn.Module needs a label: ModuleSource(module, label) or {label: module}"
            )
        self.module = module
        self._input_size = check_count(input_size, "input_size")
        self.pool = check_choice(pool, POOLINGS, "pool")
        super().__init__(label)

    def _class(self) -> str:
        cls = type(self.module)
        return f"{cls.__module__}.{cls.__qualname__}"

    def _where(self) -> str:
        return f"module {type(self.module).__name__}"

    def describe(self) -> dict:
        out = {"kind": self.kind, "class": self._class(), "input_size": self._input_size}
        return out if self.pool == "auto" else {**out, "pool": self.pool}

    def fingerprint(self) -> str:
        """sha256 over the class name and every state_dict entry's name, shape, dtype, bytes."""
        uint8 = _torch().uint8
        h = hashlib.sha256(f"{self._class()}\n".encode())
        for key, value in self.module.state_dict().items():
            h.update(f"{key} {tuple(value.shape)} {value.dtype}\n".encode())
            h.update(value.detach().cpu().contiguous().reshape(-1).view(uint8).numpy().tobytes())
        if self.pool != "auto":  # "auto" (flatten) keeps the keys of stores made before pooling
            h.update(f"pool={self.pool}".encode())
        return h.hexdigest()

    def layer_names(self, layers: list[str] | None) -> list[str]:
        if not layers:
            raise ValueError(
                f"{self.who()}: layers are required for a torch module (names of its "
                "submodules, e.g. 'layer4', or glob patterns, e.g. 'blocks.*')"
            )
        layers = check_layers(layers)
        if not has_glob(layers):
            return layers
        with self._named():
            return select_layers(self._submodules(), layers)

    def _submodules(self) -> list[str]:
        return [name for name, _ in self.module.named_modules() if name]

    def input_size(self, session: Any = None) -> int:
        """The image size the module is given (`input_size`); `session` is not used."""
        return self._input_size

    def check(self, layers: list[str], n: int | None) -> None:
        with self._named():  # a name of no submodule: refused with the closest names
            select_layers(self._submodules(), layers)

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
        layers = check_layers(layers)
        if images is None:
            raise self._fail("needs images")
        self.check(layers, images.n)
        module = self.module
        param = next(module.parameters(), None)
        where = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        pools: dict[str, str] = {}

        def batches():
            for start, pixels in images.batches(self._input_size, batch_size):
                x = torch.from_numpy(pixels).to(device=where, dtype=dtype)
                with self._named():
                    outs = capture(module, lambda _hidden, x=x: module(x), layers, self.who())
                rows = {}
                for layer in layers:
                    t = outs[layer]
                    if t.ndim == 0 or t.shape[0] != len(pixels):
                        raise self._fail(
                            f"layer {layer!r} gave shape {tuple(t.shape)} for a batch of "
                            f"{len(pixels)} images (expected the batch first)"
                        )
                    with self._named():
                        if layer not in pools:
                            pools[layer] = resolve_pool(self.pool, t.ndim, "image", layer=layer)
                        t = pool(t, pools[layer], layer=layer)
                    if t.dtype not in (torch.float32, torch.float64):
                        t = t.float()
                    rows[layer] = t.cpu().numpy()
                yield start, rows

        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                yield from self.stream(
                    layers, batches(), images.n, metric, backend, memory, spill_dir, keep
                )
        finally:
            module.train(was_training)


def _torch():
    try:
        import torch
    except ImportError:
        raise MissingPackage("torch modules as sources need PyTorch: `pip install torch`") from None
    return torch
