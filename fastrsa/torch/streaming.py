"""Linear CKA accumulated over batches (evaluation loops, DDP): `StreamingCKA`.

Exact mode (default): CKA over all rows seen equals the full-batch estimator of
`fastrsa.similarity([x, y], "cka", debiased=...)` whatever the batch sizes, from feature-space
sums only. With rows xᵢ (d1), yᵢ (d2), aᵢ = ‖xᵢ‖², bᵢ = ‖yᵢ‖², K = XXᵀ, L = YYᵀ, the state is

    n, sx = Σxᵢ, sy = Σyᵢ, XᵀY, XᵀX, YᵀY,
    Σaᵢbᵢ, Σaᵢ², Σbᵢ², Σxᵢaᵢ, Σxᵢbᵢ (d1), Σyᵢaᵢ, Σyᵢbᵢ (d2),

all taken about a shift (mx, my): the first row seen (fewer cancellations; constant rows give
exact zeros; any shift gives the same CKA, and `shifted` re-expresses a state about another
shift exactly, expanding ‖xᵢ - δ‖² = aᵢ - 2δᵀxᵢ + ‖δ‖²: what Σxᵢaᵢ ... are for). compute()
shifts the state to the column means of all rows (sx = sy = 0), and then:

  biased    Xcᵀ Yc = XᵀY,   HSIC(K, L) ∝ ‖XᵀY‖²_F,   CKA = ‖XᵀY‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F).
  unbiased  (Song et al. 2012, eq. 5; K̃ = K - diag(a), L̃ = L - diag(b))
            n(n-3) HSIC = tr(K̃L̃) + 1ᵀK̃1 1ᵀL̃1 / ((n-1)(n-2)) - 2/(n-2) 1ᵀK̃L̃1, where
            tr(K̃L̃) = tr(KL) - Σaᵢbᵢ = ‖XᵀY‖²_F - Σaᵢbᵢ   (diag terms: -Σab - Σab + Σab),
            1ᵀK̃1 = ‖sx‖² - Σaᵢ = -tr(XᵀX),   1ᵀL̃1 = -tr(YᵀY),
            K̃1 = X sx - a = -a,  L̃1 = -b,  so 1ᵀK̃L̃1 = Σaᵢbᵢ;
            HSIC(K, K) likewise with ‖XᵀX‖²_F, Σaᵢ², tr(XᵀX)² (and for L).
            The 1/(n(n-3)) cancels in CKA.

Minibatch mode (minibatch=True; Nguyen, Raghu & Kornblith, ICLR 2021): each update is one
batch of m rows; its HSIC(K, L), HSIC(K, K), HSIC(L, L) (unbiased, U-centred Grams over
m(m-3), m >= 4; or biased, <HKH, HLH>/(m-1)², m >= 3, with debiased=False) are summed, and
CKA = Σ HSIC_KL / sqrt(Σ HSIC_KK · Σ HSIC_LL) (the means' counts cancel): as
`fastrsa.similarity(..., "cka", minibatch=m)` for equal batches of m rows.

Numbers: every sum is accumulated in float64 (inputs of any float dtype are cast per batch;
devices without float64, such as MPS, are refused), on the device of the first batch; compute()
returns a float64 0-dim tensor there. Memory: exact mode holds (d1·d2 + d1² + d2² + 5(d1 + d2)
+ 3) float64 values (8 bytes each; d1 = d2 = 4096 is 400 MB), plus a float64 copy of each batch
while it is added; minibatch mode holds 3 float64 scalars plus one batch's two m × m Grams.
update() never synchronises with the host (no .item(), no branch on tensor values): NaN/Inf
and constant features are found by compute(), which raises ValueError rather than returning NaN.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

__all__ = ["StreamingCKA", "shifted"]

F64 = torch.float64
# squared relative rounding below which a model's centred spread counts as zero (constant rows)
_CONSTANT = 2.0**-88
_VECTORS = ("sx", "sy", "xy", "xx", "yy", "xa", "xb", "ya", "yb", "ab", "aa", "bb")


def shifted(state: dict[str, torch.Tensor], n: float, mx: torch.Tensor, my: torch.Tensor):
    """An exact-mode state (sums about its shift state["mx"], state["my"]) re-expressed about
    the new shift (mx, my): a new dict, same devices (float64). x' = x - δ, y' = y - ε with
    δ = mx - state["mx"], ε = my - state["my"]; a' = a - 2δᵀx + ‖δ‖² (module docstring)."""
    s = state
    d, e = mx - s["mx"], my - s["my"]
    d2, e2 = d @ d, e @ e
    big_a, big_b = s["xx"].trace(), s["yy"].trace()
    dsx, esy = d @ s["sx"], e @ s["sy"]
    xxd, yye = s["xx"] @ d, s["yy"] @ e
    xye, xytd = s["xy"] @ e, s["xy"].T @ d
    return {
        "mx": mx.clone(),
        "my": my.clone(),
        "sx": s["sx"] - n * d,
        "sy": s["sy"] - n * e,
        "xy": s["xy"] - torch.outer(s["sx"], e) - torch.outer(d, s["sy"]) + n * torch.outer(d, e),
        "xx": s["xx"] - torch.outer(s["sx"], d) - torch.outer(d, s["sx"]) + n * torch.outer(d, d),
        "yy": s["yy"] - torch.outer(s["sy"], e) - torch.outer(e, s["sy"]) + n * torch.outer(e, e),
        "xa": s["xa"] - 2 * xxd + d2 * s["sx"] - big_a * d + 2 * dsx * d - n * d2 * d,
        "xb": s["xb"] - 2 * xye + e2 * s["sx"] - big_b * d + 2 * esy * d - n * e2 * d,
        "ya": s["ya"] - 2 * xytd + d2 * s["sy"] - big_a * e + 2 * dsx * e - n * d2 * e,
        "yb": s["yb"] - 2 * yye + e2 * s["sy"] - big_b * e + 2 * esy * e - n * e2 * e,
        "aa": s["aa"]
        + 4 * (d @ xxd)
        + n * d2 * d2
        - 4 * (d @ s["xa"])
        + 2 * d2 * big_a
        - 4 * d2 * dsx,
        "bb": s["bb"]
        + 4 * (e @ yye)
        + n * e2 * e2
        - 4 * (e @ s["yb"])
        + 2 * e2 * big_b
        - 4 * e2 * esy,
        "ab": s["ab"]
        - 2 * (e @ s["ya"])
        + e2 * big_a
        - 2 * (d @ s["xb"])
        + 4 * (d @ xye)
        - 2 * e2 * dsx
        + d2 * big_b
        - 2 * d2 * esy
        + n * d2 * e2,
    }


