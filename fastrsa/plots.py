"""Figures: the similarity heatmap ordered by the dendrogram, with the dendrogram beside it.

Figures are `matplotlib.figure.Figure` objects made directly: no pyplot, no `matplotlib.use`, so
drawing one changes neither the caller's backend nor pyplot's list of open figures.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import io
from .errors import MissingPackage


def _figure_class():
    """matplotlib.figure.Figure, or MissingPackage saying how to install matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingPackage("plots need matplotlib: `pip install matplotlib`") from None
    return Figure


def _formats() -> set[str]:
    from matplotlib.backend_bases import FigureCanvasBase

    return set(FigureCanvasBase.get_supported_filetypes())


@contextlib.contextmanager
def taxonomy_figure_writers(
    result, formats: tuple[str, ...] = ("png", "svg"), title: str | None = None
) -> Iterator[dict[str, Callable[[Any], None]]]:
    """Context manager: {format: write(binary file)}, the heatmap + dendrogram of `result` drawn
    once and saved in each format (for io.write_set); the figure is released on leaving.
    ValueError for a result whose similarity is not finite or whose parts disagree."""
    figure_class = _figure_class()
    supported = sorted(_formats())
    for fmt in formats:
        if fmt not in supported:
            raise ValueError(f"figure format must be one of {supported}; got {fmt!r}")
    fig = _figure(figure_class, result, title)
    try:
        yield {fmt: functools.partial(fig.savefig, format=fmt, dpi=150) for fmt in formats}
    finally:
        fig.clear()  # not registered with pyplot: nothing else holds it


def _figure(figure_class, result, title: str | None):
    from scipy.cluster import hierarchy

    labels = list(result.labels)
    order = list(result.order)
    k = len(labels)
    sim = np.asarray(result.similarity, dtype=np.float64)
    if sim.shape != (k, k) or sorted(order) != list(range(k)):
        raise ValueError(
            f"plot: the taxonomy is inconsistent ({k} labels, similarity {sim.shape}, "
            f"order {order})"
        )
    if not np.isfinite(sim).all():
        raise ValueError("plot: the taxonomy's similarity holds NaN or Inf; nothing to draw")
    size = max(6.0, 0.35 * k + 3)
    fig = figure_class(figsize=(size * 1.45, size))
    ax_tree, ax_map = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 3.2]})
    try:
        # The tree's segments from scipy (no_plot: scipy's own drawing would import pyplot),
        # drawn as "left" dendrograms are: distance on x, growing leftwards; leaf i at y = 10i + 5,
        # top to bottom in the same order as the heatmap rows.
        tree = hierarchy.dendrogram(result.linkage, no_plot=True)
        for xs, ys in zip(tree["icoord"], tree["dcoord"], strict=True):
            ax_tree.plot(ys, xs, color="0.3", linewidth=1.0)
        _support_labels(ax_tree, result, tree["leaves"])
        top = max((max(ys) for ys in tree["dcoord"]), default=0.0) or 1.0
        ax_tree.set_xlim(top * 1.05, 0.0)
        ax_tree.set_ylim(10.0 * k, 0.0)
        ax_tree.set_xlabel("1 - similarity")
        ax_tree.set_yticks([])
        for side in ("top", "right", "left"):
            ax_tree.spines[side].set_visible(False)
        sim = sim[order][:, order]
        image = ax_map.imshow(sim, cmap="viridis", vmin=min(0.0, sim.min()), vmax=1.0)
        ax_map.set_xticks(range(k), [labels[i] for i in order], rotation=90, fontsize=8)
        ax_map.set_yticks(range(k), [labels[i] for i in order], fontsize=8)
        fig.colorbar(image, ax=ax_map, fraction=0.046, pad=0.04, label="similarity")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    except BaseException:
        fig.clear()
        raise
    return fig


def _support_labels(ax, result, leaves: list[int]) -> None:
    """Bootstrap support (taxonomy(..., n_boot > 0)) as small text at each internal node but
    the root (always 1): node i of the linkage sits at its merge height, halfway between its
    children (scipy's dendrogram places leaves at 10 * position + 5). Nothing without support."""
    support = getattr(result, "support", None)
    if support is None:
        return
    tree = np.asarray(result.linkage, dtype=np.float64)
    k = tree.shape[0] + 1
    support = np.asarray(support, dtype=np.float64)
    if support.shape != (k - 1,):
        raise ValueError(f"plot: the taxonomy has {support.shape} support values for {k} labels")
    pos = np.empty(2 * k - 1)
    pos[np.asarray(leaves, dtype=np.int64)] = 10.0 * np.arange(k) + 5.0
    for i, (a, b, height, _) in enumerate(tree):
        pos[k + i] = 0.5 * (pos[int(a)] + pos[int(b)])
        if i < k - 2:
            ax.annotate(
                f"{support[i]:.2f}",
                (height, pos[k + i]),
                xytext=(-2, 2),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=6,
                color="tab:red",
            )


def plot_taxonomy(result, path: str | os.PathLike, title: str | None = None) -> Path:
    """Save the heatmap (rows and columns in dendrogram order) and the dendrogram to `path`
    (.png, .svg, .pdf, ...: any format matplotlib writes, by its suffix; written atomically).
    Needs matplotlib."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    _figure_class()
    if fmt not in _formats():
        raise ValueError(f"plot: {path} must end in one of {', '.join(sorted(_formats()))}")
    with taxonomy_figure_writers(result, (fmt,), title) as writers:
        io.atomic_write(path, writers[fmt])
    return path
