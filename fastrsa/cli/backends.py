"""`fastrsa backends`: the compute backends and whether they can run here."""

from __future__ import annotations

from .._backend import BACKENDS, available_backends
from ._common import add_command

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = add_command(
        subparsers, "backends", "list the compute backends and whether they can run here"
    )
    p.set_defaults(func=run)


def run(args) -> None:
    usable = available_backends()
    for name in BACKENDS:
        print(f"{name:10} {'available' if name in usable else 'not available'}")