def _check_pair(x: Any, y: Any) -> None:
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must hold floating-point values; got {t.dtype}")
        if t.ndim != 2:
            raise ValueError(f"{name} must be (rows, features); got shape {tuple(t.shape)}")
        if t.shape[1] < 1:
            raise ValueError(f"{name} must have at least one feature; got shape {tuple(t.shape)}")
        if t.device.type == "mps":
            raise ValueError(f"{name} is on MPS, which has no float64 to accumulate in")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must have the same rows (images); got {x.shape[0]} and {y.shape[0]}"
        )
    if x.device != y.device:
        raise ValueError(f"x and y must be on one device; got {x.device} and {y.device}")


def _u_centred(k: torch.Tensor) -> torch.Tensor:
    """(m, m) float64 Gram -> its U-centred form (fastrsa.measures.gram.centre, unbiased)."""
    m = k.shape[0]
    k = k.clone().fill_diagonal_(0.0)
    s = k.sum(0)
    means = s / (m - 2) - s.sum() / (2 * (m - 1) * (m - 2))
    return (k - means[:, None] - means[None, :]).fill_diagonal_(0.0)


class StreamingCKA:
    """Linear CKA of two models' features streamed in batches (see the module docstring).

    StreamingCKA(debiased=None, minibatch=False): debiased=None is the biased estimator in exact
    mode and the unbiased one in minibatch mode (as fastrsa.similarity). update(x, y) adds a
    batch ((b, d1), (b, d2) tensors, any float dtype, one device, no grad kept); compute() ->
    float64 0-dim tensor; reset(); merge(other) adds another state (same result as one state
    over both streams); state_dict() / load_state_dict(); sync(group) sums the states of all
    processes (torch.distributed) and leaves every process holding the total; to(device).

    A plain class, not an nn.Module: its accumulators' shapes are known only at the first batch;
    the row count is a Python int (no host sync to check it); and DDP would broadcast a wrapped
    module's buffers from rank 0, overwriting the per-process sums that sync() must add.
    """

    def __init__(self, debiased: bool | None = None, minibatch: bool = False) -> None:
        if not isinstance(minibatch, bool):
            raise TypeError(f"minibatch must be True or False; got {minibatch!r}")
        if debiased is not None and not isinstance(debiased, bool):
            raise TypeError(f"debiased must be True, False or None; got {debiased!r}")
        self.minibatch = minibatch
        self.debiased = minibatch if debiased is None else debiased
        self.reset()

    # ------------------------------------------------------------------ accumulation
    def reset(self) -> None:
        """Forget every batch (the next update fixes the widths and the device again)."""
        self.rows = 0  # rows seen (exact mode) / batches seen (minibatch mode)
        self.widths: tuple[int, int] | None = None
        self.state: dict[str, torch.Tensor] = {}

    @property
    def least(self) -> int:
        """Rows needed: per batch in minibatch mode, in all in exact mode."""
        return 4 if self.debiased else 3

    def _check_update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        _check_pair(x, y)
        widths = (x.shape[1], y.shape[1])
        if self.widths is not None and widths != self.widths:
            raise ValueError(
                f"feature widths changed between updates: (x, y) had {self.widths}, "
                f"now {widths}; call reset() to start over"
            )
        if self.state and x.device != self.state["kl" if self.minibatch else "mx"].device:
            dev = self.state["kl" if self.minibatch else "mx"].device
            raise ValueError(f"x is on {x.device} but the state is on {dev}; call to({x.device})")
        if self.minibatch and x.shape[0] < self.least:
            raise ValueError(
                f"minibatch mode needs batches of at least {self.least} rows "
                f"({'unbiased' if self.debiased else 'biased'} HSIC); got {x.shape[0]} "
                "(drop the last short batch, e.g. DataLoader(drop_last=True))"
            )
        if x.shape[0] < 1:
            raise ValueError("x and y must hold at least one row")

    @torch.no_grad()
    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add a batch: x (b, d1), y (b, d2) on one device; cast to float64 (module docstring)."""
        self._check_update(x, y)
        self.widths = (x.shape[1], y.shape[1])
        if self.minibatch:
            self._update_minibatch(x.detach().to(F64), y.detach().to(F64))
        else:
            self._update_exact(x.detach().to(F64), y.detach().to(F64))

    def _update_exact(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if not self.state:
            d1, d2 = self.widths  # type: ignore[misc]
            z = x.new_zeros
            self.state = {"mx": x[0].clone(), "my": y[0].clone()}
            self.state.update(sx=z(d1), sy=z(d2), xy=z(d1, d2), xx=z(d1, d1), yy=z(d2, d2))
            self.state.update(xa=z(d1), xb=z(d1), ya=z(d2), yb=z(d2), ab=z(()), aa=z(()), bb=z(()))
        s = self.state
        x = x - s["mx"]
        y = y - s["my"]
        a, b = (x * x).sum(1), (y * y).sum(1)
        s["sx"] += x.sum(0)
        s["sy"] += y.sum(0)
        s["xy"].addmm_(x.T, y)
        s["xx"].addmm_(x.T, x)
        s["yy"].addmm_(y.T, y)
        s["xa"].addmv_(x.T, a)
        s["xb"].addmv_(x.T, b)
        s["ya"].addmv_(y.T, a)
        s["yb"].addmv_(y.T, b)
        s["ab"] += a @ b
        s["aa"] += a @ a
        s["bb"] += b @ b
        self.rows += x.shape[0]

    def _update_minibatch(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if not self.state:
            self.state = {k: x.new_zeros(()) for k in ("kl", "kk", "ll")}
        m = x.shape[0]
        x, y = x - x[:1], y - y[:1]  # exact zeros for constant rows (the mean's rounding is not)
        x, y = x - x.mean(0), y - y.mean(0)
        k, lg = x @ x.T, y @ y.T
        if self.debiased:
            k, lg, scale = _u_centred(k), _u_centred(lg), 1.0 / (m * (m - 3))
        else:
            scale = 1.0 / (m - 1) ** 2
        self.state["kl"] += (k * lg).sum() * scale
        self.state["kk"] += (k * k).sum() * scale
        self.state["ll"] += (lg * lg).sum() * scale
        self.rows += 1

    # ------------------------------------------------------------------ result
    def compute(self) -> torch.Tensor:
        """CKA over all batches so far: float64 0-dim tensor on the state's device. ValueError
        when too few rows (batches) were seen, a batch held NaN/Inf, or a model's features are
        constant (no positive self-similarity: in minibatch mode, also a sum of unbiased
        HSIC(K, K) that came out negative). Synchronises with the host once."""
        if self.minibatch:
            if not self.rows:
                raise ValueError("compute() before any update: no batch to estimate CKA from")
            kl, kk, ll = self.state["kl"], self.state["kk"], self.state["ll"]
            self._check_finite(torch.stack([kl, kk, ll]))
            self._check_positive(kk, ll, "summed minibatch HSIC")
            return kl / torch.sqrt(kk * ll)
        if self.rows < self.least:
            raise ValueError(
                f"compute() needs at least {self.least} rows for "
                f"{'debiased' if self.debiased else 'biased'} CKA; got {self.rows}"
            )
        s, n = self.state, float(self.rows)
        self._check_finite(torch.cat([t.reshape(-1) for t in s.values()]))
        c = shifted(s, n, s["mx"] + s["sx"] / n, s["my"] + s["sy"] / n)
        big_a, big_b = c["xx"].trace(), c["yy"].trace()
        # constant rows: the centred spread is rounding of the raw second moment
        for name, spread, raw in (("x", big_a, c["mx"] @ c["mx"]), ("y", big_b, c["my"] @ c["my"])):
            if bool(spread <= _CONSTANT * (n * raw + spread)):
                raise ValueError(
                    f"{name}: every row is the same (constant features): CKA is undefined"
                )
        kl, kk, ll = (c["xy"] ** 2).sum(), (c["xx"] ** 2).sum(), (c["yy"] ** 2).sum()
        if self.debiased:
            f, g = 1.0 / ((n - 1) * (n - 2)), 2.0 / (n - 2)
            kl = kl - c["ab"] + big_a * big_b * f - g * c["ab"]
            kk = kk - c["aa"] + big_a * big_a * f - g * c["aa"]
            ll = ll - c["bb"] + big_b * big_b * f - g * c["bb"]
        self._check_positive(kk, ll, "HSIC")
        return kl / torch.sqrt(kk * ll)

    @staticmethod
    def _check_finite(values: torch.Tensor) -> None:
        if not bool(torch.isfinite(values).all()):
            raise ValueError("a batch held NaN or Inf (or the sums overflowed float64)")

    @staticmethod
    def _check_positive(kk: torch.Tensor, ll: torch.Tensor, what: str) -> None:
        for name, v in (("x", kk), ("y", ll)):
            if not bool(v > 0):
                raise ValueError(
                    f"{name}: its {what} with itself is {float(v):.3g}, not positive (constant "
                    "features, or minibatch HSIC estimates that sum below zero): CKA is undefined"
                )

    # ------------------------------------------------------------------ combining states
    def _check_other(self, other: StreamingCKA) -> None:
        if not isinstance(other, StreamingCKA):
            raise TypeError(f"other must be a StreamingCKA; got {type(other).__name__}")
        if (other.minibatch, other.debiased) != (self.minibatch, self.debiased):
            raise ValueError(
                "other must have the same minibatch and debiased settings; got "
                f"{(other.minibatch, other.debiased)}, this is {(self.minibatch, self.debiased)}"
            )
        if self.widths and other.widths and self.widths != other.widths:
            raise ValueError(f"other has widths {other.widths}; this state has {self.widths}")

    @torch.no_grad()
    def merge(self, other: StreamingCKA) -> StreamingCKA:
        """Add `other`'s batches to this state (exact: the same sums as one state over both
        streams); `other` is left as it was. Returns self."""
        self._check_other(other)
        if not other.rows:
            return self
        if not self.rows:
            self.load_state_dict(other.state_dict())
            return self
        dev = next(iter(self.state.values())).device
        theirs = {k: v.to(dev) for k, v in other.state.items()}
        if not self.minibatch:
            theirs = shifted(theirs, float(other.rows), self.state["mx"], self.state["my"])
        for k, v in self.state.items():
            if k not in ("mx", "my"):
                v += theirs[k]
        self.rows += other.rows
        return self

    @torch.no_grad()
    def sync(self, group: Any = None) -> StreamingCKA:
        """Sum the states of every process of `group` (torch.distributed, when initialised; a
        no-op otherwise): each process ends up holding the total, so call it once, before
        compute(). Exact mode re-expresses every state about the first process's shift
        (broadcast) and all-reduces the sums. Every process must have seen a batch, with the
        same widths (checked on all processes at once, so none is left waiting). Returns self."""
        if not (dist.is_available() and dist.is_initialized()):
            return self
        backend = dist.get_backend(group)
        if self.state:
            dev = next(iter(self.state.values())).device
        elif backend == "nccl":
            dev = torch.device("cuda", torch.cuda.current_device())
        else:
            dev = torch.device("cpu")
        d1, d2 = self.widths or (0, 0)
        has = int(self.rows > 0)
        head = torch.tensor([has, -has, d1, -d1, d2, -d2], dtype=torch.int64, device=dev)
        dist.all_reduce(head, op=dist.ReduceOp.MAX, group=group)
        least_has, (hi_d1, lo_d1, hi_d2, lo_d2) = -int(head[1]), head[2:].tolist()
        if not least_has:
            raise ValueError("sync(): a process has seen no batch; every process must update first")
        if (hi_d1, hi_d2) != (-lo_d1, -lo_d2):
            raise ValueError(
                f"sync(): the processes' feature widths differ (this one: {self.widths})"
            )
        if not self.minibatch:
            shift = torch.cat([self.state["mx"], self.state["my"]])
            src = 0 if group is None else dist.get_global_rank(group, 0)
            dist.broadcast(shift, src=src, group=group)
            self.state = shifted(self.state, float(self.rows), shift[:d1], shift[d1:])
        keys = [k for k in self.state if k not in ("mx", "my")]
        flat = torch.cat(
            [self.state[k].reshape(-1) for k in keys]
            + [torch.tensor([float(self.rows)], dtype=F64, device=dev)]
        )
        dist.all_reduce(flat, group=group)
        start = 0
        for k in keys:
            size = self.state[k].numel()
            self.state[k] = flat[start : start + size].reshape(self.state[k].shape).clone()
            start += size
        self.rows = int(flat[start].round())
        return self

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Settings, row count and copies of the accumulators (tensors on their device)."""
        out: dict[str, Any] = {"minibatch": self.minibatch, "debiased": self.debiased}
        out["rows"] = torch.tensor(self.rows, dtype=torch.int64)
        out["widths"] = torch.tensor(self.widths or (0, 0), dtype=torch.int64)
        out.update({k: v.clone() for k, v in self.state.items()})
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace this state by one from state_dict() (same settings; ValueError otherwise)."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from state_dict(); got {type(state).__name__}")
        got = (state.get("minibatch"), state.get("debiased"))
        if got != (self.minibatch, self.debiased):
            raise ValueError(
                f"state has (minibatch, debiased) = {got}; this is "
                f"{(self.minibatch, self.debiased)}"
            )
        keys = ("widths", "kl", "kk", "ll") if self.minibatch else ("widths", "mx", "my", *_VECTORS)
        rows = int(state.get("rows", 0))
        if rows and any(k not in state for k in keys):
            raise ValueError(f"state lacks {[k for k in keys if k not in state]}")
        self.reset()
        if rows:
            self.state = {k: torch.as_tensor(state[k]).to(F64).clone() for k in keys[1:]}
            self.rows = rows
            d1, d2 = (int(w) for w in state["widths"])
            self.widths = (d1, d2)

    def to(self, device: Any) -> StreamingCKA:
        """Move the accumulators to `device`; returns self."""
        self.state = {k: v.to(device) for k, v in self.state.items()}
        return self
