"""`fastrsa rank`: source models ranked by the similarity of their RDMs to a target's (RDM
files or a sweep store), with --bootstrap P(top-1) and intervals; --json, --plot."""

from __future__ import annotations

from .. import io
from ..plots import figure_format, plot_ranking
from ..rdms import n_from_condensed
from ..reference import METHODS
from ..stats import OverBudget
from ..transfer import Ranking, measure_ranking, rank_in_store, rank_sources
from ._common import (
    LAYER_HELP,
    RDM_FILES,
    STORE_HELP,
    add_backend,
    add_bootstrap,
    add_command,
    add_measure,
    check_output,
    checked_seed,
    load_rdms,
    store_layer,
    store_measure,
    writing,
)

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = add_command(
        subparsers, "rank", "rank source models by RDM similarity to a target model", True
    )
    p.add_argument("--target", help="an RDM file holding one RDM: the target's")
    p.add_argument("--sources", help="the source models' RDMs: " + RDM_FILES)
    p.add_argument("--sources-store", help=STORE_HELP + " holding the source models' RDMs")
    add_bootstrap(p, "P(top-1) and an interval of each score (RDM files)")
    p.add_argument("--layer", help=LAYER_HELP.format("--sources-store"))
    p.add_argument(
        "--target-label",
        help="instead of --target: this source of --sources-store (left out of the ranking)",
    )
    p.add_argument("--method", default="spearman", choices=METHODS)
    add_measure(p)
    add_backend(p)
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
    p.set_defaults(func=run)


def _check_options(args) -> None:
    """Refuse the combinations of sources and targets that mean nothing."""
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
    spec = store_measure(args, bool(args.sources_store))
    if not spec.is_rsa and not args.target_label:
        raise ValueError(
            f"--measure {args.measure}: ranks by a measure the store holds, against one of its "
            "sources (--target-label); a --target RDM file gives rsa only"
        )


def run(args) -> None:
    _check_options(args)
    if args.plot:
        check_output(args.plot, "--plot")
        figure_format(args.plot, "--plot")
    if args.json:
        check_output(args.json, "--json")
    seed = checked_seed(args, "--bootstrap")
    if args.sources_store:
        if args.bootstrap:
            raise ValueError("--bootstrap: resamples images of RDM files, not --sources-store")
        ranking = _store_ranking(args)
    else:
        target = _target(args)
        labels, sources = load_rdms(args.sources, "--sources", args)
        if target.shape[1] != sources.shape[1]:
            raise ValueError(
                f"--target covers {n_from_condensed(target.shape[1])} images, --sources "
                f"{n_from_condensed(sources.shape[1])}: they must share the same images"
            )
        try:
            ranking = rank_sources(
                target[0],
                sources,
                labels,
                method=args.method,
                backend=args.backend,
                n_boot=args.bootstrap,
                seed=seed,
            )
        except OverBudget as err:  # the resamples' scores, held whole: refused before the work
            raise err.renamed("--bootstrap") from None
    # Files first, then stdout: `fastrsa rank ... | head` closing the pipe loses no file.
    written = []
    if args.json:
        with writing("--json", args.json):
            written.append(io.save_json(args.json, ranking.to_json(args.method)))
    if args.plot:
        with writing("--plot", args.plot):
            written.append(plot_ranking(ranking, args.plot))
    width = max(len(label) for label in ranking.labels)
    confidence = ranking.confidence
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


def _target(args):
    """The one RDM (1, m) of --target."""
    target_labels, target = load_rdms(args.target, "--target", args)
    if len(target_labels) != 1:
        raise ValueError(f"--target must hold one RDM; {args.target} holds {target_labels}")
    return target


def _store_ranking(args) -> Ranking:
    """The Ranking of --sources-store's RDMs of --layer by similarity to --target (a file) or
    to --target-label (an RDM of the same store, left out of the ranking):
    fastrsa.transfer.rank_in_store, its errors naming the flags."""
    store, layer = store_layer(args.sources_store, args.layer, "--sources-store", "--layer")
    spec = store_measure(args, True)
    if not spec.is_rsa:
        return measure_ranking(store, layer, args.target_label, spec, "--target-label")
    target = None if args.target_label else _target(args)[0]
    flags = {"store": "--sources-store", "target_rdm": "--target", "target_label": "--target-label"}
    return rank_in_store(
        store,
        layer,
        target,
        args.target_label,
        method=args.method,
        backend=args.backend,
        names=flags,
    )
