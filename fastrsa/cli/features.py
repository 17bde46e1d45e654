"""`fastrsa features`: features of ONNX encoders on an image folder, saved as .npz."""

from __future__ import annotations

import sys

from ..features import extract
from ._common import add_command, check_output, writing

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = add_command(subparsers, "features", "features of ONNX encoders on an image folder (.npz)")
    p.add_argument("--models", nargs="+", required=True, help="ONNX encoder files")
    p.add_argument("--images", required=True, help="folder of images")
    p.add_argument("--layers", nargs="+", default=["compressed"])
    p.add_argument("--out", required=True, help='output .npz, one array per "model.layer"')
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--device", default="auto", help="auto (default), cpu, cuda, or cuda:N for GPU N"
    )
    p.add_argument("--cache", help="folder caching finished (model, layer) results")
    p.set_defaults(func=run)


def run(args) -> None:
    check_output(args.out, "--out")
    if args.cache:
        check_output(args.cache, "--cache", "folder")
    feats = extract(
        args.models,
        args.images,
        layers=args.layers,
        batch_size=args.batch_size,
        device=args.device,
        cache_dir=args.cache,
        progress=sys.stderr.isatty(),  # no progress bar in logs, nor before an error line
    )
    with writing("--out", args.out):
        path = feats.save(args.out)
    print(f"wrote {len(feats.models)} models x {len(feats.layers)} layers to {path}")
