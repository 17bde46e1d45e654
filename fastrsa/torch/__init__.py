"""fastrsa.torch: differentiable, compile-safe RSA and CKA for training code (issue 25).

Functional ops (fastrsa.torch.functional; traced by torch.compile with no graph break):
`rdms`, `compare`, `rsa`, `cka`, `cka_matrix`; soft ranks (fastrsa.torch.softrank, Blondel et
al. 2020). The correlation / cosine RDM's backward (a Triton kernel on CUDA) and the soft rank
are the custom ops `fastrsa::unit_rdm_backward` and `fastrsa::soft_rank` (fastrsa.torch.ops);
modules (fastrsa.torch.nn): `RSALoss`, `CKALoss`; evaluation (fastrsa.torch.streaming):
`StreamingCKA`;
`set_checks(False)` turns off the data-dependent input checks (host synchronisations on CUDA).
Importing this package imports torch and registers the custom ops.
"""

from __future__ import annotations

from . import ops
from .checks import set_checks
from .functional import cka, cka_matrix, compare, rdms, rsa
from .nn import CKALoss, RSALoss
from .softrank import soft_rank
from .streaming import StreamingCKA

__all__ = [
    "CKALoss",
    "RSALoss",
    "StreamingCKA",
    "cka",
    "cka_matrix",
    "compare",
    "ops",
    "rdms",
    "rsa",
    "set_checks",
    "soft_rank",
]
