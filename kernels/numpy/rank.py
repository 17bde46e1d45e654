"""Average-tie ranks along the last axis with scipy.stats.rankdata."""

import numpy as np
from scipy import stats

__all__ = ["rank_numpy"]


def rank_numpy(x: np.ndarray) -> np.ndarray:
    """x: (R, M) -> float64 ranks (R, M), 1-based, ties averaged."""
    return stats.rankdata(x, method="average", axis=-1).astype(np.float64, copy=False)
