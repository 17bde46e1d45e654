"""Models by name as sweep sources: timm, torchvision and Hugging Face models (fastrsa.zoo), each
with its own preprocessing, any of its layers, pooled as asked, on images or texts.

    ModelSource(Model("timm:resnet18"), pool="gap")        # label "resnet18"
    ModelSource(Model("hf:sentence-transformers/all-MiniLM-L6-v2"), pool="masked-mean")
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._checks import check_choice
from ..errors import MissingPackage
from ..layer_names import has_glob, select_layers
from ..zoo.capture import capture
from ..zoo.model import Model
from ..zoo.pooling import POOLINGS, pool, resolve_pool
from .encoders import Encoder
from .image_set import ImageSet
from .source_base import Keep, check_layers
from .text_set import TextSet

__all__ = ["ModelSource", "channels_last", "model_device"]


def model_device(device: str) -> Any:
    """The torch device of `device` ("auto": the first CUDA GPU when torch sees one, else the
    CPU; "cpu"; "cuda"; "cuda:N")."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class ModelSource(Encoder):
    """A fastrsa.zoo.Model (a model by name, or a timm / Hugging Face model object): its own
    preprocessing, one forward pass per batch for all layers (submodule names, glob patterns,
    presets such as "@blocks", or "hidden_states.N"), each layer's output pooled (`pool`, one of
    fastrsa.zoo.POOLINGS; "auto": masked-mean for a text model's token sequences, else
    flatten). Features are float32. Runs in eval mode under torch.no_grad() on `device`.
    Holds, while it runs, the model, one batch of inputs and the requested layers' outputs of
    that batch; between runs, only its description (the checks load the model once and
    release it)."""

    kind = "model"

    def __init__(self, model: Model, label: str | None = None, pool: str = "auto"):
        if not isinstance(model, Model):
            raise TypeError(f"model must be a fastrsa.zoo.Model; got {type(model).__name__}")
        check_choice(pool, POOLINGS, "pool")
        self.model = model
        self.pool = pool
        self._info: dict[str, Any] | None = None
        super().__init__(label)

    def _default_label(self) -> str:
        label = self.model.default_label
        if not label:
            raise ValueError(f"{self.model.spec}: give this model a label")
        return label

    def _where(self) -> str:
        return self.model.spec

    @property
    def modality(self) -> str:
        """ "image" or "text" (loads the model)."""
        with self._named():
            return self.model.load().modality

    def describe(self) -> dict:
        with self._named():
            return {**self.model.describe(), "kind": self.kind, "pool": self.pool}

    def fingerprint(self) -> str:
        """sha256 over the model's fingerprint (weights and preprocessing) and the pooling."""
        with self._named():
            base = self.model.fingerprint()
        return hashlib.sha256(f"{base} pool={self.pool}".encode()).hexdigest()

    def _loaded(self) -> Any:
        with self._named():
            return self.model.load()

    def layer_names(self, layers: list[str] | None) -> list[str]:
        """The layers named by `layers` (default "@blocks"): names, glob patterns and presets
        ("@blocks", "@hidden_states"), in model order."""
        loaded = self._loaded()
        requested = check_layers(layers if layers else ["@blocks"])
        out: list[str] = []
        for item in requested:
            if item.startswith("@"):
                if item not in loaded.presets or not loaded.presets[item]:
                    known = ", ".join(sorted(loaded.presets)) or "none"
                    raise self._fail(f"layers: no preset {item!r} for this model (it has {known})")
                names = loaded.presets[item]
            elif has_glob(item) or item not in loaded.layer_names:
                with self._named():
                    names = select_layers(loaded.layer_names, [item])
            else:
                names = [item]
            out.extend(x for x in names if x not in out)
        return out

    def check(self, layers: list[str], n: int | None) -> None:
        loaded = self._loaded()
        with self._named():  # a name of no layer: refused with the closest names
            select_layers(loaded.layer_names, layers)

    def check_stimuli(self, stimuli: ImageSet | TextSet, layers: list[str] | None = None) -> None:
        """Before any work: ValueError when the stimuli do not fit the model (texts for a
        vision model, images for a text model); with `layers`, one forward pass on the first
        item checks that every layer runs once and that the pooling fits it (e.g. cls on a
        conv map). Loads the model and releases it."""
        modality = self.modality
        given = "text" if isinstance(stimuli, TextSet) else "image"
        if given != modality:
            takes = "texts" if modality == "text" else "images"
            gave = "texts" if given == "text" else "images"
            raise self._fail(f"takes {takes}; the sweep gives {gave}")
        if layers is None:
            return
        torch = _torch()
        first = stimuli.batches(1) if isinstance(stimuli, TextSet) else stimuli.raw_batches(1)
        _, batch = next(iter(first))
        with self._named():
            loaded = self.model.load()
        try:
            with torch.no_grad():
                self._rows(loaded, batch, check_layers(layers), torch.device("cpu"), {})
        finally:
            self.model.release()

    def _rows(
        self, loaded: Any, batch: Any, layers: list[str], where: Any, pools: dict[str, str]
    ) -> dict[str, np.ndarray]:
        """{layer: (b, d) float32 rows} of one batch of items: prepared, one forward pass on
        `where`, each layer pooled (`pools`: the layers' resolved pooling, filled here)."""
        with self._named():
            inputs = loaded.prepare(batch)
        inputs = {k: v.to(where) for k, v in inputs.items()}
        with self._named():
            outs = capture(
                loaded.module, lambda hidden: loaded.forward(inputs, hidden), layers, self.who()
            )
        text = loaded.modality == "text"
        mask = inputs.get("attention_mask") if text else None
        rows = {}
        for layer in layers:
            t = outs[layer]
            if t.ndim == 0 or t.shape[0] != len(batch):
                raise self._fail(
                    f"layer {layer!r} gave shape {tuple(t.shape)} for a batch of {len(batch)} "
                    "(expected the batch first)"
                )
            with self._named():
                if layer not in pools:
                    pools[layer] = resolve_pool(self.pool, t.ndim, loaded.modality, layer=layer)
                    if pools[layer] == "cls" and not text and loaded.prefix_tokens == 0:
                        raise ValueError(
                            f"layer {layer!r}: pool 'cls': the model has no class token "
                            "(its first token is a patch); use mean or flatten"
                        )
                pooled = pool(
                    t,
                    pools[layer],
                    mask=mask,
                    prefix_tokens=loaded.prefix_tokens,
                    layer=layer,
                    channels_last=channels_last(loaded.module),
                )
            rows[layer] = pooled.float().cpu().numpy()
        return rows

    def rdms(
        self,
        layers: list[str],
        images: ImageSet | TextSet | None,
        metric: str,
        backend: str,
        memory: int | str | None,
        spill_dir: str | os.PathLike,
        batch_size: int = 64,
        device: str = "auto",
        keep: Keep | None = None,
    ) -> Iterator[tuple[str, np.ndarray]]:
        """One forward pass per batch for all `layers`; see Source.rdms. A model object the
        caller gave (Model.from_object) is returned to its device and mode afterwards."""
        torch = _torch()
        layers = check_layers(layers)
        if images is None:
            raise self._fail("needs images or texts")
        self.check(layers, images.n)
        self.check_stimuli(images)
        with self._named():
            loaded = self.model.load()
        where = model_device(device)
        param = next(loaded.module.parameters(), None)
        was = (param.device if param is not None else None, loaded.module.training)
        loaded.module.to(where).eval()
        pools: dict[str, str] = {}

        def batches():
            items = (
                images.batches(batch_size)
                if isinstance(images, TextSet)
                else images.raw_batches(batch_size)
            )
            for start, batch in items:
                yield start, self._rows(loaded, batch, layers, where, pools)

        try:
            with torch.no_grad():
                yield from self.stream(
                    layers, batches(), images.n, metric, backend, memory, spill_dir, keep
                )
        finally:
            if was[0] is not None:
                loaded.module.to(was[0])
            loaded.module.train(was[1])
            self.model.release()


def channels_last(module: Any) -> bool:
    """Whether a model's 4-d layer outputs are (b, h, w, c): timm models that say so
    (output_fmt "NHWC": Swin, ...) and torchvision's Swin."""
    if getattr(module, "output_fmt", None) in ("NHWC", "nhwc"):
        return True
    return type(module).__name__ in ("SwinTransformer",)


def _torch():
    try:
        import torch
    except ImportError:
        raise MissingPackage("models need PyTorch: `pip install torch`") from None
    return torch
