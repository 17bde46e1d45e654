"""What the commands share: the options several commands take (reading RDM files, bootstrap,
backend, help strings), reading the sources of RDMs (files, sweep stores) with errors that name
the flags, and output helpers (checking an output before the work, one-line write errors,
matrices on stdout, a closed stdout).
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

from .. import io
from .._backend import BACKENDS
from .._checks import check_count, check_n_boot, one_line
from .._memory import parse_memory
from ..features import extract
from ..rdms import n_from_condensed, rdms, rdms_of_feature_file
from ..sweeps import open_store
from ..sweeps.file_sources import check_rdm_file
from ..sweeps.measure_specs import MeasureSpec, parse_measures
from ..taxonomy import taxonomy_from_store

__all__ = [
    "DEBUG_HELP",
    "FEATURE_FILES",
    "LAYER_HELP",
    "RDM_FILES",
    "STORE_HELP",
    "SWEEP_FEATURES",
    "add_backend",
    "add_bootstrap",
    "add_command",
    "check_output",
    "check_rdm_files",
    "checked_seed",
    "labelled_rdms",
    "load_rdms",
    "note",
    "one_source",
    "print_matrix",
    "reading",
    "stdout_closed",
    "store_compare",
    "store_layer",
    "store_taxonomy",
    "user_labels",
    "writing",
]

# ---- help strings and options --------------------------------------------------------------

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


def _debug_option() -> argparse.ArgumentParser:
    """--debug after the command too; SUPPRESS keeps the global one when it is not given."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parent


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


def add_command(
    subparsers: Any, name: str, help: str, rdm_files: bool = False
) -> argparse.ArgumentParser:
    """The parser of command `name`, with --debug and (`rdm_files`: it reads RDM files)
    --condensed / --square."""
    parents = [_debug_option(), _reading_options()] if rdm_files else [_debug_option()]
    return subparsers.add_parser(name, help=help, parents=parents)


def add_backend(p: argparse.ArgumentParser) -> None:
    """--backend, for every command that computes."""
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", *BACKENDS),
        help="compute backend (default: auto)",
    )


def add_bootstrap(p: argparse.ArgumentParser, what: str) -> None:
    """--bootstrap K and --seed S of `taxonomy`, `rank` and `evaluate`."""
    p.add_argument(
        "--bootstrap", type=int, default=0, metavar="K", help=f"{what}: K resamples of the images"
    )
    p.add_argument(
        "--seed",
        type=int,
        help="the resamples' seed, with --bootstrap only (default: drawn, recorded)",
    )


def checked_seed(args, flag: str) -> int | None:
    """--seed of a command whose `flag` (--bootstrap or --permutations) takes it, checked with
    the count: --bootstrap K an int >= 0 (0, the default: no bootstrap), --permutations K an int
    >= 1, and --seed S an int >= 0 given only with K (every command refuses a seed that would
    seed nothing). The seed, or None when none was given (the caller draws one with
    fastrsa._checks.draw_seed, or the API does, and records it)."""
    count = getattr(args, flag[2:])
    if flag == "--bootstrap":
        given = check_n_boot(count, flag) > 0
    else:
        given = count is not None and check_count(count, flag) > 0
    if args.seed is None:
        return None
    if not given:
        raise ValueError(f"--seed: seeds {flag}; there is no {flag} (give {flag} K with --seed)")
    return check_count(args.seed, "--seed", 0)


# ---- reading RDMs --------------------------------------------------------------------------


def note(message: str) -> None:
    """A note to the user, on stderr."""
    print(f"fastrsa: note: {message}", file=sys.stderr)


def reading(args) -> str:
    """How square 2-D arrays of RDM files are read: --condensed, --square or "auto"."""
    if getattr(args, "condensed", False):
        return "condensed"
    return "square" if getattr(args, "square", False) else "auto"


def load_rdms(path: str, option: str, args) -> tuple[list[str], np.ndarray]:
    """(labels, condensed RDMs (K, m)) of an RDM file: io.load_rdms with the command's
    --condensed/--square choice; its notes go to stderr."""
    return io.load_rdms(path, option, reading(args), note=note)


def check_rdm_files(args) -> None:
    """Each --rdms file of `sweep` checked before the sweep, a block of RDMs at a time within
    --memory (never read whole): errors name --rdms, notes on square arrays go to stderr, and
    what the check found is kept for the sweep, which does not read the file again to check it
    (fastrsa.sweeps.file_sources.check_rdm_file)."""
    memory = None if args.memory is None else parse_memory(args.memory, "--memory")
    for path in args.rdms:
        check_rdm_file(path, reading(args), memory, "--rdms", note)


