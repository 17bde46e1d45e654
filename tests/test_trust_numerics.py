"""Never a silent NaN (issue 22): every measure at extreme scales (1e-20..1e20, float32 and
float64), with tiny variances and huge common offsets (1e8 + noise), on the numpy and torch
paths, against the measures' plain float64 formulas (tests/helpers_differential.py) on the very
values fastrsa sees; cosine RDMs of rows sharing a large offset keep their structure; the
statistics stay finite and scale-free; attributions of a model that ignores its input are
refused.

Tolerances: float64 results within 1e-9 of the reference, float32 results within 2e-5 (as
tests/test_measures.py); cosine distances refined from unit rows within 1e-6 (float32) / 1e-5
(float64, distances near 1e-20) of themselves, relative.
"""

import warnings

import numpy as np
import pytest
from helpers_differential import (
    NORMS,
    all_pairs,
    centred,
    cka_plain,
    dds_matrix_plain,
    gram_plain,
    hsic_biased,
    svcca_plain,
)
from scipy.spatial.distance import cdist
from scipy.stats import spearmanr

import fastrsa
from fastrsa.similarity import similarity
from fastrsa.stats import bootstrap, permutation_test

torch = pytest.importorskip("torch")

ATOL = {"float64": 1e-9, "float32": 2e-5}
KINDS = ("numpy", "torch")
SHAPE = (3, 1, 4)  # (h, w, c) of the shaped normalisations: d = 12


def _models(seed: int, n: int = 10, widths=(12, 12, 12)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) for d in widths]


def _as(xs, dtype: str, kind: str):
    """The models in `dtype`, as numpy arrays or torch tensors, and their exact float64 values."""
    cast = [x.astype(dtype) for x in xs]
    exact = [c.astype(np.float64) for c in cast]
    return ([torch.from_numpy(c) for c in cast] if kind == "torch" else cast), exact


