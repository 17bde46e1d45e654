"""Transfer from RDMs (Dwivedi & Roig 2019, section 4.3): which pretrained model to start from,
and how well RSA similarity predicts measured transfer.

- `rank_sources(target_rdm, source_rdms, labels)`: source models ordered by the similarity of
  their RDMs to the target's, highest first (`rank_in_store`: the same for a sweep store's RDMs).
- `evaluate_transfer(similarity, labels, affinities)`: the standard evaluation against measured
  transfer affinities (top-1/3/5 hits, mean per-target Pearson and Spearman).
"""

from __future__ import annotations

from ..io import load_affinities
from .evaluation import (
    TASKONOMY_ALIASES,
    TRANSFER_FIGURES,
    TransferEvaluation,
    check_similarity_matrix,
    evaluate_transfer,
)
from .ranking import Ranking, measure_ranking, rank_in_store, rank_sources, ranking_of

__all__ = [
    "TASKONOMY_ALIASES",
    "TRANSFER_FIGURES",
    "Ranking",
    "TransferEvaluation",
    "check_similarity_matrix",
    "evaluate_transfer",
    "load_affinities",
    "measure_ranking",
    "rank_in_store",
    "rank_sources",
    "ranking_of",
]
