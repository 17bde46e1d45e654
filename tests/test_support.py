"""Bootstrap support of taxonomy clusters, co-clustering and transfer-ranking confidence
(fastrsa.support), and their wiring into taxonomy / rank_sources (n_boot, seed)."""

import importlib
import json
import types

import numpy as np
import pytest
from scipy.cluster import hierarchy
from scipy.spatial import distance
from scipy.spatial.distance import pdist

from fastrsa.reference import compare_ref
from fastrsa.support import (
    RankingConfidence,
    cluster_support,
    co_clustering,
    ranking_confidence,
)
from fastrsa.taxonomy import load_taxonomy, rank_sources, taxonomy


def planted(rng, groups=(3, 3, 2), n=24, d=10, noise=0.6):
    """{label: condensed RDM}: models of a group share a latent, so their RDMs agree."""
    out = {}
    for g, size in enumerate(groups):
        latent = rng.standard_normal((n, d))
        for i in range(size):
            out[f"g{g}m{i}"] = pdist(latent + noise * rng.standard_normal((n, d)), "correlation")
    return out


def random_sims(rng, k, b):
    """(k, b, b) similarity matrices: Pearson correlations of random RDMs."""
    return np.stack([compare_ref(rng.standard_normal((b, 15))) for _ in range(k)])


def plain_tree_clusters(sim, method):
    """The leaf sets of a dendrogram's internal nodes, by scipy's own tree walk."""
    dist = distance.squareform(np.clip(1.0 - sim, 0.0, None), checks=False)
    root = hierarchy.to_tree(hierarchy.linkage(dist, method=method))
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        if not node.is_leaf():
            out.append(frozenset(node.pre_order()))
            stack += [node.get_left(), node.get_right()]
    return out


def five_leaves():
    """A, B close; C, D close; AB-CD joined; E joined last."""
    sim = np.full((5, 5), 0.1)
    sim[0, 1] = sim[1, 0] = 0.9
    sim[2, 3] = sim[3, 2] = 0.8
    for i in (0, 1):
        for j in (2, 3):
            sim[i, j] = sim[j, i] = 0.5
    np.fill_diagonal(sim, 1.0)
    return sim


# ---- cluster_support -------------------------------------------------------------------------


@pytest.mark.parametrize("linkage", ["average", "single", "complete"])
def test_identical_samples_support_everything(rng, linkage):
    sim = random_sims(rng, 1, 7)[0]
    clusters, support = cluster_support(sim, np.repeat(sim[None], 5, axis=0), linkage)
    assert len(clusters) == 6 and support.shape == (6,) and support.dtype == np.float64
    np.testing.assert_array_equal(support, 1.0)
    assert clusters[-1] == frozenset(range(7))


def test_half_the_samples_swap_two_leaves():
    sim = five_leaves()
    swap = [0, 2, 1, 3, 4]  # B and C trade places
    swapped = sim[swap][:, swap]
    samples = np.stack([sim, swapped] * 3)
    clusters, support = cluster_support(sim, samples)
    got = dict(zip(clusters, support.tolist(), strict=True))
    assert got == {
        frozenset({0, 1}): 0.5,
        frozenset({2, 3}): 0.5,
        frozenset({0, 1, 2, 3}): 1.0,
        frozenset(range(5)): 1.0,
    }
    # linkage order: the observed tree's rows, node 5 + i
    tree = hierarchy.linkage(distance.squareform(1.0 - sim, checks=False), "average")
    assert clusters[0] == frozenset(int(v) for v in tree[0, :2])


@pytest.mark.parametrize("linkage", ["average", "complete", "weighted", "ward"])
def test_support_matches_plain_scipy_recomputation(rng, linkage):
    observed = random_sims(rng, 1, 8)[0]
    base = np.stack([observed + 0.15 * (s := rng.standard_normal((8, 8))) + 0.15 * s.T])
    samples = np.concatenate([random_sims(rng, 20, 8), base])
    for s in samples:
        np.fill_diagonal(s, 1.0)
    clusters, support = cluster_support(observed, samples, linkage)
    sample_sets = [set(plain_tree_clusters(s, linkage)) for s in samples]
    assert set(clusters) == set(plain_tree_clusters(observed, linkage))
    for c, value in zip(clusters, support, strict=True):
        assert value == sum(c in found for found in sample_sets) / len(samples)


def test_support_tree_is_the_taxonomy_tree(rng):
    rdms = planted(rng)
    result = taxonomy(rdms)
    clusters, _ = cluster_support(result.similarity, result.similarity[None])
    k = len(rdms)
    sets = [{i} for i in range(k)]
    for a, b in result.linkage[:, :2].astype(int):
        sets.append(sets[a] | sets[b])
    assert [set(c) for c in clusters] == sets[k:]


