"""Measures beyond RSA at sweep scale: the store's tiles of every measure equal
fastrsa.similarity in memory, in one tile or many (and pieces within a tile), on feature files
and encoders; re-runs reuse, a store swept for RSA gains measures, kill -9 then resume, damage
found and recomputed, the layer x layer matrix, the commands' --measure, and the refusals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastrsa
from fastrsa.errors import UserError
from fastrsa.sweeps.measure_specs import measure_key, parse_measures
from fastrsa.sweeps.measure_states import read_states
from fastrsa.sweeps.sources import ModuleSource, RDMSource
from fastrsa.sweeps.store import open_store

N = 13
MEASURES = [
    ("cka", {}),
    ("cka", {"debiased": True}),
    ("cka", {"kernel": "rbf", "threshold": 0.8}),
    ("svcca", {}),
    ("nbs", {}),
    ("procrustes", {}),
    ("procrustes", {"alpha": 0.5, "score": "euclidean"}),
    ("cca", {}),
    ("mutual-knn", {"k": 3}),
    ("jaccard-knn", {"k": 4}),
    ("cknna", {"k": 5}),
]


def _features(folder, rng, count, dtype="float64"):
    """count .npy feature files (N, d_i), widths 2 .. 20 (d > n among them; d = 1 has no
    correlation RDM)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, arrays = {}, {}
    widths = [2, 5, 20, 3, 14, 8, 2, 17]
    for i in range(count):
        x = rng.standard_normal((N, widths[i % len(widths)])) * 10.0 ** (i % 3 - 1) + i
        x = x.astype(dtype)
        paths[f"m{i:02d}"] = folder / f"m{i:02d}.npy"
        np.save(paths[f"m{i:02d}"], x)
        arrays[f"m{i:02d}"] = x
    return paths, arrays


def _check(store, arrays, measures=MEASURES, rtol=1e-8, atol=1e-10):
    for name, opts in measures:
        want = np.asarray(fastrsa.similarity(arrays, name, **opts), dtype=np.float64)
        got = store.similarity(measure=name, **opts)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"{name} {opts}")


def test_every_measure_equals_in_memory(tmp_path, rng):
    paths, arrays = _features(tmp_path / "f", rng, 6)
    store = fastrsa.sweep(paths, store=tmp_path / "s", measures=["rsa", *MEASURES])
    _check(store, arrays)
    rdms = np.stack([np.asarray(fastrsa.rdms(x)) for x in arrays.values()])
    np.testing.assert_allclose(store.similarity(), fastrsa.compare(rdms), atol=1e-9)
    assert store.summary.rdms_computed == 6
    again = fastrsa.sweep(paths, store=tmp_path / "s", measures=["rsa", *MEASURES])
    assert again.summary.rdms_computed == 0 and again.summary.tiles_computed == 0


def test_many_tiles_and_pieces_equal_one_tile(tmp_path, rng):
    """A 10kB budget: blocks of a few rows, and each tile's states read a piece at a time."""
    paths, arrays = _features(tmp_path / "f", rng, 8)
    store = fastrsa.sweep(paths, store=tmp_path / "s", memory="10kB", measures=MEASURES)
    b = store.layer_info("default")["tile_rows"]
    assert b < 8  # several tiles
    _check(store, arrays)


FEATURE_MEASURES = [
    ("pwcca", {}),
    ("ridge", {"folds": 3}),
    ("dds", {}),
    ("cka", {"kernel": "laplacian"}),
    ("cka", {"minibatch": 6}),
]


def test_measures_from_kept_features_equal_in_memory(tmp_path, rng):
    """pwcca, ridge, dds, and cka with the laplacian kernel or minibatch need more than a Gram:
    their tiles read the features the sweep keeps, a piece at a time (10kB: many pieces)."""
    paths, arrays = _features(tmp_path / "f", rng, 5)
    store = fastrsa.sweep(paths, store=tmp_path / "s", memory="10kB", measures=FEATURE_MEASURES)
    _check(store, arrays, FEATURE_MEASURES)
    assert np.asarray(store.features("m01")).shape == arrays["m01"].shape
    matrix = fastrsa.layer_matrix(store, measure=("ridge", {"folds": 3}))
    want = fastrsa.similarity(arrays, "ridge", folds=3)
    np.testing.assert_allclose(matrix.values, want, rtol=1e-8, atol=1e-10)


