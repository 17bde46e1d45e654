"""`fastrsa evaluate`: RSA similarity against measured transfer affinities (top-k hits, mean
correlations), with --bootstrap percentile intervals."""

from __future__ import annotations

from .. import io
from .._checks import draw_seed
from .._memory import get_memory_budget
from ..io import load_affinities
from ..rdms import n_from_condensed
from ..reference import METHODS
from ..stats import OverBudget, bootstrap, check_bootstrap_held
from ..stats.batches import CLI_BUDGET
from ..taxonomy import taxonomy
from ..transfer import evaluate_transfer
from ._common import (
    FEATURE_FILES,
    LAYER_HELP,
    RDM_FILES,
    STORE_HELP,
    add_backend,
    add_bootstrap,
    add_command,
    add_measure,
    check_output,
    checked_seed,
    labelled_rdms,
    store_layer,
    store_measure,
    store_taxonomy,
    writing,
)

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = add_command(
        subparsers, "evaluate", "RSA similarity against measured transfer affinities", True
    )
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
    add_measure(p)
    add_bootstrap(p, "percentile intervals of the figures (RDM or feature files)")
    add_backend(p)
    p.add_argument(
        "--json",
        help="write the figures and per-target rows to this JSON (with --bootstrap also its "
        "intervals, level, seed and count)",
    )
    p.set_defaults(func=run)


def _aliases(args) -> dict[str, str]:
    """{label: affinity name} of the --alias LABEL=AFFINITY_NAME options."""
    aliases = {}
    for item in args.alias or []:
        label, sep, name = item.partition("=")
        if not sep or not label or not name:
            raise ValueError(f"--alias must look like LABEL=AFFINITY_NAME; got {item!r}")
        aliases[label] = name
    return aliases


def run(args) -> None:
    if args.json:
        check_output(args.json, "--json")
    aliases = _aliases(args)
    if args.layer is not None and not args.store:
        raise ValueError("--layer: names a layer of --store; there is no --store")
    store_measure(args, bool(args.store))
    seed = checked_seed(args, "--bootstrap")
    if args.store:
        if args.bootstrap:
            raise ValueError("--bootstrap: resamples images of RDM or feature files, not --store")
        store_layer(args.store, args.layer, "--store", "--layer")  # refused before the table
    affinities = load_affinities(args.affinities)  # a bad table is refused before the work
    samples = None
    if args.store:
        result = store_taxonomy(args)
    else:
        labels, rows = labelled_rdms(args)
        if args.bootstrap:  # the (K, B, B) samples are held whole: refused before any work
            n = n_from_condensed(rows.shape[1], "--rdms" if args.rdms else "--features")
            budget = get_memory_budget()
            check_bootstrap_held(args.bootstrap, len(labels), n, budget, "--bootstrap", CLI_BUDGET)
        result = taxonomy(rows, labels, method=args.method, backend=args.backend)
        if args.bootstrap:
            seed = draw_seed() if seed is None else seed
            try:
                boot = bootstrap(rows, args.method, args.bootstrap, seed, backend=args.backend)
            except OverBudget as err:
                raise err.renamed("--bootstrap") from None
            samples = boot.samples
    ev = evaluate_transfer(result.similarity, result.labels, affinities, aliases, samples)
    ev.seed = seed  # None without --bootstrap
    if args.json:  # written before anything is printed: a closed stdout cannot lose it
        with writing("--json", args.json):
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
