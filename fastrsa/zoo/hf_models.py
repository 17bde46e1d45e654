"""Hugging Face transformers models by name (`hf:ORG/NAME`, `hf:LOCAL_DIR`, `@random`) and
PreTrainedModel objects, with their own image processor or tokenizer.

Vision or text is decided from the config (vision configs have `image_size`); dual models
(CLIP-like: a text and a vision config) are refused for now. Weights, config, processor and
tokenizer come from the directory or the hub cache (HF_HOME / HF_HUB_CACHE); offline
(HF_HUB_OFFLINE=1 or FASTRSA_OFFLINE=1) transformers is asked for cached files only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .prep import TextPrep
from .spec import LoadedModel, Preparer, Spec, is_offline, need, state_dict_sha256
from .timm_models import hub_cache_dir

__all__ = [
    "hf_modality",
    "hf_object",
    "hf_prefix_tokens",
    "hf_presets",
    "load_hf",
    "pil_backend",
    "processor_kwargs",
]


def _source(name: str) -> str:
    """A local directory (resolved) when `name` is an existing path, else the hub id as given."""
    return str(Path(name).expanduser().resolve()) if os.path.exists(name) else name


def _kwargs() -> dict[str, Any]:
    return {"cache_dir": hub_cache_dir(), "local_files_only": is_offline()}


def _fail(who: str, source: str, what: str, err: BaseException) -> ValueError:
    if os.path.isdir(source):
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return ValueError(f"model '{who}': the directory {source} has no usable {what} ({first})")
    if is_offline():
        return ValueError(
            f"model '{who}': {what} is not in the cache ({hub_cache_dir()}) and cannot be "
            "downloaded (offline: HF_HUB_OFFLINE=1 or FASTRSA_OFFLINE=1); download once with "
            "network, "
            "or give a local directory"
        )
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return ValueError(f"model '{who}': {what} could not be loaded ({first})")


def hf_modality(config: Any, who: str) -> str:
    """ "image" for a vision config (has `image_size` or only a `vision_config`), else "text";
    ValueError for a dual (text + vision, CLIP-like) model."""
    if getattr(config, "vision_config", None) is not None and (
        getattr(config, "text_config", None) is not None
    ):
        raise ValueError(
            f"model '{who}': {type(config).__name__} has a text and a vision tower (CLIP-like); "
            "dual models are not supported yet: load one tower as a module with Model.from_object"
        )
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError(
            f"model '{who}': {type(config).__name__} is an encoder-decoder model (T5, BART); "
            "not supported yet: load its encoder as a module (model.get_encoder()) with "
            "Model.from_object"
        )
    vision = (
        hasattr(config, "image_size")  # ViT, DINOv2, ...
        or hasattr(config, "num_channels")  # ResNet, RegNet, BiT, ConvNeXt, Segformer: no size
        or getattr(config, "vision_config", None) is not None
    )
    return "image" if vision else "text"


def hf_prefix_tokens(module: Any) -> int:
    """CLS, distillation and register tokens before the patch tokens of a vision transformer
    (from the embeddings' parameters: cls_token, distillation_token, register_tokens)."""
    count = 0
    for name, param in module.named_parameters():
        leaf = name.rpartition(".")[2]
        if "embeddings" not in name:
            continue
        if leaf == "class_embedding":  # CLIP's vision embeddings: one (d,) class token
            count += 1
        elif leaf in ("cls_token", "distillation_token", "register_tokens") and param.dim() >= 2:
            count += int(param.shape[1]) if param.dim() == 3 else 1
    return count


def _num_states(config: Any) -> int | None:
    layers = getattr(config, "num_hidden_layers", None)
    if isinstance(layers, int):
        return layers
    depths = getattr(config, "depths", None)
    return len(depths) if isinstance(depths, list | tuple) else None


def hf_presets(module: Any, config: Any) -> dict[str, list[str]]:
    """{"@blocks": the ModuleList with num_hidden_layers entries (e.g. encoder.layer.N),
    "@hidden_states": hidden_states.0 .. hidden_states.L}."""
    out: dict[str, list[str]] = {}
    n = getattr(config, "num_hidden_layers", None)
    for name, sub in module.named_modules():
        if name and type(sub).__name__ == "ModuleList" and len(sub) == n:
            out["@blocks"] = [f"{name}.{i}" for i in range(n)]
            break
    states = _num_states(config)
    if states is not None:
        out["@hidden_states"] = [f"hidden_states.{i}" for i in range(states + 1)]
    return out


def processor_kwargs(processor: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """transformers image-processor kwargs for ImagePrep-style overrides (size, crop, mean, std,
    interpolation); None values are left out."""
    out: dict[str, Any] = {}
    size, crop = overrides.get("size"), overrides.get("crop")
    if size is not None:
        current = getattr(processor, "size", None) or {}
        if isinstance(size, int) and "shortest_edge" in current:
            out["size"] = {"shortest_edge": size}
        else:
            h, w = (size, size) if isinstance(size, int) else size
            out["size"] = {"height": h, "width": w}
    if crop is not None:
        h, w = (crop, crop) if isinstance(crop, int) else crop
        out["crop_size"] = {"height": h, "width": w}
        out["do_center_crop"] = True
    if overrides.get("mean") is not None:
        out["image_mean"] = list(overrides["mean"])
    if overrides.get("std") is not None:
        out["image_std"] = list(overrides["std"])
    if overrides.get("interpolation") is not None:
        from PIL import Image

        out["resample"] = Image.Resampling[str(overrides["interpolation"]).upper()]
    return out


def _processor(tf: Any, source: str, who: str, overrides: dict[str, Any], **kw: Any) -> Any:
    try:
        pil = pil_backend(tf)
        plain = tf.AutoImageProcessor.from_pretrained(source, **pil, **kw)
        extra = processor_kwargs(plain, overrides)
        return tf.AutoImageProcessor.from_pretrained(source, **pil, **kw, **extra)
    except (OSError, ValueError) as err:
        raise _fail(who, source, "image processor", err) from None


def pil_backend(tf: Any) -> dict[str, Any]:
    """The kwargs asking AutoImageProcessor for its PIL processor (transformers 5: backend="pil";
    before: use_fast=False), which needs no torchvision."""
    major = int(str(tf.__version__).split(".")[0])
    return {"backend": "pil"} if major >= 5 else {"use_fast": False}


def _tokenizer(tf: Any, source: str, who: str, **kw: Any) -> Any:
    try:
        return tf.AutoTokenizer.from_pretrained(source, **kw)
    except (OSError, ValueError) as err:
        raise _fail(who, source, "tokenizer", err) from None


def _finish(
    module: Any, config: Any, modality: str, who: str, weights: str, pipeline: Any
) -> LoadedModel:
    """The LoadedModel of an HF module; `pipeline`: an image processor or a TextPrep."""
    torch = need("torch", who)
    module = module.eval().to("cpu")
    if modality == "text":
        prep = Preparer(who, "text", texts=lambda texts: dict(pipeline(texts)))
        described = pipeline.describe()
    else:

        def images(items: list[Any]) -> dict[str, Any]:
            out = pipeline(images=items, return_tensors="pt")
            return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}

        prep = Preparer(who, "image", images=images)
        described = {"kind": "image", **json.loads(pipeline.to_json_string())}
    presets = hf_presets(module, config)
    names = [n for n, _ in module.named_modules() if n]
    return LoadedModel(
        module=module,
        modality=modality,
        prep=prep,
        prefix_tokens=hf_prefix_tokens(module) if modality == "image" else 0,
        presets=presets,
        weights=weights,
        weights_sha256=state_dict_sha256(module),
        preprocessing={"library": "hf", **described},
        layer_names=names + presets.get("@hidden_states", []),
        library="hf",
    )


def load_hf(spec: Spec, overrides: dict[str, Any], max_tokens: int | None) -> LoadedModel:
    """The transformers AutoModel of `spec` (a hub id or a local directory), eval mode on CPU,
    with its image processor (`overrides` as processor kwargs) or tokenizer (`max_tokens`)."""
    who = str(spec)
    tf = need("transformers", who)
    torch = need("torch", who)
    source, kw = _source(spec.name), _kwargs()
    if not os.path.exists(source) and spec.name.startswith(("/", "./", "../", "~", "\\")):
        raise FileNotFoundError(f"model '{who}': no such directory: {spec.name}")
    if os.path.exists(source) and not os.path.isdir(source):
        raise NotADirectoryError(f"model '{who}': {source} is a file, not a model directory")
    try:
        config = tf.AutoConfig.from_pretrained(source, **kw)
    except (OSError, ValueError) as err:
        raise _fail(who, source, "config", err) from None
    modality = hf_modality(config, who)
    if modality == "image":
        pipeline = _processor(tf, source, who, overrides, **kw)
    else:
        pipeline = TextPrep(_tokenizer(tf, source, who, **kw), max_tokens)
    if spec.weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            module = tf.AutoModel.from_config(config)
        weights = "random"
    else:
        bars = tf.utils.logging.is_progress_bar_enabled()
        tf.utils.logging.disable_progress_bar()  # no "Loading weights" bar per worker
        try:
            module = tf.AutoModel.from_pretrained(source, **kw)
        except (OSError, ValueError) as err:
            raise _fail(who, source, "pretrained weights", err) from None
        finally:
            if bars:
                tf.utils.logging.enable_progress_bar()
        weights = f"pretrained:{source}"
    return _finish(module, config, modality, who, weights, pipeline)


def hf_object(
    obj: Any, overrides: dict[str, Any], max_tokens: int | None, who: str, custom: bool
) -> LoadedModel:
    """A PreTrainedModel the user built: processor / tokenizer from `obj.config._name_or_path`
    when that is a local directory or cached (`custom`: the caller brings its own prep, so a
    missing one is fine: the returned prep is then replaced)."""
    tf = need("transformers", who)
    config = obj.config
    modality = hf_modality(config, who)
    source = _source(str(getattr(config, "_name_or_path", "") or ""))
    kw = {"cache_dir": hub_cache_dir(), "local_files_only": True}
    pipeline: Any = None
    if source:
        try:
            if modality == "image":
                pipeline = _processor(tf, source, who, overrides, **kw)
            else:
                pipeline = TextPrep(_tokenizer(tf, source, who, **kw), max_tokens)
        except ValueError:
            pipeline = None
    if pipeline is None and not custom:
        what = "image processor" if modality == "image" else "tokenizer"
        raise ValueError(
            f"model '{who}': its {what} cannot be found (config._name_or_path {source!r} is no "
            "local directory nor cached); give prep= (an ImagePrep, a TextPrep or a callable)"
        )
    if pipeline is None:
        loaded = _finish(obj, config, modality, who, "object", _Nothing())
        return loaded
    return _finish(obj, config, modality, who, "object", pipeline)


class _Nothing:
    """A stand-in pipeline for an object whose caller brings its own prep."""

    def describe(self) -> dict[str, Any]:
        return {}

    def to_json_string(self) -> str:
        return "{}"