def test_layer_matrix_of_a_measure(tmp_path, rng):
    """Two layers (a feature file per layer): the layer x layer matrix by cknna (asymmetric)
    and procrustes equals fastrsa.similarity over all (source, layer) entries."""
    paths, arrays = _features(tmp_path / "f", rng, 6)
    items = list(paths.items())
    fastrsa.sweep(dict(items[:3]), store=tmp_path / "s", layers=["a"],
                  measures=["cknna:k=3", "procrustes"])  # fmt: skip
    store = fastrsa.sweep({k.replace("m03", "m00").replace("m04", "m01").replace("m05", "m02"): v
                           for k, v in items[3:]}, store=tmp_path / "s", layers=["b"],
                          measures=["cknna:k=3", "procrustes"])  # fmt: skip
    for name, opts in (("cknna", {"k": 3}), ("procrustes", {})):
        matrix = fastrsa.layer_matrix(store, measure=(name, opts), memory="10kB")
        order = {"a": 0, "b": 3}
        feats = [arrays[f"m{int(label[1:]) + order[layer]:02d}"] for label, layer in
                 matrix.entries]  # fmt: skip
        want = fastrsa.similarity(feats, name, **opts)
        np.testing.assert_allclose(matrix.values, want, rtol=1e-8, atol=1e-10, err_msg=name)
        within = store.similarity("a", measure=name, **opts)
        rows = [i for i, (_, layer) in enumerate(matrix.entries) if layer == "a"]
        np.testing.assert_allclose(matrix.values[np.ix_(rows, rows)], within, rtol=1e-12,
                                   atol=1e-14)  # fmt: skip


def test_float32_features(tmp_path, rng):
    paths, arrays = _features(tmp_path / "f", rng, 4, dtype="float32")
    store = fastrsa.sweep(paths, store=tmp_path / "s", measures=["cka", "nbs", "mutual-knn:k=3"])
    wide = {k: v.astype(np.float64) for k, v in arrays.items()}
    _check(store, wide, [("cka", {}), ("nbs", {}), ("mutual-knn", {"k": 3})])


def test_a_store_swept_for_rsa_gains_measures(tmp_path, rng):
    paths, arrays = _features(tmp_path / "f", rng, 4)
    fastrsa.sweep(paths, store=tmp_path / "s")
    store = fastrsa.sweep(paths, store=tmp_path / "s", measures=["rsa", "cka"])
    assert store.summary.rdms_computed == 0 and store.summary.rdms_reused == 4
    _check(store, arrays, [("cka", {})])
    with pytest.raises(ValueError, match="nbs similarity of layer 'default' is not computed"):
        store.similarity(measure="nbs")


def test_added_sources_extend_every_measure(tmp_path, rng):
    paths, arrays = _features(tmp_path / "f", rng, 6)
    first = dict(list(paths.items())[:3])
    fastrsa.sweep(first, store=tmp_path / "s", measures=["cka", "cknna:k=3"], memory="10kB")
    store = fastrsa.sweep(paths, store=tmp_path / "s", measures=["cka", "cknna:k=3"], memory="10kB")
    assert store.summary.rdms_computed == 3
    _check(store, arrays, [("cka", {}), ("cknna", {"k": 3})])


def test_encoder_states_come_from_its_features(tmp_path, rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.ReLU(), torch.nn.Flatten()
    ).double()
    images = rng.uniform(-1, 1, (N, 3, 16, 16))
    store = fastrsa.sweep(
        [
            ModuleSource(net, "net", input_size=16),
            ModuleSource(torch.nn.Sequential(net[0], torch.nn.Tanh()), "net2", input_size=16),
        ],
        images=images,
        layers=["0"],
        store=tmp_path / "s",
        keep_features=True,
        measures=["cka", "procrustes", "mutual-knn:k=3"],
        batch_size=5,
    )
    feats = {label: np.asarray(store.features(label, "0")) for label in store.labels}
    _check(store, feats, [("cka", {}), ("procrustes", {}), ("mutual-knn", {"k": 3})], rtol=1e-5,
           atol=1e-6)  # fmt: skip


