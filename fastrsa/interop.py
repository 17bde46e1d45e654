"""rsatoolbox in and out: `to_rsatoolbox`, `from_rsatoolbox`. (The API takes an
`rsatoolbox.rdm.RDMs` object wherever it takes RDMs through `fastrsa.rdm_inputs`, which
recognises and reads such objects; `rdm_rows` is re-exported here for old imports.)

rsatoolbox stores RDMs as `dissimilarities` (n_rdm, n_cond*(n_cond-1)/2), the vector form of
scipy.spatial.distance.squareform (rsatoolbox.util.rdm_utils.batch_to_vectors calls it): the
upper triangle i < j, row-major. fastrsa's condensed RDMs use the same order, so the conversion
is a copy of the rows, no reordering. Model names travel as the rdm descriptor "name" (the one
rsatoolbox's own plots label RDMs with).

rsatoolbox is optional (`pip install rsatoolbox`): it is imported only by `to_rsatoolbox`;
`from_rsatoolbox` recognises its objects without importing it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _arrays as A
from .errors import MissingPackage
from .rdm_inputs import NAME, is_rsatoolbox_rdms, rdm_rows, read_rsatoolbox, stack_rdms

__all__ = ["from_rsatoolbox", "is_rsatoolbox_rdms", "rdm_rows", "to_rsatoolbox"]


def _require_rsatoolbox() -> Any:
    try:
        import rsatoolbox.rdm
    except ImportError as err:
        raise MissingPackage(
            f"converting to rsatoolbox needs rsatoolbox: pip install rsatoolbox ({err})"
        ) from None
    return rsatoolbox.rdm


def to_rsatoolbox(
    rdms: Any,
    labels: list[str] | None = None,
    dissimilarity_measure: str | None = None,
) -> Any:
    """fastrsa RDMs as an `rsatoolbox.rdm.RDMs` object.

    rdms: condensed (B, m) or (m,) (i < j row-major, as scipy's squareform), square (B, n, n)
    (symmetric, zero diagonal), numpy or torch; or a {label: RDM} mapping (labels from its keys).
    labels: B unique names, stored as rdm_descriptors["name"] (else only rsatoolbox's "index").
    dissimilarity_measure: passed to rsatoolbox (e.g. "correlation" for fastrsa.rdms' 1 - r).
    The dissimilarities are float64 copies. Refused: non-finite values, duplicate labels,
    lengths that are not n*(n-1)/2 for n >= 3. MissingPackage without rsatoolbox.
    """
    rdm = _require_rsatoolbox()
    if isinstance(rdms, dict):
        names, rows = stack_rdms(rdms, labels)
    else:
        arr = A.as_checked(rdms, "rdms")
        if arr.ndim == 1:
            arr = arr[None]
        given = labels is not None
        placeholder = labels if given else [str(i) for i in range(len(arr))]
        names, rows = stack_rdms(arr, placeholder)
        names = names if given else None
    descriptors = None if names is None else {NAME: list(names)}
    return rdm.RDMs(
        np.array(rows, dtype=np.float64),
        dissimilarity_measure=dissimilarity_measure,
        rdm_descriptors=descriptors,
    )


def from_rsatoolbox(rdms: Any, descriptor: str = NAME) -> tuple[list[str] | None, np.ndarray]:
    """(labels, condensed (B, m) float64 numpy) of an `rsatoolbox.rdm.RDMs` object.

    labels: str() of its rdm_descriptors[descriptor] ("name" by default), or None when it has no
    such descriptor. The rows are a float64 copy of `dissimilarities`, in scipy squareform order
    (fastrsa's). Refused (ValueError naming the RDM): NaN or Inf dissimilarities (rsatoolbox
    marks missing ones with NaN; fastrsa needs them all). TypeError for anything but an RDMs.
    """
    if not is_rsatoolbox_rdms(rdms):
        raise TypeError(f"rdms must be an rsatoolbox.rdm.RDMs object; got {type(rdms).__name__}")
    return read_rsatoolbox(rdms, descriptor, "rdms")
