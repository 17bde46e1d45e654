"""Differential tests: every backend against scipy in float64 on the very values fastrsa sees.

Hypothesis draws shapes, dtypes (float16, bfloat16, float32, float64, int8...int64, uint8),
value distributions (normal, heavy tails, scales 10**-30..10**30, large offsets, ties, repeated,
shifted, near-duplicate and sparse rows) and memory layouts (Fortran order, step-2 slices,
negative strides, transposed / expanded tensors), and checks the contract:

1. rdms equals pdist per matrix (correlation, cosine: 1e-5 absolute for float32 results, 1e-12
   for float64; euclidean: 1e-6 / 1e-10 relative to each distance); float64 results for
   float64 and integer input, float32 otherwise; the kind of array given; shape (..., n(n-1)/2).
2. rank_transform equals scipy.stats.rankdata(method="average") exactly, float64.
3. compare equals spearmanr / pearsonr / kendalltau(b) / 1 - cosine per pair (1e-5 for float32
   results, 1e-12 for float64; kendall 1e-12 plus the float32 rounding of a float32 result);
   with b=None symmetric with exact ones on the diagonal.
4. Refused inputs (constant rows for correlation-type measures, all-zero rows for cosine) raise
   ValueError; everything returned is finite.

Examples are derandomized and bounded (CI never flakes); FASTRSA_FUZZ_EXAMPLES=N fuzzes with
N fresh examples per property. A failure prints `Case(...)`: replay it with
`helpers_differential.Case(...).build()`. The Triton backend runs under TRITON_INTERPRET=1 on
tiny shapes only. Below the properties: plain regression tests for known reproductions. The
measures (CKA, DDS, SVCCA, attribution) and statistics at extreme scales, tiny variances and large
offsets: tests/test_trust_numerics.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers_differential import (
    F32_MAX,
    FLOAT_DTYPES,
    INT53,
    INT_DTYPES,
    Case,
    assert_exact,
    assert_finite,
    assert_within,
    cases,
    check_kind_dtype,
    compare_reference,
    exact_values,
    feature_shapes,
    fuzz_settings,
    pair_index,
    rank_reference,
    rdm_reference,
    refused_rows,
    result_is_wide,
    to_numpy64,
)
from hypothesis import event as _hypothesis_event
from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

import fastrsa

torch = pytest.importorskip("torch")

BACKENDS = [b for b in fastrsa.available_backends() if b != "reference"]
CPU_BACKENDS = [b for b in BACKENDS if b != "triton"]
TRITON = [b for b in BACKENDS if b == "triton"]
METRICS = ("correlation", "cosine", "euclidean")
REFUSE_RDM = {"correlation": "constant", "cosine": "zero", "euclidean": None}
REFUSE_MATCH = {"constant": "constant", "zero": "zero"}


# ---------------------------------------------------------------------------------------------
# the checks


def event(text: str) -> None:
    """hypothesis.event inside a property; nothing in the plain tests."""
    if currently_in_test_context():
        _hypothesis_event(text)


def _rdm_tolerance(metric: str, wide: bool) -> tuple[float, float]:
    """(atol, rtol) of the contract."""
    if metric == "euclidean":
        return 1e-300, (1e-10 if wide else 1e-6)
    return (1e-12 if wide else 1e-5), 0.0


def check_rdms(x, metric: str, backend: str, dtype: str | None = None) -> None:
    """fastrsa.rdms(x) against pdist on x's exact values, or the ValueError it must raise."""
    v = exact_values(x)
    dtype = dtype or str(x.dtype).replace("torch.", "")
    wide = result_is_wide(dtype)
    refuse = REFUSE_RDM[metric]
    if refuse and refused_rows(v, refuse):
        event(f"rdms refused ({refuse} row)")
        with pytest.raises(ValueError, match=REFUSE_MATCH[refuse]):
            fastrsa.rdms(x, metric=metric, backend=backend)
        return
    ref = rdm_reference(v, metric)
    if metric == "euclidean" and not wide and ref.max() > F32_MAX:
        event("rdms refused (float32 overflow)")
        with pytest.raises(ValueError, match="overflow"):  # distances beyond float32
            fastrsa.rdms(x, metric=metric, backend=backend)
        return
    out = fastrsa.rdms(x, metric=metric, backend=backend)
    check_kind_dtype(out, x, wide)
    n = v.shape[-2]
    assert tuple(out.shape) == v.shape[:-2] + (n * (n - 1) // 2,), f"shape {tuple(out.shape)}"
    got = to_numpy64(out)
    assert_finite(got, f"rdms {metric} {backend}")
    atol, rtol = _rdm_tolerance(metric, wide)
    try:
        assert_within(got, ref, atol, rtol, f"rdms {metric} {backend} vs pdist")
    except AssertionError as err:  # name the worst pair's rows
        excess = np.abs(got - ref) - (atol + rtol * np.abs(ref))
        idx = np.unravel_index(int(np.argmax(excess)), excess.shape)
        i, j = pair_index(n, int(idx[-1]))
        rows = v[idx[:-1]][[i, j]]
        detail = f"; pair (i, j) = ({i}, {j})"
        if rows.shape[-1] <= 8:
            detail += f", rows {rows.tolist()!r}"
        else:
            detail += f", row |max| {np.abs(rows).max(axis=-1).tolist()!r}"
        raise AssertionError(str(err) + detail) from None


def check_rank(x, backend: str) -> None:
    v = exact_values(x)
    out = fastrsa.rank_transform(x, backend=backend)
    check_kind_dtype(out, x, wide=True)
    got = to_numpy64(out)
    assert_finite(got, f"rank_transform {backend}")
    assert_exact(got, rank_reference(v), f"rank_transform {backend} vs rankdata")


def _compare_tolerance(method: str, wide: bool) -> tuple[float, float]:
    """(atol, rtol) of the contract."""
    if method == "kendall":  # exact counts; a float32 result adds only its own rounding
        return 1e-12, (0.0 if wide else 2.0**-24)
    return (1e-12 if wide else 1e-5), 0.0


def check_compare(a, b, method: str, backend: str, dtypes: tuple | None = None) -> None:
    va = exact_values(a)
    vb = None if b is None else exact_values(b)
    dtypes = dtypes or tuple(str(t.dtype).replace("torch.", "") for t in (a, b) if t is not None)
    refuse = "zero" if method == "cosine" else "constant"
    if refused_rows(va, refuse) or (vb is not None and refused_rows(vb, refuse)):
        event(f"compare refused ({refuse} row)")
        with pytest.raises(ValueError, match=REFUSE_MATCH[refuse]):
            fastrsa.compare(a, b, method=method, backend=backend)
        return
    wide = result_is_wide(*dtypes)
    out = fastrsa.compare(a, b, method=method, backend=backend)
    check_kind_dtype(out, a, wide)
    shape = (va.shape[0], va.shape[0] if vb is None else vb.shape[0])
    assert tuple(out.shape) == shape, f"shape {tuple(out.shape)}, expected {shape}"
    got = to_numpy64(out)
    assert_finite(got, f"compare {method} {backend}")
    ref = compare_reference(va, vb, method)
    atol, rtol = _compare_tolerance(method, wide)
    assert_within(got, ref, atol, rtol, f"compare {method} {backend} vs scipy")
    if b is None:
        np.testing.assert_array_equal(got, got.T, err_msg="compare(a) is not symmetric")
        np.testing.assert_array_equal(np.diag(got), 1.0, err_msg="diagonal is not exactly 1")


# ---------------------------------------------------------------------------------------------
# property tests: strategies


# dtype groups, each a pytest parameter (its own examples): hypothesis alone would spend most
# examples on a few dtypes.
DTYPE_GROUPS = {
    "float64": ("float64",),
    "float32": ("float32",),
    "half": ("float16", "bfloat16"),
    "int": INT_DTYPES,
}
ALL_DTYPES = FLOAT_DTYPES + INT_DTYPES


def rdm_cases(metric: str, tiny: bool = False, dtypes=ALL_DTYPES):
    """A Case of features (..., n, d) for `metric` (correlation needs d >= 2)."""
    min_d = 2 if metric == "correlation" else 1
    if tiny:
        shapes = feature_shapes(n=(3, 6), d=(1, 8), batch=(0, 1), batch_size=(1, 2), min_d=min_d)
    else:
        shapes = feature_shapes(n=(3, 40), d=(1, 64), min_d=min_d)
    return shapes.flatmap(lambda shape: cases(shape, kind=_kind_for(dtypes), dtypes=dtypes))


def _kind_for(dtypes) -> str | None:
    """bfloat16 exists only in torch: a group holding only it draws torch tensors."""
    return "torch" if tuple(dtypes) == ("bfloat16",) else None


@st.composite
def rank_inputs(draw, tiny: bool = False, dtypes=ALL_DTYPES + ("bool",)):
    lead = draw(st.lists(st.integers(1, 2 if tiny else 3), max_size=1 if tiny else 2))
    m = draw(st.integers(1, 16 if tiny else 300))
    return draw(cases((*lead, m), dtypes=dtypes, int_limit=None))


@st.composite
def compare_inputs(draw, tiny=False, small=False, dtypes=ALL_DTYPES):
    """(a, b) Cases of (Ba, M) and (Bb, M) of one kind, b None half the time; a's dtype from
    `dtypes`, b's any."""
    kind = draw(st.sampled_from(("numpy", "torch")))
    top_b, top_m = (2, 16) if tiny else (3, 30) if small else (6, 300)
    m = draw(st.integers(2, top_m))
    a = draw(cases((draw(st.integers(1, top_b)), m), kind=kind, dtypes=dtypes))
    b = None
    if draw(st.booleans()):
        b = draw(cases((draw(st.integers(1, top_b)), m), kind=kind))
    return a, b


def _events(case: Case, what: str = "") -> None:
    """Tally what was drawn (shown by pytest --hypothesis-show-statistics)."""
    event(f"{what}dtype {case.dtype}")
    event(f"{what}dist {case.dist}, row_op {case.row_op}")
    event(f"{what}layout {case.kind} {case.layout}")


def _compare_case(method: str, a: Case, b: Case | None, backend: str) -> None:
    b_text = "None" if b is None else f"{b!r}.build()"
    note(f"fastrsa.compare({a!r}.build(), {b_text}, {method!r}, backend={backend!r})")
    _events(a, "a ")
    event(f"b {'None' if b is None else 'given'}")
    xa, xb = a.build(), None if b is None else b.build()
    dtypes = (a.dtype,) if b is None else (a.dtype, b.dtype)
    check_compare(xa, xb, method, backend, dtypes)


# ---------------------------------------------------------------------------------------------
# property tests: CPU backends (numpy, numba, torch on CPU tensors). Metrics and methods are
# pytest parameters, so each gets its own examples.


@pytest.mark.parametrize("group", DTYPE_GROUPS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@fuzz_settings(80)
@given(data=st.data())
def test_rdms_matches_pdist(backend, metric, group, data):
    case = data.draw(rdm_cases(metric, dtypes=DTYPE_GROUPS[group]), label="case")
    note(f"fastrsa.rdms({case!r}.build(), {metric!r}, backend={backend!r})")
    _events(case)
    check_rdms(case.build(), metric, backend, case.dtype)


@pytest.mark.parametrize("group", DTYPE_GROUPS)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@fuzz_settings(80)
@given(data=st.data())
def test_rank_transform_equals_rankdata(backend, group, data):
    dtypes = DTYPE_GROUPS[group] + (("bool",) if group == "int" else ())
    case = data.draw(rank_inputs(dtypes=dtypes), label="case")
    note(f"fastrsa.rank_transform({case!r}.build(), backend={backend!r})")
    _events(case)
    check_rank(case.build(), backend)


@pytest.mark.parametrize("group", DTYPE_GROUPS)
@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@fuzz_settings(80)
@given(data=st.data())
def test_compare_matches_scipy(backend, method, group, data):
    a, b = data.draw(compare_inputs(dtypes=DTYPE_GROUPS[group]), label="(a, b)")
    _compare_case(method, a, b, backend)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@fuzz_settings(30)
@given(inputs=compare_inputs(small=True))
def test_compare_kendall_matches_scipy(backend, inputs):
    a, b = inputs
    _compare_case("kendall", a, b, backend)


# ---------------------------------------------------------------------------------------------
# property tests: Triton (interpreted on CPU without a GPU: tiny shapes, few examples)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend", TRITON)
@fuzz_settings(4, interpreted=True)
@given(data=st.data())
def test_triton_rdms_matches_pdist(backend, metric, data):
    case = data.draw(rdm_cases(metric, tiny=True), label="case")
    note(f"fastrsa.rdms({case!r}.build(), {metric!r}, backend={backend!r})")
    check_rdms(case.build(), metric, backend, case.dtype)


@pytest.mark.parametrize("backend", TRITON)
@fuzz_settings(5, interpreted=True)
@given(case=rank_inputs(tiny=True))
def test_triton_rank_transform_equals_rankdata(backend, case):
    note(f"fastrsa.rank_transform({case!r}.build(), backend={backend!r})")
    check_rank(case.build(), backend)


@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine", "kendall"])
@pytest.mark.parametrize("backend", TRITON)
@fuzz_settings(3, interpreted=True)
@given(inputs=compare_inputs(tiny=True))
def test_triton_compare_matches_scipy(backend, method, inputs):
    a, b = inputs
    _compare_case(method, a, b, backend)


# ---------------------------------------------------------------------------------------------
# regressions: known reproductions, on every backend that can run them


@pytest.mark.parametrize("backend", BACKENDS)
def test_regression_a_ranks_respect_strides(backend):
    """(a) A transposed view `.t().contiguous().t()`: ranks and Spearman equal the contiguous
    tensor's and scipy's."""
    x = torch.tensor([[3.0, 1, 2, 5], [0, 4, 1, 2]]).t().contiguous().t()
    assert not x.is_contiguous()
    check_rank(x, backend)
    view = to_numpy64(fastrsa.compare(x, method="spearman", backend=backend))
    contiguous = to_numpy64(fastrsa.compare(x.contiguous(), method="spearman", backend=backend))
    assert_within(view, contiguous, 1e-7, 0.0, f"spearman of a view vs contiguous ({backend})")
    check_compare(x, None, "spearman", backend)


def _rows_b(rng):
    """(b) float32, d = 2048: four N(0,1) rows, a pair of correlated rows at |x| ~ 1e8, two
    rows at 1e-10."""
    d = 2048
    x = rng.standard_normal((8, d))
    big = 1e8 * rng.standard_normal(d)
    x[4] = big + 1e6 * rng.standard_normal(d)
    x[5] = big + 1e6 * rng.standard_normal(d)
    x[6:] *= 1e-10
    return x.astype(np.float32)


@pytest.mark.parametrize("metric", ["correlation", "cosine"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_regression_b_large_and_tiny_norm_rows(backend, metric):
    x = _rows_b(np.random.default_rng(2))
    check_rdms(x, metric, backend)
    check_rdms(torch.from_numpy(x), metric, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_regression_c_large_offset_float32(backend):
    """(c) float32 rows 1e6 + N(0,1): correlation RDM and Pearson within 1e-5."""
    rng = np.random.default_rng(3)
    x = (1e6 + rng.standard_normal((10, 256))).astype(np.float32)
    check_rdms(x, "correlation", backend)
    a = (1e6 + rng.standard_normal((5, 256))).astype(np.float32)
    check_compare(a, None, "pearson", backend)
    check_compare(torch.from_numpy(a), torch.from_numpy(x[:3]), "pearson", backend)


@pytest.mark.parametrize("scale", [1e20, 1e-30])
@pytest.mark.parametrize("backend", BACKENDS)
def test_regression_d_extreme_scales_float32(backend, scale):
    """(d) float32 at |x| ~ 1e20 and ~1e-30: no NaN; correlation within 1e-5, euclidean within
    1e-6 relative; Pearson within 1e-5."""
    rng = np.random.default_rng(4)
    x = (scale * rng.standard_normal((6, 16))).astype(np.float32)
    for metric in METRICS:
        check_rdms(x, metric, backend)
    a = (scale * rng.standard_normal((4, 50))).astype(np.float32)
    check_compare(a, None, "pearson", backend)
    check_compare(torch.from_numpy(a), None, "cosine", backend)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_regression_e_near_duplicate_euclidean(backend, dtype):
    """(e) two rows 1e-3 apart at norm ~400 (d = 64, n = 5, the others far away): the distance
    within 1e-6 (float32) / 1e-10 (float64) relative, not 0."""
    rng = np.random.default_rng(5)
    x = 50.0 * rng.standard_normal((5, 64))
    step = rng.standard_normal(64)
    x[1] = x[0] + 1e-3 * step / np.linalg.norm(step)
    x[2:] += 5000.0
    x = x.astype(dtype)
    ref = rdm_reference(x.astype(np.float64), "euclidean")
    assert ref[0] > 0  # the rows stay distinct in this dtype
    for arr in (x, torch.from_numpy(x)):
        check_rdms(arr, "euclidean", backend)
        assert float(to_numpy64(fastrsa.rdms(arr, "euclidean", backend))[0]) != 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_regression_f_int64_beyond_2_53(backend):
    """(f) int64 ranks beyond 2**53 exact; rows that differ only beyond 2**53 are not
    constant."""
    x = np.array([INT53, INT53 + 1, 3], dtype=np.int64)
    out = fastrsa.rank_transform(x, backend=backend)
    np.testing.assert_array_equal(to_numpy64(out), [2.0, 3.0, 1.0])
    check_rank(x, backend)
    check_rank(np.full((2, 5), 2**62, dtype=np.int64), backend)
    check_rank(torch.tensor([[INT53, INT53 + 1, 3], [INT53 + 2, INT53 + 2, INT53 + 1]]), backend)
    feats = np.array(
        [[INT53, INT53 + 1, INT53], [INT53 + 1, INT53, INT53 + 2], [INT53 + 3, INT53, INT53]],
        dtype=np.int64,
    )
    out = fastrsa.rdms(feats, "correlation", backend)  # must not raise "constant"
    check_rdms(feats, "correlation", backend)
    check_rdms(feats, "euclidean", backend)
    check_rdms(torch.from_numpy(feats), "correlation", backend)
    assert to_numpy64(out).shape == (3,)
    a = np.array([[INT53, INT53 + 1, INT53, INT53 + 2]], dtype=np.int64)
    for method in ("spearman", "pearson", "kendall"):
        check_compare(a, np.array([[1, 2, 3, 4]]), method, backend)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_found_euclidean_mixed_row_scales(backend, dtype):
    """Found by this module's fuzzing: rows at 1e20 beside rows at 1e-20 in one matrix. Each
    euclidean distance, the tiny rows' too, within 1e-6 (float32) / 1e-10 (float64) relative
    (a common power-of-two rescaling of the matrix pushes the tiny rows into float32
    subnormals)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 8))
    x[:2] *= 1e20
    x[2:] *= 1e-20
    check_rdms(x.astype(dtype), "euclidean", backend)
    check_rdms(torch.from_numpy(x.astype(dtype)), "euclidean", backend)


@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_found_compare_float32_long_tied_rows(backend, method):
    """Found by exploring beyond the properties' M <= 300: float32 rows of M = 20000 quantised
    values (RDMs of n = 200 images are this long), three of them (nearly) identical: every
    entry within 1e-5 of scipy."""
    if backend == "triton" and method == "spearman" and not torch.cuda.is_available():
        pytest.skip("interpreted Triton ranks of 20000 values take too long")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, (4, 20000)).astype(np.float32)
    a[1] = a[0]
    a[2] = a[0]
    a[2, :10] += 1
    check_compare(torch.from_numpy(a), None, method, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_regression_g_cosine_of_rows_sharing_a_large_offset(backend):
    """(g) issue 22: float32 rows 1e8 + 1e2 N(0,1) have cosine distances near 1e-13; they came
    back all 0 (or rounding noise). Within the 1e-5 contract as before, and now each within
    1e-6 of itself (tests/test_trust_numerics.py: every kind, float64, RSA on such RDMs)."""
    rng = np.random.default_rng(11)
    x = (1e8 + 1e2 * rng.standard_normal((5, 8))).astype(np.float32)
    check_rdms(torch.from_numpy(x), "cosine", backend)
    u = x.astype(np.longdouble)
    u /= np.sqrt((u * u).sum(-1, keepdims=True))
    i, j = np.triu_indices(5, 1)
    want = np.asarray(0.5 * ((u[i] - u[j]) ** 2).sum(-1), dtype=np.float64)
    got = to_numpy64(fastrsa.rdms(torch.from_numpy(x), "cosine", backend=backend))
    assert_within(got, want, 0.0, 1e-6, f"cosine of offset rows ({backend}), relative")
