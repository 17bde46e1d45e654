"""`fastrsa compare`: all-pairs similarity of RDMs (files or sweep stores), with Mantel-test
p-values under --permutations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from .._checks import draw_seed, one_line
from ..compare import compare
from ..reference import METHODS, UNCORRECTED
from ..stats import permutation_test
from ._common import (
    LAYER_HELP,
    RDM_FILES,
    STORE_HELP,
    add_backend,
    add_command,
    add_measure,
    check_output,
    checked_seed,
    load_rdms,
    print_matrix,
    store_compare,
    store_layer,
    store_measure,
    user_labels,
    writing,
)

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = add_command(
        subparsers, "compare", "all-pairs similarity of RDMs from .npy/.npz files", True
    )
    p.add_argument("rdms", nargs="?", help=RDM_FILES + " (or --store)")
    p.add_argument(
        "--with", dest="other", help="compare against these RDMs (same kinds of file) instead"
    )
    p.add_argument("--store", help=STORE_HELP + " instead of an RDM file")
    p.add_argument("--layer", help=LAYER_HELP.format("--store"))
    p.add_argument("--with-store", help="compare against the RDMs of this sweep store instead")
    p.add_argument("--with-layer", help=LAYER_HELP.format("--with-store"))
    p.add_argument("--method", default="spearman", choices=METHODS)
    add_measure(p)
    add_backend(p)
    p.add_argument("--out", help="save the matrix: .json, or .npz (similarity, labels_a, labels_b)")
    p.add_argument(
        "--permutations",
        type=int,
        metavar="K",
        help="also p-values of every pair: the Mantel test with K permutations of the images",
    )
    p.add_argument(
        "--seed",
        type=int,
        help="the permutations' seed, with --permutations only (default: drawn, reported)",
    )
    p.set_defaults(func=run)


def run(args) -> None:
    if args.out:
        check_output(args.out, "--out")
    seed = checked_seed(args, "--permutations")
    _check_options(args)
    p_values = None
    if args.permutations is None:
        labels_a, labels_b, sim = _compared(args)
    else:
        labels_a, labels_b, sim, p_values, seed = _tested(args, seed)
    if args.out:  # written before anything is printed: a closed stdout cannot lose it
        out = Path(args.out)
        extra: dict[str, Any] = {}
        if p_values is not None:
            extra = {"p_values": p_values, "permutations": args.permutations, "seed": seed}
        with writing("--out", out):
            if out.suffix == ".json":
                io.save_json(
                    out,
                    {
                        "method": args.method,
                        "labels_a": labels_a,
                        "labels_b": labels_b,
                        "similarity": sim.tolist(),
                        **{k: v.tolist() if hasattr(v, "tolist") else v for k, v in extra.items()},
                    },
                )
            else:
                io.save_npz(
                    out,
                    similarity=sim,
                    labels_a=np.array(labels_a),
                    labels_b=np.array(labels_b),
                    **{k: np.asarray(v) for k, v in extra.items()},
                )
    print_matrix(labels_a, labels_b, sim)
    if p_values is not None:
        print(f"p-values ({args.permutations} permutations of the images, seed {seed}):")
        print_matrix(labels_a, labels_b, p_values)
    if args.out:
        print(f"wrote {Path(args.out)}")


def _check_options(args) -> None:
    """Refuse the combinations of `fastrsa compare`'s sources that mean nothing."""
    if args.rdms and args.store:
        raise ValueError("give an RDM file or --store, not both")
    if not args.rdms and not args.store:
        raise ValueError("give an RDM file to compare, or --store STORE")
    if args.other and args.with_store:
        raise ValueError("give --with or --with-store, not both")
    if args.layer is not None and not args.store:
        raise ValueError("--layer: names a layer of --store; there is no --store")
    if args.with_layer is not None and not args.with_store:
        raise ValueError("--with-layer: names a layer of --with-store; there is no --with-store")
    spec = store_measure(args, bool(args.store))
    if not spec.is_rsa and (args.other or args.with_store or args.permutations):
        raise ValueError(
            f"--measure {args.measure}: reads the all-pairs matrix a sweep stored for --store; "
            "--with, --with-store and --permutations compare RDMs (rsa)"
        )


def _tested(args, seed: int | None):
    """(labels_a, labels_b, similarity (A, B), p-values (A, B), seed) of `compare
    --permutations K`: the Mantel test of fastrsa.stats.permutation_test, whose observed
    similarity is the matrix (compare is not run a second time). Without --seed a seed is drawn
    (fastrsa._checks.draw_seed) and reported, so the run can be repeated exactly."""
    if args.store or args.with_store:
        raise ValueError("--permutations: reads RDM files (an RDM file and --with), not stores")
    labels_a, a = load_rdms(args.rdms, "rdms", args)
    labels_b, b = labels_a, None
    if args.other:
        labels_b, b = load_rdms(args.other, "--with", args)
    seed = draw_seed() if seed is None else seed
    try:
        result = permutation_test(
            a, b, method=args.method, n_perm=args.permutations, seed=seed, backend=args.backend
        )
    except (ValueError, TypeError) as err:
        raise user_labels(err, labels_a, labels_b) from None
    # observed is compare(a, b)'s matrix in float64; printed and saved in compare's own dtype:
    # float32 when the RDMs are (float16/float32), float64 otherwise and for rho-a and tau-a
    given = [a.dtype] if b is None else [a.dtype, b.dtype]
    dtype = np.float64 if args.method in UNCORRECTED else np.result_type(np.float32, *given)
    sim = np.asarray(result.observed).astype(dtype)
    return labels_a, labels_b, sim, np.asarray(result.p), seed


def _compared(args) -> tuple[list[str], list[str], np.ndarray]:
    """(labels_a, labels_b, similarity (A, B)) of `fastrsa compare`: an RDM file or --store
    against itself, --with an RDM file or --with-store another store (options checked by
    _check_options)."""
    if args.store:
        store, layer = store_layer(args.store, args.layer, "--store", "--layer")
        labels_a = store.rdms(layer).labels
        if args.other:
            labels_b, rows = load_rdms(args.other, "--with", args)
            sim = store_compare(store, layer, rows, "--with", args).T
        elif args.with_store:
            other, other_layer = store_layer(
                args.with_store, args.with_layer, "--with-store", "--with-layer"
            )
            labels_b = other.rdms(other_layer).labels
            sim = store_compare(store, layer, other, "--with-store", args, other_layer).T
        else:
            try:
                spec = store_measure(args, True)
                opts = {} if spec.is_rsa else {"measure": spec.measure, **spec.options}
                labels_b, sim = labels_a, store.similarity(layer, args.method, **opts)
            except ValueError as err:
                raise ValueError(f"--store: {one_line(err)}") from None
        return labels_a, labels_b, np.ascontiguousarray(sim)
    labels_a, a = load_rdms(args.rdms, "rdms", args)
    if args.with_store:
        other, other_layer = store_layer(
            args.with_store, args.with_layer, "--with-store", "--with-layer"
        )
        sim = store_compare(other, other_layer, a, "rdms", args)
        return labels_a, other.rdms(other_layer).labels, sim
    labels_b, b = labels_a, None
    if args.other:
        labels_b, b = load_rdms(args.other, "--with", args)
    try:
        matrix = compare(a, b, method=args.method, backend=args.backend)
    except (ValueError, TypeError) as err:
        raise user_labels(err, labels_a, labels_b) from None
    return labels_a, labels_b, np.asarray(matrix)
