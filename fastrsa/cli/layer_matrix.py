"""`fastrsa layer-matrix`: every (source, layer) of a sweep store against every (source, layer),
one matrix across architectures (--between A B: the layers of A against those of B, Kornblith's
figure); --out .json/.npz, --plot, --json on stdout."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .._memory import parse_memory
from ..plots import figure_format, plot_layer_matrix
from ..reference import METHODS
from ..sweeps.layer_matrix import LAYER_MATRIX_FILES, LayerMatrix, layer_matrix
from ._common import (
    STORE_HELP,
    add_backend,
    add_command,
    add_measure,
    check_output,
    print_matrix,
    store_measure,
    writing,
)

__all__ = ["register", "run"]

MAX_TABLE = 30  # entries (or layers of each --between source) printed as a table


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "layer-matrix",
        "every (source, layer) of a sweep store against every (source, layer): one matrix",
    )
    p.add_argument("store", help=STORE_HELP)
    p.add_argument("--method", default="spearman", choices=METHODS)
    add_measure(p)
    p.add_argument(
        "--sources",
        nargs="+",
        metavar="LABEL",
        help="only these source labels (names or glob patterns; default all)",
    )
    p.add_argument(
        "--layers",
        nargs="+",
        metavar="LAYER",
        help="only these layers (names or glob patterns, e.g. 'blocks.*'; default all)",
    )
    p.add_argument(
        "--between",
        nargs=2,
        metavar=("A", "B"),
        help="the layers of source A against those of source B (table and --plot); the matrix "
        "holds only A and B unless --sources is given",
    )
    p.add_argument("--out", metavar="FILE", help="write the matrix to this .json or .npz")
    p.add_argument("--plot", metavar="FILE", help="save its heatmap (.png, .pdf, .svg, ...)")
    p.add_argument(
        "--memory", help="memory budget, e.g. 1GB (default: FASTRSA_MEMORY, else 1/4 of RAM)"
    )
    add_backend(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="print the matrix as JSON (method, store, n, entries, values) instead of a table",
    )
    p.set_defaults(func=run)


def _check_outputs(args) -> None:
    """--out and --plot refused before any work when they cannot be written."""
    if args.out:
        check_output(args.out, "--out")
        if Path(args.out).suffix.lower() not in LAYER_MATRIX_FILES:
            raise ValueError(f"--out: {args.out} must end in .json or .npz")
    if args.plot:
        check_output(args.plot, "--plot")
        figure_format(args.plot, "--plot")


def run(args) -> None:
    _check_outputs(args)
    memory = None if args.memory is None else parse_memory(args.memory, "--memory")
    labels = args.sources
    if args.between and labels is None:
        labels = list(args.between)
    try:
        matrix = layer_matrix(
            args.store,
            args.method,
            labels,
            args.layers,
            memory=memory,
            backend=args.backend,
            measure=store_measure(args, True),
        )
    except ValueError as err:
        raise _named(err) from None
    if args.between:
        try:
            block = matrix.between(*args.between)
        except ValueError as err:
            raise ValueError(f"--between: {err}") from None
    # Files first, then stdout: a closed pipe loses no file.
    written = []
    if args.out:
        with writing("--out", args.out):
            written.append(matrix.save(args.out))
    if args.plot:
        with writing("--plot", args.plot):
            written.append(plot_layer_matrix(matrix, args.plot, labels=args.between))
    if args.json:
        json.dump(matrix.to_json(), sys.stdout, indent=2)
        print()
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
        return
    if args.between:
        layers_a, layers_b, values = block
        a, b = args.between
        print(f"{matrix.method}: layers of {a} (rows) against layers of {b} (columns)")
        if max(len(layers_a), len(layers_b)) <= MAX_TABLE:
            print_matrix(layers_a, layers_b, values)
        else:
            print(f"{len(layers_a)} x {len(layers_b)} layers: too many to print (--out, --plot)")
    else:
        _print(matrix)
    for path in written:
        print(f"wrote {path}")


def _named(err: ValueError) -> ValueError:
    """The error with the argument it names (labels, layers) given as the option's name."""
    text = str(err)
    for name, option in (("labels:", "--sources:"), ("layers:", "--layers:")):
        if text.startswith(name):
            text = option + text[len(name) :]
    return type(err)(text)


def _print(matrix: LayerMatrix) -> None:
    """The table (up to MAX_TABLE entries, named label:layer) or a summary line."""
    k = len(matrix.entries)
    sources, layers = len(matrix.labels), len({layer for _, layer in matrix.entries})
    print(
        f"{matrix.method} similarity of {k} (source, layer) entries: {sources} sources, "
        f"{layers} layer names, n={matrix.n} images"
    )
    if k <= MAX_TABLE:
        names = [f"{label}:{layer}" for label, layer in matrix.entries]
        print_matrix(names, names, matrix.values)
    else:
        print("too many entries to print: write them with --out or --json, draw them with --plot")
