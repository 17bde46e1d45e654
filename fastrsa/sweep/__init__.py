"""Sweeps: many sources x layers over one image set -> RDMs and all-pairs similarities in a zarr
store, bounded in memory, resumable after any interruption, on this machine or on Ray.

    store = fastrsa.sweep(["a.onnx", "b.onnx"], images="images/", layers=["block4"],
                          store="sweep-store")
    store.similarity("block4")            # (2, 2) Spearman, label order store.rdms("block4").labels
    fastrsa.open_store("sweep-store")      # later, or from another process
"""

from .run import sweep
from .store import RDMView, Store, open_store

__all__ = ["RDMView", "Store", "open_store", "sweep"]