def test_measure_keys_and_spellings():
    assert measure_key("cka", {"kernel": "linear", "threshold": 1.0, "debiased": False,
                               "minibatch": None}) == "cka"  # fmt: skip
    specs = parse_measures(["procrustes:alpha=0.5,score=euclidean", ("cka", {}), "rsa"], "pearson")
    assert [s.key for s in specs] == ["procrustes,alpha=0.5,score=euclidean", "cka", "pearson"]
    # the key itself is a spelling, and repeats collapse
    again = parse_measures(["procrustes,alpha=0.5,score=euclidean", "procrustes:alpha=.5,"
                            "score=euclidean"], "spearman")  # fmt: skip
    assert len(again) == 1 and again[0].options["alpha"] == 0.5


@pytest.mark.parametrize(
    "measures, match",
    [
        (["attribution"], "'attribution' is not computed by a sweep: .*attribution maps"),
        (["ridge:folds=20"], "folds"),
        (["nope"], "unknown measure 'nope'"),
        (["cka:kernel=cosine"], "kernel"),
        (["procrustes:alpha=2"], "alpha must be a number in \\[0, 1\\]"),
        (["mutual-knn:kk=3"], "has no option\\(s\\) \\['kk'\\]"),
        (["mutual-knn:k=13"], "k = 13 must be at most n - 1 = 12"),
        (["cka:kernel"], "options are written name:option=value"),
        (["rsa:method=pearson"], "'rsa' takes the sweep's method"),
        (["cka", "memory=4kB"], "memory: the measures \\['cka'\\] hold about"),
    ],
)
def test_bad_measures_refused_before_any_work(tmp_path, rng, measures, match):
    paths, _ = _features(tmp_path / "f", rng, 3)
    memory = next((m.split("=")[1] for m in measures if m.startswith("memory=")), None)
    measures = [m for m in measures if not m.startswith("memory=")]
    with pytest.raises(ValueError, match=match):
        fastrsa.sweep(paths, store=tmp_path / "s", measures=measures, memory=memory)
    assert not (tmp_path / "s").exists()


def test_rdm_files_give_only_rsa(tmp_path, rng):
    rdms = np.stack([np.asarray(fastrsa.rdms(rng.standard_normal((N, 4)))) for _ in range(3)])
    np.save(tmp_path / "r.npy", rdms)
    with pytest.raises(ValueError, match="need features; .*precomputed RDMs"):
        fastrsa.sweep([RDMSource(tmp_path / "r.npy")], store=tmp_path / "s",
                      measures=["cka"])  # fmt: skip


def test_layer_missing_states_is_named(tmp_path, rng):
    paths, _ = _features(tmp_path / "f", rng, 4)
    first = dict(list(paths.items())[:2])
    fastrsa.sweep(first, store=tmp_path / "s")  # RSA only: no states
    rest = dict(list(paths.items())[2:])
    with pytest.raises(UserError, match="lacks the gram states of \\['m00', 'm01'\\]"):
        fastrsa.sweep(rest, store=tmp_path / "s", measures=["cka"])


_KILLED = """
import sys, fastrsa
fastrsa.sweep(sys.argv[2:], store=sys.argv[1], memory="10kB", progress=False,
              measures=["cka", "mutual-knn:k=3", "procrustes"])
"""


def _markers(store) -> int:
    return sum(len(files) for _, _, files in os.walk(store / "done"))


def test_kill_then_resume_gives_the_uninterrupted_result(tmp_path, rng):
    paths, arrays = _features(tmp_path / "f", rng, 10)
    script = tmp_path / "sweep.py"
    script.write_text(textwrap.dedent(_KILLED))
    cmd = [sys.executable, str(script), str(tmp_path / "s"), *map(str, paths.values())]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for target in (3, 9, 20):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        while _markers(tmp_path / "s") < target and proc.poll() is None:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        open_store(tmp_path / "s")  # opens after every kill
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    _check(open_store(tmp_path / "s"), arrays,
           [("cka", {}), ("mutual-knn", {"k": 3}), ("procrustes", {})])  # fmt: skip
    report = open_store(tmp_path / "s").verify()
    assert report.clean, report.lines()


