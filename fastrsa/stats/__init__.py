"""How sure is the answer: permutation (Mantel) tests and bootstrap over images.

`permutation_test` (stats/permutation.py) relabels the images of RDMs and recomputes all-pairs
similarities to get a null distribution for every pair at once; `bootstrap`
(stats/bootstrap.py) resamples images with replacement (rsatoolbox's semantics) and returns the
distribution of the similarity matrix, with percentile and BCa intervals and standard errors;
`calibrated` (stats/calibrated.py) puts any `fastrsa.similarity` measure against its permutation
null (a z-score, a p-value, and the max-over-pairs correction for a best-matching layer pair);
stats/resampling.py holds what both share (index rows, pair indices, the weighted resampler);
stats/batches.py draws permutations and resamples a block at a time (any count in bounded
memory, the same rows for a seed whatever the budget) and refuses, before any work, an output
that must be held whole and does not fit the budget (`OverBudget`, a ValueError naming the
argument, the count, the bytes and the budget). Results carry scipy's names (`statistic`,
`pvalue`, `null_distribution`; `bootstrap_distribution`, `standard_error`,
`confidence_interval`) beside their own.

RDMs are condensed rows (B, n*(n-1)//2), i < j row-major as scipy's `squareform` (or
rsatoolbox RDMs objects). The kernels (the permutation test's gather and products, the
bootstrap's weighted ranks) are the backends' declared statistics ops (fastrsa._backend).
This module only re-exports.
"""

from .batches import OverBudget
from .bootstrap import (
    BootstrapResult,
    ConfidenceInterval,
    StandardError,
    bootstrap,
    bootstrap_batches,
    bootstrap_first_row,
    check_bootstrap_held,
)
from .calibrated import CALIBRATED_MEASURES, Calibrated, calibrated
from .permutation import ALTERNATIVES, PermutationResult, permutation_test

__all__ = [
    "ALTERNATIVES",
    "BootstrapResult",
    "CALIBRATED_MEASURES",
    "Calibrated",
    "ConfidenceInterval",
    "OverBudget",
    "PermutationResult",
    "StandardError",
    "bootstrap",
    "bootstrap_batches",
    "bootstrap_first_row",
    "calibrated",
    "check_bootstrap_held",
    "permutation_test",
]
