"""The embedded default job: all-pairs RSA of generated features with planted group structure.

Until real encoders ship with the package, the demo's "models" are random non-linear read-outs of
shared latent factors: models in one group read the same group factor, so their RDMs agree more
with each other than with other groups'. It times fastrsa against the naive reference on the job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import reference
from ._backend import get_backend
from .compare import compare
from .rdms import rdms


def planted_features(
    n_models: int = 12, n_images: int = 500, n_features: int = 512, n_groups: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Features (n_models, n_images, n_features) float32 and each model's group (n_models,).

    Image i has a shared latent and one latent per group (8 dims each); model m of group g
    computes relu((shared + own group latent) @ W_m) + noise, with its own random W_m.
    """
    rng = np.random.default_rng(seed)
    rank = 8
    shared = rng.standard_normal((n_images, rank))
    group_latents = rng.standard_normal((n_groups, n_images, rank))
    groups = np.arange(n_models) % n_groups
    feats = np.empty((n_models, n_images, n_features), dtype=np.float32)
    for m, g in enumerate(groups):
        w = rng.standard_normal((rank, n_features)) / np.sqrt(rank)
        clean = np.maximum((shared + group_latents[g]) @ w, 0.0)
        feats[m] = clean + rng.standard_normal((n_images, n_features))
    return feats, groups


@dataclass
class DemoResult:
    similarity: np.ndarray  # (models, models) Spearman between RDMs
    groups: np.ndarray  # (models,) planted group of each model
    backend: str
    seconds: float  # fastrsa: features -> similarity
    reference_seconds: float | None  # the naive reference on the same job
    max_abs_diff: float | None  # |fastrsa - reference|, elementwise max


def run_demo(
    n_models: int = 12,
    n_images: int = 500,
    n_features: int = 512,
    backend: str = "auto",
    with_reference: bool = True,
    seed: int = 0,
) -> DemoResult:
    """Features -> RDMs -> all-pairs Spearman, timed (after one warm-up on a tiny input)."""
    feats, groups = planted_features(n_models, n_images, n_features, seed=seed)
    name = get_backend(backend).name
    compare(rdms(feats[:2, :5, :3], backend=name), backend=name)  # compile / warm up
    start = time.perf_counter()
    sim = compare(rdms(feats, backend=name), method="spearman", backend=name)
    seconds = time.perf_counter() - start
    ref_seconds = diff = None
    if with_reference:
        start = time.perf_counter()
        ref = reference.compare_ref(reference.rdm_ref(feats), method="spearman")
        ref_seconds = time.perf_counter() - start
        diff = float(np.abs(sim - ref).max())
    return DemoResult(sim, groups, name, seconds, ref_seconds, diff)


def format_demo(result: DemoResult) -> str:
    """A readable report: the similarity table, group contrast and timing."""
    sim, groups = result.similarity, result.groups
    labels = [f"m{i}/g{g}" for i, g in enumerate(groups)]
    lines = [
        "fastrsa demo: generated features with planted structure (not real network features):",
        f"{len(groups)} models in {groups.max() + 1} groups; similarity = Spearman r between"
        " their correlation-distance RDMs",
        "",
        " " * 8 + "".join(f"{lab:>8}" for lab in labels),
    ]
    lines += [
        f"{lab:>8}" + "".join(f"{v:8.3f}" for v in row)
        for lab, row in zip(labels, sim, strict=True)
    ]
    same = groups[:, None] == groups[None, :]
    off = ~np.eye(len(groups), dtype=bool)
    lines += [
        "",
        f"mean similarity within planted groups {sim[same & off].mean():.3f}, "
        f"between groups {sim[~same].mean():.3f}",
        f"fastrsa ({result.backend}): {result.seconds:.3f} s",
    ]
    if result.reference_seconds is not None:
        lines.append(
            f"naive reference (scipy pdist + spearmanr): {result.reference_seconds:.3f} s "
            f"-> {result.reference_seconds / result.seconds:.1f}x faster; "
            f"max |difference| = {result.max_abs_diff:.1e}"
        )
    return "\n".join(lines)