def test_damaged_state_is_named_and_recomputed(tmp_path, rng):
    paths, arrays = _features(tmp_path / "f", rng, 3)
    fastrsa.sweep(paths, store=tmp_path / "s", measures=["cka"])
    chunk = tmp_path / "s" / "states" / "0" / "gram" / "gram" / "c" / "1" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[10] ^= 0xFF
    chunk.write_bytes(bytes(data))
    report = open_store(tmp_path / "s").verify()  # deep: states read, the damaged unmarked
    assert not report.clean and report.todo["default"]["states"] == {"gram": ["m01"]}
    assert any("gram state" in line or "states of ['m01']" in line for line in report.lines())
    with pytest.raises(UserError, match="gram state of 'm01' .* is not computed"):
        read_states(open_store(tmp_path / "s"), "default", "gram", [1])
    store = fastrsa.sweep(paths, store=tmp_path / "s", measures=["cka"])
    assert store.summary.rdms_reused == 3  # the RDM stays; the state is made again
    _check(store, arrays, [("cka", {})])


def test_damaged_kept_features_are_found(tmp_path, rng):
    """Features kept for pwcca are crc32c-checked: a flipped byte is named, never used."""
    paths, arrays = _features(tmp_path / "f", rng, 3)
    fastrsa.sweep(paths, store=tmp_path / "s", measures=["pwcca"])
    chunk = next((tmp_path / "s" / "features" / "0" / "2" / "c").rglob("*"))
    while chunk.is_dir():
        chunk = next(chunk.iterdir())
    data = bytearray(chunk.read_bytes())
    data[5] ^= 0xFF
    chunk.write_bytes(bytes(data))
    report = open_store(tmp_path / "s").verify()
    assert report.todo["default"]["states"] == {"features": ["m02"]}
    store = fastrsa.sweep(paths, store=tmp_path / "s", measures=["pwcca"])
    _check(store, arrays, [("pwcca", {})])
    assert open_store(tmp_path / "s").verify().clean


def test_cli_sweep_with_measures(tmp_path, rng, capsys):
    from fastrsa.cli import main

    paths, arrays = _features(tmp_path / "f", rng, 4)
    code = main(["sweep", "--features", *map(str, paths.values()), "--store",
                 str(tmp_path / "s"), "--measure", "rsa", "cka", "mutual-knn:k=3",
                 "--no-progress"])  # fmt: skip
    assert code in (0, None)
    main(["sweep", "--status", str(tmp_path / "s")])
    out = capsys.readouterr().out
    assert "cka tiles 1/1" in out and "mutual-knn,k=3 tiles 1/1" in out
    _check(open_store(tmp_path / "s"), arrays, [("cka", {}), ("mutual-knn", {"k": 3})])


