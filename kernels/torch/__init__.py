"""Plain-torch backend: the same ops as the Triton kernels, in torch ops (cuBLAS, torch.sort).

The GPU baseline for the Triton kernels, and a backend for tensors on any device. Work is split
into batch chunks so that temporaries stay under `chunk_bytes`.
"""

from .corr import centred_rows_torch, corr_torch
from .kendall import kendall_torch
from .permute import pair_index_torch, permuted_products_torch
from .rank import rank_torch
from .rdm import rdm_torch
from .rdm_backward import check_unit_rdm_backward, unit_rdm_backward_torch
from .resample import sort_rows_torch, weighted_ranker_torch, weighted_ranks_torch

__all__ = [
    "centred_rows_torch",
    "check_unit_rdm_backward",
    "corr_torch",
    "kendall_torch",
    "pair_index_torch",
    "permuted_products_torch",
    "rank_torch",
    "rdm_torch",
    "sort_rows_torch",
    "unit_rdm_backward_torch",
    "weighted_ranker_torch",
    "weighted_ranks_torch",
]
