"""Figures: the similarity heatmap ordered by the dendrogram, with the dendrogram beside it."""

from __future__ import annotations

import os
from pathlib import Path

from . import io


def plot_taxonomy(result, path: str | os.PathLike, title: str | None = None) -> Path:
    """Save the heatmap (rows and columns in dendrogram order) and the dendrogram to `path`
    (.png or .svg, by its suffix; written atomically). Needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: `pip install matplotlib`") from None
    from scipy.cluster import hierarchy

    path = Path(path)
    labels = result.labels
    order = result.order
    k = len(labels)
    size = max(6.0, 0.35 * k + 3)
    fig, (ax_tree, ax_map) = plt.subplots(
        1, 2, figsize=(size * 1.45, size), gridspec_kw={"width_ratios": [1, 3.2]}
    )
    hierarchy.dendrogram(
        result.linkage,
        orientation="left",
        ax=ax_tree,
        labels=labels,
        no_labels=True,
        color_threshold=None,
        above_threshold_color="0.3",
    )
    ax_tree.invert_yaxis()  # top-to-bottom in the same order as the heatmap rows
    ax_tree.set_xlabel("1 - similarity")
    ax_tree.set_yticks([])
    for side in ("top", "right", "left"):
        ax_tree.spines[side].set_visible(False)
    sim = result.similarity[order][:, order]
    image = ax_map.imshow(sim, cmap="viridis", vmin=min(0.0, sim.min()), vmax=1.0)
    ax_map.set_xticks(range(k), [labels[i] for i in order], rotation=90, fontsize=8)
    ax_map.set_yticks(range(k), [labels[i] for i in order], fontsize=8)
    fig.colorbar(image, ax=ax_map, fraction=0.046, pad=0.04, label="similarity")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        io.atomic_write(path, lambda f: fig.savefig(f, format=path.suffix.lstrip("."), dpi=150))
    finally:
        plt.close(fig)
    return path
