"""fastrsa.measures.from_grams (the sweep's per-unit states and measure tiles) against
fastrsa.similarity on the features in memory, for every SWEEP_MEASURE and option set.

Tolerances: RTOL = 1e-8 relative (the two routes differ only in float rounding: the chunked
float64 Gram, and the eigendecomposition of Xc Xcᵀ instead of the SVD of Xc, whose eigenvectors
of small eigenvalues carry eps · lam_max / lam_min ~ 1e-12 here), with ATOL = 1e-12 for entries
near 0 (distances of units with one column space, CKA of unrelated d = 1 units). float32 input:
the states are exact float64 functions of the float32 values, so they match similarity of the
same values in float64 at RTOL; float32 similarity (its Grams in float32) at 1e-5.
"""

import numpy as np
import pytest

import fastrsa
from fastrsa.measures import from_grams as F
from fastrsa.similarity import MEASURES, OPTIONS

RTOL = 1e-8
ATOL = 1e-12

CASES = [
    ("cka", {}),
    ("cka", {"kernel": "rbf"}),
    ("cka", {"debiased": True}),
    ("cka", {"kernel": "rbf", "threshold": 0.5, "debiased": True}),
    ("svcca", {}),
    ("svcca", {"variance": 0.9}),
    ("cca", {}),
    ("nbs", {}),
    ("procrustes", {}),
    ("procrustes", {"alpha": 0.5}),
    ("procrustes", {"alpha": 0.0}),
    ("procrustes", {"score": "euclidean"}),
    ("procrustes", {"score": "euclidean", "alpha": 0.5}),
    ("procrustes", {"score": "nbs", "alpha": 1.0}),
    ("procrustes", {"score": "nbs", "alpha": 0.5}),
    ("procrustes", {"score": "nbs", "alpha": 0.0}),
    ("mutual-knn", {"k": 3}),
    ("mutual-knn", {"k": 10}),
    ("jaccard-knn", {"k": 3}),
    ("jaccard-knn", {"k": 10}),
    ("cknna", {"k": 3}),
    ("cknna", {"k": 10}),
]


def _id(case):
    m, o = case
    return m + "".join(f"-{k}={v}" for k, v in o.items())


