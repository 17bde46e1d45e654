"""Sweeps: many sources x layers over one image set -> RDMs and all-pairs similarities in a zarr
store, bounded in memory, resumable after any interruption, on this machine or on Ray.

    store = fastrsa.sweep(["a.onnx", "b.onnx"], images="images/", layers=["block4"],
                          store="sweep-store")
    store.similarity("block4")            # (2, 2) Spearman, label order store.rdms("block4").labels
    fastrsa.open_store("sweep-store")      # later, or from another process

The package is `fastrsa.sweeps` (the function is `fastrsa.sweep`): run.py (the sweep), store.py
(the store), tiles.py (tiled all-pairs), sources.py (what a sweep reads), executors.py (local,
Ray), progress.py.
"""

from .run import sweep
from .sources import FeatureSource, ModuleSource, ONNXSource, RDMSource, Source
from .store import RDMView, Store, open_store

__all__ = [
    "FeatureSource",
    "ModuleSource",
    "ONNXSource",
    "RDMSource",
    "RDMView",
    "Source",
    "Store",
    "open_store",
    "sweep",
]
