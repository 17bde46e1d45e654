"""`fastrsa rdms`: RDMs of feature arrays, saved under the same keys."""

from __future__ import annotations

from .. import io
from ..rdms import rdms
from ..reference import METRICS
from ._common import add_backend, add_command, check_output, writing

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = add_command(
        subparsers, "rdms", "RDMs of feature arrays (.npy: (..., n, d); .npz: one per label)"
    )
    p.add_argument("features", help=".npy or .npz of features (..., n images, d features)")
    p.add_argument("--out", required=True, help="output .npz: condensed RDMs under the same keys")
    p.add_argument("--metric", default="correlation", choices=METRICS)
    add_backend(p)
    p.set_defaults(func=run)


def run(args) -> None:
    check_output(args.out, "--out")
    arrays = io.load_arrays(args.features, "features")
    out = {}
    for key, arr in arrays.items():
        try:
            out[key] = rdms(arr, metric=args.metric, backend=args.backend)
        except (ValueError, TypeError) as err:
            where = f"array {key!r} of {args.features}" if len(arrays) > 1 else str(args.features)
            raise type(err)(f"features: {where}: {err}") from None
    with writing("--out", args.out):
        path = io.save_npz(args.out, **out)
    shapes = ", ".join(f"{k} {v.shape}" for k, v in out.items())
    print(f"wrote {len(out)} RDM array(s) to {path}: {shapes}")
