"""`fastrsa diff`: compare two saved results; exit 1 when they differ."""

from __future__ import annotations

from ..diff import DEFAULT_IGNORE, diff_results
from ._common import add_command

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = add_command(subparsers, "diff", "compare two saved results; exit 1 when they differ")
    p.add_argument("old", help=".npy, .npz or .json result")
    p.add_argument("new", help="the same kind of file")
    p.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance (default 1e-6)")
    p.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0)")
    p.add_argument("--ignore", nargs="+", help="more keys to skip (metadata and timings are)")
    p.set_defaults(func=run)


def run(args) -> int:
    ignore = tuple(DEFAULT_IGNORE) + tuple(args.ignore or ())
    report = diff_results(args.old, args.new, atol=args.atol, rtol=args.rtol, ignore=ignore)
    print(report.text())
    return 0 if report.equal else 1
