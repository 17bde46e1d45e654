"""The sources of a sweep: what gives one RDM per (source, layer).

    ONNXSource("depth.onnx")                   # an ONNX encoder (as fastrsa.features.extract)
    ModuleSource(model, "run3/epoch10")        # a torch.nn.Module, layers = submodule names
    ModelSource(Model("timm:resnet18"))        # a model by name, with its own preprocessing
    FeatureSource("feats.npz", key="taskA")    # features (n, d): .npy, .npz member, zarr array
    RDMSource("rdms.npz", key="taskA")         # a precomputed RDM

`resolve_sources` turns what the user gave (paths, modules, Source objects, or a {label: ...}
dict) into a list of sources with unique labels. Every source is small and picklable (a path and
a label, or the module itself), so that executors can send it to another process; sessions and
files are opened where the work runs. Every `check` runs before any work and names the source's
label and path in its errors.

Where they live: the Source contract and shared helpers in .source_base, the encoders (ONNX,
torch modules) in .encoders, the feature and RDM files in .file_sources; the buffer that turns
an encoder's features into an RDM in .feature_buffer (re-exported here).
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Any

from ..features import unique_label
from ..zoo.model import Model, brings_preprocessing
from ..zoo.spec import is_spec
from .encoders import ModuleSource, ONNXSource
from .file_sources import FEATURE_SUFFIXES, FeatureSource, RDMSource
from .model_source import ModelSource
from .source_base import Keep, Source

__all__ = [
    "FEATURE_SUFFIXES",
    "FeatureSource",
    "Keep",
    "ModelSource",
    "ModuleSource",
    "ONNXSource",
    "RDMSource",
    "Source",
    "resolve_sources",
]


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
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _one(obj: Any, label: str | None, pool: str) -> Source:
    if isinstance(obj, Source):
        if label is None:
            return obj
        out = copy.copy(obj)
        out.label, out.auto_label = label, False
        return out
    if isinstance(obj, Model):
        return ModelSource(obj, label, pool)
    if isinstance(obj, str) and is_spec(obj):
        return ModelSource(Model(obj), label, pool)
    if isinstance(obj, (str, os.PathLike)):
        return _from_path(obj, label)
    if _is_module(obj) and brings_preprocessing(obj):
        return ModelSource(Model.from_object(obj), label, pool)
    if _is_module(obj):
        if label is None:
            raise ValueError(
                f"sources: a torch module ({type(obj).__name__}) needs a label: pass "
                "{label: module} or ModuleSource(module, label)"
            )
        return ModuleSource(obj, label, pool=pool)
    raise TypeError(
        "sources must be paths, torch modules or Source objects; got "
        f"{type(obj).__name__}" + (f" for {label!r}" if label is not None else "")
    )


def _lengthen_labels(sources: list[Source]) -> None:
    """Automatic labels (file stems) that clash between different files get as many trailing
    folders as tell them apart (as fastrsa.features labels models); the same file given twice
    is an error."""
    auto = [(s, p) for s in sources if s.auto_label and (p := getattr(s, "path", None)) is not None]
    seen: dict[tuple[str, str | None], Source] = {}
    for s, path in auto:
        ident = (os.path.realpath(path), getattr(s, "key", None))
        if ident in seen:
            raise ValueError(
                f"sources: {seen[ident].who()} and {s.who()} are the same file, given twice"
            )
        seen[ident] = s
    stems: dict[str, list[tuple[Source, Path]]] = {}
    for s, path in auto:
        stems.setdefault(s.label, []).append((s, path))
    for clashing in stems.values():
        paths = list({path for _, path in clashing})
        if len(paths) < 2:
            continue
        for s, path in clashing:
            label = unique_label(path, paths)
            key = getattr(s, "key", None)
            if key is not None and key == s.label:  # an array of a file: label is its key
                label = f"{label}/{key}"
            s.label = label


def resolve_sources(
    sources: Any, layers: list[str] | None = None, pool: str = "auto"
) -> list[Source]:
    """The sweep's sources, one array or model each, with unique labels.

    sources: a path, model spec, module or Source, a list of them, or a {label: ...} dict.
    Model specs ("timm:NAME", "torchvision:NAME[@WEIGHTS]", "hf:ORG/NAME", "hf:DIR",
    "taskonomy:PATH"; fastrsa.zoo.parse_spec), fastrsa.zoo.Model objects, and timm or Hugging
    Face model objects -> ModelSource (with the model's own preprocessing, pooled by `pool`);
    other torch modules -> ModuleSource. Paths: *.onnx -> ONNXSource; *.npy, *.npz, *.zarr ->
    FeatureSource; an .npz or a zarr group gives one source per array, labelled by its key
    (under a dict label L: "L/key" when there are several). RDM files only as RDMSource(...)
    (one source per RDM of the file).
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
        out.extend(_one(obj, label, pool).expand())
    _lengthen_labels(out)
    labels = [s.label for s in out]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        who = "; ".join(s.who() for s in out if s.label in twice)
        raise ValueError(f"sources: the labels {twice} name more than one source ({who})")
    for s in out:
        s.layer_names(layers)
    return out
