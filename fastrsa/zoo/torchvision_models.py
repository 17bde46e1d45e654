"""torchvision classification models by name (`torchvision:NAME[@WEIGHTS]`), with the weights'
own transforms (`weights.transforms()`, as `ImagePrep.from_torchvision`).

WEIGHTS: omitted = the DEFAULT weights; a weights enum name (IMAGENET1K_V1, DEFAULT); "random"
(seeded init; preprocessing of the model's DEFAULT weights); a local file. Pretrained weights
come through torch.hub's cache (TORCH_HOME/hub/checkpoints); offline (FASTRSA_OFFLINE=1 or
HF_HUB_OFFLINE=1) the cache file is checked before torchvision is asked, so nothing touches the
network.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from .prep import ImagePrep
from .spec import (
    LoadedModel,
    Preparer,
    Spec,
    is_offline,
    load_state_dict,
    need,
    read_weights,
    state_dict_sha256,
)
from .timm_models import torch_hub_dir

__all__ = ["load_torchvision", "torchvision_presets"]

# when a model has no weights enum (nothing to take the transforms from): ImageNet's usual
_IMAGENET = ImagePrep(
    size=256,
    crop=224,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    interpolation="bilinear",
)


def _weights_enum(models: Any, name: str) -> Any:
    try:
        return models.get_model_weights(name)
    except (ValueError, KeyError):
        return None


def _weights(models: Any, spec: Spec, who: str) -> Any:
    """The weights enum member a spec asks for (None for random or a file)."""
    if spec.weights_kind in ("random", "file"):
        return None
    enum = _weights_enum(models, spec.name)
    members = list(enum.__members__) if enum is not None else []
    if not members:
        raise ValueError(f"model '{who}': torchvision has no pretrained weights for {spec.name!r}")
    tag = "DEFAULT" if spec.weights == "pretrained" else spec.weights
    if tag not in members:
        raise ValueError(
            f"model '{who}': {tag!r} is no weights of {spec.name}; torchvision has "
            f"{', '.join(members)}"
        )
    return enum[tag]


def _pretrained(models: Any, name: str, weights: Any, who: str) -> Any:
    cache = torch_hub_dir()
    cached = os.path.join(cache, os.path.basename(weights.url))
    if is_offline() and not os.path.isfile(cached):
        raise ValueError(
            f"model '{who}': pretrained weights are not in the cache ({cache}) and cannot be "
            "downloaded (offline: HF_HUB_OFFLINE=1 or FASTRSA_OFFLINE=1); download once with "
            "network, "
            "or use @random or @FILE"
        )
    try:
        return models.get_model(name, weights=weights)
    except (OSError, RuntimeError, ValueError) as err:  # no network, a corrupt cache file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(
            f"model '{who}': pretrained weights could not be loaded ({first}); they are not in "
            f"the cache ({cache}) or could not be downloaded; use @random or @FILE"
        ) from None


def torchvision_presets(module: Any) -> dict[str, list[str]]:
    """{"@blocks": ResNets: layer1..layer4; models with `.features`: features.N; ViT:
    encoder.layers.*}, when the model has one of these."""
    named = dict(module.named_modules())
    if all(f"layer{i}" in named for i in range(1, 5)):
        return {"@blocks": [f"layer{i}" for i in range(1, 5)]}
    for parent in ("features", "encoder.layers"):
        seq = named.get(parent)
        if seq is not None and len(list(seq.children())) > 1:
            return {"@blocks": [f"{parent}.{child}" for child, _ in seq.named_children()]}
    return {}


def load_torchvision(spec: Spec, overrides: dict[str, Any]) -> LoadedModel:
    """The torchvision classification model of `spec`, eval mode on CPU, with its weights'
    transforms (`overrides`: ImagePrep fields replacing them)."""
    who = str(spec)
    need("torch", who)
    tv = need("torchvision", who)
    torch = need("torch", who)
    models = tv.models
    names = models.list_models(module=models)
    if spec.name not in names:
        near = difflib.get_close_matches(spec.name, names, n=5, cutoff=0.6)
        hint = f"; closest: {', '.join(near)}" if near else ""
        raise ValueError(
            f"model '{who}': torchvision has no classification model {spec.name!r}{hint}"
        )
    weights = _weights(models, spec, who)
    if weights is not None:
        module = _pretrained(models, spec.name, weights, who)
        loaded = f"pretrained:{type(weights).__name__}.{weights.name}"
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            module = models.get_model(spec.name, weights=None)
        loaded = "random"
        if spec.weights_kind == "file":
            path = str(Path(spec.weights).expanduser())
            load_state_dict(module, read_weights(path, who), who, path)
            loaded = f"file:{path}"
    source = weights
    if source is None:  # random or a file: the DEFAULT weights' transforms (nothing downloaded)
        enum = _weights_enum(models, spec.name)
        source = enum.DEFAULT if enum is not None and len(enum.__members__) else None
    prep = ImagePrep.from_torchvision(source.transforms()) if source is not None else _IMAGENET
    prep = prep.replace(**overrides)
    module = module.eval().to("cpu")

    def images(items: list[Any]) -> dict[str, Any]:
        return {"pixel_values": torch.from_numpy(prep.batch(items))}

    return LoadedModel(
        module=module,
        modality="image",
        prep=Preparer(who, "image", images=images),
        prefix_tokens=1 if hasattr(module, "class_token") else 0,
        presets=torchvision_presets(module),
        weights=loaded,
        weights_sha256=state_dict_sha256(module),
        preprocessing={"library": "torchvision", **prep.describe()},
        layer_names=[n for n, _ in module.named_modules() if n],
        library="torchvision",
    )