def one_source(args) -> None:
    """Refuse more than one of --rdms, --features, --models/--images and --store."""
    given = [o for o in ("rdms", "features") if getattr(args, o, None)]
    if getattr(args, "models", None) or getattr(args, "images", None):
        given.append("models")
    if getattr(args, "store", None):
        given.append("store")
    if len(given) > 1:
        options = " and ".join("--models/--images" if g == "models" else f"--{g}" for g in given)
        raise ValueError(f"give one source of RDMs; got {options}")


def labelled_rdms(args) -> tuple[list[str], np.ndarray]:
    """(labels, condensed RDMs (K, m)) from --rdms (an RDM file), --features (a feature file)
    or, for taxonomy, --models with --images (features extracted now)."""
    one_source(args)
    if args.rdms:
        return load_rdms(args.rdms, "--rdms", args)
    if args.features:
        return rdms_of_feature_file(args.features, "--features", args.backend)
    if getattr(args, "models", None) and getattr(args, "images", None):
        layer = args.layer or "compressed"
        feats = extract(args.models, args.images, layers=[layer], progress=sys.stderr.isatty())
        stacked = rdms(feats.stack(layer), backend=args.backend)
        return list(feats.models), np.asarray(stacked)
    if hasattr(args, "models"):
        raise ValueError("give --rdms, --features, --store, or --models with --images")
    raise ValueError("give --rdms, --features or --store")


def user_labels(err: Exception, labels_a: list[str], labels_b: list[str]) -> Exception:
    """The same error with compare's internal names a[i] / b[i] replaced by the RDMs' labels."""

    def label(m: re.Match) -> str:
        labels = labels_a if m.group(1) == "a" else labels_b
        i = int(m.group(2))
        return repr(labels[i]) if i < len(labels) else m.group(0)

    return type(err)(re.sub(r"\b([ab])\[(\d+)\]", label, str(err)))


# ---- sweep stores ----------------------------------------------------------------------------


def store_layer(path: str, layer: str | None, option: str, layer_option: str):
    """(Store, layer name) of `--store PATH [--layer L]`: errors name the options."""
    try:
        store = open_store(path)
    except (ValueError, OSError) as err:
        raise ValueError(f"{option}: {one_line(err)}") from None
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


def store_compare(store, layer: str, targets, option: str, args, target_layer=None) -> np.ndarray:
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
        raise ValueError(f"{option}: {one_line(err)}") from None


MEASURE_HELP = (
    "with a store: the measure its sweep computed (sweep --measure): rsa (default: the RDMs by "
    "--method), cka, svcca, nbs, procrustes, cca, mutual-knn, jaccard-knn, cknna, pwcca, "
    "ridge, dds, with options "
    "as name:option=value,... (e.g. procrustes:alpha=0.5); a distance is used as 1 - d"
)


def add_measure(p) -> None:
    """--measure (one measure of a sweep store)."""
    p.add_argument("--measure", default="rsa", metavar="MEASURE", help=MEASURE_HELP)


def store_measure(args, has_store: bool) -> MeasureSpec:
    """The MeasureSpec of --measure (rsa: by --method); ValueError naming --measure when it is
    not one a store computes, or when it is given without a store to read it from."""
    try:
        spec = parse_measures([args.measure], args.method)[0]
    except (TypeError, ValueError) as err:
        raise ValueError(f"--measure: {one_line(err).removeprefix('measures: ')}") from None
    if not spec.is_rsa and not has_store:
        raise ValueError(
            f"--measure {args.measure}: reads the measures a sweep store holds (give a store); "
            "RDM and feature files give rsa (fastrsa.similarity computes the others in memory)"
        )
    return spec


def store_taxonomy(args, linkage: str = "average", n_clusters=None):
    """The Taxonomy of --store [--layer] (fastrsa.taxonomy.taxonomy_from_store: the similarity
    the sweep computed by --method or --measure, clustered); errors name --store / --layer."""
    spec = store_measure(args, True)
    store, layer = store_layer(args.store, args.layer, "--store", "--layer")
    try:
        return taxonomy_from_store(store, layer, args.method, linkage, n_clusters, spec)
    except ValueError as err:
        raise ValueError(f"--store: {one_line(err)}") from None


# ---- output --------------------------------------------------------------------------------


def check_output(
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
def writing(option: str, path: str | os.PathLike):
    """Turn an OSError while writing `path` into a one-line ValueError naming the option."""
    try:
        yield
    except OSError as err:
        reason = err.strerror or " ".join(str(err).split())
        raise ValueError(f"{option}: cannot write {path} ({reason})") from None


def print_matrix(labels_a, labels_b, matrix) -> None:
    """A labelled matrix on stdout, 4 decimals, columns as wide as the longest label."""
    width = max(8, *(len(lab) + 1 for lab in labels_b))
    print(" " * width + "".join(f"{lab:>{width}}" for lab in labels_b))
    for lab, row in zip(labels_a, matrix, strict=True):
        print(f"{lab:>{width}}" + "".join(f"{v:{width}.4f}" for v in row))


def stdout_closed() -> int:
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