def test_cluster_support_refuses_bad_input(rng):
    sim = random_sims(rng, 3, 5)
    with pytest.raises(ValueError, match=r"samples holds NaN or Inf \(first at samples\[1, 0, 2\]"):
        bad = sim.copy()
        bad[1, 0, 2] = np.nan
        cluster_support(sim[0], bad)
    with pytest.raises(ValueError, match="compare the same models"):
        cluster_support(sim[0, :4, :4], sim)
    with pytest.raises(ValueError, match=r"\(K, B, B\)"):
        cluster_support(sim[0], sim[0])
    with pytest.raises(ValueError, match="linkage must be one of"):
        cluster_support(sim[0], sim, "centroid")
    with pytest.raises(ValueError, match="no resamples"):
        cluster_support(sim[0], sim[:0])


# ---- co_clustering ---------------------------------------------------------------------------


def test_co_clustering_against_a_plain_loop(rng):
    samples = random_sims(rng, 15, 6)
    for n_clusters in (1, 2, 3, 6):
        got = co_clustering(samples, n_clusters)
        want = np.zeros((6, 6))
        for s in samples:
            dist = distance.squareform(np.clip(1 - s, 0, None), checks=False)
            ids = hierarchy.fcluster(hierarchy.linkage(dist, "average"), n_clusters, "maxclust")
            for i in range(6):
                for j in range(6):
                    want[i, j] += ids[i] == ids[j]
        np.testing.assert_array_equal(got, want / 15)
        np.testing.assert_array_equal(np.diagonal(got), 1.0)
        np.testing.assert_array_equal(got, got.T)


def test_co_clustering_of_swapped_leaves():
    sim = five_leaves()
    swap = [0, 2, 1, 3, 4]
    got = co_clustering(np.stack([sim, sim[swap][:, swap]]), 3)
    assert got[0, 1] == 0.5 and got[0, 2] == 0.5 and got[2, 3] == 0.5 and got[1, 3] == 0.5
    assert got[0, 4] == 0.0 and got[0, 3] == 0.0


@pytest.mark.parametrize("bad", [0, 7, 2.0, True, None])
def test_co_clustering_refuses_bad_n_clusters(rng, bad):
    with pytest.raises(ValueError, match="n_clusters must be an int from 1 to 6"):
        co_clustering(random_sims(rng, 2, 6), bad)


# ---- ranking_confidence ----------------------------------------------------------------------


def test_ranking_confidence_against_a_plain_loop(rng):
    k_samples, s = 40, 6
    scores = rng.integers(0, 4, (k_samples, s)).astype(float) / 4  # many ties
    labels = [f"s{i}" for i in range(s)]
    got = ranking_confidence(scores, labels, k=(1, 3, 5, 9), level=0.9)
    assert isinstance(got, RankingConfidence) and got.labels == labels and got.n_boot == 40
    top = {kk: np.zeros(s) for kk in (1, 3, 5, 9)}
    for row in scores:
        # descending score, ties: the earlier label first
        order = sorted(range(s), key=lambda i: (-row[i], i))
        for kk in top:
            for i in order[:kk]:
                top[kk][i] += 1
    for kk in top:
        np.testing.assert_array_equal(got.top_k[kk], top[kk] / k_samples)
    np.testing.assert_array_equal(got.top1, top[1] / k_samples)
    np.testing.assert_array_equal(got.top_k[9], 1.0)
    np.testing.assert_allclose(got.top1.sum(), 1.0)
    for i in range(s):
        np.testing.assert_allclose(got.interval[i], np.percentile(scores[:, i], [5, 95]))
    rows = got.per_source()
    assert rows[0]["label"] == "s0" and set(rows[0]) == {
        "label",
        "p_top1",
        "p_top3",
        "p_top5",
        "p_top9",
        "ci_low",
        "ci_high",
    }
    json.dumps(got.to_json())


def test_ranking_confidence_ties_go_to_the_earlier_label():
    got = ranking_confidence(np.ones((3, 3)), ["a", "b", "c"], k=2)
    assert got.top1.tolist() == [1.0, 0.0, 0.0]
    assert got.top_k[2].tolist() == [1.0, 1.0, 0.0]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"scores_samples": np.ones(3)}, ValueError, r"\(K, S\)"),
        ({"scores_samples": np.array([[1.0, np.nan]])}, ValueError, r"scores_samples\[0, 1\]"),
        ({"labels": ["a"]}, ValueError, "1 names for 2 sources"),
        ({"k": 0}, ValueError, "k must be ints >= 1"),
        ({"k": (1, 2.5)}, TypeError, "k must be ints"),
        ({"level": 1.0}, ValueError, r"level must lie in \(0, 1\)"),
        ({"level": "0.9"}, TypeError, "level must be a number"),
    ],
)
def test_ranking_confidence_refuses_bad_input(kwargs, error, match):
    args = {"scores_samples": np.ones((4, 2)), "labels": ["a", "b"], **kwargs}
    with pytest.raises(error, match=match):
        ranking_confidence(**args)


