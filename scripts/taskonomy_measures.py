"""The standard Taskonomy transfer evaluation (Dwivedi & Roig 2019, section 4.3) with every way
of comparing the real RDMs side by side: `compare` methods spearman, rho-a, tau-a, pearson, and
CKA / DDS of the RDMs themselves (the DDS paper's "rdm" variant: CKA of the (n, n) RDMs, DDS
U-centred as the authors' `get_similarity_from_rdms`); and, with each (n, n) RDM as its task's
features, NBS and the kNN alignments (mutual, Jaccard, CKNNA). Not run: Procrustes as a
distance (its angular form ranks as NBS does), CCA / PWCCA (n features for n images: every
canonical correlation is 1) and ridge (asymmetric, and an RDM's rows predict another's through
the shared images' columns).

    python scripts/taskonomy_measures.py [DATA] [--out FILE.md]

DATA: a folder with rdms_train.npz, rdms_test.npz and affinities.json (default
../shared/data/taskonomy beside the repository). Prints a markdown table (and writes it with
--out) of top-1/3/5 hits and mean Pearson / Spearman per measure and image set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import fastrsa
from fastrsa.io import load_rdms
from fastrsa.measures.cka import cka_of_matrices
from fastrsa.rdms import squareform
from fastrsa.taxonomy import evaluate_transfer, load_affinities

ALIASES = {
    "vanishing_point": "vanishing_point_well_defined",
    "segmentsemantic": "segmentsemantic_rb",
}
MEASURES = {
    "RSA, Spearman (the paper's)": lambda rows: fastrsa.compare(rows, method="spearman"),
    "RSA, rho-a": lambda rows: fastrsa.compare(rows, method="rho-a"),
    "RSA, tau-a": lambda rows: fastrsa.compare(rows, method="tau-a"),
    "RSA, Pearson": lambda rows: fastrsa.compare(rows, method="pearson"),
    "CKA of the RDMs": lambda rows: cka_of_matrices(squareform(rows)),
    "DDS of the RDMs (debiased)": lambda rows: cka_of_matrices(squareform(rows), debiased=True),
    # each task's square RDM (n, n) as its features: an image described by its dissimilarities
    "NBS of the RDMs": lambda rows: fastrsa.similarity(squareform(rows), "nbs"),
    "mutual kNN of the RDMs (k = 10)": lambda rows: fastrsa.similarity(
        squareform(rows), "mutual-knn", k=10
    ),
    "Jaccard kNN of the RDMs (k = 10)": lambda rows: fastrsa.similarity(
        squareform(rows), "jaccard-knn", k=10
    ),
    "CKNNA of the RDMs (k = 10), both orders averaged": lambda rows: _symmetric(
        fastrsa.similarity(squareform(rows), "cknna", k=10)
    ),
}


def _symmetric(sim: np.ndarray) -> np.ndarray:
    """CKNNA's row-wise kNN masks make it nearly, not exactly, symmetric; the evaluation takes a
    symmetric similarity."""
    return 0.5 * (sim + sim.T)


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "taskonomy"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(default))
    parser.add_argument("--out", help="also write the table to this .md file")
    args = parser.parse_args()
    data = Path(args.data)
    affinities = load_affinities(data / "affinities.json")
    lines = [
        "| measure | RDMs | top-1 | top-3 | top-5 | mean Pearson | mean Spearman |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, measure in MEASURES.items():
        for split in ("train", "test"):
            labels, rows = load_rdms(data / f"rdms_{split}.npz", "rdms", "square")
            sim = np.asarray(measure(rows), dtype=np.float64)
            ev = evaluate_transfer(sim, labels, affinities, ALIASES)
            lines.append(
                f"| {name} | {split} | {ev.top1} | {ev.top3} | {ev.top5} | "
                f"{ev.mean_pearson:.3f} | {ev.mean_spearman:.3f} |"
            )
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        Path(args.out).write_text(table)


if __name__ == "__main__":
    main()