def _strict(fn, *args, **kwargs):
    """fn(...) with every warning an error: a NaN may not hide behind a RuntimeWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


def _numpy(out) -> np.ndarray:
    return out.double().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, float)


def _check(got, want, dtype: str, what: str) -> None:
    got = _numpy(got)
    assert np.isfinite(got).all(), f"{what}: not finite {got}"
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL[dtype], err_msg=what)


# ---------------------------------------------------------------- references on exact values


def _cosine_rdm(x: np.ndarray) -> np.ndarray:
    """Square 1 - cos of the rows as |u - v|^2 / 2 of unit rows in extended precision: accurate
    relative to each distance (pdist's 1 - u.v is not, for distances near 1e-13)."""
    u = x.astype(np.longdouble)
    u /= np.sqrt((u * u).sum(-1, keepdims=True))
    diff = u[:, None, :] - u[None, :, :]
    return np.asarray(0.5 * (diff * diff).sum(-1), dtype=np.float64)


def _dds_reference(x, y, normalization: str, kernel: str) -> float:
    """DDS as the plain formulas, each step written in a form exact for offsets and scales:
    the linear Gram of column-centred rows (the same U-centred matrix), the cosine RDM from unit
    rows, the laplacian kernel as K - 1 (expm1; the same centred matrix)."""

    def mat(z):
        z = NORMS[normalization](z, SHAPE)
        if kernel == "linear":
            zc = centred(z)
            return zc @ zc.T
        if kernel == "cosine":
            return _cosine_rdm(z)
        if kernel == "laplacian":
            return np.expm1(-cdist(z, z, "cityblock") / z.shape[1])
        return dds_matrix_plain(z, kernel)

    return cka_plain(mat(x), mat(y), debiased=True)


def _cka_reference(x, y, kernel: str, debiased: bool) -> float:
    if kernel == "linear":
        xc, yc = centred(x), centred(y)
        return cka_plain(xc @ xc.T, yc @ yc.T, debiased)
    return cka_plain(gram_plain(x, kernel), gram_plain(y, kernel), debiased)


MEASURES = [
    ("cka", {}),
    ("cka", {"debiased": True}),
    ("cka", {"kernel": "rbf"}),
    ("cka", {"minibatch": 5, "debiased": False}),
    ("svcca", {}),
    *[("dds", {"normalization": nm}) for nm in ("znorm", "none", "centering")],
    *[("dds", {"normalization": "none", "kernel": k}) for k in ("rbf", "pearson", "euclidean")],
    ("dds", {"normalization": "none", "kernel": "cosine"}),
    *[("dds", {"normalization": nm, "shape": SHAPE}) for nm in ("group", "layer", "batch")],
]


def _reference(exact, measure: str, opts: dict) -> np.ndarray:
    if measure == "cka" and "minibatch" in opts:
        m = opts["minibatch"]

        def mb(x, y):
            parts = [(x[s : s + m], y[s : s + m]) for s in range(0, len(x), m)]
            return np.mean(
                [
                    hsic_biased(centred(a) @ centred(a).T, centred(b) @ centred(b).T)
                    for a, b in parts
                ]
            )

        return all_pairs(lambda x, y: mb(x, y) / np.sqrt(mb(x, x) * mb(y, y)), exact)
    if measure == "cka":
        kernel, debiased = opts.get("kernel", "linear"), opts.get("debiased", False)
        return all_pairs(lambda x, y: _cka_reference(x, y, kernel, debiased), exact)
    if measure == "svcca":
        return all_pairs(lambda x, y: svcca_plain(x, y, 0.99), exact)
    nm, kernel = opts["normalization"], opts.get("kernel", "linear")
    return all_pairs(lambda x, y: _dds_reference(x, y, nm, kernel), exact)


def _ids(p):
    return p[0] + "".join(f"-{v}" for k, v in p[1].items() if k != "shape")


# ---------------------------------------------------------------- the measures


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scale", [1e-20, 1e20])
@pytest.mark.parametrize("measure_opts", MEASURES, ids=_ids)
def test_measures_at_extreme_scales(measure_opts, scale, dtype, kind):
    """similarity(..., "cka") of float32 features scaled by 1e20 was NaN (with a RuntimeWarning),
    others refused them as constant: now every measure equals its float64 formulas on the same
    values (scale-free measures: the unscaled problem), whatever the scale."""
    measure, opts = measure_opts
    xs, exact = _as([x * scale for x in _models(1)], dtype, kind)
    got = _strict(similarity, xs, measure, **opts)
    _check(got, _reference(exact, measure, opts), dtype, f"{measure} {opts} at {scale:g}")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("measure_opts", MEASURES, ids=_ids)
def test_measures_with_a_large_common_offset(measure_opts, dtype, kind):
    """Features 1e8 + noise (noise ~1e3, so float32 keeps it): column means in float64, the
    linear kernel of centred rows, cosine distances from unit rows; DDS normalization="none"
    on float32 was NaN."""
    measure, opts = measure_opts
    rng = np.random.default_rng(2)
    xs, exact = _as(
        [1e8 + 1e3 * x + rng.standard_normal(x.shape[1]) for x in _models(2)], dtype, kind
    )
    got = _strict(similarity, xs, measure, **opts)
    _check(got, _reference(exact, measure, opts), dtype, f"{measure} {opts} offset 1e8")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dds_znorm_standardises_a_column_of_tiny_variance(dtype, kind):
    """A column 1e-25 times smaller than the rest: znorm gives it unit variance (its float32
    variance, 1e-50, underflowed to 0: the column was taken for a constant)."""
    xs = _models(3)
    for x in xs:
        x[:, 0] *= 1e-25
    xs, exact = _as(xs, dtype, kind)
    got = _strict(similarity, xs, "dds")
    _check(got, _reference(exact, "dds", {"normalization": "znorm"}), dtype, "znorm tiny column")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_laplacian_kernel_is_range_safe_or_refused(dtype, kind):
    """The laplacian kernel exp(-|x - y|_1 / d) is not scale-free: at 1e-8 it is within rounding
    of 1 everywhere and is computed as K - 1 (equal to the formula); at 1e20 it is the identity,
    whose U-centred form is zero: refused, naming the model, never NaN."""
    xs, exact = _as([x * 1e-8 for x in _models(4)], dtype, kind)
    want = all_pairs(lambda x, y: _dds_reference(x, y, "none", "laplacian"), exact)
    got = _strict(similarity, xs, "dds", normalization="none", kernel="laplacian")
    _check(got, want, dtype, "laplacian at 1e-8")
    got = _strict(similarity, xs, "cka", kernel="laplacian", debiased=True)
    _check(got, want, dtype, "cka laplacian at 1e-8")
    big, _ = _as([x * 1e20 for x in _models(4)], dtype, kind)
    with pytest.raises(ValueError, match=r"features\[0\].*kernel constant between all pairs"):
        similarity(big, "dds", normalization="none", kernel="laplacian")


def test_cka_of_matrices_any_scale(rng):
    mats = rng.standard_normal((3, 8, 8))
    mats = mats + mats.transpose(0, 2, 1)
    want = fastrsa.measures.cka.cka_of_matrices(mats)
    for scale in (1e-200, 1e200):
        got = _strict(fastrsa.measures.cka.cka_of_matrices, mats * scale)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [1e-20, 1e20])
