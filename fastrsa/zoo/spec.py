"""Model specs (`LIB:NAME[@WEIGHTS]`), weights files, and what a loaded model brings.

    parse_spec("timm:resnet18")                  # Spec("timm", "resnet18", "pretrained")
    parse_spec("torchvision:resnet18@random")    # seeded random init
    parse_spec("timm:resnet18@/w/resnet18.pth")  # a local weights file
    parse_spec("hf:sentence-transformers/all-MiniLM-L6-v2"), parse_spec("hf:./my_model_dir")

Imports no optional library at module level (torch, timm, torchvision, transformers are loaded
inside functions, when a model is loaded).
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MissingPackage
from .prep import open_rgb

__all__ = [
    "LIBRARIES",
    "WEIGHT_SUFFIXES",
    "EXTRAS",
    "LoadedModel",
    "Preparer",
    "Spec",
    "is_spec",
    "is_offline",
    "load_state_dict",
    "need",
    "parse_spec",
    "read_weights",
    "state_dict_sha256",
]

LIBRARIES = ("timm", "torchvision", "hf", "taskonomy")
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
EXTRAS = {"timm": "timm", "torchvision": "torchvision", "transformers": "hf", "torch": "torch"}


@dataclass(frozen=True)
class Spec:
    """A parsed `LIB:NAME[@WEIGHTS]`. `weights`: "pretrained" (the library's default weights),
    "random" (seeded random init), a local file path, or a library tag (a torchvision weights
    enum name such as "IMAGENET1K_V1"; a timm pretrained tag such as "a1_in1k")."""

    library: str
    name: str
    weights: str = "pretrained"

    @property
    def weights_kind(self) -> str:
        """ "pretrained", "random", "file" or "tag"."""
        if self.weights in ("pretrained", "random"):
            return self.weights
        return "file" if _looks_like_file(self.weights) else "tag"

    def __str__(self) -> str:
        if self.library == "taskonomy" or self.weights == "pretrained":
            return f"{self.library}:{self.name}"
        return f"{self.library}:{self.name}@{self.weights}"


def _looks_like_file(text: str) -> bool:
    return text.lower().endswith(WEIGHT_SUFFIXES) or "/" in text or "\\" in text


def is_spec(text: object) -> bool:
    """Whether `text` is a str with a known `LIB:` prefix (a Windows path "C:\\..." and an .onnx
    file are not specs)."""
    if not isinstance(text, str) or ":" not in text or text.lower().endswith(".onnx"):
        return False
    return text.partition(":")[0] in LIBRARIES


def parse_spec(spec: str, weights: str | None = None) -> Spec:
    """The Spec of `LIB:NAME[@WEIGHTS]`; `weights`, when given, overrides the @ part.

    hf: a NAME that is an existing path is a local directory (taken whole, "@" and all).
    taskonomy:PATH: the checkpoint file is the weights. Local paths (hf directories, weights
    files, checkpoints) are made absolute. ValueError (one line) for an unknown LIB,
    an empty name or empty weights."""
    if not isinstance(spec, str):
        raise TypeError(f"model spec must be a str like 'timm:resnet18', got {type(spec).__name__}")
    lib, colon, rest = spec.partition(":")
    if not colon or lib not in LIBRARIES:
        known = ", ".join(f"{k}:" for k in LIBRARIES)
        raise ValueError(f"model spec {spec!r}: unknown library {lib!r}; known: {known}")
    name, at, tag = rest, "", ""
    if lib == "hf":
        if not os.path.exists(rest) and "@" in rest:
            name, at, tag = rest.rpartition("@")
    elif lib != "taskonomy" and "@" in rest:
        name, at, tag = rest.partition("@")
    name = name.strip()
    if not name:
        raise ValueError(f"model spec {spec!r}: the model name after '{lib}:' is empty")
    if at and not tag.strip():
        raise ValueError(f"model spec {spec!r}: the weights after '@' are empty")
    chosen = (weights if weights is not None else tag).strip() or "pretrained"
    if lib == "taskonomy":
        return Spec(lib, _absolute(name), "pretrained")
    if lib == "hf" and chosen not in ("pretrained", "random"):
        raise ValueError(
            f"model spec {spec!r}: hf models take '@random' or no '@' (their weights are in the "
            "model directory or hub id), got weights {chosen!r}"
        )
    if lib == "hf" and os.path.exists(name):
        name = _absolute(name)
    if chosen not in ("pretrained", "random") and _looks_like_file(chosen):
        chosen = _absolute(chosen)
    return Spec(lib, name, chosen)


def _absolute(path: str) -> str:
    """A local path made absolute (~ expanded; symlinks kept), so a pickled spec loads the same
    files in a worker with another working directory."""
    return os.path.abspath(os.path.expanduser(path))


def is_offline() -> bool:
    """Whether FASTRSA_OFFLINE or HF_HUB_OFFLINE asks for no network."""
    return any(
        os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
        for k in ("FASTRSA_OFFLINE", "HF_HUB_OFFLINE")
    )


def need(package: str, who: str) -> Any:
    """The imported optional `package` (timm, torchvision, transformers); MissingPackage naming
    `who` and the fastrsa extra when it is not installed or cannot import."""
    extra = EXTRAS.get(package, package)
    try:
        return importlib.import_module(package)
    except ImportError as err:
        why = "" if isinstance(err, ModuleNotFoundError) else f" (it fails to import: {err})"
        raise MissingPackage(
            f"model '{who}' needs {package}{why}: pip install fastrsa[{extra}]"
        ) from None


def read_weights(path: str | os.PathLike, who: str) -> dict[str, Any]:
    """The state dict in a local weights file (.safetensors with safetensors; .pth/.pt/.bin with
    torch.load(weights_only=True)), unwrapped from a "state_dict" / "model" key when nested.
    FileNotFoundError / ValueError (one line) naming `who` and the file."""
    torch = need("torch", who)
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model '{who}': weights file {str(path)!r}: no such file")
    try:
        if path.suffix.lower() == ".safetensors":
            load_file = importlib.import_module("safetensors.torch").load_file
            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except ImportError:
        raise MissingPackage(
            f"model '{who}': reading {path.name} needs safetensors: pip install safetensors"
        ) from None
    except Exception as err:  # a corrupt file, or pickled objects that weights_only refuses
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"model '{who}': weights file {str(path)!r} cannot be read ({first})"
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise ValueError(
            f"model '{who}': weights file {str(path)!r} holds no state dict of tensors"
        )
    return state


def _listed(items: list[str]) -> str:
    return ", ".join(items[:4]) + (f" and {len(items) - 4} more" if len(items) > 4 else "")


def load_state_dict(module: Any, state: dict[str, Any], who: str, path: str = "") -> None:
    """Load `state` into `module` strictly (a "module." prefix from DataParallel is dropped).
    ValueError (one line) naming `who`, the file and the missing, unexpected or misshaped keys."""
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    parts = [
        f"{label}: {_listed(items)}"
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong),
        )
        if items
    ]
    if parts:
        where = f"weights file {path!r}" if path else "the weights"
        raise ValueError(
            f"model '{who}': {where} does not fit the architecture ({'; '.join(parts)})"
        )
    module.load_state_dict(state, strict=True)


def state_dict_sha256(module: Any) -> str:
    """sha256 over every state_dict entry's name, shape, dtype and bytes (in order)."""
    torch = need("torch", type(module).__name__)
    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        h.update(f"{key} {tuple(value.shape)} {value.dtype}\n".encode())
        flat = value.detach().cpu().contiguous().reshape(-1)
        h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return h.hexdigest()


class Preparer:
    """`prepare(items) -> dict[str, torch.Tensor]` of one model: items are a list of PIL images
    (made RGB with open_rgb, then the model's own pipeline `images`), a float32 numpy array
    (b, C, H, W) prepared by the user (taken as given: {"pixel_values": tensor}) or a list of str
    (the model's tokenizer `texts`). One-line errors for the wrong modality or item type."""

    def __init__(
        self,
        who: str,
        modality: str,
        images: Callable[[list[Any]], dict[str, Any]] | None = None,
        texts: Callable[[list[str]], dict[str, Any]] | None = None,
    ) -> None:
        self.who, self.modality, self.images, self.texts = who, modality, images, texts

    def __call__(self, items: Any) -> dict[str, Any]:
        kind = "images"
        if hasattr(items, "shape") and hasattr(items, "dtype"):  # an array prepared by the user
            return {"pixel_values": self._array(items)}
        if isinstance(items, str) or not isinstance(items, list | tuple):
            raise TypeError(
                f"{self.who}: items must be a list of PIL images, a list of str or a float32 "
                f"array (b, C, H, W); got {type(items).__name__}"
            )
        items = list(items)
        if not items:
            raise ValueError(f"{self.who}: no items were given")
        if all(isinstance(it, str) for it in items):
            kind = "texts"
        elif any(isinstance(it, str) for it in items):
            raise TypeError(f"{self.who}: items mix str and other objects")
        want = "images" if self.modality == "image" else "texts"
        if kind != want:
            raise ValueError(f"model '{self.who}' takes {want}; {kind} were given")
        if kind == "texts":
            assert self.texts is not None
            return self.texts(items)
        for i, it in enumerate(items):
            if not hasattr(it, "mode") or not hasattr(it, "convert"):
                raise TypeError(f"{self.who}: item {i} is a {type(it).__name__}, not a PIL image")
        assert self.images is not None
        return self.images([open_rgb(it, name=f"item {i}") for i, it in enumerate(items)])

    def _array(self, array: Any) -> Any:
        import numpy as np

        torch = need("torch", self.who)
        if self.modality != "image":
            raise ValueError(f"model '{self.who}' takes texts; an array was given")
        if array.ndim != 4 or array.shape[1] != 3 or array.dtype != np.float32:
            raise ValueError(
                f"{self.who}: a prepared array must be float32 (b, 3, H, W); got "
                f"{array.dtype} {tuple(array.shape)}"
            )
        if not np.isfinite(array).all():
            raise ValueError(f"{self.who}: the prepared array holds NaN or inf")
        return torch.from_numpy(np.ascontiguousarray(array))


@dataclass
class LoadedModel:
    """A model ready to run: `module` (torch.nn.Module, eval mode, CPU), `modality` ("image" |
    "text"), `prep` (prepare(items) -> dict of tensors), `prefix_tokens` (CLS and register tokens
    before the patch tokens), `presets` ({"@blocks": [...], "@hidden_states": [...]}),
    `weights` ("pretrained:<tag or hub id>", "random", "file:<path>", "object"),
    `weights_sha256`, `preprocessing` (JSON-able), `layer_names` (submodules without the root,
    plus "hidden_states.N" for Hugging Face models), `library` ("timm", "torchvision", "hf",
    "taskonomy", "module")."""

    module: Any
    modality: str
    prep: Callable[[Any], dict[str, Any]]
    prefix_tokens: int = 0
    presets: dict[str, list[str]] = field(default_factory=dict)
    weights: str = "pretrained"
    weights_sha256: str = ""
    preprocessing: dict[str, Any] = field(default_factory=dict)
    layer_names: list[str] = field(default_factory=list)
    library: str = "module"

    def prepare(self, items: Any) -> dict[str, Any]:
        """The model's inputs for `items` (PIL images, a prepared float32 array, or str)."""
        return self.prep(items)

    def forward(self, inputs: dict[str, Any], hidden_states: bool = False) -> Any:
        """The module's output without gradients: Hugging Face models (library "hf") get the
        inputs as keywords (return_dict, output_hidden_states); others inputs["pixel_values"]."""
        torch = need("torch", self.library)
        with torch.no_grad():
            if self.library == "hf":
                return self.module(**inputs, output_hidden_states=hidden_states, return_dict=True)
            return self.module(inputs["pixel_values"])
