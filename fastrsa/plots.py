"""Figures: the similarity heatmap ordered by the dendrogram, with the dendrogram beside it
(`plot_taxonomy`), the bar chart of a transfer ranking with its bootstrap intervals
(`plot_ranking`, the paper's Figure 8 with uncertainty), and the layer-by-layer similarity of a
sweep's sources (`plot_layer_matrix`: the whole matrix, or two networks as Kornblith et al.).

Figures are `matplotlib.figure.Figure` objects made directly: no pyplot, no `matplotlib.use`, so
drawing one changes neither the caller's backend nor pyplot's list of open figures.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import io
from ._checks import check_choice
from .errors import MissingPackage

__all__ = [
    "figure_format",
    "plot_layer_matrix",
    "plot_ranking",
    "plot_taxonomy",
    "taxonomy_figure_writers",
]


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
        check_choice(fmt, supported, "figure format")
    fig = _figure(figure_class, result, title)
    try:
        yield {fmt: functools.partial(fig.savefig, format=fmt, dpi=150) for fmt in formats}
    finally:
        fig.clear()  # not registered with pyplot: nothing else holds it


@contextlib.contextmanager
def _drawing(fig, title: str | None) -> Iterator[None]:
    """Draw into `fig` inside the block; then the title and a tight layout. On any error the
    figure is cleared (it is not registered with pyplot: nothing else would release it)."""
    try:
        yield
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    except BaseException:
        fig.clear()
        raise


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
    with _drawing(fig, title):
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
    fmt = figure_format(path)
    with taxonomy_figure_writers(result, (fmt,), title) as writers:
        io.atomic_write(path, writers[fmt])
    return path


def figure_format(path: str | os.PathLike, name: str = "plot") -> str:
    """The format of a figure file by its suffix ("png", "svg", ...); MissingPackage without
    matplotlib, ValueError naming `name` and the path for a suffix matplotlib does not write."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    _figure_class()
    if fmt not in _formats():
        raise ValueError(f"{name}: {path} must end in one of {', '.join(sorted(_formats()))}")
    return fmt


def plot_ranking(ranking, path: str | os.PathLike, title: str | None = None) -> Path:
    """Save the bar chart of a transfer ranking (fastrsa.transfer.Ranking) to `path` (any format
    matplotlib writes, by its suffix; written atomically): one horizontal bar per source, the
    best at the top, length = its score. With `ranking.confidence` (rank_sources(...,
    n_boot > 0)) each bar has an error bar from the percentile interval [lo, hi] of its score
    (asymmetric: score - lo and hi - score, clipped at 0, since a percentile interval need not
    contain the point score) and P(top-1) written beside it. Needs matplotlib."""
    path = Path(path)
    fmt = figure_format(path)
    fig = _ranking_figure(_figure_class(), ranking, title)
    try:
        io.atomic_write(path, functools.partial(fig.savefig, format=fmt, dpi=150))
    finally:
        fig.clear()  # not registered with pyplot: nothing else holds it
    return path


