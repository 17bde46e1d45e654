"""fastrsa.torch.streaming.StreamingCKA against the full-batch estimators.

Exact mode over uneven batches (sizes 1..7) equals `fastrsa.similarity([x, y], "cka",
debiased=...)` on all rows within ATOL = 1e-10 (float64 input) or F32_ATOL = 1e-5 (float32
input, against the float64 estimator of the float64 originals); minibatch mode equals Nguyen
et al.'s definition (per-batch HSIC summed, the plain formulas of helpers_differential) and
`fastrsa.similarity(..., minibatch=m)` within ATOL; merged, re-shifted, saved and synced states
equal one uninterrupted state within ATOL.
"""

import io
import os

import numpy as np
import pytest
from helpers_differential import hsic_biased, hsic_unbiased

import fastrsa

torch = pytest.importorskip("torch")
dist = torch.distributed
from fastrsa.torch.streaming import StreamingCKA, shifted  # noqa: E402

ATOL = 1e-10
F32_ATOL = 1e-5


def pair(rng, n, d1, d2, offset=1.0):
    x = rng.standard_normal((n, d1)) + offset * rng.standard_normal(d1)
    mix = rng.standard_normal((min(d1, d2), d2))
    y = x[:, : min(d1, d2)] @ mix + 0.5 * rng.standard_normal((n, d2)) + offset
    return x, y


def sizes(rng, n, low=1, high=7):
    out = []
    while sum(out) < n:
        out.append(int(rng.integers(low, high + 1)))
    out[-1] -= sum(out) - n
    if out[-1] < low:  # fold a too-short tail into the previous batch
        out[-2] += out.pop()
    return out


def streamed(x, y, batch_sizes, dtype=torch.float64, **kwargs):
    s = StreamingCKA(**kwargs)
    start = 0
    for b in batch_sizes:
        xb = torch.as_tensor(x[start : start + b], dtype=dtype)
        s.update(xb, torch.as_tensor(y[start : start + b], dtype=dtype))
        start += b
    return s


def full(x, y, **kwargs):
    return fastrsa.similarity([x, y], "cka", **kwargs)[0, 1]


SHAPES = [(23, 5, 3), (40, 1, 9), (17, 12, 1), (4, 2, 3), (3, 1, 1), (61, 30, 20)]


@pytest.mark.parametrize("dtype, atol", [(torch.float64, ATOL), (torch.float32, F32_ATOL)])
@pytest.mark.parametrize(
    "n, d1, d2, debiased", [(*s, d) for s in SHAPES for d in (False, True) if s[0] >= 3 + d]
)
def test_uneven_batches_equal_the_full_batch_estimator(rng, n, d1, d2, debiased, dtype, atol):
    x, y = pair(rng, n, d1, d2)
    s = streamed(x, y, sizes(rng, n), dtype, debiased=debiased)
    got = s.compute()
    assert got.dtype == torch.float64 and got.shape == ()
    assert abs(float(got) - full(x, y, debiased=debiased)) <= atol


@pytest.mark.parametrize("debiased", [False, True])
def test_large_offsets_and_batch_order_cost_nothing(rng, debiased):
    x, y = pair(rng, 50, 6, 4)
    want = full(x, y, debiased=debiased)
    got = streamed(x + 1e5, y - 3e4, sizes(rng, 50), debiased=debiased).compute()
    assert abs(float(got) - want) <= 1e-9
    order = rng.permutation(50)
    got = streamed(x[order], y[order], sizes(rng, 50), debiased=debiased).compute()
    assert abs(float(got) - want) <= ATOL


def test_debiased_needs_four_rows(rng):
    x, y = pair(rng, 4, 3, 2)
    s = streamed(x[:3], y[:3], [2, 1], debiased=True)
    with pytest.raises(ValueError, match="at least 4 rows"):
        s.compute()
    s.update(torch.as_tensor(x[3:]), torch.as_tensor(y[3:]))
    assert abs(float(s.compute()) - full(x, y, debiased=True)) <= ATOL
    with pytest.raises(ValueError, match="at least 3 rows"):
        streamed(x[:2], y[:2], [1, 1]).compute()


