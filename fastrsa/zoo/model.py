"""`Model`: a model by name (`timm:resnet18`, `torchvision:resnet18@random`, `hf:ORG/NAME`,
`taskonomy:PATH`) or a model object, with its own preprocessing; picklable and lazy.

    m = Model("timm:vit_tiny_patch16_224@random", crop=224)
    inputs = m.prepare([pil_image, ...])        # {"pixel_values": (b, 3, 224, 224) float32}
    out = m.forward(inputs)                     # the module's output
    m.fingerprint()                             # spec, weights sha256, preprocessing

The torch module is loaded on first use (`load()`) and never pickled: a pickled Model carries
its spec and options (and, from `from_object`, the object) and loads again in the worker.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .hf_models import hf_object, load_hf
from .prep import ImagePrep, TextPrep
from .spec import LoadedModel, Preparer, Spec, need, parse_spec, state_dict_sha256
from .timm_models import load_timm, timm_object
from .torchvision_models import load_torchvision, torchvision_presets

__all__ = [
    "LoadedModel",
    "Model",
    "architecture_text",
    "brings_preprocessing",
    "state_dict_sha256",
]

_Prep = ImagePrep | TextPrep | Callable[[list[Any]], dict[str, Any]]


def _is_hf(obj: Any) -> bool:
    return any(
        c.__name__ == "PreTrainedModel" and c.__module__.startswith("transformers")
        for c in type(obj).__mro__
    )


def _is_timm(obj: Any) -> bool:
    return type(obj).__module__.startswith("timm.") and (
        hasattr(obj, "pretrained_cfg") or hasattr(obj, "default_cfg")
    )


def architecture_text(module: Any) -> str:
    """The architecture of a torch module as text: its class, its module tree (repr), the plain
    settings of its top-level object (e.g. torchvision Inception's transform_input), and its
    Hugging Face config (without the path it came from) or timm pretrained_cfg."""
    cls = type(module)
    settings = {
        k: v
        for k, v in sorted(vars(module).items())
        if not k.startswith("_") and k != "training" and isinstance(v, bool | int | float | str)
    }
    parts = [f"{cls.__module__}.{cls.__qualname__}", repr(module), json.dumps(settings)]
    config = getattr(module, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        values = {k: v for k, v in config.to_dict().items() if k not in ("_name_or_path",)}
        parts.append(json.dumps(values, sort_keys=True, default=str))
    cfg = getattr(module, "pretrained_cfg", None)
    if isinstance(cfg, dict):
        parts.append(json.dumps(cfg, sort_keys=True, default=str))
    return "\n".join(parts)


def brings_preprocessing(obj: Any) -> bool:
    """Whether `obj` is a model object that brings its own preprocessing (a timm model, a
    Hugging Face PreTrainedModel): Model.from_object(obj) takes it."""
    return _is_timm(obj) or _is_hf(obj)


def _check_max_tokens(max_tokens: Any) -> int | None:
    if max_tokens is None:
        return None
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
    return max_tokens


class Model:
    """A model by spec (`LIB:NAME[@WEIGHTS]`), loaded lazily with its own preprocessing.

    weights: overrides the @ part ("random", a file, a tag). resize / crop / mean / std /
    interpolation: override the model's image preprocessing (resize: int = the shorter side,
    (h, w) = exactly; crop: center crop; mean / std: 3 floats in units of [0, 1] pixels;
    interpolation: nearest, bilinear, bicubic, lanczos, box, hamming). max_tokens: truncate texts
    to this many tokens (default: the tokenizer's limit, at most 512)."""

    def __init__(
        self,
        spec: str,
        *,
        weights: str | None = None,
        resize: int | tuple[int, int] | None = None,
        crop: int | tuple[int, int] | None = None,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        interpolation: str | None = None,
        max_tokens: int | None = None,
    ) -> None:
        parsed = parse_spec(spec, weights)
        self._parsed: Spec | None = parsed
        self.spec = str(parsed)
        self.library = parsed.library
        self._init(resize, crop, mean, std, interpolation, max_tokens)
        self._object: Any = None
        self._prep: Any = None

    def _init(self, resize, crop, mean, std, interpolation, max_tokens) -> None:
        overrides = {
            "size": resize,
            "crop": crop,
            "mean": mean,
            "std": std,
            "interpolation": interpolation,
        }
        self._overrides = {k: v for k, v in overrides.items() if v is not None}
        if self._overrides:  # ImagePrep's own checks, one line naming the field
            ImagePrep().replace(**self._overrides)
        self.max_tokens = _check_max_tokens(max_tokens)
        self._loaded: LoadedModel | None = None

    @classmethod
    def from_object(
        cls,
        obj: Any,
        *,
        resize: int | tuple[int, int] | None = None,
        crop: int | tuple[int, int] | None = None,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        interpolation: str | None = None,
        max_tokens: int | None = None,
        prep: _Prep | None = None,
    ) -> Model:
        """A Model of an object built in Python: a timm model (timm's data config brings its
        preprocessing), a transformers PreTrainedModel (processor / tokenizer from
        config._name_or_path when local or cached, else `prep=` is required), or any other
        torch.nn.Module (the Taskonomy convention, ImagePrep.taskonomy(256), unless `prep=`).
        `prep`: an ImagePrep, a TextPrep, or a callable items -> dict of tensors."""
        self = cls.__new__(cls)
        self._parsed = None
        self._object, self._prep = obj, prep
        if _is_timm(obj):
            cfg = getattr(obj, "pretrained_cfg", None) or getattr(obj, "default_cfg", {}) or {}
            self.library = "timm"
            self.spec = f"timm:{cfg.get('architecture') or type(obj).__name__}"
        elif _is_hf(obj):
            self.library = "hf"
            name = str(getattr(obj.config, "_name_or_path", "") or "") or type(obj).__name__
            self.spec = f"hf:{name}"
        else:
            torch = need("torch", "Model.from_object")
            if not isinstance(obj, torch.nn.Module):
                raise TypeError(
                    "Model.from_object: obj must be a torch.nn.Module (timm, transformers or "
                    f"your own), got {type(obj).__name__}"
                )
            self.library = "module"
            self.spec = f"module:{type(obj).__module__}.{type(obj).__qualname__}"
        if prep is not None and not (isinstance(prep, ImagePrep | TextPrep) or callable(prep)):
            raise TypeError(
                f"prep must be an ImagePrep, a TextPrep or a callable, got {type(prep).__name__}"
            )
        self._init(resize, crop, mean, std, interpolation, max_tokens)
        return self

    @property
    def default_label(self) -> str | None:
        """The name to label results with: timm / torchvision: the model name; hf: the last part
        of the id or directory; taskonomy: the file's stem; with "@random" added for random
        weights; a plain module: None."""
        if self.library == "module":
            return None
        name = self.spec.partition(":")[2]
        if self._parsed is not None:
            name = self._parsed.name
        if self.library == "taskonomy":
            name = Path(name).stem
        elif self.library == "hf":
            name = Path(name.rstrip("/\\")).name or name
        random = self._parsed is not None and self._parsed.weights == "random"
        return f"{name}@random" if random else name

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> LoadedModel:
        """The loaded model (cached on this instance; not pickled)."""
        if self._loaded is None:
            loaded = self._load_object() if self._object is not None else self._load_spec()
            self._loaded = loaded
        return self._loaded

    def _load_spec(self) -> LoadedModel:
        parsed = self._parsed
        assert parsed is not None
        if parsed.library == "timm":
            return load_timm(parsed, self._overrides)
        if parsed.library == "torchvision":
            return load_torchvision(parsed, self._overrides)
        if parsed.library == "hf":
            return load_hf(parsed, self._overrides, self.max_tokens)
        return self._load_taskonomy(parsed)

    def _load_taskonomy(self, parsed: Spec) -> LoadedModel:
        from ..models import load_taskonomy

        path = Path(parsed.name).expanduser().resolve()
        module = load_taskonomy(path)
        prep = ImagePrep.taskonomy(256).replace(**self._overrides)
        return self._plain(module, prep, f"file:{path}", "taskonomy")

    def _plain(self, module: Any, prep: Any, weights: str, library: str) -> LoadedModel:
        """A LoadedModel of a torch module fed images by an ImagePrep."""
        torch = need("torch", self.spec)
        module = module.eval().to("cpu")

        def images(items: list[Any]) -> dict[str, Any]:
            return {"pixel_values": torch.from_numpy(prep.batch(items))}

        return LoadedModel(
            module=module,
            modality="image",
            prep=Preparer(self.spec, "image", images=images),
            prefix_tokens=0,
            presets=torchvision_presets(module),
            weights=weights,
            weights_sha256=state_dict_sha256(module),
            preprocessing={"library": library, **prep.describe()},
            layer_names=[n for n, _ in module.named_modules() if n],
            library=library,
        )

    def _load_object(self) -> LoadedModel:
        obj, custom = self._object, self._prep
        if self.library == "timm":
            loaded = timm_object(obj, self._overrides, self.spec)
        elif self.library == "hf":
            loaded = hf_object(obj, self._overrides, self.max_tokens, self.spec, custom is not None)
        else:
            prep = custom if isinstance(custom, ImagePrep) else ImagePrep.taskonomy(256)
            loaded = self._plain(obj, prep.replace(**self._overrides), "object", "module")
            if isinstance(custom, ImagePrep):
                return loaded
        if custom is not None:
            self._use(loaded, custom)
        return loaded

    def _use(self, loaded: LoadedModel, custom: Any) -> None:
        """Replace a loaded model's prep with the caller's (an ImagePrep, TextPrep or callable)."""
        torch = need("torch", self.spec)
        if isinstance(custom, ImagePrep):
            if loaded.modality != "image":
                raise ValueError(f"model '{self.spec}' takes texts; prep= is an ImagePrep")
            image_prep = custom.replace(**self._overrides)
            loaded.prep = Preparer(
                self.spec,
                "image",
                images=lambda items: {"pixel_values": torch.from_numpy(image_prep.batch(items))},
            )
            loaded.preprocessing = {"library": "custom", **image_prep.describe()}
        elif isinstance(custom, TextPrep):
            if loaded.modality != "text":
                raise ValueError(f"model '{self.spec}' takes images; prep= is a TextPrep")
            loaded.prep = Preparer(self.spec, "text", texts=lambda texts: dict(custom(texts)))
            loaded.preprocessing = {"library": "custom", **custom.describe()}
        else:
            kind = "images" if loaded.modality == "image" else "texts"
            loaded.prep = Preparer(self.spec, loaded.modality, **{kind: custom})
            name = getattr(custom, "__qualname__", type(custom).__qualname__)
            loaded.preprocessing = {"library": "custom", "kind": "callable", "callable": name}

    # -- running ---------------------------------------------------------------------------

    def release(self) -> None:
        """Drop the loaded module (load() loads it again), so that a sweep of many models holds
        one at a time. A model object given to from_object stays (it is the caller's)."""
        self._loaded = None

    def prepare(self, items: Any) -> dict[str, Any]:
        """The model's inputs for `items`: a list of PIL images (any mode), a float32 array
        (b, C, H, W) already prepared (taken as given), or a list of str. {"pixel_values":
        (b, 3, H, W) float32} for images; the tokenizer's tensors (input_ids, attention_mask,
        ...) for texts."""
        return self.load().prep(items)

    def forward(self, inputs: dict[str, Any], hidden_states: bool = False) -> Any:
        """The module's output for `inputs` (from `prepare`), without gradients. Hugging Face
        models get the inputs as keywords (return_dict, output_hidden_states=hidden_states);
        others get inputs["pixel_values"]."""
        return self.load().forward(inputs, hidden_states)

    def describe(self) -> dict[str, Any]:
        """{"kind": "model", "spec", "library", "weights", "weights_sha256", "preprocessing"}
        (JSON-able; loads the model)."""
        loaded = self.load()
        return {
            "kind": "model",
            "spec": self.spec,
            "library": self.library,
            "weights": loaded.weights,
            "weights_sha256": loaded.weights_sha256,
            "preprocessing": loaded.preprocessing,
        }

    def fingerprint(self) -> str:
        """sha256 over the library, the architecture (architecture_text: the module tree, its
        settings, a Hugging Face config or timm pretrained_cfg), the weights' sha256 and the
        preprocessing (JSON, sorted): other weights, another architecture with the same
        parameter shapes, or other preprocessing give another fingerprint."""
        loaded = self.load()
        h = hashlib.sha256(f"{self.library}\n{loaded.weights_sha256}\n".encode())
        h.update(architecture_text(loaded.module).encode())
        h.update(json.dumps(loaded.preprocessing, sort_keys=True, default=str).encode())
        return h.hexdigest()

    # -- pickling --------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_loaded"] = None  # the torch module loads again where it is used
        return state

    def __repr__(self) -> str:
        return f"Model({self.spec!r})"
