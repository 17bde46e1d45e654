"""Shared by every backend's euclidean RDM: when the Gram formula must be backed up.

The squared distance |a - b|^2 = |a|^2 + |b|^2 - 2 a.b is computed from a float64 Gram, whose
rounding error is about sqrt(d) * 2**-52 * (|a|^2 + |b|^2) (worst case d times that). A pair whose
squared distance is not well above that error is recomputed directly, sum((a - b)^2) in float64,
which is accurate relative to the distance itself.
"""

import math

# Target relative error of a squared distance that is not recomputed: float32 results (their
# own rounding is 6e-8) and float64 results.
TOLERANCE = {False: 1e-7, True: 1e-11}


def refine_ratio(d: int, wide: bool) -> float:
    """Pairs with |a - b|^2 < ratio * (|a|^2 + |b|^2) are recomputed directly; d: features,
    wide: float64 result. 4x margin over the typical rounding of a length-d float64 sum."""
    return 4.0 * math.sqrt(d) * 2.0**-52 / TOLERANCE[wide]


def refine_step(d: int, chunk_bytes: int) -> int:
    """Pairs recomputed at once so that their (pairs, d) float64 differences take at most
    `chunk_bytes` (at least one pair)."""
    return max(1, chunk_bytes // (8 * d))
