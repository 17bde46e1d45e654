"""fastrsa.torch: differentiable, compile-safe RSA and CKA for training code (issue 25).

Functional ops (fastrsa.torch.functional; plain torch, traced by torch.compile as they are):
`rdms`, `compare`, `rsa`, `cka`, `cka_matrix`; soft ranks (fastrsa.torch.softrank, Blondel et
al. 2020) through the registered custom op `fastrsa::soft_rank` (fastrsa.torch.ops); modules
(fastrsa.torch.nn): `RSALoss`, `CKALoss`; evaluation (fastrsa.torch.streaming): `StreamingCKA`.
Importing this package imports torch and registers the custom ops.
"""

from __future__ import annotations

from . import ops
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
    "soft_rank",
]
