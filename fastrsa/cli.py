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
from typing import Any

import numpy as np

from . import __version__, io
from ._backend import BACKENDS, available_backends
from ._memory import parse_memory
from .compare import compare
from .errors import is_user_error
from .rdms import n_from_condensed, rdms
from .reference import METHODS, METRICS, UNCORRECTED
from .taxonomy import TAXONOMY_FILES


def _note(message: str) -> None:
    print(f"fastrsa: note: {message}", file=sys.stderr)


def _reading(args) -> str:
    """How square 2-D arrays of RDM files are read: --condensed, --square or "auto"."""
    if getattr(args, "condensed", False):
        return "condensed"
    return "square" if getattr(args, "square", False) else "auto"


def _load_rdms(path: str, option: str, args) -> tuple[list[str], np.ndarray]:
    """(labels, condensed RDMs (K, m)) of an RDM file: io.load_rdms with the command's
    --condensed/--square choice; its notes go to stderr."""
    return io.load_rdms(path, option, _reading(args), note=_note)


def _rdms_of_features(path: str, option: str, backend: str) -> tuple[list[str], np.ndarray]:
    """(labels, condensed RDMs (K, m)) of a feature file: each array (n, d) is one model's
    features (labelled by its key); an array (..., n, d) is a batch labelled `key[i]` (`key[i,j]`
    for more leading dims)."""
    labels, rows = [], []
    for key, arr in io.load_arrays(path, option).items():
        try:
            out = rdms(arr, backend=backend)
        except (ValueError, TypeError) as err:
            raise type(err)(f"{option}: array {key!r} of {path}: {err}") from None
        lead = arr.shape[:-2]
        if not lead:
            labels.append(key)
        else:
            labels += [f"{key}[{','.join(map(str, i))}]" for i in np.ndindex(*lead)]
        rows += list(np.asarray(out).reshape(-1, out.shape[-1]))
    sizes = {len(r) for r in rows}
    if len(sizes) > 1:
        raise ValueError(f"{option}: the arrays of {path} hold different numbers of images")
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
        print(
            run_real_data(
                args.real_data,
                n_clusters=args.clusters or 4,
                out_dir=args.out,
                reading=_reading(args),
                note=_note,
            )
        )
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


def _checked_seed(args, flag: str) -> int | None:
    """--seed of a command whose `flag` (--bootstrap or --permutations) takes it, checked with
    the count: --bootstrap K an int >= 0 (0, the default: no bootstrap), --permutations K an int
    >= 1, and --seed S an int >= 0 given only with K (every command refuses a seed that would
    seed nothing). The seed, or None when none was given (the caller draws one with
    fastrsa.taxonomy._draw_seed, or the API does, and records it)."""
    count = getattr(args, flag[2:])
    if flag == "--bootstrap":
        if count < 0:
            raise ValueError(f"--bootstrap must be >= 0 (0: no bootstrap); got {count}")
        given = count > 0
    else:
        if count is not None and count < 1:
            raise ValueError(f"--permutations must be >= 1; got {count}")
        given = count is not None
    if args.seed is None:
        return None
    if not given:
        raise ValueError(f"--seed: seeds {flag}; there is no {flag} (give {flag} K with --seed)")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0; got {args.seed}")
    return int(args.seed)


def _tested(args, seed: int | None):
    """(labels_a, labels_b, similarity (A, B), p-values (A, B), seed) of `compare
    --permutations K`: the Mantel test of fastrsa.stats.permutation_test, whose observed
    similarity is the matrix (compare is not run a second time). Without --seed a seed is drawn
    (fastrsa.taxonomy._draw_seed) and reported, so the run can be repeated exactly."""
    if args.store or args.with_store:
        raise ValueError("--permutations: reads RDM files (an RDM file and --with), not stores")
    from .stats import permutation_test
    from .taxonomy import _draw_seed

    labels_a, a = _load_rdms(args.rdms, "rdms", args)
    labels_b, b = labels_a, None
    if args.other:
        labels_b, b = _load_rdms(args.other, "--with", args)
    seed = _draw_seed() if seed is None else seed
    try:
        result = permutation_test(
            a, b, method=args.method, n_perm=args.permutations, seed=seed, backend=args.backend
        )
    except (ValueError, TypeError) as err:
        raise _user_labels(err, labels_a, labels_b) from None
    # observed is compare(a, b)'s matrix in float64; printed and saved in compare's own dtype:
    # float32 when the RDMs are (float16/float32), float64 otherwise and for rho-a and tau-a
    given = [a.dtype] if b is None else [a.dtype, b.dtype]
    dtype = np.float64 if args.method in UNCORRECTED else np.result_type(np.float32, *given)
    sim = np.asarray(result.observed).astype(dtype)
    return labels_a, labels_b, sim, np.asarray(result.p), seed