def nguyen(x, y, batch_sizes, debiased=True):
    """Minibatch CKA (Nguyen, Raghu & Kornblith 2021): per-batch HSIC averaged, plainly."""
    hsic = hsic_unbiased if debiased else hsic_biased
    sums, start = np.zeros(3), 0
    for b in batch_sizes:
        xb, yb = x[start : start + b], y[start : start + b]
        k, g = xb @ xb.T, yb @ yb.T
        sums += [hsic(k, g), hsic(k, k), hsic(g, g)]
        start += b
    return sums[0] / np.sqrt(sums[1] * sums[2])


@pytest.mark.parametrize("debiased", [None, True, False])
def test_minibatch_mode_equals_its_definition(rng, debiased):
    x, y = pair(rng, 41, 7, 5)
    least = 3 if debiased is False else 4
    uneven = sizes(rng, 41, least, 9)
    got = streamed(x, y, uneven, minibatch=True, debiased=debiased).compute()
    assert abs(float(got) - nguyen(x, y, uneven, debiased is not False)) <= ATOL
    even = [8] * 5  # fastrsa.similarity's batches of 8 (the last row dropped: < 4 rows)
    got = streamed(x, y, even, minibatch=True, debiased=debiased).compute()
    assert abs(float(got) - full(x[:40], y[:40], minibatch=8, debiased=debiased)) <= ATOL
    got32 = streamed(x, y, even, torch.float32, minibatch=True, debiased=debiased).compute()
    assert abs(float(got32) - float(got)) <= F32_ATOL