def test_store_readers_take_measure(tmp_path, rng, capsys):
    """taxonomy, evaluate, compare --store, rank --target-label and layer-matrix read a measure
    the sweep computed; a distance is clustered and ranked as 1 - d."""
    from fastrsa.cli import main
    from fastrsa.transfer import measure_ranking

    paths, arrays = _features(tmp_path / "f", rng, 5)
    store = fastrsa.sweep(paths, store=tmp_path / "s", measures=["cka", "procrustes"])
    s = str(tmp_path / "s")
    want = fastrsa.similarity(arrays, "procrustes")
    main(["compare", "--store", s, "--measure", "procrustes", "--out", str(tmp_path / "c.npz")])
    with np.load(tmp_path / "c.npz") as f:
        np.testing.assert_allclose(f["similarity"], want, rtol=1e-8, atol=1e-12)
    main(["taxonomy", "--store", s, "--measure", "procrustes", "--out", str(tmp_path / "t")])
    tax = json.loads((tmp_path / "t" / "taxonomy.json").read_text())
    np.testing.assert_allclose(tax["similarity"], 1 - want, rtol=1e-8, atol=1e-12)
    assert tax["metadata"]["method"] == "procrustes"
    ranking = measure_ranking(store, None, "m02", "cka")
    cka = fastrsa.similarity(arrays, "cka")[2]
    order = [f"m{i:02d}" for i in np.argsort(-cka, kind="stable") if i != 2]
    assert list(ranking.labels) == order
    capsys.readouterr()
    main(["rank", "--sources-store", s, "--target-label", "m02", "--measure", "procrustes"])
    printed = capsys.readouterr().out
    by_distance = [f"m{i:02d}" for i in np.argsort(want[2], kind="stable") if i != 2]
    assert sorted(by_distance, key=printed.index) == by_distance  # nearest (smallest d) first
    pairs = [(i, j) for i in range(5) for j in range(5) if i != j]
    aff = {f"m{i:02d}__m{j:02d}": float(rng.uniform()) for i, j in pairs}
    (tmp_path / "aff.json").write_text(json.dumps(aff))
    main(["evaluate", "--store", s, "--measure", "cka", "--affinities", str(tmp_path / "aff.json")])
    assert "targets: top-1" in capsys.readouterr().out
    main(["layer-matrix", s, "--measure", "cka", "--out", str(tmp_path / "lm.npz")])
    with np.load(tmp_path / "lm.npz") as f:
        np.testing.assert_allclose(f["values"], fastrsa.similarity(arrays, "cka"), rtol=1e-8)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["compare", "RDMS", "--measure", "cka"], "--measure cka: reads the measures a sweep"),
        (["compare", "--store", "S", "--with", "RDMS", "--measure", "cka"], "--with, --with-store"),
        (["rank", "--sources-store", "S", "--target", "T", "--measure", "cka"], "--target-label"),
        (["taxonomy", "--rdms", "RDMS", "--measure", "cka", "--out", "OUT"], "give a store"),
        (["taxonomy", "--store", "S", "--measure", "nbs", "--out", "OUT"], "nbs similarity"),
        (["compare", "--store", "S", "--measure", "procrustes:alpha=3"], "--measure: 'procrustes'"),
    ],
)
def test_measure_flag_refusals(tmp_path, rng, capsys, argv, match):
    from fastrsa.cli import main

    paths, _ = _features(tmp_path / "f", rng, 3)
    fastrsa.sweep(paths, store=tmp_path / "S", measures=["cka"])
    rdms = np.stack([np.asarray(fastrsa.rdms(rng.standard_normal((N, 4)))) for _ in range(3)])
    np.save(tmp_path / "RDMS.npy", rdms)
    np.save(tmp_path / "T.npy", rdms[:1])
    names = {"S": tmp_path / "S", "RDMS": tmp_path / "RDMS.npy", "T": tmp_path / "T.npy",
             "OUT": tmp_path / "out"}  # fmt: skip
    argv = [str(names.get(a, a)) for a in argv]
    capsys.readouterr()
    assert main(argv) not in (0, None)
    err = capsys.readouterr().err
    assert re.search(match, err), err


def test_ray_equals_local(tmp_path, rng, ray_cluster):
    """The state-making pass and the measure tiles as Ray tasks (many tiles and pieces) give
    the local result exactly."""
    paths, arrays = _features(tmp_path / "f", rng, 6)
    measures = ["cka", "cknna:k=3", "procrustes", ("ridge", {"folds": 3})]
    local = fastrsa.sweep(paths, store=tmp_path / "local", memory="10kB", measures=measures)
    remote = fastrsa.sweep(paths, store=tmp_path / "ray", memory="10kB", measures=measures,
                           executor="ray")  # fmt: skip
    assert remote.summary.tiles_computed == local.summary.tiles_computed > 4
    for name, opts in (
        ("cka", {}),
        ("cknna", {"k": 3}),
        ("procrustes", {}),
        ("ridge", {"folds": 3}),
    ):
        np.testing.assert_array_equal(remote.similarity(measure=name, **opts),
                                      local.similarity(measure=name, **opts))  # fmt: skip
    _check(remote, arrays, [("cknna", {"k": 3}), ("ridge", {"folds": 3})])
