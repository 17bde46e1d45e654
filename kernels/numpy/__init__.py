"""Vectorised numpy backend: BLAS for every product, scipy for ranks."""

from .corr import corr_numpy
from .kendall import kendall_numpy
from .permute import pair_index, permuted_products_numpy
from .rank import rank_numpy
from .rdm import rdm_numpy
from .resample import sort_rows, weighted_ranker_numpy, weighted_ranks_numpy

__all__ = [
    "corr_numpy",
    "kendall_numpy",
    "pair_index",
    "permuted_products_numpy",
    "rank_numpy",
    "rdm_numpy",
    "sort_rows",
    "weighted_ranker_numpy",
    "weighted_ranks_numpy",
]
