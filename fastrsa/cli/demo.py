"""`fastrsa demo`: the embedded default, a miniature Taskonomy end to end (or --real-data)."""

from __future__ import annotations

from ..demo import format_demo, run_demo, run_real_data
from ..taxonomy import TAXONOMY_FILES
from ._common import add_backend, add_command, check_output, note, reading

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = add_command(
        subparsers, "demo", "the embedded default: a miniature Taskonomy, end to end", True
    )
    p.add_argument("--images", type=int, default=300, help="generated scenes (default 300)")
    p.add_argument("--layer", default="block4", choices=("block4", "compressed"))
    p.add_argument("--clusters", type=int, help="flat clusters (default 3; 4 with --real-data)")
    add_backend(p)
    p.add_argument("--no-reference", action="store_true", help="skip the (slow) naive reference")
    p.add_argument("--out", default="fastrsa-demo", help="output folder (default fastrsa-demo)")
    p.add_argument(
        "--real-data", metavar="DIR", help="instead: the taxonomy of every RDM .npz in DIR"
    )
    p.set_defaults(func=run)


def run(args) -> None:
    check_output(args.out, "--out", "folder", TAXONOMY_FILES + ("demo.json",))
    if args.real_data:
        print(
            run_real_data(
                args.real_data,
                n_clusters=args.clusters or 4,
                out_dir=args.out,
                reading=reading(args),
                note=note,
            )
        )
        return
    result = run_demo(
        n_images=args.images,
        layer=args.layer,
        n_clusters=args.clusters or 3,
        backend=args.backend,
        out_dir=args.out,
        with_reference=not args.no_reference,
    )
    print(format_demo(result))
