"""Models by name: timm, torchvision and Hugging Face models, with their own preprocessing, any
of their layers, pooled to one row per item.

    m = Model("timm:resnet18")                 # pretrained, the library's cache; @random, @FILE
    m = Model("hf:sentence-transformers/all-MiniLM-L6-v2", max_tokens=128)
    m.load().presets["@blocks"]                # the model's blocks, e.g. ["layer1", ..., "layer4"]

Modules: `spec` (LIB:NAME[@WEIGHTS], weights files, the loaded-model record), `model` (Model),
`timm_models`, `torchvision_models`, `hf_models` (one per library; each library is imported on
first use: `pip install fastrsa[timm]`, `fastrsa[torchvision]`, `fastrsa[hf]`), `prep`
(ImagePrep, TextPrep: preprocessing), `pooling` (one row per item from a layer's output),
`capture` (one forward pass catching the requested layers). The sweep's source of them is
fastrsa.sweeps.ModelSource.
"""

from .capture import capture
from .model import LoadedModel, Model, state_dict_sha256
from .pooling import POOLINGS, pool, resolve_pool
from .prep import INTERPOLATIONS, ImagePrep, TextPrep, open_rgb, read_rgb
from .spec import LIBRARIES, Spec, is_spec, parse_spec

__all__ = [
    "INTERPOLATIONS",
    "LIBRARIES",
    "POOLINGS",
    "ImagePrep",
    "LoadedModel",
    "Model",
    "Spec",
    "TextPrep",
    "capture",
    "is_spec",
    "open_rgb",
    "parse_spec",
    "pool",
    "read_rgb",
    "resolve_pool",
    "state_dict_sha256",
]
