"""fastrsa.similarity for the measures of fastrsa.measures.catalog (Procrustes family, kNN
alignment, CCA / PWCCA, ridge predictivity): the entry point gives exactly what each measure's
own function gives (tested against their references in tests/test_measures_*.py), with the
entry point's conventions: all pairs vs a second set, dicts, torch in / torch out, float32,
options passed through, unknown options refused."""

import numpy as np
import pytest

from fastrsa import similarity
from fastrsa.measures.catalog import CATALOG
from fastrsa.measures.knn import cknna_matrix, jaccard_knn_matrix, mutual_knn_matrix
from fastrsa.measures.procrustes import shape_matrix
from fastrsa.measures.ridge import ridge_matrix
from fastrsa.measures.svcca import cca_matrix

N = 29  # images: no multiple of the folds or of k


def _models(rng, widths=(5, 3, 8, 1)):
    base = rng.standard_normal((N, 4))
    return [base @ rng.standard_normal((4, w)) + 0.5 * rng.standard_normal((N, w)) for w in widths]


def _names(k, name="features"):
    return [f"{name}[{i}]" for i in range(k)]


# measure, options, the function that computes it, whether similarity() symmetrises all pairs
CASES = [
    ("nbs", {}, lambda a, b, **kw: shape_matrix(a, b, score="nbs", **kw), True),
    ("procrustes", {"alpha": 0.5, "score": "angular"},
     lambda a, b, **kw: shape_matrix(a, b, alpha=0.5, score="angular", **kw), False),
    ("procrustes", {"score": "euclidean"},
     lambda a, b, **kw: shape_matrix(a, b, score="euclidean", **kw), False),
    ("mutual-knn", {"k": 3}, lambda a, b, **kw: mutual_knn_matrix(a, b, k=3, **kw), True),
    ("jaccard-knn", {"k": 4}, lambda a, b, **kw: jaccard_knn_matrix(a, b, k=4, **kw), True),
    ("cknna", {"k": 5}, lambda a, b, **kw: cknna_matrix(a, b, k=5, **kw), False),
    ("cca", {"variance": 0.9}, lambda a, b, **kw: cca_matrix(a, b, variance=0.9, **kw), True),
    ("pwcca", {}, lambda a, b, **kw: cca_matrix(a, b, weighting="pwcca", **kw), False),
    ("ridge", {"folds": 4, "score": "mean"},
     lambda a, b, **kw: ridge_matrix(a, b, folds=4, score="mean", **kw), False),
]  # fmt: skip


def test_every_catalog_measure_is_tested():
    assert {c[0] for c in CASES} == set(CATALOG)


@pytest.mark.parametrize("measure, options, direct, symmetrised", CASES, ids=lambda c: str(c))
def test_equals_the_measure_itself(rng, measure, options, direct, symmetrised):
    xs = _models(rng)
    got = similarity(xs, measure, **options)
    want = direct(xs, None, names_a=_names(4))
    if symmetrised:  # the entry point's convention for symmetric similarities
        want = 0.5 * (want + want.T)
        np.fill_diagonal(want, 1.0)
    assert got.dtype == np.float64 and got.shape == (4, 4)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # a second set: the (a, b) block, each ordered pair as the measure defines it
    block = similarity(xs[:2], measure, other=xs[2:], **options)
    np.testing.assert_allclose(
        block, direct(xs[:2], xs[2:], names_a=_names(2), names_b=_names(2, "other")), atol=1e-12
    )
    if measure not in ("ridge", "pwcca", "cknna"):  # the block of the all-pairs matrix
        np.testing.assert_allclose(block, got[:2, 2:], atol=1e-9)
    # a dict, float32 and torch inputs keep the entry point's conventions
    labelled = similarity(dict(zip("abcd", xs, strict=True)), measure, **options)
    np.testing.assert_allclose(labelled, got, atol=1e-12)
    f32 = similarity([x.astype(np.float32) for x in xs], measure, **options)
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, got, atol=2e-3)


@pytest.mark.parametrize("measure", sorted(CATALOG))
def test_torch_in_torch_out(rng, measure):
    torch = pytest.importorskip("torch")
    xs = _models(rng, (4, 6, 2))
    got = similarity([torch.from_numpy(x) for x in xs], measure)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), similarity(xs, measure), atol=1e-9)


def test_directions_and_diagonals(rng):
    xs = _models(rng, (5, 5, 5))
    assert np.all(np.diag(similarity(xs, "procrustes")) == 0)  # a distance
    assert np.all(np.diag(similarity(xs, "nbs")) == 1)
    same = similarity([xs[0], xs[0] @ np.linalg.qr(rng.standard_normal((5, 5)))[0]], "procrustes")
    assert same[0, 1] < 1e-6  # a rotation is no change for Procrustes
    p = similarity(xs, "pwcca")
    assert not np.allclose(p, p.T)  # row i is weighted by features[i]


@pytest.mark.parametrize(
    "measure, options, error, match",
    [
        ("procrustes", {"alpha": 1.5}, ValueError, "alpha"),
        ("procrustes", {"score": "cosine"}, ValueError, "score"),
        ("mutual-knn", {"k": N}, ValueError, "k"),
        ("cknna", {"k": 1}, ValueError, "k"),
        ("cca", {"variance": 0}, ValueError, "variance"),
        ("pwcca", {"variance": "all"}, TypeError, "variance"),
        ("ridge", {"folds": N + 1}, ValueError, "folds"),
        ("ridge", {"alphas": (0.0, 1.0)}, ValueError, "alphas"),
        ("nbs", {"alpha": 0.5}, TypeError, "unknown option"),
        ("mutual-knn", {"kk": 3}, TypeError, "its options are: k"),
    ],
)
def test_bad_options_are_one_line_errors(rng, measure, options, error, match):
    with pytest.raises(error, match=match) as info:
        similarity(_models(rng, (3, 3)), measure, **options)
    assert "\n" not in str(info.value)
