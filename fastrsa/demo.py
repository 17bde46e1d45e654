"""The embedded default job: a miniature Taskonomy, end to end (Dwivedi & Roig 2019, section 4.2).

Eleven small encoders, one per task of three kinds (2D, 3D, semantic), were trained by
scripts/train_mini_taskonomy.py on generated scenes and ship with fastrsa as ONNX files. The demo
generates scenes none of them saw, runs the encoders (onnxruntime), computes their RDMs, compares
them all pairwise (Spearman), clusters them, and reports how well the clusters follow the task
kinds (adjusted Rand index). `run_real_data(folder)` runs the same taxonomy on real RDMs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import io, reference
from ._backend import get_backend
from ._checks import check_choice, check_count
from .compare import compare
from .features import extract
from .io import load_affinities
from .rdms import rdms
from .scenes import make_scenes
from .support import adjusted_rand_index
from .taxonomy import Taxonomy, taxonomy
from .transfer import TASKONOMY_ALIASES, evaluate_transfer

__all__ = [
    "DEMO_SEED",
    "MODELS",
    "DemoResult",
    "DEMO_LAYERS",
    "check_demo",
    "format_demo",
    "run_demo",
    "run_real_data",
    "shipped_models",
    "task_kinds",
]

MODELS = Path(__file__).parent / "data" / "mini_taskonomy"
DEMO_SEED = 20190616  # scenes for the demo; training used other seeds
DEMO_LAYERS = ("block4", "compressed")  # the shipped encoders' outputs the demo can compare


def shipped_models() -> dict[str, Path]:
    """{task: ONNX path} of the encoders that ship with fastrsa, in training order."""
    record = json.loads((MODELS / "training.json").read_text())
    return {task: MODELS / f"{task}.onnx" for task in record["tasks"]}


def task_kinds() -> dict[str, str]:
    record = json.loads((MODELS / "training.json").read_text())
    return {task: info["kind"] for task, info in record["tasks"].items()}


@dataclass
class DemoResult:
    taxonomy: Taxonomy
    kinds: dict[str, str]  # task -> 2D | 3D | semantic
    ari: float  # adjusted Rand index of the clusters against the task kinds
    backend: str
    seconds: float  # fastrsa: features -> similarity
    reference_seconds: float | None  # the naive reference on the same features
    max_abs_diff: float | None
    out_dir: Path | None


def check_demo(
    n_images: Any,
    n_clusters: Any,
    layer: Any = "block4",
    names: tuple[str, str, str] = ("n_images", "n_clusters", "layer"),
) -> tuple[int, int, str]:
    """(n_images, n_clusters, layer) of `run_demo`, checked before any work: n_images an int >= 3
    (an RDM needs 3 images), n_clusters an int in 1..(the shipped models), layer one of
    DEMO_LAYERS. Errors name `names` (the command's flags: "--images", "--clusters", "--layer")."""
    images_name, clusters_name, layer_name = names
    n_images = check_count(n_images, images_name, 3, " (an RDM needs 3 images)")
    k = len(shipped_models())
    n_clusters = check_count(n_clusters, clusters_name, 1)
    if n_clusters > k:
        raise ValueError(
            f"{clusters_name} must be at most {k} (the demo's models); got {n_clusters}"
        )
    return n_images, n_clusters, check_choice(layer, DEMO_LAYERS, layer_name)


def run_demo(
    n_images: int = 300,
    layer: str = "block4",
    n_clusters: int = 3,
    backend: str = "auto",
    out_dir: str | Path | None = "fastrsa-demo",
    with_reference: bool = True,
    progress: bool = True,
) -> DemoResult:
    """Scenes -> shipped ONNX encoders -> RDMs -> all-pairs Spearman -> taxonomy, with the ARI of
    the clusters against the task kinds. Writes taxonomy.json/.npz/.png/.svg and demo.json.

    layer: "block4" (64 x 4 x 4, the default) or "compressed" (8 x 4 x 4). The compressed code of
    some encoders is all zero after its ReLU for a few scenes, where 1 - Pearson r is undefined
    (fastrsa refuses such rows), so the demo compares block4. n_images (>= 3), n_clusters (1 to
    the 11 models) and layer are checked before any work (`check_demo`).
    """
    n_images, n_clusters, layer = check_demo(n_images, n_clusters, layer)
    models = shipped_models()
    size = json.loads((MODELS / "training.json").read_text())["image_size"]
    images = make_scenes(n_images, size, seed=DEMO_SEED).images
    feats = extract(models, images, layers=[layer], progress=progress).stack(layer)
    name = get_backend(backend).name
    compare(rdms(feats[:2, :5], backend=name), backend=name)  # compile / warm up
    start = time.perf_counter()
    sim = compare(rdms(feats, backend=name), backend=name)
    seconds = time.perf_counter() - start
    ref_seconds = diff = None
    if with_reference:
        start = time.perf_counter()
        ref = reference.compare_ref(reference.rdm_ref(feats))
        ref_seconds = time.perf_counter() - start
        diff = float(np.abs(sim - ref).max())
    labels = list(models)
    result = taxonomy(
        dict(zip(labels, rdms(feats, backend=name), strict=True)),
        n_clusters=n_clusters,
        backend=name,
    )
    kinds = task_kinds()
    clusters = result.clusters
    assert clusters is not None  # n_clusters was given
    ari = adjusted_rand_index([kinds[t] for t in labels], [clusters[t] for t in labels])
    saved = None
    if out_dir is not None:
        saved = Path(out_dir)
        result.save(saved)
        io.save_json(
            saved / "demo.json",
            {
                "n_images": n_images,
                "layer": layer,
                "n_clusters": n_clusters,
                "ari": ari,
                "kinds": kinds,
                "clusters": result.clusters,
                "backend": name,
                "seconds": seconds,
                "reference_seconds": ref_seconds,
            },
        )
    return DemoResult(result, kinds, ari, name, seconds, ref_seconds, diff, saved)


def format_demo(res: DemoResult) -> str:
    tx = res.taxonomy
    order = tx.order
    names = [tx.labels[i] for i in order]
    width = max(map(len, names)) + 1
    lines = [
        "fastrsa demo: a miniature Taskonomy made by fastrsa — 11 small encoders trained on",
        "generated scenes (scripts/train_mini_taskonomy.py), run on scenes they never saw.",
        f"Similarity = Spearman r between their RDMs ({tx.metadata['n_images']} images), rows in "
        "dendrogram order:",
        "",
        " " * width + "".join(f"{n[:7]:>8}" for n in names),
    ]
    for i, n in zip(order, names, strict=True):
        lines.append(f"{n:>{width}}" + "".join(f"{tx.similarity[i, j]:8.2f}" for j in order))
    lines.append("")
    groups = tx.groups()
    for cid in sorted(groups):
        members = ", ".join(f"{t} ({res.kinds[t]})" for t in groups[cid])
        lines.append(f"cluster {cid}: {members}")
    lines.append(
        f"adjusted Rand index of the clusters against the task kinds (2D / 3D / semantic): "
        f"{res.ari:.2f} (1 = the same grouping, 0 = chance)"
    )
    lines.append(f"fastrsa ({res.backend}), features -> similarity: {res.seconds:.3f} s")
    if res.reference_seconds is not None:
        lines.append(
            f"naive reference (scipy pdist + spearmanr): {res.reference_seconds:.3f} s -> "
            f"{res.reference_seconds / res.seconds:.1f}x; max |difference| {res.max_abs_diff:.1e}"
        )
    if res.out_dir is not None:
        lines.append(
            f"wrote taxonomy.json, taxonomy.png, taxonomy.svg and demo.json to {res.out_dir}/"
        )
    return "\n".join(lines)


def run_real_data(
    folder: str | Path,
    n_clusters: int = 4,
    out_dir: str | Path = "fastrsa-demo",
    reading: str | None = None,
    note: Callable[[str], None] | None = None,
) -> str:
    """The same taxonomy on every RDM file (*.npz: one RDM per task, read by io.load_rdms with
    `reading` and `note`) of a folder; with an affinities.json beside them, also the standard
    transfer evaluation. Returns printable text."""
    n_clusters = check_count(n_clusters, "n_clusters")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--real-data: no such folder: {folder}")
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise ValueError(f"--real-data: {folder} holds no .npz files of RDMs")
    affinities = folder / "affinities.json"
    lines = []
    for path in files:
        labels, rows = io.load_rdms(path, "--real-data", reading, note)
        result = taxonomy(rows, labels, n_clusters=n_clusters)
        saved = result.save(Path(out_dir) / path.stem)
        lines.append(
            f"{path.name}: {len(result.labels)} tasks, {result.metadata['n_images']} images"
        )
        groups = result.groups()
        lines += [f"  cluster {c}: {', '.join(groups[c])}" for c in sorted(groups)]
        if affinities.is_file():
            aliases = {k: v for k, v in TASKONOMY_ALIASES.items() if k in result.labels}
            ev = evaluate_transfer(
                result.similarity, result.labels, load_affinities(affinities), aliases
            )
            lines.append(
                f"  transfer: {ev.n_targets} targets, top-1/3/5 = {ev.top1}/{ev.top3}/{ev.top5}, "
                f"mean Pearson {ev.mean_pearson:.3f}, mean Spearman {ev.mean_spearman:.3f}"
            )
        lines.append(f"  wrote {saved.parent}/")
    return "\n".join(lines)