def _ranking_parts(ranking) -> tuple[list[str], np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(labels, scores (S,), interval (S, 2) or None, P(top-1) (S,) or None) of a Ranking, the
    confidence's rows matched to the ranking's labels; ValueError when they disagree."""
    labels = [str(label) for label in ranking.labels]
    scores = np.asarray(ranking.scores, dtype=np.float64)
    if not labels:
        raise ValueError("plot: the ranking holds no sources; nothing to draw")
    if scores.shape != (len(labels),):
        raise ValueError(f"plot: the ranking has {scores.shape} scores for {len(labels)} labels")
    if not np.isfinite(scores).all():
        raise ValueError("plot: the ranking's scores hold NaN or Inf; nothing to draw")
    conf = getattr(ranking, "confidence", None)
    if conf is None:
        return labels, scores, None, None
    where = {str(label): i for i, label in enumerate(conf.labels)}
    if sorted(where) != sorted(labels):
        raise ValueError(
            f"plot: the ranking's confidence is for sources {sorted(where)}, its labels are "
            f"{sorted(labels)}"
        )
    take = [where[label] for label in labels]
    interval = np.asarray(conf.interval, dtype=np.float64)
    top1 = np.asarray(conf.top1, dtype=np.float64)
    if interval.shape != (len(labels), 2) or top1.shape != (len(labels),):
        raise ValueError(
            f"plot: the ranking's confidence has intervals {interval.shape} and P(top-1) "
            f"{top1.shape} for {len(labels)} sources"
        )
    if not (np.isfinite(interval).all() and np.isfinite(top1).all()):
        raise ValueError("plot: the ranking's confidence holds NaN or Inf")
    return labels, scores, interval[take], top1[take]


def _ranking_figure(figure_class, ranking, title: str | None):
    labels, scores, interval, top1 = _ranking_parts(ranking)
    s = len(labels)
    fig = figure_class(figsize=(7.0, max(2.5, 0.35 * s + 1.5)))
    ax = fig.subplots()
    with _drawing(fig, title):
        y = np.arange(s)
        xerr = None
        if interval is not None:
            xerr = np.clip(np.stack([scores - interval[:, 0], interval[:, 1] - scores]), 0, None)
        ax.barh(y, scores, xerr=xerr, color="tab:blue", ecolor="0.2", capsize=3)
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_ylim(s - 0.5, -0.5)  # the best source at the top
        ax.axvline(0.0, color="0.5", linewidth=0.8)
        ax.set_xlabel("similarity to the target")
        if interval is not None and top1 is not None:
            right = np.maximum(np.maximum(scores, interval[:, 1]), 0.0)
            for i in range(s):
                ax.annotate(
                    f"P(top-1) {top1[i]:.2f}",
                    (right[i], y[i]),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7,
                )
            low = min(0.0, float(np.min(interval[:, 0])), float(scores.min()))
            high = max(float(right.max()), 1e-12)
            ax.set_xlim(low - 0.05 * (high - low), high + 0.35 * (high - low))
            conf = ranking.confidence
            ax.set_title(
                f"error bars: {conf.level:.0%} percentile interval over {conf.n_boot} resamples",
                fontsize=8,
            )
    return fig


def plot_layer_matrix(
    matrix, path: str | os.PathLike, title: str | None = None, labels: Sequence[str] | None = None
) -> Path:
    """Save the heatmap of a layer matrix (fastrsa.sweeps.LayerMatrix) to `path` (any format
    matplotlib writes, by its suffix; written atomically). Without `labels`: the whole (k, k)
    matrix, layer names on the ticks (up to 120 entries), source labels on the top and right
    axes, lines between sources. With `labels=(a, b)`: Kornblith's figure, the layers of a on
    y (first layer at the bottom) against the layers of b on x. Needs matplotlib."""
    path = Path(path)
    fmt = figure_format(path)
    if labels is not None:
        if isinstance(labels, str) or len(labels) != 2:
            raise ValueError(f"plot: labels must be two source labels (a, b); got {labels!r}")
        fig = _between_figure(_figure_class(), matrix, str(labels[0]), str(labels[1]), title)
    else:
        fig = _layer_figure(_figure_class(), matrix, title)
    try:
        io.atomic_write(path, functools.partial(fig.savefig, format=fmt, dpi=150))
    finally:
        fig.clear()  # not registered with pyplot: nothing else holds it
    return path


_MAX_TICKS = 120  # entries beyond which layer names are left off the ticks


def _finite_values(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.shape != shape or values.size == 0:
        raise ValueError(f"plot: the layer matrix has values {values.shape} for {shape} entries")
    if not np.isfinite(values).all():
        raise ValueError("plot: the layer matrix holds NaN or Inf; nothing to draw")
    return values


def _layer_figure(figure_class, matrix, title: str | None):
    entries = [(str(a), str(b)) for a, b in matrix.entries]
    k = len(entries)
    values = _finite_values(matrix.values, (k, k))
    size = min(14.0, max(6.0, 0.12 * k + 3))
    fig = figure_class(figsize=(size * 1.15, size))
    ax = fig.subplots()
    with _drawing(fig, title):
        image = ax.imshow(values, cmap="viridis", vmin=min(0.0, values.min()), vmax=1.0)
        starts = [i for i in range(k) if i == 0 or entries[i][0] != entries[i - 1][0]]
        for s in starts[1:]:
            ax.axhline(s - 0.5, color="white", linewidth=1.0)
            ax.axvline(s - 0.5, color="white", linewidth=1.0)
        ends = [*starts[1:], k]
        centres = [(s + e - 1) / 2 for s, e in zip(starts, ends, strict=True)]
        names = [entries[s][0] for s in starts]
        fontsize = 8 if k <= 40 else 6
        if k <= _MAX_TICKS:
            layers = [layer for _, layer in entries]
            ax.set_xticks(range(k), layers, rotation=90, fontsize=fontsize)
            ax.set_yticks(range(k), layers, fontsize=fontsize)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        top = ax.secondary_xaxis("top")
        top.set_xticks(centres, names, rotation=90 if len(names) > 6 else 0, fontsize=8)
        right = ax.secondary_yaxis("right")
        right.set_yticks(centres, names, fontsize=8)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.12, label=f"{matrix.method} similarity")
    return fig


def _between_figure(figure_class, matrix, a: str, b: str, title: str | None):
    layers_a, layers_b, block = matrix.between(a, b)
    block = _finite_values(block, (len(layers_a), len(layers_b)))
    ka, kb = block.shape
    width, height = min(14.0, max(5.0, 0.25 * kb + 3)), min(12.0, max(4.0, 0.25 * ka + 2))
    fig = figure_class(figsize=(width, height))
    ax = fig.subplots()
    with _drawing(fig, title):
        image = ax.imshow(
            block, cmap="viridis", vmin=min(0.0, block.min()), vmax=1.0, origin="lower",
            aspect="auto",
        )  # fmt: skip
        if kb <= _MAX_TICKS:
            ax.set_xticks(range(kb), layers_b, rotation=90, fontsize=8 if kb <= 40 else 6)
        if ka <= _MAX_TICKS:
            ax.set_yticks(range(ka), layers_a, fontsize=8 if ka <= 40 else 6)
        ax.set_xlabel(f"layers of {b}")
        ax.set_ylabel(f"layers of {a}")
        fig.colorbar(image, ax=ax, label=f"{matrix.method} similarity")
    return fig