def cmd_compare(args) -> None:
    if args.out:
        _check_output(args.out, "--out")
    seed = _checked_seed(args, "--permutations")
    _check_compare_options(args)
    p_values = None
    if args.permutations is None:
        labels_a, labels_b, sim = _compared(args)
    else:
        labels_a, labels_b, sim, p_values, seed = _tested(args, seed)
    if args.out:  # written before anything is printed: a closed stdout cannot lose it
        out = Path(args.out)
        extra: dict[str, Any] = {}
        if p_values is not None:
            extra = {"p_values": p_values, "permutations": args.permutations, "seed": seed}
        with _writing("--out", out):
            if out.suffix == ".json":
                io.save_json(
                    out,
                    {
                        "method": args.method,
                        "labels_a": labels_a,
                        "labels_b": labels_b,
                        "similarity": sim.tolist(),
                        **{k: v.tolist() if hasattr(v, "tolist") else v for k, v in extra.items()},
                    },
                )
            else:
                io.save_npz(
                    out,
                    similarity=sim,
                    labels_a=np.array(labels_a),
                    labels_b=np.array(labels_b),
                    **{k: np.asarray(v) for k, v in extra.items()},
                )
    _print_matrix(labels_a, labels_b, sim)
    if p_values is not None:
        print(f"p-values ({args.permutations} permutations of the images, seed {seed}):")
        _print_matrix(labels_a, labels_b, p_values)
    if args.out:
        print(f"wrote {Path(args.out)}")


def _check_compare_options(args) -> None:
    """Refuse the combinations of `fastrsa compare`'s sources that mean nothing."""
    if args.rdms and args.store:
        raise ValueError("give an RDM file or --store, not both")
    if not args.rdms and not args.store:
        raise ValueError("give an RDM file to compare, or --store STORE")
    if args.other and args.with_store:
        raise ValueError("give --with or --with-store, not both")
    if args.layer is not None and not args.store:
        raise ValueError("--layer: names a layer of --store; there is no --store")
    if args.with_layer is not None and not args.with_store:
        raise ValueError("--with-layer: names a layer of --with-store; there is no --with-store")


def _compared(args) -> tuple[list[str], list[str], np.ndarray]:
    """(labels_a, labels_b, similarity (A, B)) of `fastrsa compare`: an RDM file or --store
    against itself, --with an RDM file or --with-store another store (options checked by
    _check_compare_options)."""
    if args.store:
        store, layer = _store_layer(args.store, args.layer, "--store", "--layer")
        labels_a = store.rdms(layer).labels
        if args.other:
            labels_b, rows = _load_rdms(args.other, "--with", args)
            sim = _store_compare(store, layer, rows, "--with", args).T
        elif args.with_store:
            other, other_layer = _store_layer(
                args.with_store, args.with_layer, "--with-store", "--with-layer"
            )
            labels_b = other.rdms(other_layer).labels
            sim = _store_compare(store, layer, other, "--with-store", args, other_layer).T
        else:
            labels_b, sim = labels_a, _store_similarity(store, layer, args.method)
        return labels_a, labels_b, np.ascontiguousarray(sim)
    labels_a, a = _load_rdms(args.rdms, "rdms", args)
    if args.with_store:
        other, other_layer = _store_layer(
            args.with_store, args.with_layer, "--with-store", "--with-layer"
        )
        sim = _store_compare(other, other_layer, a, "rdms", args)
        return labels_a, other.rdms(other_layer).labels, sim
    labels_b, b = labels_a, None
    if args.other:
        labels_b, b = _load_rdms(args.other, "--with", args)
    try:
        matrix = compare(a, b, method=args.method, backend=args.backend)
    except (ValueError, TypeError) as err:
        raise _user_labels(err, labels_a, labels_b) from None
    return labels_a, labels_b, np.asarray(matrix)


# ---- sweep stores ----