def models(n, seed, dtype=np.float64):
    """Several units of different widths: d = 1, narrow, d = n, d > n."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, d)).astype(dtype) for d in (1, 3, n, 2 * n + 1)]


def states(measure, opts, xs, budget=1 << 20, names=None):
    kind = F.state_kind(measure, opts)
    names = names or [f"features[{i}]" for i in range(len(xs))]
    out = []
    for x, nm in zip(xs, names, strict=True):
        g, gc = F.grams(x, budget, centred=not F.needs_plain(kind), plain=F.needs_plain(kind))
        out.append(F.make_state(kind, g, gc, nm))
    return out


def names(prefix, count, start=0):
    return [f"{prefix}[{i}]" for i in range(start, start + count)]


@pytest.mark.parametrize("n", [4, 7, 37])
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_tiles_equal_similarity(case, n):
    measure, opts = case
    if opts.get("k", 0) >= n or (opts.get("debiased") and n < 4):
        pytest.skip("k >= n")
    full = {**OPTIONS[measure], **opts}
    xs = models(n, seed=n)
    try:
        want = fastrsa.similarity(xs, measure, **opts)
    except ValueError as err:  # e.g. CKNNA of d = 1 units at n = 4: refused both ways
        with pytest.raises(ValueError):
            F.tile(measure, states(measure, full, xs), None, full, names("features", 4), [])
        pytest.skip(f"refused in memory too: {err}")
    st = states(measure, full, xs, budget=8 * n * 3)  # a few columns per chunk
    got = F.tile(measure, st, None, full, names("features", 4), [])
    assert got.dtype == np.float64 and got.shape == (4, 4)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    assert not np.isnan(got).any()
    if measure != "cknna":
        np.testing.assert_array_equal(got, got.T)
    diag = 0.0 if measure == "procrustes" and full["score"] != "nbs" else 1.0
    np.testing.assert_array_equal(np.diagonal(got), diag)
    # blocks: rows 0..1 against columns 1..3, and the transposed block
    want_ab = fastrsa.similarity(xs[:2], measure, other=xs[1:], **opts)
    got_ab = F.tile(measure, st[:2], st[1:], full, names("a", 2), names("b", 3))
    np.testing.assert_allclose(got_ab, want_ab, rtol=RTOL, atol=ATOL)
    got_ba = F.tile(measure, st[1:], st[:2], full, names("b", 3), names("a", 2))
    want_ba = fastrsa.similarity(xs[1:], measure, other=xs[:2], **opts)
    np.testing.assert_allclose(got_ba, want_ba, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_float32_features(case):
    measure, opts = case
    full = {**OPTIONS[measure], **opts}
    xs = models(23, seed=5, dtype=np.float32)
    got = F.tile(measure, states(measure, full, xs), None, full, names("features", 4), [])
    wide = fastrsa.similarity([x.astype(np.float64) for x in xs], measure, **opts)
    np.testing.assert_allclose(got, wide, rtol=RTOL, atol=ATOL)
    narrow = fastrsa.similarity(xs, measure, **opts)
    scale = 1.0 if full.get("score") != "euclidean" else float(np.abs(wide).max())
    np.testing.assert_allclose(got, narrow, rtol=1e-5, atol=1e-5 * scale)


def test_grams_chunks_equal_one_product():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((11, 29)) * 3 + 100.0  # an offset: centring in float64
    xc = x - x.mean(axis=0)
    for budget in (1, 8 * 11 * 2 * 4, 1 << 30):
        g, gc = F.grams(x, budget, centred=True, plain=True)
        np.testing.assert_allclose(g, x @ x.T, rtol=1e-13)
        np.testing.assert_allclose(gc, xc @ xc.T, rtol=1e-12, atol=1e-10)
        assert g.dtype == gc.dtype == np.float64
    assert F.grams(x, 100, centred=False, plain=True)[1] is None
    assert F.grams(x, 100)[0] is None


def test_grams_memmap_and_integers(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((9, 40)).astype(np.float32)
    mm = np.memmap(tmp_path / "x.f32", dtype=np.float32, mode="w+", shape=x.shape)
    mm[:] = x
    mm.flush()
    ro = np.memmap(tmp_path / "x.f32", dtype=np.float32, mode="r", shape=x.shape)
    for a, b in zip(F.grams(ro, 200, plain=True), F.grams(x, 1 << 20, plain=True), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-12)
    xi = rng.integers(-5, 5, (6, 7))
    np.testing.assert_allclose(F.grams(xi, 64, plain=True)[0], xi @ xi.T, rtol=0, atol=0)


def test_states_fixed_shapes():
    n = 8
    x = np.random.default_rng(3).standard_normal((n, 3))
    g, gc = F.grams(x, 1 << 20, plain=True)
    for kind, shapes in (
        ("gram", {"gram": (n, n)}),
        ("eig", {"u": (n, n), "lam": (n,)}),
        ("knn4", {"table": (n, 4), "sims": (n, 4)}),
    ):
        st = F.make_state(kind, g, gc, "u")
        assert {k: v.shape for k, v in st.items()} == shapes
        assert sum(v.nbytes for v in st.values()) == F.state_bytes(kind, n)
        assert all(v.dtype in (np.float64, np.int64) for v in st.values())
    st = F.make_state("eig", g, gc, "u")
    assert np.all(np.diff(st["lam"]) <= 0) and st["lam"].min() >= 0
    np.testing.assert_allclose((st["u"] * st["lam"]) @ st["u"].T, gc, atol=1e-12 * n)
    assert [F.needs_plain(k) for k in ("gram", "eig", "knn4")] == [False, False, True]


def test_measure_lists():
    assert set(F.SWEEP_MEASURES) | set(F.NOT_AT_SWEEP) | {"rsa"} == set(MEASURES)
    assert not set(F.SWEEP_MEASURES) & set(F.NOT_AT_SWEEP)
    for m in F.SWEEP_MEASURES:
        assert F.state_kind(m, {**OPTIONS[m]}) in ("gram", "eig", "knn10")


def test_parallel_rows_tie_like_memory():
    """d = 1 and duplicate rows: cosines of exactly ±1 in memory, ties broken by index."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((12, 1))
    dup = rng.standard_normal((12, 5))
    dup[[3, 7, 9]] = dup[1]
    for m in ("mutual-knn", "cknna"):
        full = {**OPTIONS[m], "k": 4}
        xs = [x, dup, x * 3.0]
        got = F.tile(m, states(m, full, xs), None, full, names("f", 3), [])
        np.testing.assert_allclose(got, fastrsa.similarity(xs, m, k=4), rtol=RTOL, atol=ATOL)