# ---- taxonomy / rank_sources with n_boot -----------------------------------------------------


def fake_bootstrap(calls):
    """A stand-in fastrsa.stats.bootstrap: per resample, the similarity of the RDMs restricted
    to the distinct images drawn (seeded), recording each call."""

    def bootstrap(rdms, method="spearman", n_boot=1000, seed=None, backend="auto", **_):
        calls.append({"rdms": np.array(rdms), "method": method, "n_boot": n_boot, "seed": seed})
        rows = np.asarray(rdms)
        n = distance.squareform(rows[0]).shape[0]
        square = np.stack([distance.squareform(r) for r in rows])
        gen = np.random.default_rng(seed)
        samples = []
        for _ in range(n_boot):
            keep = np.unique(gen.integers(0, n, n))
            sub = square[:, keep][:, :, keep]
            samples.append(
                compare_ref(np.stack([distance.squareform(s) for s in sub]), method=method)
            )
        return types.SimpleNamespace(samples=np.stack(samples))

    return bootstrap


@pytest.fixture
def fake_stats(monkeypatch):
    """The stand-in bootstrap patched where taxonomy and rank_sources call it: the names their
    modules import (patching fastrsa.stats itself would reach neither)."""
    calls: list[dict] = []
    bootstrap = fake_bootstrap(calls)

    def bootstrap_first_row(rdms, method, n_boot, seed, backend="auto"):
        return bootstrap(rdms, method, n_boot, seed, backend).samples[:, 0, 1:]

    def bootstrap_batches(rdms, method="spearman", n_boot=1000, seed=None, backend="auto", **_):
        yield 0, bootstrap(rdms, method, n_boot, seed, backend).samples  # one block

    monkeypatch.setattr(
        importlib.import_module("fastrsa.taxonomy"), "bootstrap_batches", bootstrap_batches
    )
    ranking = importlib.import_module("fastrsa.transfer.ranking")
    monkeypatch.setattr(ranking, "bootstrap_first_row", bootstrap_first_row)
    return calls


def test_taxonomy_without_n_boot_is_unchanged(rng):
    rdms = planted(rng)
    plain, zero = taxonomy(rdms, n_clusters=3), taxonomy(rdms, n_clusters=3, n_boot=0, seed=4)
    assert json.dumps(plain.to_json()) == json.dumps(zero.to_json())
    assert "bootstrap" not in plain.to_json()
    assert plain.support is None and plain.co_clustering is None and plain.n_boot == 0


def test_taxonomy_support_with_a_bootstrap(rng, tmp_path, fake_stats):
    rdms = planted(rng)
    result = taxonomy(rdms, n_clusters=3, n_boot=30, seed=7)
    assert fake_stats[0]["n_boot"] == 30 and fake_stats[0]["seed"] == 7
    assert fake_stats[0]["rdms"].shape == (8, len(next(iter(rdms.values()))))
    k = len(rdms)
    assert result.support.shape == (k - 1,) and result.support[-1] == 1.0
    assert ((result.support >= 0) & (result.support <= 1)).all()
    assert result.support_clusters[-1] == sorted(result.labels)
    assert result.co_clustering.shape == (k, k)
    np.testing.assert_array_equal(np.diagonal(result.co_clustering), 1.0)
    # the planted groups are clear: their clusters are well supported
    assert ["g0m0", "g0m1", "g0m2"] in [sorted(c) for c in result.support_clusters]
    samples = fake_bootstrap([])(fake_stats[0]["rdms"], "spearman", 30, 7).samples
    _, want = cluster_support(result.similarity, samples)
    np.testing.assert_array_equal(result.support, want)
    np.testing.assert_array_equal(result.co_clustering, co_clustering(samples, 3))
    again = taxonomy(rdms, n_clusters=3, n_boot=30, seed=7)
    np.testing.assert_array_equal(again.support, result.support)
    body = result.to_json()["bootstrap"]
    assert body["n_boot"] == 30 and body["seed"] == 7 and len(body["support"]) == k - 1
    result.save(tmp_path / "out")  # the plot writes support values on the dendrogram
    loaded = load_taxonomy(tmp_path / "out")
    np.testing.assert_array_equal(loaded.support, result.support)
    np.testing.assert_array_equal(loaded.co_clustering, result.co_clustering)
    assert loaded.support_clusters == result.support_clusters and loaded.seed == 7


