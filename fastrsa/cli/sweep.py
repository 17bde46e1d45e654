"""`fastrsa sweep`: many models x layers -> RDMs and all-pairs similarity in a store, out of
core and resumable; --status shows what a store holds and lacks (and the damage found by a quick
check), --verify checks every file of it (exit 1 when something is damaged or left to compute)."""

from __future__ import annotations

import os

from .._checks import check_count, one_line
from .._memory import parse_memory
from ..reference import METHODS, METRICS
from ..sweeps import FeatureSource, ModelSource, ONNXSource, RDMSource, open_store, sweep
from ..zoo.model import Model
from ..zoo.pooling import POOLINGS
from ..zoo.prep import INTERPOLATIONS
from ..zoo.spec import is_spec
from ._common import (
    RDM_FILES,
    SWEEP_FEATURES,
    add_backend,
    add_command,
    check_rdm_files,
    reading,
)

__all__ = ["register", "run"]

PREP_OPTIONS = ("resize", "crop", "mean", "std", "interpolation", "max_tokens")


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "sweep",
        "many models x layers -> RDMs and all-pairs similarity in a store: out of core, resumable",
        True,
    )
    p.add_argument("--store", help="the store folder (or fsspec URL) written; created if absent")
    p.add_argument("--status", metavar="STORE", help="instead: show what STORE holds and lacks")
    p.add_argument(
        "--verify",
        nargs="?",
        const=True,
        metavar="STORE",
        help="instead: check every file of STORE (or of --status STORE), each chunk's checksum "
        "included, and list what is damaged and what a re-run would compute; exit 1 if any",
    )
    p.add_argument(
        "--models",
        nargs="+",
        metavar="MODEL",
        help="models (with --images or --texts): ONNX encoders (.onnx), or models by name: "
        "timm:NAME, torchvision:NAME[@WEIGHTS], hf:ORG/NAME or hf:DIR, taskonomy:CHECKPOINT; "
        "@random for random weights, @FILE for a local weights file; LABEL=MODEL labels one",
    )
    p.add_argument("--images", help="image folder (with --models)")
    p.add_argument(
        "--texts", help="text file for text models: one item a line (.txt) or JSON lines (.jsonl)"
    )
    p.add_argument(
        "--layers",
        nargs="+",
        help="layers of --models: names, glob patterns ('blocks.*'), presets (@blocks, "
        "@hidden_states); default: compressed (ONNX), @blocks (models by name)",
    )
    p.add_argument(
        "--pool",
        default="auto",
        choices=POOLINGS,
        help="one row per item from a layer's output (models by name): auto (default: flatten; "
        "masked-mean for text tokens), flatten, gap, cls, mean, last, masked-mean",
    )
    prep = p.add_argument_group("preprocessing of models by name (default: the model's own)")
    prep.add_argument("--resize", type=int, metavar="PIXELS", help="resize the shorter side")
    prep.add_argument("--crop", type=int, metavar="PIXELS", help="center crop, square")
    prep.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"), help="mean")
    prep.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"), help="std")
    prep.add_argument(
        "--interpolation", choices=INTERPOLATIONS, help="resize interpolation (PIL's)"
    )
    prep.add_argument("--max-tokens", type=int, help="text: truncate to this many tokens")
    p.add_argument("--features", nargs="+", metavar="FILE", help=SWEEP_FEATURES)
    p.add_argument("--rdms", nargs="+", metavar="FILE", help="RDM files: " + RDM_FILES)
    p.add_argument(
        "--layer-name", help="the layer name of --features/--rdms sources (default 'default')"
    )
    p.add_argument("--method", default="spearman", choices=METHODS)
    p.add_argument("--metric", default="correlation", choices=METRICS, help="the RDMs' metric")
    p.add_argument(
        "--measure",
        nargs="+",
        metavar="MEASURE",
        help="what the all-pairs stage computes (default: rsa): rsa, cka, svcca, nbs, "
        "procrustes, cca, mutual-knn, jaccard-knn, cknna, pwcca, ridge, dds; options as "
        "name:option=value,... "
        "(e.g. procrustes:alpha=0.5 mutual-knn:k=20)",
    )
    p.add_argument("--executor", default="local", choices=("local", "ray"))
    p.add_argument("--address", help="with --executor ray: a running cluster (default: start one)")
    p.add_argument(
        "--memory", help="memory budget per worker, e.g. 4GB (default: FASTRSA_MEMORY, else 1/4)"
    )
    add_backend(p)
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    p.add_argument(
        "--device", default="auto", help="auto (default), cpu, cuda, or cuda:N for GPU N"
    )
    p.add_argument("--keep-features", action="store_true", help="also write features to the store")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.set_defaults(func=run)


def run(args) -> int | None:
    if args.status or args.verify:
        return _status(args)
    sources, images, layers = _sources(args)
    texts = None
    if args.texts:
        images, texts = None, args.texts
    if args.address and args.executor != "ray":
        raise ValueError("--address: names a Ray cluster; give it with --executor ray")
    memory = None if args.memory is None else parse_memory(args.memory, "--memory")
    check_count(args.batch_size, "--batch-size")
    store = sweep(
        sources,
        images=images,
        layers=layers,
        store=args.store,
        method=args.method,
        metric=args.metric,
        executor=args.executor,
        memory=memory,
        backend=args.backend,
        keep_features=args.keep_features,
        batch_size=args.batch_size,
        device=args.device,
        address=args.address,
        progress=False if args.no_progress else None,
        texts=texts,
        pool=args.pool,
        measures=args.measure,
    )
    layers_done = ", ".join(store.layers)
    print(f"store {store.path}: {len(store.labels)} sources x layers {layers_done}, n={store.n}")
    if store.summary is not None:
        print(store.summary.line())
    return None


