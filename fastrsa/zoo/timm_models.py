"""timm models by name (`timm:NAME[.TAG][@WEIGHTS]`) and timm model objects, with timm's own
preprocessing (`timm.data.resolve_data_config`, as `ImagePrep.from_timm`).

Pretrained weights come the way timm brings them: the Hugging Face hub cache (or torch.hub's
cache for weights that only have a URL). Offline (HF_HUB_OFFLINE=1 or FASTRSA_OFFLINE=1) the
cached file is looked up first, so nothing touches the network.
"""

from __future__ import annotations

import difflib
import importlib
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

__all__ = ["hub_cache_dir", "load_timm", "timm_object", "timm_presets", "torch_hub_dir"]

_HUB_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def hub_cache_dir() -> str:
    """The Hugging Face hub cache folder, from the environment at call time (HF_HUB_CACHE, else
    HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return os.path.join(os.path.expanduser(home), "hub")


def torch_hub_dir() -> str:
    """torch.hub's checkpoint folder (TORCH_HOME/hub/checkpoints), from the environment now."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch"
    )
    return os.path.join(os.path.expanduser(home), "hub", "checkpoints")


def _closest(name: str, names: list[str]) -> str:
    near = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    return f"; closest: {', '.join(near)}" if near else ""


def _not_cached(who: str, where: str) -> ValueError:
    return ValueError(
        f"model '{who}': pretrained weights are not in the cache ({where}) and cannot be "
        "downloaded (offline: HF_HUB_OFFLINE=1 or FASTRSA_OFFLINE=1); download once with "
        "network, "
        "or use @random or @FILE"
    )


def _cached_file(cfg: Any) -> tuple[str | None, str]:
    """(the cached weights file of a timm pretrained cfg or None, the cache folder looked in)."""
    hub_id = getattr(cfg, "hf_hub_id", None)
    if hub_id:
        try_to_load_from_cache = importlib.import_module("huggingface_hub").try_to_load_from_cache
        cache = hub_cache_dir()
        names = [cfg.hf_hub_filename] if getattr(cfg, "hf_hub_filename", None) else []
        for fname in names + list(_HUB_FILES):
            found = try_to_load_from_cache(hub_id, fname, cache_dir=cache)
            if isinstance(found, str):
                return found, cache
        return None, cache
    url = getattr(cfg, "url", None) or ""
    cache = torch_hub_dir()
    path = os.path.join(cache, os.path.basename(url)) if url else ""
    return (path if path and os.path.isfile(path) else None), cache


def _pretrained(timm: Any, name: str, who: str) -> tuple[Any, str]:
    """(a timm model with its pretrained weights, "pretrained:<arch.tag>")."""
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:  # "Invalid pretrained tag (x) for arch."
        tags = timm.list_pretrained(name.partition(".")[0] + ".*")
        raise ValueError(
            f"model '{who}': {name!r} is no pretrained tag of timm{_closest(name, tags)}"
        ) from None
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise ValueError(
            f"model '{who}': timm has no pretrained weights for {name!r}; use @random or @FILE"
        )
    tagged = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else cfg.architecture
    overlay = None
    if is_offline():
        path, cache = _cached_file(cfg)
        if path is None:
            raise _not_cached(who, cache)
        overlay = {"file": path, "source": ""}
    try:
        module = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay)
    except (OSError, RuntimeError, ValueError) as err:  # no network, hub errors, a bad file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        path, cache = _cached_file(cfg)
        raise ValueError(
            f"model '{who}': pretrained weights could not be loaded ({first}); they are not in "
            f"the cache ({cache}) or could not be downloaded; use @random or @FILE"
        ) from None
    return module, f"pretrained:{tagged}"


def _create(timm: Any, spec: Spec, who: str) -> tuple[Any, str]:
    torch = need("torch", who)
    name = spec.name
    arch = name.partition(".")[0]
    if not timm.is_model(arch):
        raise ValueError(
            f"model '{who}': timm has no model {arch!r}{_closest(arch, timm.list_models())}"
        )
    kind = spec.weights_kind
    if kind == "tag":
        if "." in name:
            raise ValueError(
                f"model '{who}': give the pretrained tag once (in the name or after @)"
            )
        kind, name = "pretrained", f"{name}.{spec.weights}"
    if kind == "pretrained":
        return _pretrained(timm, name, who)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = timm.create_model(name, pretrained=False)
    if kind == "random":
        return module, "random"
    path = str(Path(spec.weights).expanduser())
    load_state_dict(module, read_weights(path, who), who, path)
    return module, f"file:{path}"


def timm_presets(module: Any) -> dict[str, list[str]]:
    """{"@blocks": the modules of timm's feature_info (ViT: blocks.N; ResNet: layer1..4)}."""
    named = {n for n, _ in module.named_modules() if n}
    info = getattr(module, "feature_info", None) or []
    try:
        blocks = [f["module"] for f in info]
    except (TypeError, KeyError):
        blocks = []
    blocks = [b for b in blocks if b in named]
    if blocks and blocks[0] in ("act1", "stem", "conv1", "bn1") and len(blocks) > 1:
        blocks = blocks[1:]  # the stem is no block (ResNet: act1, then layer1..layer4)
    return {"@blocks": blocks} if blocks else {}


def _image_prep(timm: Any, module: Any, overrides: dict[str, Any]) -> ImagePrep:
    cfg = timm.data.resolve_data_config({}, model=module)
    return ImagePrep.from_timm(cfg).replace(**overrides)


def _loaded(timm: Any, module: Any, who: str, weights: str, overrides: dict[str, Any]):
    torch = need("torch", who)
    module = module.eval().to("cpu")
    prep = _image_prep(timm, module, overrides)

    def images(items: list[Any]) -> dict[str, Any]:
        return {"pixel_values": torch.from_numpy(prep.batch(items))}

    return LoadedModel(
        module=module,
        modality="image",
        prep=Preparer(who, "image", images=images),
        prefix_tokens=int(getattr(module, "num_prefix_tokens", 0) or 0),
        presets=timm_presets(module),
        weights=weights,
        weights_sha256=state_dict_sha256(module),
        preprocessing={"library": "timm", **prep.describe()},
        layer_names=[n for n, _ in module.named_modules() if n],
        library="timm",
    )


def load_timm(spec: Spec, overrides: dict[str, Any]) -> LoadedModel:
    """The timm model of `spec`, eval mode on CPU, with timm's preprocessing for it (`overrides`:
    ImagePrep fields - size, crop, mean, std, interpolation - replacing timm's)."""
    who = str(spec)
    timm = need("timm", who)
    module, weights = _create(timm, spec, who)
    return _loaded(timm, module, who, weights, overrides)


def timm_object(obj: Any, overrides: dict[str, Any], who: str) -> LoadedModel:
    """A timm model object the user built: its own data config brings the preprocessing."""
    timm = need("timm", who)
    return _loaded(timm, obj, who, "object", overrides)
