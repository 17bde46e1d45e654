"""`fastrsa export-taskonomy`: Taskonomy .pth encoders -> ONNX, one per task (needs torch)."""

from __future__ import annotations

from pathlib import Path

from ._common import add_command, check_output, writing

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = add_command(subparsers, "export-taskonomy", "Taskonomy .pth encoders -> ONNX, one per task")
    p.add_argument("--weights", required=True, help="folder of <task>_encoder*.pth checkpoints")
    p.add_argument("--out", required=True, help="folder for <task>.onnx")
    p.add_argument("--layers", nargs="+", help="block1..block4, compressed (default: all five)")
    p.set_defaults(func=run)


def run(args) -> None:
    # fastrsa.models imports torch (an optional package): only this command needs it
    from ..models import LAYERS, export_onnx, load_taskonomy

    if not Path(args.weights).is_dir():
        raise FileNotFoundError(f"--weights: no such folder: {args.weights}")
    check_output(args.out, "--out", "folder")
    weights = sorted(Path(args.weights).glob("*_encoder*.pth"))
    if not weights:
        raise ValueError(f"--weights: {args.weights} holds no <task>_encoder*.pth checkpoints")
    layers = args.layers or LAYERS
    for path in weights:
        task = path.name.split("_encoder")[0]
        model = load_taskonomy(path)
        with writing("--out", Path(args.out) / f"{task}.onnx"):
            out = export_onnx(model, Path(args.out) / f"{task}.onnx", layers=layers)
        print(f"{path.name} -> {out}")
