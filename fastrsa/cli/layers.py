"""`fastrsa layers`: every layer of a model (an ONNX encoder or a model by name) with its output
shape, from one forward pass, and the model's layer presets."""

from __future__ import annotations

from pathlib import Path

from .. import io
from ..layers import layers, select_layers
from ..zoo.model import Model
from ..zoo.spec import is_spec
from ._common import add_command, check_output, writing

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = add_command(
        subparsers, "layers", "the layers of a model (ONNX or by name) and their output shapes"
    )
    p.add_argument(
        "model",
        help="an ONNX encoder file (.onnx) or a model by name: timm:NAME, "
        "torchvision:NAME[@WEIGHTS], hf:ORG/NAME or hf:DIR, taskonomy:CHECKPOINT (@random: "
        "random weights); torch modules: fastrsa.layers(module, example) in Python",
    )
    p.add_argument(
        "--layers",
        nargs="+",
        metavar="NAME",
        help="only these layers: names or glob patterns, e.g. 'block*' (one that matches "
        "nothing is refused with the closest names)",
    )
    p.add_argument("--json", metavar="PATH", help='also write [{"name", "shape"}] to this JSON')
    p.set_defaults(func=run)


def run(args) -> None:
    named = is_spec(args.model)
    if not named and Path(args.model).suffix.lower() != ".onnx":
        raise ValueError(
            f"model: {args.model} is neither an .onnx file nor a model by name (timm:NAME, "
            "torchvision:NAME, hf:ORG/NAME, hf:DIR, taskonomy:CHECKPOINT)"
        )
    if args.json:
        check_output(args.json, "--json")
    model = Model(args.model) if named else args.model
    found = layers(model)
    if args.layers:
        keep = set(select_layers([name for name, _ in found], args.layers, "--layers"))
        found = [(name, shape) for name, shape in found if name in keep]
    if args.json:  # written before anything is printed: a closed stdout cannot lose it
        with writing("--json", args.json):
            io.save_json(args.json, [{"name": n, "shape": list(s)} for n, s in found])
    width = max(len(name) for name, _ in found)
    for name, shape in found:
        print(f"{name:<{width}}  {tuple(shape)}")
    if isinstance(model, Model):
        for preset, names in model.load().presets.items():
            if names:
                shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
                print(f"preset {preset} ({len(names)} layers): {shown}")
