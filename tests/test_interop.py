"""rsatoolbox in and out: round trips, the vector order, labels, and RDMs objects accepted by
taxonomy and rank_sources (skipped without rsatoolbox)."""

import numpy as np
import pytest
import torch
from scipy.spatial import distance

rsatoolbox = pytest.importorskip("rsatoolbox")

from fastrsa.interop import from_rsatoolbox, rdm_rows, to_rsatoolbox  # noqa: E402
from fastrsa.taxonomy import rank_sources, taxonomy  # noqa: E402


def random_rdms(rng, k, n):
    """k condensed RDMs of n images (correlation distances of random features)."""
    return np.stack([distance.pdist(rng.standard_normal((n, 5)), "correlation") for _ in range(k)])


def test_round_trip_and_order_of_squareform(rng):
    rows = random_rdms(rng, 4, 7)
    labels = ["a", "b", "c", "d"]
    obj = to_rsatoolbox(rows, labels, dissimilarity_measure="correlation")
    assert isinstance(obj, rsatoolbox.rdm.RDMs)
    assert obj.n_rdm == 4 and obj.n_cond == 7
    assert obj.rdm_descriptors["name"] == labels
    assert obj.dissimilarity_measure == "correlation"
    np.testing.assert_array_equal(obj.dissimilarities, rows)
    # rsatoolbox's square matrices are scipy's squareform of our condensed rows
    for k in range(4):
        np.testing.assert_array_equal(obj.get_matrices()[k], distance.squareform(rows[k]))
    got_labels, got_rows = from_rsatoolbox(obj)
    assert got_labels == labels and got_rows.dtype == np.float64
    np.testing.assert_array_equal(got_rows, rows)
    got_rows2, got_labels2 = rdm_rows(obj)
    assert got_labels2 == labels
    np.testing.assert_array_equal(got_rows2, rows)


def test_rsatoolbox_made_rdms_come_in_in_our_order(rng):
    """RDMs computed by rsatoolbox itself (from square matrices) read as scipy's condensed rows."""
    rows = random_rdms(rng, 3, 6)
    squares = np.stack([distance.squareform(r) for r in rows])
    obj = rsatoolbox.rdm.RDMs(squares, rdm_descriptors={"name": ["x", "y", "z"]})
    labels, got = from_rsatoolbox(obj)
    assert labels == ["x", "y", "z"]
    np.testing.assert_array_equal(got, rows)


def test_inputs_to_rsatoolbox(rng):
    rows = random_rdms(rng, 3, 5)
    squares = np.stack([distance.squareform(r) for r in rows])
    for given in (squares, torch.from_numpy(rows), {"p": rows[0], "q": rows[1], "r": rows[2]}):
        obj = to_rsatoolbox(given)
        np.testing.assert_allclose(obj.dissimilarities, rows, rtol=0, atol=1e-15)
    assert to_rsatoolbox({"p": rows[0], "q": rows[1]}).rdm_descriptors["name"] == ["p", "q"]
    one = to_rsatoolbox(rows[0])
    assert one.n_rdm == 1 and "name" not in one.rdm_descriptors
    assert from_rsatoolbox(one)[0] is None


def test_refused(rng):
    rows = random_rdms(rng, 2, 5)
    with pytest.raises(ValueError, match="not unique"):
        to_rsatoolbox(rows, ["a", "a"])
    with pytest.raises(ValueError, match="labels has 3 names for 2"):
        to_rsatoolbox(rows, ["a", "b", "c"])
    bad = rows.copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        to_rsatoolbox(bad, ["a", "b"])
    with pytest.raises(ValueError, match="not n\\*\\(n-1\\)/2"):
        to_rsatoolbox(rows[:, :7], ["a", "b"])
    obj = rsatoolbox.rdm.RDMs(bad, rdm_descriptors={"name": ["a", "b"]})
    with pytest.raises(ValueError, match="RDM 'b' holds NaN or Inf \\(first at dissimilarity 3"):
        from_rsatoolbox(obj)
    with pytest.raises(ValueError, match="rdms \\(rsatoolbox RDMs\\): RDM 'b' holds NaN"):
        taxonomy(obj)
    with pytest.raises(ValueError, match="source_rdms \\(rsatoolbox RDMs\\): RDM 'b' holds NaN"):
        rank_sources(rows[0], obj)
    with pytest.raises(TypeError, match="rsatoolbox.rdm.RDMs object"):
        from_rsatoolbox(rows)
    assert rdm_rows(rows) is None and rdm_rows({"a": rows[0]}) is None


def test_taxonomy_accepts_rdms_objects(rng):
    rows = random_rdms(rng, 5, 8)
    labels = [f"m{k}" for k in range(5)]
    want = taxonomy(rows, labels, n_clusters=2)
    for got in (
        taxonomy(to_rsatoolbox(rows, labels), n_clusters=2),
        taxonomy(to_rsatoolbox(rows), labels, n_clusters=2),
    ):
        assert got.labels == labels and got.clusters == want.clusters and got.order == want.order
        np.testing.assert_array_equal(got.similarity, want.similarity)
    unnamed = taxonomy(to_rsatoolbox(rows), method="pearson")
    assert unnamed.labels == ["0", "1", "2", "3", "4"]
    np.testing.assert_array_equal(
        unnamed.similarity, taxonomy(rows, labels, method="pearson").similarity
    )


def test_rank_sources_accepts_rdms_objects(rng):
    rows = random_rdms(rng, 4, 9)
    labels = ["w", "x", "y", "z"]
    target = random_rdms(rng, 1, 9)[0]
    want = rank_sources(target, rows, labels)
    for got in (
        rank_sources(target, to_rsatoolbox(rows, labels)),
        rank_sources(to_rsatoolbox(target[None]), to_rsatoolbox(rows, labels)),
        rank_sources(to_rsatoolbox(target[None], ["t"]), to_rsatoolbox(rows), labels),
    ):
        assert got.labels == want.labels
        np.testing.assert_array_equal(got.scores, want.scores)
    with pytest.raises(ValueError, match="target_rdm must be one RDM"):
        rank_sources(to_rsatoolbox(rows[:2]), rows, labels)


def test_without_rsatoolbox(rng, monkeypatch):
    """rsatoolbox is optional: a clear MissingPackage when converting, arrays work as before."""
    import sys

    from fastrsa.errors import MissingPackage

    rows = random_rdms(rng, 3, 5)
    for name in ("rsatoolbox", "rsatoolbox.rdm", "rsatoolbox.rdm.rdms"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingPackage, match="pip install rsatoolbox"):
        to_rsatoolbox(rows, ["a", "b", "c"])
    assert rdm_rows(rows) is None
    assert taxonomy(rows, ["a", "b", "c"]).labels == ["a", "b", "c"]


def test_compare_takes_rdms_objects(rng):
    pytest.importorskip("rsatoolbox")
    rows = rng.random((4, 15))
    other = rng.random((2, 15))
    from fastrsa import compare

    want = compare(rows, other, method="tau-a")
    got = compare(to_rsatoolbox(rows), to_rsatoolbox(other), method="tau-a")
    np.testing.assert_allclose(got, want, atol=0)
    np.testing.assert_allclose(compare(to_rsatoolbox(rows)), compare(rows))