def test_taxonomy_draws_and_records_a_seed(rng, fake_stats):
    result = taxonomy(planted(rng), n_boot=3)
    assert isinstance(result.seed, int) and fake_stats[0]["seed"] == result.seed
    assert result.co_clustering is None  # no flat clusters asked for
    assert result.to_json()["bootstrap"]["co_clustering"] is None


def test_rank_sources_confidence_with_a_bootstrap(rng, fake_stats):
    rdms = planted(rng, groups=(4, 3))
    target = rdms.pop("g0m0")
    plain = rank_sources(target, rdms)
    assert plain.confidence is None
    ranking = rank_sources(target, rdms, n_boot=25, seed=3)
    assert ranking.labels == plain.labels
    np.testing.assert_array_equal(ranking.scores, plain.scores)
    stacked = fake_stats[0]["rdms"]  # target and sources resampled together
    np.testing.assert_array_equal(stacked[0], target)
    assert stacked.shape[0] == len(rdms) + 1
    samples = fake_bootstrap([])(stacked, "spearman", 25, 3).samples[:, 0, 1:]
    order = [list(rdms).index(lab) for lab in ranking.labels]
    want = ranking_confidence(samples[:, order], ranking.labels)
    conf = ranking.confidence
    assert conf.labels == ranking.labels and ranking.seed == 3 and ranking.n_boot == 25
    np.testing.assert_array_equal(conf.top1, want.top1)
    np.testing.assert_array_equal(conf.interval, want.interval)
    assert conf.top_k[3][:3].sum() > 2.5  # the other g0 models lead
    assert list(ranking) == list(plain)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_boot": -1}, ValueError, "n_boot must be >= 0"),
        ({"n_boot": 2.0}, TypeError, "n_boot must be an int"),
        ({"n_boot": True}, TypeError, "n_boot must be an int"),
        ({"n_boot": "10"}, TypeError, "n_boot must be an int"),
        ({"n_boot": 5, "seed": -1}, ValueError, "seed must be an int >= 0 or None"),
        ({"n_boot": 5, "seed": 1.5}, TypeError, "seed must be an int"),
        ({"n_boot": 5, "seed": "1"}, TypeError, "seed must be an int"),
        ({"n_boot": 5, "seed": False}, TypeError, "seed must be an int"),
    ],
)
def test_bad_n_boot_and_seed_are_refused(rng, kwargs, error, match):
    rdms = planted(rng, groups=(2, 2))
    with pytest.raises(error, match=match):
        taxonomy(rdms, **kwargs)
    target = rdms.pop("g0m0")
    with pytest.raises(error, match=match):
        rank_sources(target, rdms, **kwargs)


# ---- with the real fastrsa.stats.bootstrap ---------------------------------------------------


def real_bootstrap():
    try:
        stats = importlib.import_module("fastrsa.stats")
    except ImportError:
        pytest.skip("fastrsa.stats is not there yet")
    if not hasattr(stats, "bootstrap"):
        pytest.skip("fastrsa.stats.bootstrap is not there yet")
    return stats.bootstrap


def test_taxonomy_with_the_real_bootstrap_is_deterministic(rng):
    bootstrap = real_bootstrap()
    rdms = planted(rng)
    a = taxonomy(rdms, n_clusters=3, n_boot=40, seed=11)
    b = taxonomy(rdms, n_clusters=3, n_boot=40, seed=11)
    np.testing.assert_array_equal(a.support, b.support)
    np.testing.assert_array_equal(a.co_clustering, b.co_clustering)
    rows = np.stack(list(rdms.values()))
    samples = bootstrap(rows, method="spearman", n_boot=40, seed=11).samples
    _, want = cluster_support(a.similarity, samples)
    np.testing.assert_array_equal(a.support, want)
    assert a.support[-1] == 1.0


def test_rank_sources_with_the_real_bootstrap_is_deterministic(rng):
    real_bootstrap()
    rdms = planted(rng, groups=(3, 3))
    target = rdms.pop("g0m0")
    a = rank_sources(target, rdms, n_boot=40, seed=5)
    b = rank_sources(target, rdms, n_boot=40, seed=5)
    np.testing.assert_array_equal(a.confidence.top1, b.confidence.top1)
    np.testing.assert_array_equal(a.confidence.interval, b.confidence.interval)
    assert a.confidence.top1.sum() == pytest.approx(1.0)
    assert a.confidence.top1[0] > 0.5