def _raises(match, fn, *args, **kw):
    with pytest.raises(ValueError, match=match):
        fn(*args, **kw)


def test_refusals():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((6, 4))
    g, gc = F.grams(x, 1 << 20, plain=True)
    cka = {**OPTIONS["cka"]}
    _raises("laplacian.*not computed at sweep scale.*L1", F.state_kind, "cka",
            {**cka, "kernel": "laplacian"})  # fmt: skip
    _raises("minibatch is not computed at sweep scale", F.state_kind, "cka",
            {**cka, "minibatch": 4})  # fmt: skip
    _raises("laplacian", F.tile, "cka", [], None, {**cka, "kernel": "laplacian"}, [], [])
    for m in F.NOT_AT_SWEEP:
        _raises(f"'{m}' is not computed at sweep scale: ", F.state_kind, m, {})
    _raises("measure must be one of", F.state_kind, "nope", {})
    _raises("k must be >= 2", F.state_kind, "cknna", {"k": 1})
    # a zero row (knn), constant features (gram, eig), too few images, k >= n
    z = x.copy()
    z[2] = 0
    _raises(r"all zeros.*unit7: row 2", F.make_state, "knn3", *F.grams(z, 64, plain=True), "unit7")
    c = np.full((6, 4), 3.0)
    for kind in ("gram", "eig"):
        _raises("unit8 has constant features", F.make_state, kind, *F.grams(c, 64), "unit8")
    _raises("unit9 has n = 2 images", F.make_state, "eig", *F.grams(x[:2], 64), "unit9")
    _raises(r"k = 6 must be at most n - 1 = 5", F.make_state, "knn6", g, gc, "u")
    _raises("needs the plain Gram", F.make_state, "knn3", None, gc, "u")
    _raises("needs the centred Gram", F.make_state, "eig", g, None, "u")
    _raises("unknown state kind", F.make_state, "svd", g, gc, "u")
    # k mismatch between the states and the options
    st = [F.make_state("knn3", g, gc, "u")]
    _raises(r"u: its kNN state has k = 3, but the measure asks k = 4", F.tile, "mutual-knn",
            st, None, {"k": 4}, ["u"], [])  # fmt: skip
    # grams: NaN, overflow, underflow, shape
    bad = x.copy()
    bad[1, 3] = np.nan
    _raises(r"unitA holds NaN or Inf \(first at index \(1, 3\)\)", F.grams, bad, 16, name="unitA")
    _raises("unitB: its Gram overflows float64.*rescale", F.grams, x * 1e200, 64, name="unitB")
    _raises("its Gram underflows float64.*rescale", F.grams, x * 1e-160, 64)
    _raises("must be a non-empty 2-D", F.grams, x[0], 64)
    # tile options and n
    eig = [F.make_state("eig", g, gc, "u")] * 2
    _raises(r"alpha must be a number in \[0, 1\]", F.tile, "procrustes", eig, None,
            {"alpha": 2.0, "score": "angular"}, ["u", "v"], [])  # fmt: skip
    _raises(r"variance must be in \(0, 1\]", F.tile, "svcca", eig, None, {"variance": 0.0},
            ["u", "v"], [])  # fmt: skip
    g3, gc3 = F.grams(x[:3], 64, plain=True)
    gram3 = [F.make_state("gram", g3, gc3, "u")]
    _raises("CKA needs at least 4 images", F.tile, "cka", gram3, None,
            {**cka, "debiased": True}, ["u"], [])  # fmt: skip
    _raises("v: its state has 3 images but others 6", F.tile, "cka",
            [F.make_state("gram", g, gc, "u")], gram3, cka, ["u"], ["v"])  # fmt: skip
    # rbf bandwidth 0: most rows identical
    same_rows = np.zeros((6, 4))
    same_rows[0] = 1.0
    gram_same = [F.make_state("gram", None, F.grams(same_rows, 64)[1], "w")]
    _raises("w: the median squared distance", F.tile, "cka", gram_same, None,
            {**cka, "kernel": "rbf"}, ["w"], [])  # fmt: skip