def test_attribution_similarity_scales_and_offsets(rng, scale):
    maps = rng.standard_normal((3, 5, 2, 4))
    want = similarity(maps, "attribution")
    for dtype in ("float32", "float64"):
        got = _strict(similarity, (maps * scale).astype(dtype), "attribution")
        _check(got, want, dtype, f"attribution at {scale:g}")
    offset = (1e8 + 1e3 * maps).astype(np.float32)
    v = offset.astype(np.float64).reshape(3, 5, -1)
    u = v / np.linalg.norm(v, axis=-1, keepdims=True)
    ref = np.einsum("aid,bid->ab", u, u) / 5
    _check(_strict(similarity, offset, "attribution"), ref, "float32", "attribution offset")


# ---------------------------------------------------------------- cosine RDMs of offset rows


def _offset_rows(dtype: str, noise: float, n: int = 12, d: int = 24, seed: int = 5):
    rng = np.random.default_rng(seed)
    return (1e8 + noise * rng.standard_normal((n, d))).astype(dtype)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "dtype, noise, rtol", [("float32", 1e2, 1e-6), ("float64", 1e-2, 1e-5), ("float64", 1e2, 1e-9)]
)
def test_cosine_rdm_of_rows_sharing_a_large_offset(backend, dtype, noise, rtol, kind):
    """float32 rows 1e8 + noise have cosine distances near 1e-13 (float64 rows 1e8 + 1e-2 noise:
    near 1e-20); they came back all 0 or rounding noise (Spearman with the float64 RDM -0.3).
    Now each is within `rtol` of itself, so the RDM's Spearman with the exact one is > 0.999,
    and Spearman RSA of two such models works."""
    x = _offset_rows(dtype, noise)
    want = _cosine_rdm(x.astype(np.float64))[np.triu_indices(len(x), 1)]
    arg = torch.from_numpy(x) if kind == "torch" else x
    got = _numpy(_strict(fastrsa.rdms, arg, "cosine", backend=backend))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)
    assert spearmanr(got, want)[0] > 0.999
    y = _offset_rows(dtype, noise, seed=6)
    s = _numpy(similarity([x, y], "rsa", metric="cosine", backend=backend))
    ref = spearmanr(want, _cosine_rdm(y.astype(np.float64))[np.triu_indices(len(y), 1)])[0]
    np.testing.assert_allclose(s[0, 1], ref, rtol=0, atol=1e-4)


@pytest.mark.parametrize("precision", ["ieee", "tf32"])
def test_triton_cosine_rdm_of_offset_rows(precision):
    """Triton's fp32 Gram of unit rows, refined with torch: tiny shapes (TRITON_INTERPRET=1)."""
    if "triton" not in fastrsa.available_backends():
        pytest.skip("triton not available")
    x = _offset_rows("float32", 1e2, n=5, d=8)
    want = _cosine_rdm(x.astype(np.float64))[np.triu_indices(5, 1)]
    got = _numpy(fastrsa.rdms(torch.from_numpy(x), "cosine", backend="triton", precision=precision))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


def test_cosine_refinement_leaves_ordinary_distances_alone(backend):
    """Distances well above the Gram's rounding are not recomputed: identical to the Gram
    formula's result (the refinement costs nothing on ordinary data)."""
    from fastrsa.kernels._euclidean import cosine_limit

    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 9, 16)).astype(np.float32) + 0.5
    got = _numpy(fastrsa.rdms(x, "cosine", backend=backend))
    assert got.min() > cosine_limit(16, False)
    np.testing.assert_allclose(
        got, fastrsa.reference.rdm_ref(x.astype(np.float64), "cosine"), rtol=0, atol=1e-6
    )


# ---------------------------------------------------------------- statistics


@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine", "kendall"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_statistics_are_scale_free(method, dtype):
    """permutation_test and bootstrap of RDMs scaled by 1e-20 or 1e20 (scale by a power of two
    so float32 values stay exact) equal those of the unscaled RDMs; finite, no warnings."""
    rng = np.random.default_rng(9)
    base = rng.random((3, 28)).astype(dtype)
    ref = permutation_test(base, method=method, n_perm=40, seed=1)
    boot = bootstrap(base, method=method, n_boot=20, seed=1)
    for e in (-66, 66):  # 2**±66 ~ 1e±20
        r = np.ldexp(base, e)
        got = _strict(permutation_test, r, method=method, n_perm=40, seed=1)
        np.testing.assert_allclose(got.statistic, ref.statistic, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(got.pvalue, ref.pvalue)
        b = _strict(bootstrap, r, method=method, n_boot=20, seed=1)
        assert np.isfinite(b.samples).all()
        np.testing.assert_allclose(b.samples, boot.samples, rtol=0, atol=1e-6)
        np.testing.assert_allclose(b.observed, boot.observed, rtol=0, atol=1e-6)
