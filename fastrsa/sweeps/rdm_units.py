"""The first stage of a sweep: one unit per source, one pass of its encoder (or one read of its
file) giving every layer it still lacks: the RDM and its ranks, the features when kept, and the
states of the measures beyond RSA (fastrsa.sweeps.measure_states)."""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..compare import rank_transform
from .measure_states import FeatureFiles, state_marker, write_states
from .spill import spill_dir
from .storage import writing
from .store import Store, open_store
from .store_arrays import zarr_module
from .store_index import rank_dtype

__all__ = ["ENCODER_KINDS", "RDMUnit"]

# their layers' RDMs are float32 (the encoders' features)
ENCODER_KINDS = ("onnx", "module", "model")


@dataclass
class RDMUnit:
    """One source's RDMs for the layers it still lacks: one pass of the encoder (or one read of
    the file) for all of them, each layer's RDM written with its ranks, then marked done; and,
    for the layers in `states`, the states of those kinds made from the layer's features and
    marked done (`rdm_done`: layers whose RDM is already stored, passed again only for states).
    """

    store_path: str
    source: Any  # a fastrsa.sweeps.sources.Source
    items: list[tuple[str, int, str]]  # (layer, row, key)
    images: Any = None  # ImageSet, TextSet or None
    metric: str = "correlation"
    backend: str = "auto"
    memory: int = 1 << 30
    batch_size: int = 64
    device: str = "auto"
    keep_features: bool = False
    gpu: bool = False
    states: dict[str, list[str]] = field(default_factory=dict)  # {layer: [state kind]}
    rdm_done: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"rdms {self.source.label}"

    def _keeper(self, store: Store, layers: set[str]):
        zarr = zarr_module()
        from zarr.codecs import Crc32cCodec

        arrays: dict[str, Any] = {}

        def keep(layer: str, start: int, rows: np.ndarray) -> None:
            if layer not in layers:
                return
            if layer not in arrays:
                info = store.layer_info(layer)
                row = dict((lay, r) for lay, r, _ in self.items)[layer]
                arrays[layer] = zarr.create_array(
                    store=store.path,
                    name=f"features/{info['id']}/{row}",
                    shape=(store.n, rows.shape[1]),
                    chunks=(min(store.n, self.batch_size), rows.shape[1]),
                    dtype=rows.dtype,
                    compressors=[Crc32cCodec()],  # damage is found (verify, reads)
                    overwrite=True,
                )
            arrays[layer][start : start + len(rows)] = rows

        return keep

    def run(self) -> dict:
        store = open_store(self.store_path)
        where = {layer: (row, key) for layer, row, key in self.items}
        layers = [layer for layer, _, _ in self.items]
        done = 0
        with contextlib.ExitStack() as stack:
            stack.enter_context(writing(store.path))
            tmp = stack.enter_context(tempfile.TemporaryDirectory(dir=spill_dir()))
            grams = [lay for lay in layers if set(self.states.get(lay, [])) - {"features"}]
            files = FeatureFiles(tmp, store.n, grams)
            keepers = [files.keep] if files.layers else []
            kept = {lay for lay in layers if self.keep_features or
                    "features" in self.states.get(lay, [])}  # fmt: skip
            if kept:
                keepers.append(self._keeper(store, kept))

            def keep(layer: str, start: int, rows: np.ndarray) -> None:
                for k in keepers:
                    k(layer, start, rows)

            stack.callback(files.close)
            for layer, rdm in self.source.rdms(
                layers,
                self.images,
                self.metric,
                self.backend,
                self.memory,
                tmp,
                batch_size=self.batch_size,
                device=self.device,
                keep=keep if keepers else None,
            ):
                row, key = where[layer]
                info = store.layer_info(layer)
                kinds = self.states.get(layer, [])  # first: the RDM's marker says "all done"
                if layer in files.layers:
                    who = f"{self.source.who()}, layer {layer!r}"
                    write_states(store, layer, row, key, files, kinds, self.memory, who)
                    files.drop(layer)
                if "features" in kinds:
                    store.mark(state_marker(store, layer, "features", key))
                if layer in self.rdm_done:
                    continue
                rdm = np.asarray(rdm, dtype=info["dtype"])
                ranks = np.asarray(rank_transform(rdm, backend="numpy"), dtype=rank_dtype(store.m))
                store.array("rdms", layer)[row] = rdm
                store.array("ranks", layer)[row] = ranks
                store.mark(f"done/rdm/{info['id']}/{key}")
                done += 1
        return {"computed": done}