def _store_layer(path: str, layer: str | None, option: str, layer_option: str):
    """(Store, layer name) of `--store PATH [--layer L]`: errors name the options."""
    from .sweeps import open_store

    try:
        store = open_store(path)
    except (ValueError, OSError) as err:
        raise ValueError(f"{option}: {_one_line(err)}") from None
    names = store.layers
    if not names:
        raise ValueError(f"{option}: store {path} holds no layers yet (its sweep did not start)")
    if layer is None:
        if len(names) > 1:
            raise ValueError(
                f"{option}: store {path} has layers {names}: choose one with {layer_option}"
            )
        return store, names[0]
    if layer not in names:
        raise ValueError(f"{layer_option}: layer {layer!r} is not in store {path}; it has {names}")
    return store, layer


def _store_similarity(store, layer: str, method: str) -> np.ndarray:
    """(B, B) float64 similarity the sweep computed; its error says which command computes it."""
    try:
        return store.similarity(layer, method)
    except ValueError as err:
        raise ValueError(f"--store: {_one_line(err)}") from None


def _store_compare(store, layer: str, targets, option: str, args, target_layer=None) -> np.ndarray:
    """(T, B) similarity of `targets` (RDMs (T, m) or a Store) to the store's RDMs of `layer`,
    a block at a time (Store.compare); errors name `option`."""
    if isinstance(targets, np.ndarray) and targets.shape[1] != store.m:
        raise ValueError(
            f"{option} covers {n_from_condensed(targets.shape[1])} images, store {store.path} "
            f"{store.n}: they must share the same images"
        )
    try:
        return store.compare(
            targets, layer, method=args.method, backend=args.backend, target_layer=target_layer
        )
    except ValueError as err:
        raise ValueError(f"{option}: {_one_line(err)}") from None


def _store_taxonomy(args, linkage: str = "average", n_clusters=None):
    """The Taxonomy of --store [--layer]: the similarity the sweep computed, clustered."""
    from .taxonomy import taxonomy_from_similarity

    store, layer = _store_layer(args.store, args.layer, "--store", "--layer")
    sim = _store_similarity(store, layer, args.method)
    result = taxonomy_from_similarity(sim, store.rdms(layer).labels, linkage, n_clusters)
    result.metadata = {
        "versions": store.metadata.get("versions"),
        "n_images": store.n,
        "method": args.method,
        "store": str(store.path),
        "layer": layer,
    }
    return result


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


def _one_source(args) -> None:
    """Refuse more than one of --rdms, --features, --models/--images and --store."""
    given = [o for o in ("rdms", "features") if getattr(args, o, None)]
    if getattr(args, "models", None) or getattr(args, "images", None):
        given.append("models")
    if getattr(args, "store", None):
        given.append("store")
    if len(given) > 1:
        options = " and ".join("--models/--images" if g == "models" else f"--{g}" for g in given)
        raise ValueError(f"give one source of RDMs; got {options}")


def _labelled_rdms(args) -> tuple[list[str], np.ndarray]:
    """(labels, condensed RDMs (K, m)) from --rdms (an RDM file), --features (a feature file)
    or, for taxonomy, --models with --images (features extracted now)."""
    _one_source(args)
    if args.rdms:
        return _load_rdms(args.rdms, "--rdms", args)
    if args.features:
        return _rdms_of_features(args.features, "--features", args.backend)
    if getattr(args, "models", None) and getattr(args, "images", None):
        from .features import extract

        layer = args.layer or "compressed"
        feats = extract(args.models, args.images, layers=[layer], progress=sys.stderr.isatty())
        stacked = rdms(feats.stack(layer), backend=args.backend)
        return list(feats.models), np.asarray(stacked)
    if hasattr(args, "models"):
        raise ValueError("give --rdms, --features, --store, or --models with --images")
    raise ValueError("give --rdms, --features or --store")


def cmd_taxonomy(args) -> None:
    from .taxonomy import taxonomy

    _check_output(args.out, "--out", "folder", TAXONOMY_FILES)
    seed = _checked_seed(args, "--bootstrap")
    _one_source(args)
    if args.store:
        if args.bootstrap:
            raise ValueError("--bootstrap: resamples images of RDM or feature files, not --store")
        result = _store_taxonomy(args, args.linkage, args.clusters)
    else:
        labels, rows = _labelled_rdms(args)
        result = taxonomy(
            rows,
            labels,
            method=args.method,
            linkage=args.linkage,
            n_clusters=args.clusters,
            backend=args.backend,
            n_boot=args.bootstrap,
            seed=seed,
        )
    with _writing("--out", args.out):
        path = result.save(args.out)
    _print_matrix(result.labels, result.labels, result.similarity)
    if result.clusters:
        groups = result.groups()
        for cid in sorted(groups):
            print(f"cluster {cid}: {', '.join(groups[cid])}")
    if result.support is not None and result.support_clusters is not None:
        print(f"bootstrap support ({result.n_boot} resamples of the images, seed {result.seed}):")
        for members, value in zip(result.support_clusters, result.support, strict=True):
            if len(members) < len(result.labels):
                print(f"  {value:.2f}  {', '.join(members)}")
    print(f"wrote {path} and taxonomy.npz, taxonomy.png, taxonomy.svg in {path.parent}")


