"""fastrsa: fast Representational Similarity Analysis of deep networks.

>>> import numpy as np, fastrsa
>>> feats = np.random.default_rng(0).standard_normal((4, 50, 128))  # 4 models, 50 images
>>> sim = fastrsa.compare(fastrsa.rdms(feats))                      # (4, 4) Spearman
"""

from importlib.metadata import PackageNotFoundError, version

from ._backend import BACKENDS, available_backends
from ._memory import get_memory_budget, set_memory_budget
from .compare import compare, rank_transform
from .interop import from_rsatoolbox, to_rsatoolbox
from .layers import layers
from .measures.attribution import attribution_similarity, attributions
from .rdms import rdms, squareform
from .similarity import similarity
from .sweeps import Store, layer_matrix, open_store, sweep
from .taxonomy import taxonomies, taxonomy
from .transfer import evaluate_transfer, rank_sources
from .zoo import Model

try:  # the one version lives in pyproject.toml; the installed metadata carries it
    __version__ = version("fastrsa")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
__all__ = [
    "BACKENDS",
    "attribution_similarity",
    "attributions",
    "available_backends",
    "compare",
    "evaluate_transfer",
    "from_rsatoolbox",
    "get_memory_budget",
    "layer_matrix",
    "layers",
    "Model",
    "rank_sources",
    "taxonomies",
    "taxonomy",
    "rank_transform",
    "rdms",
    "set_memory_budget",
    "similarity",
    "squareform",
    "Store",
    "open_store",
    "sweep",
    "to_rsatoolbox",
]
