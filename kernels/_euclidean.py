"""Shared by every backend's euclidean and cosine RDMs: when the Gram formula must be backed up.

The squared distance |a - b|^2 = |a|^2 + |b|^2 - 2 a.b is computed from a float64 Gram, whose
rounding error is about sqrt(d) * 2**-52 * (|a|^2 + |b|^2) (worst case d times that). A pair whose
squared distance is not well above that error is recomputed directly, sum((a - b)^2) in float64,
which is accurate relative to the distance itself.

The cosine distance 1 - a.b / (|a| |b|) from a Gram in the rows' own precision (float32 or
float64) errs by about sqrt(d) unit roundoffs in absolute terms: fine for most pairs, but nothing
is left of a distance below that (float32 rows sharing a large offset, 1e8 + noise, have cosine
distances near 1e-13). Pairs below `cosine_limit` are recomputed as |u - v|^2 / 2 of the unit
rows u = a/|a|, v = b/|b| in float64, accurate relative to the distance itself (about
2**-53 / sqrt(distance)).
"""

import math

# Target relative error of a squared distance that is not recomputed: float32 results (their
# own rounding is 6e-8) and float64 results.
TOLERANCE = {False: 1e-7, True: 1e-11}
# Target relative error of a cosine distance that is not recomputed: float32 rows (a float32
# Gram: recomputing every pair to float32's own 6e-8 would cost more than the Gram) and float64.
COSINE_TOLERANCE = {False: 1e-3, True: 1e-9}


def refine_ratio(d: int, wide: bool) -> float:
    """Pairs with |a - b|^2 < ratio * (|a|^2 + |b|^2) are recomputed directly; d: features,
    wide: float64 result. 4x margin over the typical rounding of a length-d float64 sum."""
    return 4.0 * math.sqrt(d) * 2.0**-52 / TOLERANCE[wide]


def refine_step(d: int, chunk_bytes: int) -> int:
    """Pairs recomputed at once so that their (pairs, d) float64 differences take at most
    `chunk_bytes` (at least one pair)."""
    return max(1, chunk_bytes // (8 * d))


def cosine_limit(d: int, wide: bool) -> float:
    """Cosine distances below this are recomputed from float64 unit rows; d: features, wide:
    float64 rows and Gram (else float32). 4x margin over the typical rounding of a length-d
    sum of products of unit rows (2**-24 or 2**-53 per term), over COSINE_TOLERANCE."""
    eps = 2.0**-53 if wide else 2.0**-24
    return 4.0 * math.sqrt(d) * eps / COSINE_TOLERANCE[wide]