def cmd_rank(args) -> None:
    from .taxonomy import rank_sources

    if args.sources and args.sources_store:
        raise ValueError("give --sources or --sources-store, not both")
    if not args.sources and not args.sources_store:
        raise ValueError("give --sources (an RDM file) or --sources-store (a sweep store)")
    if args.target and args.target_label:
        raise ValueError("give --target or --target-label, not both")
    if not args.target and not args.target_label:
        raise ValueError("give --target (an RDM file) or --target-label (with --sources-store)")
    if args.target_label and not args.sources_store:
        raise ValueError("--target-label: names an RDM of --sources-store; there is none")
    if args.layer is not None and not args.sources_store:
        raise ValueError("--layer: names a layer of --sources-store; there is none")
    if args.plot:
        from .plots import figure_format

        _check_output(args.plot, "--plot")
        figure_format(args.plot, "--plot")
    if args.json:
        _check_output(args.json, "--json")
    seed = _checked_seed(args, "--bootstrap")
    if args.sources_store:
        if args.bootstrap:
            raise ValueError("--bootstrap: resamples images of RDM files, not --sources-store")
        ranking = _store_ranking(args)
    else:
        target_labels, target = _rank_target(args)
        labels, sources = _load_rdms(args.sources, "--sources", args)
        if target.shape[1] != sources.shape[1]:
            raise ValueError(
                f"--target covers {n_from_condensed(target.shape[1])} images, --sources "
                f"{n_from_condensed(sources.shape[1])}: they must share the same images"
            )
        ranking = rank_sources(
            target[0],
            sources,
            labels,
            method=args.method,
            backend=args.backend,
            n_boot=args.bootstrap,
            seed=seed,
        )
    # Files first, then stdout: `fastrsa rank ... | head` closing the pipe loses no file.
    written = []
    if args.json:
        with _writing("--json", args.json):
            written.append(io.save_json(args.json, _ranking_json(ranking, args.method)))
    if args.plot:
        from .plots import plot_ranking

        with _writing("--plot", args.plot):
            written.append(plot_ranking(ranking, args.plot))
    width = max(len(label) for label in ranking.labels)
    confidence = getattr(ranking, "confidence", None)
    if confidence is not None:
        print(
            f"bootstrap: {confidence.n_boot} resamples of the images, seed {ranking.seed}; "
            f"P(top-1) and the {confidence.level:.0%} interval of each score"
        )
    for i, (label, score) in enumerate(ranking, 1):
        line = f"{i:3d}  {label:<{width}}  {score:.4f}"
        if confidence is not None:
            s = confidence.labels.index(label)
            lo, hi = confidence.interval[s]
            line += f"  P(top-1) {confidence.top1[s]:.2f}  [{lo:.4f}, {hi:.4f}]"
        print(line)
    for path in written:
        print(f"wrote {path}")


def _ranking_json(ranking, method: str) -> dict:
    """`rank --json`: {"method", "labels" (best first), "scores" (in that order)}, and with
    --bootstrap {"bootstrap": {"n_boot", "seed", "level", "sources"}}, "sources" being
    RankingConfidence.per_source() (one dict per source, in the ranking's order)."""
    out: dict[str, Any] = {
        "method": method,
        "labels": list(ranking.labels),
        "scores": np.asarray(ranking.scores, dtype=np.float64).tolist(),
    }
    confidence = getattr(ranking, "confidence", None)
    if confidence is not None:
        out["bootstrap"] = {
            "n_boot": int(ranking.n_boot),
            "seed": ranking.seed,
            "level": confidence.level,
            "sources": confidence.per_source(),
        }
    return out


def _rank_target(args) -> tuple[list[str], np.ndarray]:
    target_labels, target = _load_rdms(args.target, "--target", args)
    if len(target_labels) != 1:
        raise ValueError(f"--target must hold one RDM; {args.target} holds {target_labels}")
    return target_labels, target


