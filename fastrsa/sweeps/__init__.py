"""Sweeps: many sources x layers over one image set -> RDMs and all-pairs similarities in a zarr
store, bounded in memory, resumable after any interruption, on this machine or on Ray.

    store = fastrsa.sweep(["a.onnx", "b.onnx"], images="images/", layers=["block4"],
                          store="sweep-store")
    store.similarity("block4")            # (2, 2) Spearman, label order store.rdms("block4").labels
    fastrsa.open_store("sweep-store")      # later, or from another process

The package is `fastrsa.sweeps` (the function is `fastrsa.sweep`). Its modules, each importing
only those below it:
    run             the sweep: stages, the summary
    rdm_units       the first stage's units: one pass per source -> RDMs, ranks, states
    executors       where units run (this process, Ray); progress: the progress line
    layer_matrix    every (source, layer) against every (source, layer) of a store
    measure_tiles   a layer's all-pairs similarity by a measure beyond RSA, from states
    tiles           a layer's all-pairs similarity of RDMs in tiles (units)
    measure_states  per-unit states of the measures beyond RSA (Grams -> states), in the store
    sources         what a sweep reads (resolve_sources); model_source (models by name,
                    fastrsa.zoo), encoders (ONNX, torch modules), file_sources (feature and RDM
                    files), source_base (the Source contract)
    image_set       the sweep's image set, a batch at a time (image_items: a torch Dataset's
                    images); text_set: the sweep's texts (.txt, .jsonl, lists)
    feature_buffer  one (source, layer)'s features -> its RDM, in memory or spilled to a file
    spill           the spill folders (one per process; killed runs' folders removed)
    store           the store (Store, open_store); rdm_view (lazy RDMs); store_checks
                    (Store.verify: the whole store checked, Report/Damage); store_writes (the
                    markers and writes Store inherits)
    blocks          tile plan and block-by-block comparison (tiles and Store.compare)
    store_arrays    the store's zarr arrays, verified chunk reads
    measure_specs   the measures a sweep computes: MeasureSpec, options, keys
    store_index     the index and content keys
    storage         where the store lives (a folder or an fsspec URL), its small files, lock
(source_files: the old, deprecated name of file_sources; it still imports, with a warning.)
"""

from .image_set import ImageSet, image_set
from .layer_matrix import LayerMatrix, layer_matrix
from .rdm_view import RDMView
from .run import sweep
from .sources import (
    FeatureSource,
    ModelSource,
    ModuleSource,
    ONNXSource,
    RDMSource,
    Source,
    resolve_sources,
)
from .store import Store, open_store
from .text_set import TextSet, text_set

__all__ = [
    "FeatureSource",
    "ImageSet",
    "LayerMatrix",
    "ModelSource",
    "ModuleSource",
    "ONNXSource",
    "RDMSource",
    "RDMView",
    "Source",
    "Store",
    "TextSet",
    "image_set",
    "layer_matrix",
    "open_store",
    "resolve_sources",
    "sweep",
    "text_set",
]
