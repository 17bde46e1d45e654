"""`fastrsa demo`: the embedded default, a miniature Taskonomy end to end (or --real-data)."""

from __future__ import annotations

from .._checks import check_count
from ..demo import DEMO_LAYERS, check_demo, format_demo, run_demo, run_real_data
from ..taxonomy import TAXONOMY_FILES
from ._common import add_backend, add_command, check_output, note, reading

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = add_command(
        subparsers, "demo", "the embedded default: a miniature Taskonomy, end to end", True
    )
    p.add_argument("--images", type=int, default=300, help="generated scenes (default 300)")
    p.add_argument("--layer", default="block4", choices=DEMO_LAYERS)
    p.add_argument("--clusters", type=int, help="flat clusters (default 3; 4 with --real-data)")
    add_backend(p)
    p.add_argument("--no-reference", action="store_true", help="skip the (slow) naive reference")
    p.add_argument("--out", default="fastrsa-demo", help="output folder (default fastrsa-demo)")
    p.add_argument(
        "--real-data", metavar="DIR", help="instead: the taxonomy of every RDM .npz in DIR"
    )
    p.set_defaults(func=run)


def run(args) -> None:
    # the numbers first, named by their flags (and --clusters 0 is refused, not the default)
    if args.real_data:
        clusters = 4 if args.clusters is None else check_count(args.clusters, "--clusters")
    else:
        clusters = 3 if args.clusters is None else args.clusters
        check_demo(args.images, clusters, args.layer, ("--images", "--clusters", "--layer"))
    check_output(args.out, "--out", "folder", TAXONOMY_FILES + ("demo.json",))
    if args.real_data:
        print(
            run_real_data(
                args.real_data,
                n_clusters=clusters,
                out_dir=args.out,
                reading=reading(args),
                note=note,
            )
        )
        return
    result = run_demo(
        n_images=args.images,
        layer=args.layer,
        n_clusters=clusters,
        backend=args.backend,
        out_dir=args.out,
        with_reference=not args.no_reference,
    )
    print(format_demo(result))