def _store_ranking(args):
    """The Ranking of --sources-store's RDMs of --layer by similarity to --target (a file) or
    to --target-label (an RDM of the same store, left out of the ranking)."""
    from .taxonomy import Ranking, _check_rows

    store, layer = _store_layer(args.sources_store, args.layer, "--sources-store", "--layer")
    labels = store.rdms(layer).labels
    if args.target_label:
        if args.target_label not in labels:
            raise ValueError(
                f"--target-label: {args.target_label!r} is not in layer {layer!r} of store "
                f"{args.sources_store}; it holds {labels[:10]}{' ...' if len(labels) > 10 else ''}"
            )
        target = store.rdms(layer)[[args.target_label]]
    else:
        _, target = _rank_target(args)
        try:
            _check_rows(None, target, args.method, "--target")
        except ValueError as err:
            raise ValueError(_one_line(err)) from None
    option = "--target" if args.target else "--target-label"
    scores = _store_compare(store, layer, target, option, args)[0]
    keep = [i for i, label in enumerate(labels) if label != args.target_label]
    if not keep:
        raise ValueError(f"--sources-store: store {args.sources_store} holds no other source")
    scores = scores[keep]
    order = np.argsort(-scores, kind="stable")
    return Ranking([labels[keep[i]] for i in order], np.asarray(scores)[order])


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
    if args.layer is not None and not args.store:
        raise ValueError("--layer: names a layer of --store; there is no --store")
    seed = _checked_seed(args, "--bootstrap")
    if args.store:
        if args.bootstrap:
            raise ValueError("--bootstrap: resamples images of RDM or feature files, not --store")
        _store_layer(args.store, args.layer, "--store", "--layer")  # refused before the table
    affinities = load_affinities(args.affinities)  # a bad table is refused before the work
    samples = None
    if args.store:
        result = _store_taxonomy(args)
    else:
        labels, rows = _labelled_rdms(args)
        result = taxonomy(rows, labels, method=args.method, backend=args.backend)
        if args.bootstrap:
            from .stats import bootstrap
            from .taxonomy import _draw_seed

            seed = _draw_seed() if seed is None else seed
            boot = bootstrap(
                rows, method=args.method, n_boot=args.bootstrap, seed=seed, backend=args.backend
            )
            samples = boot.samples
    ev = evaluate_transfer(result.similarity, result.labels, affinities, aliases, samples)
    ev.seed = seed  # None without --bootstrap
    if args.json:  # written before anything is printed: a closed stdout cannot lose it
        with _writing("--json", args.json):
            path = io.save_json(args.json, ev.to_json())
    print(
        f"{ev.n_targets} targets: top-1 {ev.top1}, top-3 {ev.top3}, top-5 {ev.top5}; "
        f"mean Pearson {ev.mean_pearson:.3f}, mean Spearman {ev.mean_spearman:.3f}"
    )
    if ev.intervals is not None:
        iv = ev.intervals

        def count(key: str) -> str:
            return f"[{iv[key][0]:g}, {iv[key][1]:g}]"

        def corr(key: str) -> str:
            return f"[{iv[key][0]:.3f}, {iv[key][1]:.3f}]"

        print(
            f"bootstrap: {ev.n_boot} resamples of the images, seed {ev.seed}; "
            f"{ev.level:.0%} intervals: top-1 {count('top1')}, top-3 {count('top3')}, "
            f"top-5 {count('top5')}; mean Pearson {corr('mean_pearson')}, "
            f"mean Spearman {corr('mean_spearman')}"
        )
    if args.json:
        print(f"wrote {path}")


def cmd_sweep(args) -> None:
    if args.status:
        _sweep_status(args)
        return
    from .sweeps import sweep

    sources, images, layers = _sweep_sources(args)
    if args.address and args.executor != "ray":
        raise ValueError("--address: names a Ray cluster; give it with --executor ray")
    memory = None if args.memory is None else parse_memory(args.memory, "--memory")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1; got {args.batch_size}")
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
    )
    layers_done = ", ".join(store.layers)
    print(f"store {store.path}: {len(store.labels)} sources x layers {layers_done}, n={store.n}")
    if store.summary is not None:
        print(store.summary.line())


