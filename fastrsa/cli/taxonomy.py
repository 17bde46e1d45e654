"""`fastrsa taxonomy`: similarity of models' RDMs -> clustering, heatmap, JSON (RDM or feature
files, ONNX encoders on images, or a sweep store)."""

from __future__ import annotations

from ..reference import METHODS
from ..taxonomy import TAXONOMY_FILES, taxonomy
from ._common import (
    FEATURE_FILES,
    RDM_FILES,
    STORE_HELP,
    add_backend,
    add_bootstrap,
    add_command,
    add_measure,
    check_output,
    checked_seed,
    labelled_rdms,
    one_source,
    print_matrix,
    store_measure,
    store_taxonomy,
    writing,
)

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = add_command(
        subparsers, "taxonomy", "similarity of models' RDMs -> clustering, heatmap, JSON", True
    )
    p.add_argument("--rdms", help=RDM_FILES)
    p.add_argument("--features", help=FEATURE_FILES)
    p.add_argument("--models", nargs="+", help="ONNX encoders (with --images)")
    p.add_argument("--images", help="image folder (with --models)")
    p.add_argument("--store", help=STORE_HELP + ": its similarity, computed by the sweep")
    p.add_argument(
        "--layer",
        help="layer of --models (default compressed), or of --store (default: its only layer)",
    )
    p.add_argument("--clusters", type=int, help="number of flat clusters")
    p.add_argument("--method", default="spearman", choices=METHODS)
    add_measure(p)
    p.add_argument("--linkage", default="average")
    add_bootstrap(p, "bootstrap support of each cluster (RDM or feature files)")
    add_backend(p)
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def run(args) -> None:
    check_output(args.out, "--out", "folder", TAXONOMY_FILES)
    seed = checked_seed(args, "--bootstrap")
    one_source(args)
    store_measure(args, bool(args.store))
    if args.store:
        if args.bootstrap:
            raise ValueError("--bootstrap: resamples images of RDM or feature files, not --store")
        result = store_taxonomy(args, args.linkage, args.clusters)
    else:
        labels, rows = labelled_rdms(args)
        result = taxonomy(
            rows,
            labels,
            method=args.method,
            linkage=args.linkage,
            n_clusters=args.clusters,
            backend=args.backend,
            n_boot=args.bootstrap,
            seed=seed,
        )
    with writing("--out", args.out):
        path = result.save(args.out)
    print_matrix(result.labels, result.labels, result.similarity)
    if result.clusters:
        groups = result.groups()
        for cid in sorted(groups):
            print(f"cluster {cid}: {', '.join(groups[cid])}")
    if result.support is not None and result.support_clusters is not None:
        print(f"bootstrap support ({result.n_boot} resamples of the images, seed {result.seed}):")
        for members, value in zip(result.support_clusters, result.support, strict=True):
            if len(members) < len(result.labels):
                print(f"  {value:.2f}  {', '.join(members)}")
    print(f"wrote {path} and taxonomy.npz, taxonomy.png, taxonomy.svg in {path.parent}")
