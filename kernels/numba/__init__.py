"""Numba CPU backend: compiled kernels for the element-wise and sorting work, BLAS for products.

Every kernel is parallel over independent rows or pairs, so results do not depend on the number
of threads. Importing this package compiles nothing: kernels compile (or load from cache) on
first use.
"""

from .corr import corr_numba
from .kendall import kendall_numba
from .pav import pav_blocks_numba, soft_rank_numba
from .permute import permuted_products_numba, products_numba, relabelled_rows_numba
from .rank import rank_numba
from .rdm import one_blas_thread, rdm_numba
from .resample import weighted_ranker_numba, weighted_ranks_numba

__all__ = [
    "corr_numba",
    "kendall_numba",
    "one_blas_thread",
    "pav_blocks_numba",
    "permuted_products_numba",
    "products_numba",
    "rank_numba",
    "rdm_numba",
    "relabelled_rows_numba",
    "soft_rank_numba",
    "weighted_ranker_numba",
    "weighted_ranks_numba",
]