def _sweep_sources(args) -> tuple[list, str | None, list[str] | None]:
    """(sources, images, layers) for fastrsa.sweep from the command's options, checked: one of
    --models (with --images, --layers), --features, --rdms (with --layer-name)."""
    given = [f"--{o}" for o in ("models", "features", "rdms") if getattr(args, o)]
    if len(given) > 1:
        raise ValueError(f"give one of --models, --features, --rdms; got {' and '.join(given)}")
    if not given:
        raise ValueError("give the sources: --models (with --images), --features or --rdms")
    if not args.store:
        raise ValueError("--store: give the store folder the sweep writes (or --status STORE)")
    if args.models:
        if not args.images:
            raise ValueError("--images: --models need an image folder (--images DIR)")
        if args.layer_name:
            raise ValueError("--layer-name: names the layer of --features/--rdms; use --layers")
        from .sweeps.sources import ONNXSource

        return [ONNXSource(path) for path in args.models], args.images, args.layers
    option = given[0]
    if args.images:
        raise ValueError(f"--images: only --models read images; {option} files do not")
    if args.layers:
        raise ValueError(f"--layers: name the layer of {option} files with --layer-name NAME")
    layers = [args.layer_name] if args.layer_name else None
    if args.features:
        from .sweeps.sources import FeatureSource

        return [FeatureSource(path) for path in args.features], None, layers
    if args.keep_features:
        raise ValueError("--keep-features: RDM files hold no features to keep")
    return _rdm_sources(args), None, layers


def _rdm_sources(args) -> list:
    """RDMSource of every --rdms file: each RDM of a file is a source of its own, labelled as
    the other commands label them. Each file is read here first, so that a bad file is named
    as --rdms and the notes on how square arrays were read go to stderr as with the other
    commands (the sweep reads square arrays the same way: a valid RDM as one square RDM)."""
    from .sweeps.sources import RDMSource

    for path in args.rdms:
        io.load_rdms(path, "--rdms", _reading(args), note=_note)
    return [RDMSource(path, reading=_reading(args)) for path in args.rdms]


def _sweep_status(args) -> None:
    options = ("store", "models", "features", "rdms", "images")
    given = [f"--{o}" for o in options if getattr(args, o)]
    if given:
        raise ValueError(f"--status: reads a store; give it alone, not with {' and '.join(given)}")
    from .sweeps import open_store

    try:
        store = open_store(args.status)
    except (ValueError, OSError) as err:
        raise ValueError(f"--status: {_one_line(err)}") from None
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


RDM_FILES = (
    ".npz: one RDM per label, condensed (m,) or square (n, n), or stacked batches (k, m) / "
    "(k, n, n) labelled key[i]; or .npy: one RDM or a stack (B, m) / (B, n, n)"
)
FEATURE_FILES = ".npz: one feature array (n images, d) per label, or .npy/.npz batches (..., n, d)"
SWEEP_FEATURES = (
    "feature files: .npy one array (n images, d), .npz or zarr one (n, d) array per source label "
    "(d may differ)"
)
STORE_HELP = "a sweep store (fastrsa sweep --store)"
LAYER_HELP = "the layer of {} (default: its only layer)"
DEBUG_HELP = "show the traceback of every error, the user's too (they are one line otherwise)"


def _reading_options() -> argparse.ArgumentParser:
    """--condensed / --square, for every command that reads RDM files."""
    parent = argparse.ArgumentParser(add_help=False)
    how = parent.add_argument_group("reading square arrays").add_mutually_exclusive_group()
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
    return parent


