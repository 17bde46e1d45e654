"""fastrsa: fast Representational Similarity Analysis of deep networks.

The `fastrsa` command: parses arguments and calls the API. Nothing else lives here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from . import __version__, io
from ._backend import BACKENDS, available_backends
from .compare import compare
from .rdms import rdms, squareform
from .reference import METHODS, METRICS


def _labelled_rows(arrays: dict[str, np.ndarray], name: str) -> tuple[list[str], np.ndarray]:
    """Condensed RDMs (B, m) and their labels from arrays that are condensed (m,), square (n, n)
    or batches of condensed (k, m) — labelled `key[i]`."""
    labels, rows = [], []
    for key, arr in arrays.items():
        if arr.ndim == 2 and arr.shape[0] == arr.shape[1]:
            arr = squareform(arr, to="condensed")
        if arr.ndim == 1:
            labels.append(key)
            rows.append(arr)
        elif arr.ndim == 2:
            labels += [f"{key}[{i}]" for i in range(arr.shape[0])]
            rows += list(arr)
        else:
            raise ValueError(f"{name}: array {key!r} has shape {arr.shape}; expected an RDM")
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        sizes = ", ".join(f"{lab}: {len(r)}" for lab, r in zip(labels, rows, strict=True))
        raise ValueError(f"{name}: RDMs of different sizes cannot be compared ({sizes})")
    return labels, np.stack(rows)


def _print_matrix(labels_a, labels_b, matrix) -> None:
    width = max(8, *(len(lab) + 1 for lab in labels_b))
    print(" " * width + "".join(f"{lab:>{width}}" for lab in labels_b))
    for lab, row in zip(labels_a, matrix, strict=True):
        print(f"{lab:>{width}}" + "".join(f"{v:{width}.4f}" for v in row))


def cmd_demo(args) -> None:
    from .demo import format_demo, run_demo, run_real_data

    if args.real_data:
        print(run_real_data(args.real_data, n_clusters=args.clusters or 4, out_dir=args.out))
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


def cmd_rdms(args) -> None:
    arrays = io.load_arrays(args.features, "features")
    out = {key: rdms(arr, metric=args.metric, backend=args.backend) for key, arr in arrays.items()}
    path = io.save_npz(args.out, **out)
    shapes = ", ".join(f"{k} {v.shape}" for k, v in out.items())
    print(f"wrote {len(out)} RDM array(s) to {path}: {shapes}")


def cmd_compare(args) -> None:
    labels_a, a = _labelled_rows(io.load_arrays(args.rdms, "rdms"), "rdms")
    labels_b, b = labels_a, None
    if args.other:
        labels_b, b = _labelled_rows(io.load_arrays(args.other, "other"), "other")
    sim = compare(a, b, method=args.method, backend=args.backend)
    _print_matrix(labels_a, labels_b, sim)
    if args.out:
        out = Path(args.out)
        if out.suffix == ".json":
            io.save_json(
                out,
                {
                    "method": args.method,
                    "labels_a": labels_a,
                    "labels_b": labels_b,
                    "similarity": sim.tolist(),
                },
            )
        else:
            io.save_npz(
                out, similarity=sim, labels_a=np.array(labels_a), labels_b=np.array(labels_b)
            )
        print(f"wrote {out}")


def cmd_export_taskonomy(args) -> None:
    from .models import LAYERS, export_onnx, load_taskonomy

    if not Path(args.weights).is_dir():
        raise FileNotFoundError(f"--weights: no such folder: {args.weights}")
    weights = sorted(Path(args.weights).glob("*_encoder*.pth"))
    if not weights:
        raise ValueError(f"--weights: {args.weights} holds no <task>_encoder*.pth checkpoints")
    layers = args.layers or LAYERS
    for path in weights:
        task = path.name.split("_encoder")[0]
        out = export_onnx(load_taskonomy(path), Path(args.out) / f"{task}.onnx", layers=layers)
        print(f"{path.name} -> {out}")


def cmd_features(args) -> None:
    from .features import extract

    feats = extract(
        args.models,
        args.images,
        layers=args.layers,
        batch_size=args.batch_size,
        device=args.device,
        cache_dir=args.cache,
    )
    path = feats.save(args.out)
    print(f"wrote {len(feats.models)} models x {len(feats.layers)} layers to {path}")


def _rdms_for_taxonomy(args) -> dict:
    """{label: RDM} from --rdms, --features (one feature array per label) or --models/--images."""
    if args.rdms:
        return io.load_arrays(args.rdms, "--rdms")
    if args.features:
        feats = io.load_arrays(args.features, "--features")
        return {k: rdms(v, backend=args.backend) for k, v in feats.items()}
    if args.models and args.images:
        from .features import extract

        feats = extract(args.models, args.images, layers=[args.layer])
        stacked = rdms(feats.stack(args.layer), backend=args.backend)
        return dict(zip(feats.models, stacked, strict=True))
    raise ValueError("give --rdms, --features, or --models with --images")


def cmd_taxonomy(args) -> None:
    from .taxonomy import taxonomy

    result = taxonomy(
        _rdms_for_taxonomy(args),
        method=args.method,
        linkage=args.linkage,
        n_clusters=args.clusters,
        backend=args.backend,
    )
    path = result.save(args.out)
    _print_matrix(result.labels, result.labels, result.similarity)
    if result.clusters:
        groups = result.groups()
        for cid in sorted(groups):
            print(f"cluster {cid}: {', '.join(groups[cid])}")
    print(f"wrote {path} and taxonomy.npz, taxonomy.png, taxonomy.svg in {path.parent}")


def cmd_rank(args) -> None:
    from .taxonomy import rank_sources

    target = io.load_arrays(args.target, "--target")
    if len(target) != 1:
        raise ValueError(f"--target must hold one RDM; {args.target} holds {sorted(target)}")
    sources = io.load_arrays(args.sources, "--sources")
    ranking = rank_sources(next(iter(target.values())), sources, method=args.method)
    width = max(len(label) for label in ranking.labels)
    for i, (label, score) in enumerate(ranking, 1):
        print(f"{i:3d}  {label:<{width}}  {score:.4f}")


def cmd_evaluate(args) -> None:
    from .taxonomy import evaluate_transfer, load_affinities, taxonomy

    aliases = {}
    for item in args.alias or []:
        label, sep, name = item.partition("=")
        if not sep or not label or not name:
            raise ValueError(f"--alias must look like LABEL=AFFINITY_NAME; got {item!r}")
        aliases[label] = name
    result = taxonomy(io.load_arrays(args.rdms, "--rdms"), method=args.method)
    ev = evaluate_transfer(
        result.similarity, result.labels, load_affinities(args.affinities), aliases
    )
    print(
        f"{ev.n_targets} targets: top-1 {ev.top1}, top-3 {ev.top3}, top-5 {ev.top5}; "
        f"mean Pearson {ev.mean_pearson:.3f}, mean Spearman {ev.mean_spearman:.3f}"
    )
    if args.json:
        print(f"wrote {io.save_json(args.json, ev.to_json())}")


def cmd_diff(args) -> int:
    from .diff import DEFAULT_IGNORE, diff_results

    ignore = tuple(DEFAULT_IGNORE) + tuple(args.ignore or ())
    report = diff_results(args.old, args.new, atol=args.atol, rtol=args.rtol, ignore=ignore)
    print(report.text())
    return 0 if report.equal else 1


def cmd_backends(args) -> None:
    usable = available_backends()
    for name in BACKENDS:
        print(f"{name:10} {'available' if name in usable else 'not available'}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastrsa", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"fastrsa {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    backend = dict(
        default="auto", choices=("auto", *BACKENDS), help="compute backend (default: auto)"
    )

    p = sub.add_parser("demo", help="the embedded default: a miniature Taskonomy, end to end")
    p.add_argument("--images", type=int, default=300, help="generated scenes (default 300)")
    p.add_argument("--layer", default="block4", choices=("block4", "compressed"))
    p.add_argument("--clusters", type=int, help="flat clusters (default 3; 4 with --real-data)")
    p.add_argument("--backend", **backend)
    p.add_argument("--no-reference", action="store_true", help="skip the (slow) naive reference")
    p.add_argument("--out", default="fastrsa-demo", help="output folder (default fastrsa-demo)")
    p.add_argument("--real-data", metavar="DIR", help="instead: the taxonomy of real RDM files")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "rdms", help="RDMs of feature arrays (.npy: (..., n, d); .npz: one per label)"
    )
    p.add_argument("features", help=".npy or .npz of features (..., n images, d features)")
    p.add_argument("--out", required=True, help="output .npz: condensed RDMs under the same keys")
    p.add_argument("--metric", default="correlation", choices=METRICS)
    p.add_argument("--backend", **backend)
    p.set_defaults(func=cmd_rdms)

    p = sub.add_parser("compare", help="all-pairs similarity of RDMs from .npy/.npz files")
    p.add_argument("rdms", help=".npz with one RDM per label (condensed or square), or .npy (B, m)")
    p.add_argument("--with", dest="other", help="compare against these RDMs instead of all pairs")
    p.add_argument("--method", default="spearman", choices=METHODS)
    p.add_argument("--backend", **backend)
    p.add_argument("--out", help="save the matrix: .json, or .npz (similarity, labels_a, labels_b)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export-taskonomy", help="Taskonomy .pth encoders -> ONNX, one per task")
    p.add_argument("--weights", required=True, help="folder of <task>_encoder*.pth checkpoints")
    p.add_argument("--out", required=True, help="folder for <task>.onnx")
    p.add_argument("--layers", nargs="+", help="block1..block4, compressed (default: all five)")
    p.set_defaults(func=cmd_export_taskonomy)

    p = sub.add_parser("features", help="features of ONNX encoders on an image folder (.npz)")
    p.add_argument("--models", nargs="+", required=True, help="ONNX encoder files")
    p.add_argument("--images", required=True, help="folder of images")
    p.add_argument("--layers", nargs="+", default=["compressed"])
    p.add_argument("--out", required=True, help='output .npz, one array per "model.layer"')
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    p.add_argument("--cache", help="folder caching finished (model, layer) results")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("taxonomy", help="similarity of models' RDMs -> clustering, heatmap, JSON")
    p.add_argument("--rdms", help=".npz: one RDM per label (square or condensed)")
    p.add_argument("--features", help=".npz: one feature array (n, d) per label")
    p.add_argument("--models", nargs="+", help="ONNX encoders (with --images)")
    p.add_argument("--images", help="image folder (with --models)")
    p.add_argument("--layer", default="compressed", help="layer of --models (default compressed)")
    p.add_argument("--clusters", type=int, help="number of flat clusters")
    p.add_argument("--method", default="spearman", choices=METHODS)
    p.add_argument("--linkage", default="average")
    p.add_argument("--backend", **backend)
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_taxonomy)

    p = sub.add_parser("rank", help="rank source models by RDM similarity to a target model")
    p.add_argument("--target", required=True, help=".npy/.npz holding the target's RDM")
    p.add_argument("--sources", required=True, help=".npz: one RDM per source model")
    p.add_argument("--method", default="spearman", choices=METHODS)
    p.set_defaults(func=cmd_rank)

    p = sub.add_parser("evaluate", help="RSA similarity against measured transfer affinities")
    p.add_argument("--rdms", required=True, help=".npz: one RDM per task")
    p.add_argument("--affinities", required=True, help=".json or .csv transfer affinities")
    p.add_argument(
        "--alias",
        action="append",
        metavar="LABEL=AFFINITY_NAME",
        help="map an RDM label to the affinity table's name (repeatable)",
    )
    p.add_argument("--method", default="spearman", choices=METHODS)
    p.add_argument("--json", help="write the figures and per-target rows to this JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("diff", help="compare two saved results; exit 1 when they differ")
    p.add_argument("old", help=".npy, .npz or .json result")
    p.add_argument("new", help="the same kind of file")
    p.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance (default 1e-6)")
    p.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0)")
    p.add_argument("--ignore", nargs="+", help="more keys to skip (metadata and timings are)")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("backends", help="list the compute backends and whether they can run here")
    p.set_defaults(func=cmd_backends)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 with a one-line message for bad input)."""
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, ImportError) as err:
        print(f"fastrsa {args.command}: error: {err}", file=sys.stderr)
        return 2
    return code or 0