def _sources(args) -> tuple[list, str | None, list[str] | None]:
    """(sources, images, layers) for fastrsa.sweep from the command's options, checked: one of
    --models (with --images, --layers), --features, --rdms (with --layer-name)."""
    given = [f"--{o}" for o in ("models", "features", "rdms") if getattr(args, o)]
    if len(given) > 1:
        raise ValueError(f"give one of --models, --features, --rdms; got {' and '.join(given)}")
    if not given:
        raise ValueError("give the sources: --models (with --images), --features or --rdms")
    if not args.store:
        raise ValueError("--store: give the store folder the sweep writes (or --status STORE)")
    if os.path.isfile(args.store):
        raise ValueError(f"--store: {args.store} is a file, not a store folder: give a folder")
    prep = {o: getattr(args, o) for o in PREP_OPTIONS if getattr(args, o) is not None}
    if args.models:
        if not args.images and not args.texts:
            raise ValueError("--images: --models need an image folder (--images DIR) or --texts")
        if args.images and args.texts:
            raise ValueError("--texts: give --images or --texts, not both")
        if args.layer_name:
            raise ValueError("--layer-name: names the layer of --features/--rdms; use --layers")
        sources = [_model(item, prep, args.pool) for item in args.models]
        return sources, args.images, args.layers
    option = given[0]
    for name in ("images", "texts", *prep):
        if getattr(args, name):
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag}: only --models take it; {option} files do not")
    if args.pool != "auto":
        raise ValueError(f"--pool: only --models are pooled; {option} files are not")
    if args.layers:
        raise ValueError(f"--layers: name the layer of {option} files with --layer-name NAME")
    layers = [args.layer_name] if args.layer_name else None
    if args.features:
        return [FeatureSource(path) for path in args.features], None, layers
    if args.keep_features:
        raise ValueError("--keep-features: RDM files hold no features to keep")
    return _rdm_sources(args), None, layers


def _model(item: str, prep: dict, pool: str):
    """The source of one --models item ([LABEL=]MODEL): a model by name (with the preprocessing
    options and the pooling), or an ONNX file (which takes none of them)."""
    label, sep, spec = item.partition("=")
    if not sep or not label or any(c in label for c in ":/\\") or os.path.exists(item):
        label, spec = "", item  # a file whose name holds "=" is a file
    if is_spec(spec):
        return ModelSource(Model(spec, **prep), label or None, pool)
    if prep:
        flags = ", ".join("--" + name.replace("_", "-") for name in prep)
        raise ValueError(f"{flags}: apply to models by name; {spec} is an ONNX file")
    if not spec.lower().endswith(".onnx") and not os.path.exists(spec):
        raise ValueError(
            f"--models: {spec!r} is neither a file nor a model by name (timm:NAME, "
            "torchvision:NAME, hf:ORG/NAME or hf:DIR, taskonomy:CHECKPOINT)"
        )
    return ONNXSource(spec, label or None)


def _rdm_sources(args) -> list:
    """RDMSource of every --rdms file: each RDM of a file is a source of its own, labelled as
    the other commands label them. Each file is read here first, so that a bad file is named
    as --rdms and the notes on how square arrays were read go to stderr as with the other
    commands (the sweep reads square arrays the same way: a valid RDM as one square RDM); a
    block of RDMs at a time within --memory, and not again by the sweep."""
    check_rdm_files(args)
    return [RDMSource(path, reading=reading(args)) for path in args.rdms]


def _model_lines(store) -> list[str]:
    """One line per model-by-name source: its spec, weights, pooling and preprocessing."""
    lines = []
    for label, per_layer in store.index.get("sources", {}).items():
        entry: dict = next(iter(per_layer.values()), {})
        if entry.get("kind") != "model":
            continue
        prep = entry.get("preprocessing", {})
        shown = ", ".join(f"{k}={v}" for k, v in prep.items() if k != "kind" and v is not None)
        lines.append(
            f"{label}: {entry.get('spec')} (weights {entry.get('weights')}), pool "
            f"{entry.get('pool')}; preprocessing {shown or 'none'}"
        )
    return lines


def _status(args) -> int | None:
    """--status STORE, --verify STORE, --status STORE --verify: what the store holds, and the
    damage found (--status: chunks' presence and sizes; --verify: every checksum too)."""
    option = "--status" if args.status else "--verify"
    path = args.status or args.verify
    if args.status and isinstance(args.verify, str):
        raise ValueError("--verify: give the store once: --verify STORE or --status STORE --verify")
    options = ("store", "models", "features", "rdms", "images", "texts")
    given = [f"--{o}" for o in options if getattr(args, o)]
    if given:
        raise ValueError(f"{option}: reads a store; give it alone, not with {' and '.join(given)}")
    try:
        store = open_store(path)
        report = store.verify(deep=bool(args.verify))
    except (ValueError, OSError) as err:
        raise ValueError(f"{option}: {one_line(err)}") from None
    print(
        f"store {store.path}: n={store.n} images, metric {store.metric}, "
        f"{len(store.labels)} sources, {len(store.layers)} layer(s)"
    )
    for layer, state in store.status().items():
        done, total = state["rdms"]
        tiles = (
            "; ".join(f"{method} tiles {d}/{t}" for method, (d, t) in state["tiles"].items())
            or "no tiles yet"
        )
        print(f"  {layer}: RDMs {done}/{total}; {tiles}")
    for line in _model_lines(store):
        print(f"  {line}")
    if report.damage or args.verify:
        for line in report.lines():
            print(f"  {line}")
    if report.damage:
        print(f"  a run of the same sweep on {store.path} recomputes what is damaged")
    return 1 if args.verify and not report.clean else None
