"""Taxonomy, transfer ranking and the standard evaluation; validated on the real Taskonomy RDMs in
../shared when present (skipped otherwise)."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

import fastrsa
from fastrsa.cli import main
from fastrsa.reference import compare_ref
from fastrsa.taxonomy import (
    evaluate_transfer,
    load_affinities,
    load_taxonomy,
    rank_sources,
    taxonomies,
    taxonomy,
    taxonomy_from_similarity,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "taskonomy"
ALIASES = {
    "vanishing_point": "vanishing_point_well_defined",
    "segmentsemantic": "segmentsemantic_rb",
}


def planted_rdms(rng, groups=(3, 3, 2), n=30, d=12):
    """{label: condensed RDM}: models of a group share a latent, so their RDMs agree."""
    out, truth = {}, {}
    for g, size in enumerate(groups):
        latent = rng.standard_normal((n, d))
        for i in range(size):
            feats = latent + 0.4 * rng.standard_normal((n, d))
            out[f"g{g}m{i}"] = pdist(feats, "correlation")
            truth[f"g{g}m{i}"] = g
    return out, truth


def test_taxonomy_recovers_planted_groups(rng, tmp_path):
    rdms, truth = planted_rdms(rng)
    result = taxonomy(rdms, n_clusters=3)
    np.testing.assert_allclose(
        result.similarity, compare_ref(np.stack(list(rdms.values()))), atol=1e-10
    )
    assert sorted(result.order) == list(range(8))
    pairs = [(a, b) for a in truth for b in truth if a < b]
    assert all(
        (truth[a] == truth[b]) == (result.clusters[a] == result.clusters[b]) for a, b in pairs
    )
    path = result.save(tmp_path / "out")
    for name in ("taxonomy.json", "taxonomy.npz", "taxonomy.png", "taxonomy.svg"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    saved = json.loads(path.read_text())
    assert {"labels", "similarity", "order", "clusters", "linkage", "metadata"} <= set(saved)
    assert saved["metadata"]["n_images"] == 30
    assert saved["metadata"]["backend"] in fastrsa.available_backends()
    again = load_taxonomy(tmp_path / "out")
    np.testing.assert_array_equal(again.similarity, result.similarity)
    assert again.clusters == result.clusters and again.order == result.order


def test_square_and_condensed_inputs_agree(rng):
    rdms, _ = planted_rdms(rng)
    square = {k: squareform(v) for k, v in rdms.items()}
    a, b = taxonomy(rdms), taxonomy(square)
    np.testing.assert_allclose(a.similarity, b.similarity, atol=1e-12)
    arr = taxonomy(np.stack(list(rdms.values())), labels=list(rdms))
    np.testing.assert_allclose(arr.similarity, a.similarity, atol=1e-12)


def test_one_taxonomy_per_layer(rng):
    rdms, _ = planted_rdms(rng)
    shuffled = {k: rng.permutation(v) for k, v in rdms.items()}
    out = taxonomies({"block4": rdms, "compressed": shuffled}, n_clusters=2)
    assert list(out) == ["block4", "compressed"]
    assert not np.allclose(out["block4"].similarity, out["compressed"].similarity)
    renamed = {f"other{i}": v for i, v in enumerate(rdms.values())}
    with pytest.raises(ValueError, match="layer 'b' has labels"):
        taxonomies({"a": rdms, "b": renamed})


def test_rank_sources_puts_the_same_model_first(rng):
    rdms, _ = planted_rdms(rng)
    ranking = rank_sources(rdms["g1m0"], rdms)
    assert ranking.labels[0] == "g1m0" and ranking.scores[0] == pytest.approx(1.0)
    assert set(ranking.labels[1:3]) == {"g1m1", "g1m2"}
    assert np.all(np.diff(ranking.scores) <= 0)


def test_evaluate_transfer_on_known_cases():
    labels = ["a", "b", "c", "d", "e", "f"]
    rng = np.random.default_rng(0)
    # a symmetric similarity, and affinities equal to it: every target is a hit
    sim = np.eye(6)
    upper = np.triu_indices(6, 1)
    sim[upper] = rng.random(len(upper[0]))
    sim = np.maximum(sim, sim.T)
    sym_aff = {
        (s, t): sim[labels.index(s), labels.index(t)] for s in labels for t in labels if s != t
    }
    ev = evaluate_transfer(sim, labels, sym_aff)
    assert (ev.n_targets, ev.top1, ev.top3, ev.top5) == (6, 6, 6, 6)
    assert ev.mean_pearson == pytest.approx(1.0) and ev.mean_spearman == pytest.approx(1.0)
    reversed_aff = {k: -v for k, v in sym_aff.items()}
    ev = evaluate_transfer(sim, labels, reversed_aff)
    assert ev.top1 == 0 and ev.top3 == 0 and ev.mean_spearman == pytest.approx(-1.0)
    assert {"target", "rsa_best", "affinity_best", "pearson", "spearman"} <= set(ev.per_target[0])


def test_affinities_from_csv(tmp_path):
    path = tmp_path / "aff.csv"
    path.write_text("source,target,value\na,b,0.5\nb,a,0.25\n")
    assert load_affinities(path) == {("a", "b"): 0.5, ("b", "a"): 0.25}


@pytest.mark.parametrize(
    "case,match",
    [
        ("labels count", "labels has 2 names for 8 RDMs"),
        ("sizes", "different sizes"),
        ("asymmetric rdm", "not symmetric"),
        ("non-square rdm", "not square"),
        ("missing pair", "affinities miss 1 pairs"),
        ("non-square similarity", "square"),
        ("asymmetric similarity", "not symmetric"),
        ("unknown alias", "aliases name labels that are not in labels"),
        ("no overlap", "appear in the affinity table"),
        ("clusters", "n_clusters must be between 1 and 8"),
    ],
)
def test_refuses(rng, case, match):
    rdms, _ = planted_rdms(rng)
    labels = list(rdms)
    sim = taxonomy(rdms).similarity
    aff = {(s, t): 1.0 for s in labels for t in labels if s != t}
    with pytest.raises(ValueError, match=match):
        if case == "labels count":
            taxonomy(np.stack(list(rdms.values())), labels=labels[:2])
        elif case == "sizes":
            rdms["g0m0"] = rdms["g0m0"][:-1]
            taxonomy(rdms)
        elif case == "asymmetric rdm":
            bad = squareform(rdms["g0m0"])
            bad[0, 1] += 0.5
            taxonomy({**rdms, "g0m0": bad})
        elif case == "non-square rdm":
            taxonomy({**rdms, "g0m0": np.ones((3, 4))})
        elif case == "missing pair":
            del aff[("g0m1", "g0m0")]
            evaluate_transfer(sim, labels, aff)
        elif case == "non-square similarity":
            evaluate_transfer(sim[:, :-1], labels, aff)
        elif case == "asymmetric similarity":
            sim[0, 1] += 0.1
            evaluate_transfer(sim, labels, aff)
        elif case == "unknown alias":
            evaluate_transfer(sim, labels, aff, aliases={"nope": "x"})
        elif case == "no overlap":
            evaluate_transfer(sim, labels, {("x", "y"): 1.0})
        elif case == "clusters":
            taxonomy(rdms, n_clusters=9)


def test_taxonomy_from_similarity_matches(rng):
    rdms, _ = planted_rdms(rng)
    a = taxonomy(rdms, n_clusters=3)
    b = taxonomy_from_similarity(a.similarity, a.labels, n_clusters=3)
    assert a.clusters == b.clusters and a.order == b.order


def test_cli_taxonomy_rank_evaluate(rng, tmp_path, capsys):
    rdms, _ = planted_rdms(rng)
    np.savez(tmp_path / "rdms.npz", **rdms)
    np.save(tmp_path / "target.npy", rdms["g2m1"])
    assert (
        main(
            [
                "taxonomy",
                "--rdms",
                str(tmp_path / "rdms.npz"),
                "--clusters",
                "3",
                "--out",
                str(tmp_path / "tx"),
            ]
        )
        == 0
    )
    saved = json.loads((tmp_path / "tx" / "taxonomy.json").read_text())
    assert set(saved["clusters"]) == set(rdms)
    assert (
        main(
            [
                "rank",
                "--target",
                str(tmp_path / "target.npy"),
                "--sources",
                str(tmp_path / "rdms.npz"),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines()[-8].split()[1] == "g2m1"
    assert (
        main(
            [
                "evaluate",
                "--rdms",
                str(tmp_path / "rdms.npz"),
                "--affinities",
                str(tmp_path / "missing.json"),
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "evaluate",
                "--rdms",
                str(tmp_path / "rdms.npz"),
                "--affinities",
                str(tmp_path / "rdms.npz"),
                "--alias",
                "bad",
            ]
        )
        == 2
    )
    assert "LABEL=AFFINITY_NAME" in capsys.readouterr().err


def test_cli_taxonomy_from_features(rng, tmp_path):
    latent = rng.standard_normal((25, 6))
    feats = {f"m{i}": latent + 0.5 * rng.standard_normal((25, 6)) for i in range(4)}
    np.savez(tmp_path / "feats.npz", **feats)
    assert (
        main(["taxonomy", "--features", str(tmp_path / "feats.npz"), "--out", str(tmp_path)]) == 0
    )
    saved = json.loads((tmp_path / "taxonomy.json").read_text())
    rdms = np.stack([pdist(feats[k], "correlation") for k in saved["labels"]])
    np.testing.assert_allclose(saved["similarity"], compare_ref(rdms), atol=1e-10)
    assert main(["taxonomy", "--out", str(tmp_path)]) == 2  # no input given


# ---- the real Taskonomy data in ../shared ------------------------------------------------------

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason="../shared/data/taskonomy not present"
)

# Figures obtained with fastrsa on the shared 200-image RDMs (see README: "Validation on real data")
EXPECTED = {
    "train": dict(n_targets=17, top1=10, top3=14, top5=16, mean_pearson=0.761, mean_spearman=0.831),
    "test": dict(n_targets=17, top1=11, top3=14, top5=17, mean_pearson=0.770, mean_spearman=0.831),
}
CLUSTERS = [
    {"class_1000", "class_places"},
    {
        "curvature",
        "edge3d",
        "keypoint3d",
        "reshade",
        "rgb2depth",
        "rgb2mist",
        "rgb2sfnorm",
        "room_layout",
        "segment25d",
        "segmentsemantic",
    },
    {
        "autoencoder",
        "colorization",
        "denoise",
        "edge2d",
        "inpainting_whole",
        "keypoint2d",
        "segment2d",
    },
    {"vanishing_point"},
]


@needs_shared
@pytest.mark.parametrize("split", ["train", "test"])
def test_real_taskonomy_evaluation(split):
    data = fastrsa.io.load_arrays(SHARED / f"rdms_{split}.npz")
    result = taxonomy(data, n_clusters=4)
    ev = evaluate_transfer(result.similarity, result.labels, SHARED / "affinities.json", ALIASES)
    want = EXPECTED[split]
    assert (ev.n_targets, ev.top1, ev.top3, ev.top5) == tuple(
        want[k] for k in ("n_targets", "top1", "top3", "top5")
    )
    assert ev.mean_pearson == pytest.approx(want["mean_pearson"], abs=1e-3)
    assert ev.mean_spearman == pytest.approx(want["mean_spearman"], abs=1e-3)
    found = {}
    for label, cid in result.clusters.items():
        found.setdefault(cid, set()).add(label)
    assert sorted(map(sorted, found.values())) == sorted(map(sorted, CLUSTERS))


@needs_shared
def test_real_taskonomy_cli_evaluate(tmp_path):
    out = tmp_path / "eval.json"
    args = [
        "evaluate",
        "--rdms",
        str(SHARED / "rdms_train.npz"),
        "--affinities",
        str(SHARED / "affinities.json"),
        "--json",
        str(out),
    ]
    for label, name in ALIASES.items():
        args += ["--alias", f"{label}={name}"]
    assert main(args) == 0
    saved = json.loads(out.read_text())
    assert saved["n_targets"] == 17 and saved["top1"] == EXPECTED["train"]["top1"]
    assert {"top3", "top5", "mean_pearson", "mean_spearman", "per_target"} <= set(saved)


# ---- the API behind the commands: stores, feature files, the ranking's order and JSON ---------


def test_old_import_paths_of_the_transfer_names_still_work():
    import importlib

    old = importlib.import_module("fastrsa.taxonomy")  # fastrsa.taxonomy is also the function
    transfer = importlib.import_module("fastrsa.transfer")
    for name in ("rank_sources", "evaluate_transfer", "Ranking", "TransferEvaluation",
                 "load_affinities", "TASKONOMY_ALIASES", "TRANSFER_FIGURES"):  # fmt: skip
        assert getattr(old, name) is getattr(transfer, name), name
    assert fastrsa.rank_sources is transfer.rank_sources


def test_ranking_of_is_a_stable_descending_sort_shared_by_rank_sources(rng):
    from fastrsa.transfer import ranking_of

    ranking, order = ranking_of(["a", "b", "c", "d"], np.array([0.2, 0.5, 0.2, 0.9]))
    assert ranking.labels == ["d", "b", "a", "c"] and order.tolist() == [3, 1, 0, 2]
    rdms, _ = planted_rdms(rng)
    target, sources = rdms.pop("g0m0"), rdms
    got = rank_sources(target, sources)
    scores = fastrsa.compare(target[None], np.stack(list(sources.values())))[0]
    assert got.labels == ranking_of(list(sources), scores)[0].labels


def test_ranking_to_json():
    from fastrsa.transfer import Ranking

    out = Ranking(["a", "b"], np.array([0.9, 0.1], dtype=np.float32)).to_json("pearson")
    assert out == {"method": "pearson", "labels": ["a", "b"], "scores": out["scores"]}
    assert out["scores"] == pytest.approx([0.9, 0.1]) and "bootstrap" not in out
    assert all(type(v) is float for v in out["scores"])


@pytest.fixture
def store(tmp_path, rng):
    """A sweep store of the planted RDMs (one layer, "default"), and the RDMs."""
    from fastrsa.sweeps import RDMSource

    rdms, _ = planted_rdms(rng)
    np.savez(tmp_path / "rdms.npz", **rdms)
    made = fastrsa.sweep([RDMSource(tmp_path / "rdms.npz")], store=tmp_path / "store",
                         progress=False)  # fmt: skip
    return made, rdms


def test_taxonomy_from_store_is_the_taxonomy_of_its_similarity(store):
    from fastrsa.taxonomy import taxonomy_from_store

    made, rdms = store
    got = taxonomy_from_store(made, None, "spearman", "average", 3)
    want = taxonomy(rdms, n_clusters=3)
    assert got.labels == want.labels and got.clusters == want.clusters
    np.testing.assert_allclose(got.similarity, want.similarity, atol=1e-6)
    assert got.metadata["layer"] == "default" and got.metadata["store"] == str(made.path)
    with pytest.raises(ValueError, match="not computed"):
        taxonomy_from_store(made, method="pearson")


def test_rank_in_store_equals_rank_sources(store):
    from fastrsa.transfer import rank_in_store

    made, rdms = store
    by_label = rank_in_store(made, target_label="g1m0")
    others = {k: v for k, v in rdms.items() if k != "g1m0"}
    want = rank_sources(rdms["g1m0"], others)
    assert by_label.labels == want.labels
    np.testing.assert_allclose(by_label.scores, want.scores, atol=1e-6)
    by_rdm = rank_in_store(made, target_rdm=squareform(rdms["g1m0"]))  # square is fine too
    assert by_rdm.labels[0] == "g1m0" and by_rdm.labels[1:] == want.labels
    with pytest.raises(ValueError, match="target_label: .nope. is not in layer"):
        rank_in_store(made, target_label="nope")
    with pytest.raises(ValueError, match="exactly one"):
        rank_in_store(made)
    with pytest.raises(ValueError, match="covers 10 images"):
        rank_in_store(made, target_rdm=np.arange(1.0, 46.0))


def test_rdms_of_features_labels_batches(tmp_path, rng):
    from fastrsa.rdms import rdms_of_feature_file

    np.savez(tmp_path / "f.npz", one=rng.standard_normal((7, 3)),
             many=rng.standard_normal((2, 7, 4)))  # fmt: skip
    labels, rows = rdms_of_feature_file(tmp_path / "f.npz")
    assert sorted(labels) == ["many[0]", "many[1]", "one"] and rows.shape == (3, 21)
    np.savez(tmp_path / "g.npz", a=rng.standard_normal((7, 3)), b=rng.standard_normal((8, 3)))
    with pytest.raises(ValueError, match="--features: the arrays of .* different numbers"):
        rdms_of_feature_file(tmp_path / "g.npz", "--features")
