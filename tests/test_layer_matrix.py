"""The layer x layer matrix of a sweep store (fastrsa/sweeps/layer_matrix.py, the figure in
fastrsa/plots.py, `fastrsa layer-matrix`): every (label, layer) against every (label, layer),
checked against scipy on the stored condensed RDMs and against the store's own tiles.

Stores are made by fastrsa.sweep from feature files of random features (float64 RDMs), layers
named differently per label by separate sweeps on one store, plus a source of float32 RDMs of an
encoder kind (float32 layers). Tolerances: float64 entries 1e-9 against scipy and 1e-12 against
the store's tiles (the same compare on other blocks); entries of float32 layers 1e-6 (absolute
and relative: float32 rounding of the compared values and of compare's float32 arithmetic).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
from scipy import stats

import fastrsa
from fastrsa.cli import main
from fastrsa.plots import plot_layer_matrix
from fastrsa.sweeps import LayerMatrix, Source, layer_matrix
from fastrsa.sweeps.blocks import tile_rows

METHODS = ("spearman", "pearson", "cosine", "kendall")
# (layer, labels) added by one sweep each, in this order: layer ids 0, 1, 2
FEATURE_LAYERS = (("conv1", ("a", "b", "c")), ("conv2", ("a", "b")), ("blocks.0", ("c",)))
F32_LAYERS = ("enc.0", "enc.1", "enc.2")  # the float32 source "f"


class Float32Source(Source):
    """A source of an encoder kind (its layers are stored float32) giving random RDMs for any
    layers it is asked for: several layers from one sweep."""

    kind = "module"

    def __init__(self, label: str, n: int, seed: int):
        super().__init__(label)
        self.n, self.seed = n, seed

    def describe(self) -> dict:
        return {"kind": "module", "path": "test"}

    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.label}/{self.seed}".encode()).hexdigest()

    def layer_names(self, layers):
        return list(layers)

    def n_images(self):
        return self.n

    def check(self, layers, n):
        pass

    def rdms(self, layers, images, metric, backend, memory, spill_dir, **kw):
        rng = np.random.default_rng(self.seed)
        for layer in layers:
            yield layer, rng.random(self.n * (self.n - 1) // 2).astype(np.float32) + 0.5


def _build(folder, n: int, seed: int) -> str:
    """A store with the FEATURE_LAYERS (float64) and F32_LAYERS (float32), tiles of every
    method in every layer; returns its path."""
    rng = np.random.default_rng(seed)
    store = os.path.join(folder, "store")
    groups = []
    for layer, labels in FEATURE_LAYERS:
        sources = {}
        for label in labels:
            path = os.path.join(folder, f"{label}-{layer}.npy")
            np.save(path, rng.standard_normal((n, 6)))
            sources[label] = path
        groups.append((sources, [layer]))
    groups.append(([Float32Source("f", n, seed)], list(F32_LAYERS)))
    for method in METHODS:  # the first pass computes the RDMs, each pass its method's tiles
        for sources, layers in groups:
            fastrsa.sweep(sources, layers=layers, store=store, method=method, progress=False)
    return store


@pytest.fixture(scope="module", params=[3, 7], ids=["n3", "n7"])
def store(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"layer-matrix-n{request.param}")
    return _build(str(folder), request.param, seed=request.param)


def _rdm(st, label: str, layer: str) -> np.ndarray:
    rows = st.layer_info(layer)["rows"]
    return np.asarray(st.rdms(layer)[rows.index(label)], dtype=np.float64)


def _reference(x: np.ndarray, y: np.ndarray, method: str) -> float:
    if method == "spearman":
        return float(stats.spearmanr(x, y)[0])
    if method == "pearson":
        return float(stats.pearsonr(x, y)[0])
    if method == "kendall":
        return float(stats.kendalltau(x, y)[0])  # tau-b
    return float(x @ y / np.sqrt((x @ x) * (y @ y)))


def _f32(layer: str) -> bool:
    return layer in F32_LAYERS


def test_entries_by_label_then_layer_in_the_order_layers_were_added(store):
    m = layer_matrix(store)
    assert m.entries == [
        ("a", "conv1"), ("a", "conv2"),
        ("b", "conv1"), ("b", "conv2"),
        ("c", "conv1"), ("c", "blocks.0"),
        ("f", "enc.0"), ("f", "enc.1"), ("f", "enc.2"),
    ]  # fmt: skip
    assert m.values.shape == (9, 9) and m.values.dtype == np.float64
    assert m.labels == ["a", "b", "c", "f"]
    assert m.n == fastrsa.open_store(store).n and m.method == "spearman"
    np.testing.assert_array_equal(m.values, m.values.T)
    np.testing.assert_array_equal(np.diag(m.values), 1.0)


@pytest.mark.parametrize("method", METHODS)
def test_every_entry_equals_scipy_on_the_stored_rdms(store, method):
    st = fastrsa.open_store(store)
    m = layer_matrix(st, method=method)
    rdms = [_rdm(st, label, layer) for label, layer in m.entries]
    for i, (_, layer_i) in enumerate(m.entries):
        for j, (_, layer_j) in enumerate(m.entries):
            tol = 1e-6 if _f32(layer_i) or _f32(layer_j) else 1e-9
            want = _reference(rdms[i], rdms[j], method)
            np.testing.assert_allclose(m.values[i, j], want, rtol=tol, atol=tol, err_msg=(i, j))


@pytest.mark.parametrize("method", METHODS)
def test_within_layer_entries_equal_the_store_tiles(store, method):
    st = fastrsa.open_store(store)
    for layers in (None, list(F32_LAYERS)):  # mixed float64/float32 blocks; float32 only
        m = layer_matrix(st, method=method, layers=layers)
        for layer in st.layers if layers is None else layers:
            rows = st.layer_info(layer)["rows"]
            where = [m.entries.index((label, layer)) for label in rows]
            tol = 1e-6 if _f32(layer) else 1e-12
            np.testing.assert_allclose(
                m.values[np.ix_(where, where)], st.similarity(layer, method), rtol=tol, atol=tol
            )


def test_a_small_budget_gives_the_same_matrix_in_several_blocks(store):
    st = fastrsa.open_store(store)
    whole = layer_matrix(st, method="pearson")
    k = len(whole.entries)
    per_row = st.m * (2 * 8 + 32) + 8 * k  # blocks.tile_rows' bytes per row of float64 blocks
    budget = 2 * per_row
    b = tile_rows(budget, st.m, 8, k)
    assert 1 < b < k and k % b != 0  # several blocks, the last one shorter
    pieces = layer_matrix(st, method="pearson", memory=budget)
    np.testing.assert_allclose(pieces.values, whole.values, rtol=0, atol=1e-12)


def test_labels_and_layers_restrict_with_names_and_globs(store):
    m = layer_matrix(store, labels=["a", "c"], layers="conv*")
    assert m.entries == [("a", "conv1"), ("a", "conv2"), ("c", "conv1")]
    full = layer_matrix(store)
    where = [full.entries.index(e) for e in m.entries]
    np.testing.assert_allclose(m.values, full.values[np.ix_(where, where)], atol=1e-12)
    layers_a, layers_c, block = full.between("a", "c")
    assert (layers_a, layers_c) == (["conv1", "conv2"], ["conv1", "blocks.0"])
    np.testing.assert_array_equal(block, full.values[np.ix_([0, 1], [4, 5])])
    one = layer_matrix(store, labels="b", layers=["conv2"])
    assert one.entries == [("b", "conv2")] and one.values.tolist() == [[1.0]]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"labels": ["aa"]}, ["labels:", "'aa'", "source label", "closest: 'a'"]),
        ({"layers": ["conv3"]}, ["layers:", "'conv3'", "closest:", "'conv1'"]),
        ({"layers": ["nothing*"]}, ["layers:", "'nothing*'"]),
        ({"labels": ["f"], "layers": ["conv1"]}, ["labels:", "['f']", "none of the layers"]),
        ({"labels": ["a"], "layers": ["conv1", "blocks.0"]}, ["layers:", "['blocks.0']"]),
        ({"method": "spearmann"}, ["method must be one of", "spearmann"]),
        ({"backend": "gpu"}, ["backend", "'gpu'"]),
        ({"memory": "lots"}, ["memory", "'lots'"]),
    ],
)
def test_bad_arguments_are_refused_in_one_line(store, kwargs, words):
    with pytest.raises(ValueError) as err:
        layer_matrix(store, **kwargs)
    text = str(err.value)
    assert "\n" not in text
    for word in words:
        assert word in text


def test_an_rdm_of_an_unfinished_sweep_is_refused(store, tmp_path):
    copy = str(tmp_path / "copy")
    shutil.copytree(store, copy)
    st = fastrsa.open_store(copy)
    info = st.layer_info("conv2")
    os.remove(os.path.join(copy, "done", "rdm", info["id"], info["keys"]["b"]))
    with pytest.raises(ValueError, match=r"layer 'conv2' lacks the RDMs of \['b'\].*sweep again"):
        layer_matrix(copy)
    assert layer_matrix(copy, layers=["conv1"]).entries  # the other layers still read


def test_a_path_that_is_not_a_store_is_refused(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        layer_matrix(tmp_path / "nothing")


def test_save_json_and_npz_round_trip(store, tmp_path):
    m = layer_matrix(store, method="kendall")
    data = json.loads(m.save(tmp_path / "m.json").read_text())
    assert data["method"] == "kendall" and data["n"] == m.n and data["store"] == m.store
    assert [tuple(e) for e in data["entries"]] == m.entries
    np.testing.assert_array_equal(np.array(data["values"]), m.values)
    with np.load(m.save(tmp_path / "m.npz")) as z:
        np.testing.assert_array_equal(z["values"], m.values)
        assert list(zip(z["labels"], z["layers"], strict=True)) == m.entries
        assert str(z["method"]) == "kendall" and int(z["n"]) == m.n
    with pytest.raises(ValueError, match="must end in .json or .npz"):
        m.save(tmp_path / "m.csv")
    assert isinstance(m, LayerMatrix)
    with pytest.raises(ValueError, match="'zz' is not in the layer matrix"):
        m.between("a", "zz")


def _synthetic(rng, sizes: dict[str, int]) -> LayerMatrix:
    """A LayerMatrix of random correlations (no store): `sizes` {label: layer count}."""
    entries = [(label, f"layer{i}") for label, count in sizes.items() for i in range(count)]
    x = rng.standard_normal((len(entries), 20))
    return LayerMatrix(entries, np.corrcoef(x), "spearman", "memory", 20)


@pytest.mark.parametrize("suffix", ["png", "pdf", "svg"])
def test_plots_are_written(rng, tmp_path, suffix):
    m = _synthetic(rng, {"a": 4, "b": 3, "c": 2})
    whole = plot_layer_matrix(m, tmp_path / f"all.{suffix}", title="layers")
    pair = plot_layer_matrix(m, tmp_path / f"pair.{suffix}", labels=("a", "c"))
    for path in (whole, pair):
        assert path.stat().st_size > 0
    assert sorted(os.listdir(tmp_path)) == [f"all.{suffix}", f"pair.{suffix}"]  # no temporaries


def test_plots_of_many_entries_leave_layer_names_off(rng, tmp_path):
    m = _synthetic(rng, {"a": 70, "b": 60})  # 130 entries: no layer names on the ticks
    assert plot_layer_matrix(m, tmp_path / "all.png").stat().st_size > 0


def test_plot_refuses_bad_labels_values_and_suffixes(rng, tmp_path):
    m = _synthetic(rng, {"a": 2, "c": 2})
    with pytest.raises(ValueError, match="two source labels"):
        plot_layer_matrix(m, tmp_path / "x.png", labels=("a",))
    with pytest.raises(ValueError, match="'zz' is not in the layer matrix"):
        plot_layer_matrix(m, tmp_path / "x.png", labels=("a", "zz"))
    with pytest.raises(ValueError, match="must end in one of"):
        plot_layer_matrix(m, tmp_path / "x.unknown")
    m.values[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        plot_layer_matrix(m, tmp_path / "x.png")
    assert os.listdir(tmp_path) == []


# ---- the command ---------------------------------------------------------------------------


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["layer-matrix", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for option in ("--method", "--sources", "--layers", "--between", "--out", "--plot", "--json"):
        assert option in out


def test_cli_table_json_out_and_plot(store, tmp_path, capsys):
    assert main(["layer-matrix", store, "--method", "pearson", "--layers", "conv*"]) == 0
    out = capsys.readouterr().out
    assert "pearson similarity of 5 (source, layer) entries: 3 sources" in out
    assert "a:conv1" in out and "c:conv1" in out and "blocks.0" not in out
    args = ["--out", str(tmp_path / "m.npz"), "--plot", str(tmp_path / "m.svg")]
    assert main(["layer-matrix", store, "--json", *args]) == 0
    printed = json.loads(capsys.readouterr().out)
    want = layer_matrix(store)
    assert [tuple(e) for e in printed["entries"]] == want.entries
    np.testing.assert_allclose(printed["values"], want.values, rtol=0, atol=1e-12)
    with np.load(tmp_path / "m.npz") as z:
        np.testing.assert_allclose(z["values"], want.values, rtol=0, atol=1e-12)
    assert (tmp_path / "m.svg").stat().st_size > 0
    assert main(["layer-matrix", store, "--out", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["entries"][0] == ["a", "conv1"]
    assert f"wrote {tmp_path / 'm.json'}" in capsys.readouterr().out


def test_cli_between_prints_the_two_networks(store, tmp_path, capsys):
    plot = tmp_path / "ac.png"
    assert main(["layer-matrix", store, "--between", "a", "c", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "spearman: layers of a (rows) against layers of c (columns)"
    assert out[1].split() == ["conv1", "blocks.0"]
    want = layer_matrix(store).between("a", "c")[2]
    rows = [[float(v) for v in line.split()[1:]] for line in out[2:4]]
    np.testing.assert_allclose(rows, want, atol=5e-5)  # printed with 4 decimals
    assert plot.stat().st_size > 0


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--sources", "aa"], ["--sources:", "closest: 'a'"]),
        (["--layers", "conv3"], ["--layers:", "closest:"]),
        (["--between", "a", "zz", "--sources", "a", "b"], ["--between:", "'zz'"]),
        (["--out", "m.csv"], ["--out:", ".json or .npz"]),
        (["--plot", "m.unknown"], ["--plot:"]),
        (["--memory", "lots"], ["--memory", "'lots'"]),
    ],
)
def test_cli_errors_name_the_option(store, tmp_path, capsys, argv, words):
    argv = [str(tmp_path / a) if a.startswith("m.") else a for a in argv]
    assert main(["layer-matrix", store, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fastrsa layer-matrix: error:") and "\n" not in err
    for word in words:
        assert word in err
    assert os.listdir(tmp_path) == []


def test_cli_missing_store(tmp_path, capsys):
    assert main(["layer-matrix", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