def _bootstrap_options(p: argparse.ArgumentParser, what: str) -> None:
    """--bootstrap K and --seed S of `taxonomy` and `rank`."""
    p.add_argument(
        "--bootstrap", type=int, default=0, metavar="K", help=f"{what}: K resamples of the images"
    )
    p.add_argument(
        "--seed",
        type=int,
        help="the resamples' seed, with --bootstrap only (default: drawn, recorded)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastrsa", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"fastrsa {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    # --debug is also accepted after the command; SUPPRESS keeps the global one when it is not
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    reading = _reading_options()
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, rdm_files: bool = False) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[debug, reading] if rdm_files else [debug])

    backend: dict[str, Any] = dict(
        default="auto", choices=("auto", *BACKENDS), help="compute backend (default: auto)"
    )

    p = command("demo", "the embedded default: a miniature Taskonomy, end to end", rdm_files=True)
    p.add_argument("--images", type=int, default=300, help="generated scenes (default 300)")
    p.add_argument("--layer", default="block4", choices=("block4", "compressed"))
    p.add_argument("--clusters", type=int, help="flat clusters (default 3; 4 with --real-data)")
    p.add_argument("--backend", **backend)
    p.add_argument("--no-reference", action="store_true", help="skip the (slow) naive reference")
    p.add_argument("--out", default="fastrsa-demo", help="output folder (default fastrsa-demo)")
    p.add_argument(
        "--real-data", metavar="DIR", help="instead: the taxonomy of every RDM .npz in DIR"
    )
    p.set_defaults(func=cmd_demo)

    p = command("rdms", "RDMs of feature arrays (.npy: (..., n, d); .npz: one per label)")
    p.add_argument("features", help=".npy or .npz of features (..., n images, d features)")
    p.add_argument("--out", required=True, help="output .npz: condensed RDMs under the same keys")
    p.add_argument("--metric", default="correlation", choices=METRICS)
    p.add_argument("--backend", **backend)
    p.set_defaults(func=cmd_rdms)

    p = command("compare", "all-pairs similarity of RDMs from .npy/.npz files", rdm_files=True)
    p.add_argument("rdms", nargs="?", help=RDM_FILES + " (or --store)")
    p.add_argument(
        "--with", dest="other", help="compare against these RDMs (same kinds of file) instead"
    )
    p.add_argument("--store", help=STORE_HELP + " instead of an RDM file")
    p.add_argument("--layer", help=LAYER_HELP.format("--store"))
    p.add_argument("--with-store", help="compare against the RDMs of this sweep store instead")
    p.add_argument("--with-layer", help=LAYER_HELP.format("--with-store"))
    p.add_argument("--method", default="spearman", choices=METHODS)
    p.add_argument("--backend", **backend)
    p.add_argument("--out", help="save the matrix: .json, or .npz (similarity, labels_a, labels_b)")
    p.add_argument(
        "--permutations",
        type=int,
        metavar="K",
        help="also p-values of every pair: the Mantel test with K permutations of the images",
    )
    p.add_argument(
        "--seed",
        type=int,
        help="the permutations' seed, with --permutations only (default: drawn, reported)",
    )
    p.set_defaults(func=cmd_compare)

    p = command("export-taskonomy", "Taskonomy .pth encoders -> ONNX, one per task")
    p.add_argument("--weights", required=True, help="folder of <task>_encoder*.pth checkpoints")
    p.add_argument("--out", required=True, help="folder for <task>.onnx")
    p.add_argument("--layers", nargs="+", help="block1..block4, compressed (default: all five)")
    p.set_defaults(func=cmd_export_taskonomy)

    p = command("features", "features of ONNX encoders on an image folder (.npz)")
    p.add_argument("--models", nargs="+", required=True, help="ONNX encoder files")
    p.add_argument("--images", required=True, help="folder of images")
    p.add_argument("--layers", nargs="+", default=["compressed"])
    p.add_argument("--out", required=True, help='output .npz, one array per "model.layer"')
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--device", default="auto", help="auto (default), cpu, cuda, or cuda:N for GPU N"
    )
    p.add_argument("--cache", help="folder caching finished (model, layer) results")
    p.set_defaults(func=cmd_features)

    p = command(
        "taxonomy", "similarity of models' RDMs -> clustering, heatmap, JSON", rdm_files=True
    )
    p.add_argument("--rdms", help=RDM_FILES)
    p.add_argument("--features", help=FEATURE_FILES)
    p.add_argument("--models", nargs="+", help="ONNX encoders (with --images)")
    p.add_argument("--images", help="image folder (with --models)")
    p.add_argument("--store", help=STORE_HELP + ": its similarity, computed by the sweep")
    p.add_argument(
        "--layer",
        help="layer of --models (default compressed), or of --store (default: its only layer)",
    )
    p.add_argument("--clusters", type=int, help="number of flat clusters")
    p.add_argument("--method", default="spearman", choices=METHODS)
    p.add_argument("--linkage", default="average")
    _bootstrap_options(p, "bootstrap support of each cluster (RDM or feature files)")
    p.add_argument("--backend", **backend)
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_taxonomy)

    p = command("rank", "rank source models by RDM similarity to a target model", rdm_files=True)
    p.add_argument("--target", help="an RDM file holding one RDM: the target's")
    p.add_argument("--sources", help="the source models' RDMs: " + RDM_FILES)
    p.add_argument("--sources-store", help=STORE_HELP + " holding the source models' RDMs")
    _bootstrap_options(p, "P(top-1) and an interval of each score (RDM files)")
    p.add_argument("--layer", help=LAYER_HELP.format("--sources-store"))
    p.add_argument(
        "--target-label",
        help="instead of --target: this source of --sources-store (left out of the ranking)",
    )
    p.add_argument("--method", default="spearman", choices=METHODS)
    p.add_argument("--backend", **backend)
    p.add_argument(
        "--plot",
        metavar="PATH",
        help="also save the bar chart of the ranking (.png, .svg, ...; with --bootstrap: "
        "interval error bars and P(top-1))",
    )
    p.add_argument(
        "--json",
        metavar="PATH",
        help="write the ranking to this JSON: method, labels, scores (with --bootstrap also "
        "n_boot, seed, level and each source's P(top-k) and interval)",
    )
    p.set_defaults(func=cmd_rank)

    p = command("evaluate", "RSA similarity against measured transfer affinities", rdm_files=True)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--rdms", help="one RDM per task: " + RDM_FILES)
    source.add_argument("--features", help="one feature array per task: " + FEATURE_FILES)
    source.add_argument("--store", help=STORE_HELP + ": its similarity, computed by the sweep")
    p.add_argument("--layer", help=LAYER_HELP.format("--store"))
    p.add_argument("--affinities", required=True, help=".json or .csv transfer affinities")
    p.add_argument(
        "--alias",
        action="append",
        metavar="LABEL=AFFINITY_NAME",
        help="map an RDM label to the affinity table's name (repeatable)",
    )
    p.add_argument("--method", default="spearman", choices=METHODS)
    _bootstrap_options(p, "percentile intervals of the figures (RDM or feature files)")
    p.add_argument("--backend", **backend)
    p.add_argument(
        "--json",
        help="write the figures and per-target rows to this JSON (with --bootstrap also its "
        "intervals, level, seed and count)",
    )
    p.set_defaults(func=cmd_evaluate)

    p = command(
        "sweep",
        "many models x layers -> RDMs and all-pairs similarity in a store: out of core, resumable",
        rdm_files=True,
    )
    p.add_argument("--store", help="the store folder (or fsspec URL) written; created if absent")
    p.add_argument("--status", metavar="STORE", help="instead: show what STORE holds and lacks")
    p.add_argument("--models", nargs="+", metavar="ONNX", help="ONNX encoders (with --images)")
    p.add_argument("--images", help="image folder (with --models)")
    p.add_argument("--layers", nargs="+", help="layers of --models (default compressed)")
    p.add_argument("--features", nargs="+", metavar="FILE", help=SWEEP_FEATURES)
    p.add_argument("--rdms", nargs="+", metavar="FILE", help="RDM files: " + RDM_FILES)
    p.add_argument(
        "--layer-name", help="the layer name of --features/--rdms sources (default 'default')"
    )
    p.add_argument("--method", default="spearman", choices=METHODS)
    p.add_argument("--metric", default="correlation", choices=METRICS, help="the RDMs' metric")
    p.add_argument("--executor", default="local", choices=("local", "ray"))
    p.add_argument("--address", help="with --executor ray: a running cluster (default: start one)")
    p.add_argument(
        "--memory", help="memory budget per worker, e.g. 4GB (default: FASTRSA_MEMORY, else 1/4)"
    )
    p.add_argument("--backend", **backend)
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    p.add_argument(
        "--device", default="auto", help="auto (default), cpu, cuda, or cuda:N for GPU N"
    )
    p.add_argument("--keep-features", action="store_true", help="also write features to the store")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.set_defaults(func=cmd_sweep)

    p = command("diff", "compare two saved results; exit 1 when they differ")
    p.add_argument("old", help=".npy, .npz or .json result")
    p.add_argument("new", help="the same kind of file")
    p.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance (default 1e-6)")
    p.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0)")
    p.add_argument("--ignore", nargs="+", help="more keys to skip (metadata and timings are)")
    p.set_defaults(func=cmd_diff)

    p = command("backends", "list the compute backends and whether they can run here")
    p.set_defaults(func=cmd_backends)
    return parser


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror and err.filename:
        text = f"{err.strerror}: {err.filename}"
    else:
        text = str(err)
    return " ".join(text.split()) or type(err).__name__


def _stdout_closed() -> int:
    """The reader of stdout went away (`fastrsa rank ... | head`): exit 141 (128 + SIGPIPE, as a
    command killed by the signal) without a traceback, and point stdout at devnull so that
    Python's own flush at exit fails no more (Python's docs, "Note on SIGPIPE")."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (captured): nothing to redirect
        return 141
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    return 141


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
        return _stdout_closed()
    except Exception as err:
        if getattr(args, "debug", False) or not is_user_error(err):
            raise
        print(f"fastrsa {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    return code or 0