@pytest.mark.parametrize("minibatch", [False, True])
def test_merge_of_two_states_equals_one_state(rng, minibatch):
    x, y = pair(rng, 60, 8, 3)
    parts = sizes(rng, 60, 4, 7)
    one = streamed(x, y, parts, minibatch=minibatch, debiased=True)
    cut = sum(parts[: len(parts) // 2])
    a = streamed(x[:cut], y[:cut], parts[: len(parts) // 2], minibatch=minibatch, debiased=True)
    b = streamed(x[cut:], y[cut:], parts[len(parts) // 2 :], minibatch=minibatch, debiased=True)
    before = b.compute()
    a.merge(b)
    assert a.rows == one.rows
    assert abs(float(a.compute()) - float(one.compute())) <= ATOL
    assert float(b.compute()) == float(before)  # other left as it was
    empty = StreamingCKA(minibatch=minibatch, debiased=True).merge(b)
    assert float(empty.compute()) == float(before)


def test_shifted_re_expresses_every_sum_exactly(rng):
    x, y = pair(rng, 30, 4, 6, offset=5.0)
    s1 = streamed(x, y, [3, 27], debiased=True)
    s2 = streamed(x[::-1].copy(), y[::-1].copy(), [5, 25], debiased=True)  # another shift
    moved = shifted(s1.state, 30.0, s2.state["mx"], s2.state["my"])
    for key, want in s2.state.items():
        scale = float(want.abs().max()) + 1.0
        assert float((moved[key] - want).abs().max()) <= 1e-11 * scale, key


@pytest.mark.parametrize("minibatch", [False, True])
def test_state_dict_round_trip(rng, minibatch):
    x, y = pair(rng, 36, 5, 5)
    parts = [4, 6, 5, 7, 4, 4, 6]
    one = streamed(x, y, parts, minibatch=minibatch)
    half = streamed(x[:15], y[:15], parts[:3], minibatch=minibatch)
    buf = io.BytesIO()
    torch.save(half.state_dict(), buf)
    buf.seek(0)
    again = StreamingCKA(minibatch=minibatch)
    again.load_state_dict(torch.load(buf))
    assert float(again.compute()) == float(half.compute())
    start = 15
    for b in parts[3:]:
        again.update(torch.as_tensor(x[start : start + b]), torch.as_tensor(y[start : start + b]))
        start += b
    assert abs(float(again.compute()) - float(one.compute())) <= ATOL
    with pytest.raises(ValueError, match="feature widths changed"):
        again.update(torch.zeros(4, 2, dtype=torch.float64), torch.zeros(4, 5))
    with pytest.raises(ValueError, match="minibatch, debiased"):
        StreamingCKA(minibatch=not minibatch).load_state_dict(half.state_dict())
    empty = StreamingCKA(minibatch=minibatch)
    empty.load_state_dict(StreamingCKA(minibatch=minibatch).state_dict())
    assert empty.rows == 0
    half.reset()
    assert half.rows == 0 and half.widths is None


def test_refusals(rng):
    s = StreamingCKA()
    x = torch.randn(5, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="same rows"):
        s.update(x, torch.randn(4, 2))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        s.update(x.numpy(), x)
    with pytest.raises(TypeError, match="y must hold floating"):
        s.update(x, torch.ones(5, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"x must be \(rows, features\)"):
        s.update(x[0], x)
    with pytest.raises(ValueError, match="at least one row"):
        s.update(x[:0], x[:0])
    with pytest.raises(ValueError, match="compute\\(\\) needs at least 3 rows"):
        s.compute()
    s.update(x, x[:, :2])
    with pytest.raises(ValueError, match="feature widths changed"):
        s.update(x[:, :2], x[:, :2])
    with pytest.raises(ValueError, match="same minibatch and debiased"):
        s.merge(StreamingCKA(debiased=True))
    with pytest.raises(TypeError, match="minibatch must be"):
        StreamingCKA(minibatch=8)
    m = StreamingCKA(minibatch=True)
    with pytest.raises(ValueError, match="at least 4 rows"):
        m.update(x[:3], x[:3])
    with pytest.raises(ValueError, match="before any update"):
        m.compute()


@pytest.mark.parametrize("minibatch", [False, True])
def test_nan_and_constant_features_are_errors_not_nan(rng, minibatch):
    x, y = pair(rng, 12, 3, 2)
    bad = x.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        streamed(bad, y, [4, 4, 4], minibatch=minibatch).compute()
    for value in (0.1, 0.7, 1 / 3, -7.3e3, 1e-300):
        const = np.full((12, 3), value)
        with pytest.raises(ValueError, match="x: "):
            streamed(const, y, [5, 7], minibatch=minibatch, debiased=True).compute()
        with pytest.raises(ValueError, match="y: "):
            streamed(x, const[:, :2], [4, 4, 4], minibatch=minibatch).compute()


def test_sync_in_a_one_process_group_keeps_the_state(rng, tmp_path):
    x, y = pair(rng, 20, 4, 3)
    s = streamed(x, y, [5, 5, 10], debiased=True)
    want = float(s.compute())
    assert s.sync() is s and float(s.compute()) == want  # not initialised: a no-op
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/rdv", rank=0, world_size=1)
    try:
        assert abs(float(s.sync().compute()) - want) <= ATOL
        assert s.rows == 20
    finally:
        dist.destroy_process_group()


def _worker(rank, path, x, y, debiased, out):
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=2)
    try:
        half = slice(0, 13) if rank == 0 else slice(13, None)
        s = streamed(x[half], y[half], [6, 7] if rank == 0 else [4, 3, 3], debiased=debiased)
        torch.save({"cka": s.sync().compute(), "rows": s.rows}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_sync_of_two_processes_equals_one_state(rng, tmp_path):
    x, y = pair(rng, 23, 5, 4, offset=3.0)
    out = str(tmp_path / "result")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.multiprocessing.spawn(_worker, args=(str(tmp_path / "rdv"), x, y, True, out), nprocs=2)
    want = full(x, y, debiased=True)
    for rank in (0, 1):
        got = torch.load(f"{out}.{rank}")
        assert got["rows"] == 23 and abs(float(got["cka"]) - want) <= ATOL


@pytest.mark.gpu
@pytest.mark.parametrize("minibatch", [False, True])
def test_update_never_synchronises_on_cuda(rng, minibatch):
    x, y = pair(rng, 64, 16, 8)
    xs, ys = torch.as_tensor(x, device="cuda"), torch.as_tensor(y, device="cuda")
    s = StreamingCKA(minibatch=minibatch)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for start in range(0, 64, 8):
            s.update(xs[start : start + 8].float(), ys[start : start + 8].float())
    finally:
        torch.cuda.set_sync_debug_mode("default")
    got = s.compute()
    assert got.device.type == "cuda"
    want = full(x, y, minibatch=8) if minibatch else full(x, y)
    assert abs(float(got) - want) <= F32_ATOL
