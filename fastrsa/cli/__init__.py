"""fastrsa: fast Representational Similarity Analysis of deep networks.

The `fastrsa` command: parses arguments and calls the API. One module per command, each with
`register(subparsers)` (its arguments, beside its code) and `run(args)`; what several commands
share (options, reading RDM sources, output helpers) is in `_common`.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from .._checks import one_line
from ..errors import is_user_error
from . import (
    backends,
    compare,
    demo,
    diff,
    evaluate,
    export_taskonomy,
    features,
    layer_matrix,
    layers,
    rank,
    rdms,
    sweep,
    taxonomy,
)
from ._common import DEBUG_HELP, stdout_closed

__all__ = ["COMMANDS", "build_parser", "main"]

# The commands, in the order `fastrsa --help` lists them
COMMANDS = (
    demo,
    rdms,
    compare,
    export_taskonomy,
    features,
    layers,
    taxonomy,
    rank,
    evaluate,
    sweep,
    layer_matrix,
    diff,
    backends,
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of `fastrsa`: --version, --debug and one subcommand per module of COMMANDS."""
    parser = argparse.ArgumentParser(prog="fastrsa", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"fastrsa {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code: 0, 1 (`diff`: the results differ), 2 with one line
    on stderr for an error the user caused (fastrsa.errors.is_user_error: bad input, a bad
    argument, an unusable path, a missing optional package or GPU), or 141, quietly, when
    stdout was closed by its reader (a pipe into `head`; every file was written first). Any
    other exception is a bug: it propagates with its traceback (exit 1). With --debug every
    error does."""
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's flush at exit
    except BrokenPipeError:
        return stdout_closed()
    except Exception as err:
        if getattr(args, "debug", False) or not is_user_error(err):
            raise
        print(f"fastrsa {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    return code or 0
