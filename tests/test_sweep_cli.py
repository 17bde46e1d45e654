"""`fastrsa sweep`, `fastrsa sweep --status` and `--store` on taxonomy, compare, rank and evaluate:
the same numbers as the same commands on the equivalent RDM files, and one-line errors (exit 2)
that name the option."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from fastrsa import io
from fastrsa.cli import main
from fastrsa.reference import compare_ref
from fastrsa.sweeps import open_store

pytest.importorskip("zarr")

N, K = 16, 5  # images, sources


def _inputs(rng, folder):
    """K feature files (N, d) with shared structure (different d), the equivalent RDM file
    rdms.npz (correlation distance, condensed, one per label) and a target RDM."""
    latent = rng.standard_normal((N, 6))
    paths, rdms = [], {}
    for i in range(K):
        feats = np.hstack([latent, rng.standard_normal((N, i + 1))])
        feats += (0.3 + 0.2 * i) * rng.standard_normal(feats.shape)
        paths.append(str(folder / f"m{i}.npy"))
        np.save(paths[-1], feats)
        rdms[f"m{i}"] = pdist(feats, "correlation")
    np.savez(folder / "rdms.npz", **rdms)
    np.save(folder / "target.npy", pdist(latent + rng.standard_normal(latent.shape), "correlation"))
    return paths, rdms


def _sweep(store, *args) -> int:
    return main(["sweep", "--store", str(store), *map(str, args), "--no-progress"])


@pytest.fixture
def swept(rng, tmp_path):
    """(folder, feature paths, {label: RDM}, store) after one sweep of the feature files."""
    paths, rdms = _inputs(rng, tmp_path)
    store = tmp_path / "store"
    assert _sweep(store, "--features", *paths) == 0
    return tmp_path, paths, rdms, store


def _ranking(out: str) -> list[tuple[str, float]]:
    rows = [line.split() for line in out.strip().splitlines()]
    return [(label, float(score)) for _, label, score in rows]


def test_sweep_features_status_and_resume(rng, tmp_path, capsys):
    paths, rdms = _inputs(rng, tmp_path)
    store = tmp_path / "store"
    assert _sweep(store, "--features", *paths, "--memory", "64MB") == 0
    out = capsys.readouterr().out
    assert f"{K} sources" in out and "RDMs: 5 computed, 0 reused; tiles: 1 computed" in out
    st = open_store(store)
    assert st.labels == [f"m{i}" for i in range(K)] and st.layers == ["default"]
    ref = compare_ref(np.stack([rdms[label] for label in st.labels]))
    np.testing.assert_allclose(st.similarity(), ref, atol=1e-10)

    assert _sweep(store, "--features", *paths) == 0  # the same command again: all reused
    assert "RDMs: 0 computed, 5 reused; tiles: 0 computed, 1 reused" in capsys.readouterr().out

    assert main(["sweep", "--status", str(store)]) == 0
    status = capsys.readouterr().out
    assert f"n={N} images" in status and "metric correlation" in status
    assert f"{K} sources" in status
    assert "default: RDMs 5/5; spearman tiles 1/1" in status


def test_sweep_rdm_files_equals_the_features_sweep(swept, capsys):
    folder, _, rdms, store = swept
    other = folder / "store-rdms"
    assert _sweep(other, "--rdms", folder / "rdms.npz", "--layer-name", "block4") == 0
    st = open_store(other)
    assert st.layers == ["block4"] and st.labels == sorted(rdms)
    np.testing.assert_allclose(st.similarity("block4"), open_store(store).similarity(), atol=1e-10)
    # another method on the same store: its tiles are added, the RDMs reused
    assert _sweep(other, "--rdms", folder / "rdms.npz", "--layer-name", "block4", "--method",
                  "pearson") == 0  # fmt: skip
    assert "RDMs: 0 computed, 5 reused; tiles: 1 computed, 0 reused" in capsys.readouterr().out
    ref = compare_ref(np.stack([rdms[label] for label in st.labels]), method="pearson")
    np.testing.assert_allclose(st.similarity("block4", "pearson"), ref, atol=1e-10)
    main(["sweep", "--status", str(other)])
    assert "spearman tiles 1/1; pearson tiles 1/1" in capsys.readouterr().out


def test_taxonomy_and_compare_from_the_store_equal_the_rdm_files(swept, capsys):
    folder, _, rdms, store = swept
    rdm_file = str(folder / "rdms.npz")
    for name, source in (("file", ["--rdms", rdm_file]), ("store", ["--store", str(store)])):
        argv = ["taxonomy", *source, "--clusters", "2", "--out", str(folder / f"tx-{name}")]
        assert main(argv) == 0
    a = json.loads((folder / "tx-file" / "taxonomy.json").read_text())
    b = json.loads((folder / "tx-store" / "taxonomy.json").read_text())
    assert (a["labels"], a["clusters"], a["order"]) == (b["labels"], b["clusters"], b["order"])
    assert sorted(p.name for p in (folder / "tx-store").iterdir()) == sorted(
        p.name for p in (folder / "tx-file").iterdir()
    )
    sim_a = io.load_arrays(folder / "tx-file" / "taxonomy.npz")["similarity"]
    sim_b = io.load_arrays(folder / "tx-store" / "taxonomy.npz")["similarity"]
    np.testing.assert_allclose(sim_b, sim_a, atol=1e-10)

    cases = {
        "all-pairs": (["compare", rdm_file], ["compare", "--store", str(store)]),
        "with a file": (
            ["compare", rdm_file, "--with", rdm_file, "--method", "kendall"],
            ["compare", "--store", str(store), "--with", rdm_file, "--method", "kendall"],
        ),
        "with a store": (
            ["compare", rdm_file, "--with", rdm_file, "--method", "cosine"],
            ["compare", "--store", str(store), "--with-store", str(store), "--method", "cosine"],
        ),
        "a file with a store": (
            ["compare", rdm_file, "--with", rdm_file],
            ["compare", rdm_file, "--with-store", str(store)],
        ),
    }
    for case, (by_file, by_store) in cases.items():
        results = []
        for i, argv in enumerate((by_file, by_store)):
            out = folder / f"sim-{i}.json"
            assert main([*argv, "--out", str(out)]) == 0, case
            results.append(json.loads(out.read_text()))
        assert results[0]["labels_a"] == results[1]["labels_a"], case
        assert results[0]["labels_b"] == results[1]["labels_b"], case
        np.testing.assert_allclose(
            results[1]["similarity"], results[0]["similarity"], atol=1e-10, err_msg=case
        )
    capsys.readouterr()


def test_rank_and_evaluate_from_the_store_equal_the_rdm_files(swept, rng, capsys):
    folder, _, rdms, store = swept
    rdm_file, target = str(folder / "rdms.npz"), str(folder / "target.npy")
    assert main(["rank", "--target", target, "--sources", rdm_file]) == 0
    by_file = _ranking(capsys.readouterr().out)
    assert main(["rank", "--target", target, "--sources-store", str(store)]) == 0
    by_store = _ranking(capsys.readouterr().out)
    assert [label for label, _ in by_store] == [label for label, _ in by_file]
    np.testing.assert_allclose([s for _, s in by_store], [s for _, s in by_file], atol=1e-4)

    # --target-label: that source of the store is the target, and is left out of the ranking
    np.save(folder / "m2-rdm.npy", rdms["m2"])
    others = {k: v for k, v in rdms.items() if k != "m2"}
    np.savez(folder / "others.npz", **others)
    assert main(["rank", "--target", str(folder / "m2-rdm.npy"), "--sources",
                 str(folder / "others.npz")]) == 0  # fmt: skip
    by_file = _ranking(capsys.readouterr().out)
    assert main(["rank", "--target-label", "m2", "--sources-store", str(store)]) == 0
    by_store = _ranking(capsys.readouterr().out)
    assert [label for label, _ in by_store] == [label for label, _ in by_file]
    np.testing.assert_allclose([s for _, s in by_store], [s for _, s in by_file], atol=1e-4)

    labels = sorted(rdms)
    affinity = {f"{s}__{t}": float(rng.random()) for s in labels for t in labels if s != t}
    (folder / "aff.json").write_text(json.dumps({"affinity": affinity}))
    lines = []
    for name, source in (("file", ["--rdms", rdm_file]), ("store", ["--store", str(store)])):
        argv = ["evaluate", *source, "--affinities", str(folder / "aff.json")]
        assert main([*argv, "--json", str(folder / f"ev-{name}.json")]) == 0
        lines.append(capsys.readouterr().out.splitlines()[0])
    assert lines[0] == lines[1]
    a = json.loads((folder / "ev-file.json").read_text())
    b = json.loads((folder / "ev-store.json").read_text())
    assert [r["rsa_best"] for r in a["per_target"]] == [r["rsa_best"] for r in b["per_target"]]
    assert a["mean_spearman"] == pytest.approx(b["mean_spearman"], abs=1e-10)


def test_sweep_of_onnx_models_equals_taxonomy_of_the_models(rng, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    image = pytest.importorskip("PIL.Image")
    from fastrsa.demo import shipped_models

    images = tmp_path / "images"
    images.mkdir()
    for i in range(10):
        image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(images / f"{i}.png")
    models = [str(path) for name, path in shipped_models().items() if name in ("depth", "class")]
    layers = ["--layers", "block4", "compressed"]
    assert _sweep(tmp_path / "store", "--models", *models, "--images", images, *layers) == 0
    assert "RDMs: 4 computed, 0 reused; tiles: 2 computed" in capsys.readouterr().out
    st = open_store(tmp_path / "store")
    assert st.layers == ["block4", "compressed"] and sorted(st.labels) == ["class", "depth"]
    sources = {
        "store": ["--store", str(tmp_path / "store")],
        "models": ["--models", *models, "--images", str(images)],
    }
    for name, source in sources.items():
        argv = ["taxonomy", *source, "--layer", "block4", "--out", str(tmp_path / f"tx-{name}")]
        assert main(argv) == 0
    by_store = io.load_arrays(tmp_path / "tx-store" / "taxonomy.npz")
    by_models = io.load_arrays(tmp_path / "tx-models" / "taxonomy.npz")
    assert list(by_store["labels"]) == list(by_models["labels"])
    np.testing.assert_allclose(by_store["similarity"], by_models["similarity"], atol=1e-6)


def _two_layers(folder, paths) -> str:
    store = folder / "store2"
    for layer in ("early", "late"):
        assert _sweep(store, "--features", *paths, "--layer-name", layer) == 0
    return str(store)


def test_layers_of_a_store_are_chosen_with_layer(swept, capsys):
    folder, paths, _, _ = swept
    store = _two_layers(folder, paths)
    assert main(["compare", "--store", store, "--layer", "late"]) == 0
    main(["sweep", "--status", store])
    out = capsys.readouterr().out
    assert "early: RDMs 5/5; spearman tiles 1/1" in out and "late: RDMs 5/5" in out


@pytest.fixture(scope="module")
def bad_input_folder(tmp_path_factory):
    """One folder of inputs and stores (one layer: store, two: store2) for every bad-input case:
    the errors do not depend on the numbers, so a fixed generator serves (built once, fast)."""
    folder = tmp_path_factory.mktemp("bad-input")
    paths, _ = _inputs(np.random.default_rng(0), folder)
    assert _sweep(folder / "store", "--features", *paths) == 0
    _two_layers(folder, paths)
    return folder


@pytest.mark.parametrize(
    "argv,option",
    [
        (["sweep", "--store", "{d}/s", "--features", "{d}/m0.npy", "--rdms", "{d}/rdms.npz"],
         "--features and --rdms"),
        (["sweep", "--store", "{d}/s", "--models", "{d}/enc.onnx"], "--images"),
        (["sweep", "--features", "{d}/m0.npy"], "--store"),
        (["sweep", "--store", "{d}/m0.npy", "--features", "{d}/m0.npy"], "--store: "),
        (["sweep", "--verify", "{d}/nowhere"], "--verify"),
        (["sweep", "--status", "{d}/nowhere"], "--status"),
        (["sweep", "--store", "{d}/s", "--rdms", "{d}/nothing.npz"], "--rdms"),
        (["sweep", "--store", "{d}/s", "--features", "{d}/m0.npy", "--address", "x:1"],
         "--address"),
        (["sweep", "--store", "{d}/s", "--features", "{d}/m0.npy", "--memory", "lots"],
         "--memory"),
        (["taxonomy", "--store", "{d}/store2", "--out", "{d}/tx"], "--layer"),
        (["taxonomy", "--store", "{d}/store", "--rdms", "{d}/rdms.npz", "--out", "{d}/tx"],
         "--rdms and --store"),
        (["compare", "--store", "{d}/store2", "--layer", "middle"], "--layer"),
        (["compare", "--store", "{d}/store", "--method", "kendall"], "fastrsa sweep"),
        (["compare", "{d}/rdms.npz", "--layer", "late"], "--layer"),
        (["rank", "--target-label", "m0", "--sources", "{d}/rdms.npz"], "--target-label"),
        (["rank", "--target-label", "m9", "--sources-store", "{d}/store"], "--target-label"),
        (["rank", "--target", "{d}/target.npy", "--sources", "{d}/rdms.npz", "--sources-store",
          "{d}/store"], "--sources-store"),
        (["evaluate", "--store", "{d}/store2", "--layer", "middle", "--affinities", "{d}/a.json"],
         "--layer"),
        (["evaluate", "--store", "{d}/missing", "--affinities", "{d}/a.json"], "--store"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_naming_the_option(bad_input_folder, capsys, argv, option):
    folder = bad_input_folder
    assert main([a.format(d=folder) for a in argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"fastrsa {argv[0]}: error: ") and option in err, err


def test_the_installed_command_reports_a_missing_store(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fastrsa", "sweep", "--status", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"fastrsa sweep: error: --status: store {tmp_path / 'none'} does not exist"
    ]


def test_sweep_rdms_honours_condensed(tmp_path, rng):
    """--condensed reads a (3, 3) array as 3 condensed RDMs of 3 images, as other commands do."""
    rows = rng.random((3, 3))
    np.save(tmp_path / "stack.npy", rows)
    assert _sweep(tmp_path / "s", "--rdms", tmp_path / "stack.npy", "--condensed") == 0
    store = open_store(tmp_path / "s")
    assert store.n == 3 and len(store.labels) == 3
    np.testing.assert_allclose(np.asarray(store.rdms()), rows)


def test_status_and_verify_report_damage_instead_of_crashing(swept, capsys):
    """An index with a field removed by hand (a traceback from --status before): --status names
    it (the copy is read meanwhile); --verify checks every checksum and exits 1 while anything
    is damaged; a run of the same sweep rewrites it."""
    _, paths, _, store = swept
    index = json.loads((store / "fastrsa.json").read_text())
    del index["metric"]
    (store / "fastrsa.json").write_text(json.dumps(index))
    assert main(["sweep", "--status", str(store)]) == 0
    out = capsys.readouterr().out
    assert "default: RDMs 5/5" in out and "damaged: fastrsa.json: its field 'metric'" in out
    assert main(["sweep", "--verify", str(store)]) == 1
    assert "damaged: fastrsa.json" in capsys.readouterr().out
    assert main(["sweep", "--status", str(store), "--verify", str(store)]) == 2
    assert "--verify: give the store once" in capsys.readouterr().err
    assert _sweep(store, "--features", *paths) == 0
    assert "1 damaged file(s) in the store, redone; RDMs: 0 computed" in capsys.readouterr().out
    assert main(["sweep", "--status", str(store), "--verify"]) == 0
    assert "verified (checksums): no damage; nothing to compute" in capsys.readouterr().out
