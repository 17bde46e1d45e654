"""fastrsa: fast Representational Similarity Analysis of deep networks.

The `fastrsa` command: parses arguments and calls the API. Nothing else lives here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from pathlib import Path

import numpy as np

from . import __version__, io
from ._backend import BACKENDS, available_backends
from .compare import compare
from .rdms import rdms, squareform
from .reference import METHODS, METRICS
from .taxonomy import TAXONOMY_FILES


def _note(message: str) -> None:
    print(f"fastrsa: note: {message}", file=sys.stderr)


def _condensed_length(k: int) -> bool:
    """Whether k = n*(n-1)/2 for some n >= 3: a length condensed RDMs can have."""
    n = int(round((1 + np.sqrt(1 + 8 * k)) / 2))
    return n >= 3 and n * (n - 1) // 2 == k


def _rdm_problem(err: ValueError) -> str:
    """What squareform found wrong with a square array, without its internal name "x"."""
    text = str(err)
    if "symmetric" in text:
        return "not symmetric"
    if "diagonal" in text:
        return "non-zero diagonal"
    return re.sub(r"^x ", "", text)


def _labelled_rows(
    arrays: dict[str, np.ndarray], name: str, reading: str = "auto"
) -> tuple[list[str], np.ndarray]:
    """Condensed RDMs (B, m) and their labels from arrays that are condensed (m,), square (n, n),
    stacks of square (k, n, n) or batches of condensed (k, m) — labelled `key[i]`.

    A square (k, k) array can be one square RDM or k condensed RDMs of length k: reading
    "square" or "condensed" (--square / --condensed) decides. With "auto", a valid RDM
    (symmetric, zero diagonal) is read as one square RDM and any other square array as k
    condensed rows (when k can be a condensed length), with a note on stderr saying so
    whenever both readings were possible.
    """
    labels, rows = [], []
    for key, arr in arrays.items():
        what = f"{name}: array {key!r} of shape {arr.shape}"
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{what} holds {arr.dtype}, not numbers")
        if arr.size == 0:
            raise ValueError(f"{what} is empty")
        if arr.ndim == 2 and arr.shape[0] == arr.shape[1] and reading != "condensed":
            k = arr.shape[0]
            try:
                arr = squareform(arr, to="condensed")
            except ValueError as err:
                if reading == "square" or not _condensed_length(k):
                    hint = "; pass --condensed if its rows are condensed RDMs"
                    raise ValueError(
                        f"{what} is not a square RDM ({_rdm_problem(err)})"
                        + (hint if _condensed_length(k) else "")
                    ) from None
                _note(
                    f"{what} is not a symmetric zero-diagonal RDM, so it was read as {k} "
                    "condensed RDMs (rows); pass --condensed or --square to choose"
                )
            else:
                if reading == "auto" and _condensed_length(k):
                    _note(
                        f"{what} was read as one square RDM of {k} images; pass --condensed if "
                        f"it holds {k} condensed RDMs (rows)"
                    )
        elif reading == "square" and arr.ndim == 2:
            raise ValueError(f"{what} is not square, but --square was given")
        elif arr.ndim == 3 and reading != "condensed" and arr.shape[1] == arr.shape[2]:
            try:
                arr = squareform(arr, to="condensed")
            except ValueError as err:
                raise ValueError(
                    f"{what} is not a stack of square RDMs ({_rdm_problem(err)})"
                ) from None
        if arr.ndim == 1:
            labels.append(key)
            rows.append(arr)
        elif arr.ndim == 2:
            labels += [f"{key}[{i}]" for i in range(arr.shape[0])]
            rows += list(arr)
        else:
            raise ValueError(f"{what} is not an RDM, nor a batch of RDMs")
    for label, row in zip(labels, rows, strict=True):
        if row.dtype.kind == "f" and not np.isfinite(row).all():
            first = int(np.argmax(~np.isfinite(row)))
            raise ValueError(f"{name}: RDM {label!r} holds NaN or Inf (first at value {first})")
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        sizes = ", ".join(f"{lab}: {len(r)}" for lab, r in zip(labels, rows, strict=True))
        raise ValueError(f"{name}: RDMs of different sizes cannot be compared ({sizes})")
    return labels, np.stack(rows)


def _check_output(
    path: str | os.PathLike, option: str, kind: str = "file", files: tuple[str, ...] = ()
) -> Path:
    """Refuse, before any work, an output that cannot be written: a folder where a file is meant
    (kind="file"), a file where a folder is meant (kind="folder", whose `files` will be written
    inside it), a path under a file, or a folder without write permission. ValueError naming
    the option and the path."""
    path = Path(path)
    if kind == "file":
        if path.is_dir():
            raise ValueError(f"{option}: {path} is a folder; expected a file path")
        folder = path.parent
    else:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{option}: {path} is a file; expected a folder")
        for name in files:
            if (path / name).is_dir():
                raise ValueError(f"{option}: {path / name} is a folder where a file is written")
        folder = path
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{option}: cannot create {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option}: cannot write {path}: permission denied in {existing}")
    return path


@contextlib.contextmanager
def _writing(option: str, path: str | os.PathLike):
    """Turn an OSError while writing `path` into a one-line ValueError naming the option."""
    try:
        yield
    except OSError as err:
        reason = err.strerror or " ".join(str(err).split())
        raise ValueError(f"{option}: cannot write {path} ({reason})") from None


def _user_labels(err: Exception, labels_a: list[str], labels_b: list[str]) -> Exception:
    """The same error with compare's internal names a[i] / b[i] replaced by the RDMs' labels."""

    def label(m: re.Match) -> str:
        labels = labels_a if m.group(1) == "a" else labels_b
        i = int(m.group(2))
        return repr(labels[i]) if i < len(labels) else m.group(0)

    return type(err)(re.sub(r"\b([ab])\[(\d+)\]", label, str(err)))


def _print_matrix(labels_a, labels_b, matrix) -> None:
    width = max(8, *(len(lab) + 1 for lab in labels_b))
    print(" " * width + "".join(f"{lab:>{width}}" for lab in labels_b))
    for lab, row in zip(labels_a, matrix, strict=True):
        print(f"{lab:>{width}}" + "".join(f"{v:{width}.4f}" for v in row))


def cmd_demo(args) -> None:
    from .demo import format_demo, run_demo, run_real_data

    _check_output(args.out, "--out", "folder", TAXONOMY_FILES + ("demo.json",))
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
    _check_output(args.out, "--out")
    arrays = io.load_arrays(args.features, "features")
    out = {}
    for key, arr in arrays.items():
        try:
            out[key] = rdms(arr, metric=args.metric, backend=args.backend)
        except (ValueError, TypeError) as err:
            where = f"array {key!r} of {args.features}" if len(arrays) > 1 else str(args.features)
            raise type(err)(f"features: {where}: {err}") from None
    with _writing("--out", args.out):
        path = io.save_npz(args.out, **out)
    shapes = ", ".join(f"{k} {v.shape}" for k, v in out.items())
    print(f"wrote {len(out)} RDM array(s) to {path}: {shapes}")


def cmd_compare(args) -> None:
    if args.out:
        _check_output(args.out, "--out")
    reading = "condensed" if args.condensed else "square" if args.square else "auto"
    labels_a, a = _labelled_rows(io.load_arrays(args.rdms, "rdms"), "rdms", reading)
    labels_b, b = labels_a, None
    if args.other:
        labels_b, b = _labelled_rows(io.load_arrays(args.other, "--with"), "--with", reading)
    try:
        sim = compare(a, b, method=args.method, backend=args.backend)
    except (ValueError, TypeError) as err:
        raise _user_labels(err, labels_a, labels_b) from None
    _print_matrix(labels_a, labels_b, sim)
    if args.out:
        out = Path(args.out)
        with _writing("--out", out):
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
    _check_output(args.out, "--out", "folder")
    weights = sorted(Path(args.weights).glob("*_encoder*.pth"))
    if not weights:
        raise ValueError(f"--weights: {args.weights} holds no <task>_encoder*.pth checkpoints")
    layers = args.layers or LAYERS
    for path in weights:
        task = path.name.split("_encoder")[0]
        model = load_taskonomy(path)
        with _writing("--out", Path(args.out) / f"{task}.onnx"):
            out = export_onnx(model, Path(args.out) / f"{task}.onnx", layers=layers)
        print(f"{path.name} -> {out}")


def cmd_features(args) -> None:
    from .features import extract

    _check_output(args.out, "--out")
    if args.cache:
        _check_output(args.cache, "--cache", "folder")
    feats = extract(
        args.models,
        args.images,
        layers=args.layers,
        batch_size=args.batch_size,
        device=args.device,
        cache_dir=args.cache,
        progress=sys.stderr.isatty(),  # no progress bar in logs, nor before an error line
    )
    with _writing("--out", args.out):
        path = feats.save(args.out)
    print(f"wrote {len(feats.models)} models x {len(feats.layers)} layers to {path}")


def _rdms_for_taxonomy(args) -> dict:
    """{label: RDM} from --rdms, --features (one feature array per label) or --models/--images."""
    if args.rdms:
        return io.load_arrays(args.rdms, "--rdms")
    if args.features:
        feats = io.load_arrays(args.features, "--features")
        out = {}
        for key, arr in feats.items():
            try:
                out[key] = rdms(arr, backend=args.backend)
            except (ValueError, TypeError) as err:
                raise type(err)(f"--features: array {key!r} of {args.features}: {err}") from None
        return out
    if args.models and args.images:
        from .features import extract

        feats = extract(args.models, args.images, layers=[args.layer], progress=sys.stderr.isatty())
        stacked = rdms(feats.stack(args.layer), backend=args.backend)
        return dict(zip(feats.models, stacked, strict=True))
    raise ValueError("give --rdms, --features, or --models with --images")


def cmd_taxonomy(args) -> None:
    from .taxonomy import taxonomy

    _check_output(args.out, "--out", "folder", TAXONOMY_FILES)
    result = taxonomy(
        _rdms_for_taxonomy(args),
        method=args.method,
        linkage=args.linkage,
        n_clusters=args.clusters,
        backend=args.backend,
    )
    with _writing("--out", args.out):
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

    if args.json:
        _check_output(args.json, "--json")
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
        with _writing("--json", args.json):
            path = io.save_json(args.json, ev.to_json())
        print(f"wrote {path}")


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
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--condensed",
        action="store_true",
        help="read every 2-D array as rows of condensed RDMs, even a square one",
    )
    how.add_argument(
        "--square",
        action="store_true",
        help="read every square 2-D array as one square RDM (default: a valid one is; a note "
        "says so when the array could also be rows of condensed RDMs)",
    )
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


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror and err.filename:
        text = f"{err.strerror}: {err.filename}"
    else:
        text = str(err)
    return " ".join(text.split()) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 with a one-line message for bad input).

    Errors of the user's input (ValueError, TypeError, missing files, unusable paths:
    PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError) print one line on
    stderr; any other exception is a bug and keeps its traceback."""
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except (
        ValueError,
        TypeError,
        FileNotFoundError,
        RuntimeError,
        ImportError,
        PermissionError,
        IsADirectoryError,
        NotADirectoryError,
        FileExistsError,
    ) as err:
        print(f"fastrsa {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    return code or 0
