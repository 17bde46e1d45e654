"""One reader of RDM files for every command (io.load_rdms), the CLI's error policy (one line and
exit 2 for the user's errors, a traceback for bugs, --debug for all), and no process-wide side
effects (matplotlib's backend, pyplot, the umask, torch's RNG, a hard-coded GPU)."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from fastrsa import io
from fastrsa.cli import main
from fastrsa.errors import MissingPackage, NeedsDevice, UserError, is_user_error
from fastrsa.io import atomic as io_atomic
from fastrsa.reference import compare_ref

N_IMAGES = 7
K = 4


def _features(seed: int = 5) -> np.ndarray:
    """(K, n, d) features of K models sharing a latent structure (so similarities differ)."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((N_IMAGES, 3))
    return np.stack([latent + rng.standard_normal((N_IMAGES, 3)) for _ in range(K)])


def _condensed() -> np.ndarray:
    return np.stack([pdist(f, "correlation") for f in _features()])


# Every kind of RDM file, with the labels it gives (K RDMs of the same images each).
LABELS_BY_KEY = [f"m{i}" for i in range(K)]
LABELS_STACKED = [f"rdms[{i}]" for i in range(K)]
KINDS = {
    "npz condensed": ("rdms.npz", LABELS_BY_KEY),
    "npz square": ("rdms.npz", LABELS_BY_KEY),
    "npz batch (k, m)": ("rdms.npz", LABELS_STACKED),
    "npz stack (k, n, n)": ("rdms.npz", LABELS_STACKED),
    "npy (B, m)": ("rdms.npy", LABELS_STACKED),
    "npy (B, n, n)": ("rdms.npy", LABELS_STACKED),
}


def _write(folder: Path, kind: str) -> Path:
    rows = _condensed()
    square = np.stack([squareform(r) for r in rows])
    path = folder / KINDS[kind][0]
    if kind == "npz condensed":
        np.savez(path, **{f"m{i}": r for i, r in enumerate(rows)})
    elif kind == "npz square":
        np.savez(path, **{f"m{i}": s for i, s in enumerate(square)})
    elif kind == "npz batch (k, m)":
        np.savez(path, rdms=rows)
    elif kind == "npz stack (k, n, n)":
        np.savez(path, rdms=square)
    elif kind == "npy (B, m)":
        np.save(path, rows)
    else:
        np.save(path, square)
    return path


def _affinities(folder: Path, labels: list[str]) -> Path:
    rng = np.random.default_rng(3)
    table = {f"{s}__{t}": float(rng.random()) for s in labels for t in labels if s != t}
    return io.save_json(folder / "aff.json", {"affinity": table})


# ---- one reader --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_load_rdms_reads_every_kind_of_file(tmp_path, kind):
    path = _write(tmp_path, kind)
    labels, rows = io.load_rdms(path, "rdms")
    assert labels == KINDS[kind][1]
    assert rows.shape == (K, N_IMAGES * (N_IMAGES - 1) // 2) and rows.dtype == np.float64
    np.testing.assert_allclose(rows, _condensed(), atol=1e-15)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_command_accepts_the_same_rdm_files(tmp_path, capsys, kind):
    path = _write(tmp_path, kind)
    labels = KINDS[kind][1]
    want = compare_ref(_condensed())
    # compare
    assert main(["compare", str(path), "--out", str(tmp_path / "c.npz")]) == 0
    saved = io.load_arrays(tmp_path / "c.npz")
    assert list(saved["labels_a"]) == labels
    np.testing.assert_allclose(saved["similarity"], want, atol=1e-10)
    # taxonomy --rdms
    assert main(["taxonomy", "--rdms", str(path), "--out", str(tmp_path / "tx")]) == 0
    tx = json.loads((tmp_path / "tx" / "taxonomy.json").read_text())
    assert tx["labels"] == labels
    np.testing.assert_allclose(tx["similarity"], want, atol=1e-10)
    # rank --target (one RDM, square) --sources (the file)
    np.save(tmp_path / "target.npy", squareform(_condensed()[0]))
    capsys.readouterr()
    assert main(["rank", "--target", str(tmp_path / "target.npy"), "--sources", str(path)]) == 0
    first = capsys.readouterr().out.splitlines()[0].split()
    assert first[1] == labels[0] and float(first[2]) == pytest.approx(1.0)
    # evaluate --rdms
    aff = _affinities(tmp_path, labels)
    out = tmp_path / "ev.json"
    assert (
        main(["evaluate", "--rdms", str(path), "--affinities", str(aff), "--json", str(out)]) == 0
    )
    assert json.loads(out.read_text())["n_targets"] == K


@pytest.mark.parametrize("command", ["compare", "taxonomy", "rank", "evaluate", "demo"])
def test_every_rdm_reading_command_has_condensed_and_square(tmp_path, command):
    from fastrsa.cli import build_parser

    parser = build_parser()
    argv = {
        "compare": ["compare", "x.npz"],
        "taxonomy": ["taxonomy", "--rdms", "x.npz", "--out", "o"],
        "rank": ["rank", "--target", "t.npy", "--sources", "s.npz"],
        "evaluate": ["evaluate", "--rdms", "x.npz", "--affinities", "a.json"],
        "demo": ["demo", "--real-data", "d"],
    }[command]
    assert parser.parse_args([*argv, "--condensed"]).condensed
    assert parser.parse_args([*argv, "--square"]).square
    with pytest.raises(SystemExit):
        parser.parse_args([*argv, "--square", "--condensed"])


def test_the_reading_flags_reach_taxonomy_and_rank(tmp_path, capsys):
    """--condensed / --square decide how a square 2-D array is read, in every command."""
    sym = squareform(pdist(_features(8)[0][:6], "correlation"))  # (6, 6): a valid square RDM
    np.save(tmp_path / "sym.npy", sym)
    labels, got = io.load_rdms(tmp_path / "sym.npy", "x", "condensed")
    assert got.shape == (6, 6) and labels == [f"sym[{i}]" for i in range(6)]
    labels, got = io.load_rdms(tmp_path / "sym.npy", "x", "square")
    assert got.shape == (1, 15) and labels == ["sym"]
    # taxonomy: six condensed RDMs of 4 images, (6, 6) but no square RDM
    rng = np.random.default_rng(4)
    rows = np.stack([pdist(rng.standard_normal((4, 3)), "correlation") for _ in range(6)])
    np.save(tmp_path / "rows.npy", rows)
    argv = ["taxonomy", "--rdms", str(tmp_path / "rows.npy"), "--out"]
    assert main([*argv, str(tmp_path / "t")]) == 0
    assert "read as 6 condensed RDMs" in capsys.readouterr().err
    assert main([*argv, str(tmp_path / "t2"), "--square"]) == 2
    assert "is not a square RDM" in capsys.readouterr().err
    assert not (tmp_path / "t2").exists()
    # rank: the (6, 6) target is one RDM only when read as square
    np.save(tmp_path / "many.npy", np.stack([squareform(pdist(f[:6])) for f in _features(2)]))
    argv = ["rank", "--target", str(tmp_path / "sym.npy"), "--sources", str(tmp_path / "many.npy")]
    assert main([*argv, "--square"]) == 0
    assert main([*argv, "--condensed"]) == 2
    assert "--target must hold one RDM" in capsys.readouterr().err


def test_features_where_features_are_meant(tmp_path):
    feats = _features()
    np.savez(tmp_path / "feats.npz", **{f"m{i}": f for i, f in enumerate(feats)})
    np.save(tmp_path / "batch.npy", feats)  # (K, n, d): labelled batch[i]
    np.savez(tmp_path / "rdms.npz", **{f"m{i}": r for i, r in enumerate(_condensed())})
    aff = _affinities(tmp_path, LABELS_BY_KEY)
    results = []
    for option, path in [("--rdms", "rdms.npz"), ("--features", "feats.npz")]:
        out = tmp_path / f"ev{len(results)}.json"
        argv = ["evaluate", option, str(tmp_path / path), "--affinities", str(aff)]
        assert main([*argv, "--json", str(out)]) == 0
        results.append(json.loads(out.read_text()))
    assert results[0] == results[1]
    assert (
        main(["taxonomy", "--features", str(tmp_path / "batch.npy"), "--out", str(tmp_path / "t")])
        == 0
    )
    tx = json.loads((tmp_path / "t" / "taxonomy.json").read_text())
    assert tx["labels"] == [f"batch[{i}]" for i in range(K)]
    np.testing.assert_allclose(tx["similarity"], compare_ref(_condensed()), atol=1e-10)


def test_a_feature_file_given_as_rdms_says_so(tmp_path, capsys):
    np.savez(tmp_path / "feats.npz", a=np.ones((7, 5)), b=np.ones((7, 5)))
    assert main(["compare", str(tmp_path / "feats.npz")]) == 2
    err = capsys.readouterr().err
    assert "length 5" in err and "--features" in err and len(err.strip().splitlines()) == 1


def test_taxonomy_refuses_two_sources_of_rdms(tmp_path, capsys):
    np.save(tmp_path / "r.npy", _condensed())
    np.save(tmp_path / "f.npy", _features())
    argv = ["taxonomy", "--rdms", str(tmp_path / "r.npy"), "--features", str(tmp_path / "f.npy")]
    assert main([*argv, "--out", str(tmp_path / "t")]) == 2
    assert "give one source of RDMs" in capsys.readouterr().err


def test_load_rdms_notes_default_to_warnings_and_labels_stay_unique(tmp_path):
    np.save(tmp_path / "sym.npy", squareform(pdist(_features()[0][:6])))
    with pytest.warns(UserWarning, match="read as one square RDM of 6 images"):
        io.load_rdms(tmp_path / "sym.npy")
    notes = []
    io.load_rdms(tmp_path / "sym.npy", note=notes.append)
    assert len(notes) == 1
    with pytest.raises(ValueError, match="reading must be one of"):
        io.load_rdms(tmp_path / "sym.npy", reading="rows")
    rows = _condensed()
    np.savez(tmp_path / "clash.npz", **{"a": rows[:2], "a[0]": rows[2]})
    with pytest.raises(ValueError, match=r"the labels \['a\[0\]'\] name more than one RDM"):
        io.load_rdms(tmp_path / "clash.npz")
    np.save(tmp_path / "ints.npy", (rows * 100).astype(np.int64))
    assert io.load_rdms(tmp_path / "ints.npy")[1].dtype == np.float64
    np.save(tmp_path / "f32.npy", rows.astype(np.float32))
    assert io.load_rdms(tmp_path / "f32.npy")[1].dtype == np.float32


def test_demo_real_data_reads_stacked_rdm_files(tmp_path, capsys):
    folder = tmp_path / "real"
    folder.mkdir()
    np.savez(folder / "stack.npz", task=_condensed())
    argv = ["demo", "--real-data", str(folder), "--clusters", "2", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    tx = json.loads((tmp_path / "o" / "stack" / "taxonomy.json").read_text())
    assert tx["labels"] == [f"task[{i}]" for i in range(K)]


# ---- error policy -------------------------------------------------------------------------------


def _run_cli(*argv: str, prelude: str = "") -> subprocess.CompletedProcess:
    """`fastrsa ARGV` in a fresh interpreter, after `prelude` (e.g. a monkeypatch)."""
    code = f"import sys\n{prelude}\nfrom fastrsa.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300
    )


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    np.save(tmp_path / "r.npy", _condensed())

    def bug(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(io, "load_rdms", bug)
    with pytest.raises(KeyError):
        main(["compare", str(tmp_path / "r.npy")])
    prelude = (
        "import fastrsa.io as io\ndef bug(*a, **k): raise KeyError('a bug')\nio.load_rdms = bug"
    )
    done = _run_cli("compare", str(tmp_path / "r.npy"), prelude=prelude)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "KeyError: 'a bug'" in done.stderr


@pytest.mark.parametrize("where", ["before the command", "after the command"])
def test_debug_shows_the_traceback_of_a_user_error(tmp_path, where):
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    argv = ["compare", str(tmp_path / "bad.npy")]
    plain = _run_cli(*argv)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert len(plain.stderr.strip().splitlines()) == 1 and "not a valid .npy" in plain.stderr
    argv = ["--debug", *argv] if where == "before the command" else [*argv, "--debug"]
    debug = _run_cli(*argv)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "ValueError" in debug.stderr
    with pytest.raises(ValueError, match="not a valid .npy"):
        main(argv)


def _raise_from(filename: str, exc: BaseException) -> BaseException:
    """`exc` raised by code whose frame lies in `filename` (as if that file raised it)."""
    try:
        exec(compile("raise exc", filename, "exec"), {"exc": exc})
    except BaseException as err:  # noqa: BLE001
        return err
    raise AssertionError("not raised")


def test_which_errors_are_the_users():
    inside = str(Path(io.__file__).with_name("_backend.py"))
    for err in [
        ValueError("x"),
        TypeError("x"),
        UserError("x"),
        FileNotFoundError(2, "No such file", "f"),
        PermissionError(13, "Permission denied", "f"),
        IsADirectoryError(21, "Is a directory", "f"),
        NotADirectoryError(20, "Not a directory", "f"),
        MissingPackage("plots need matplotlib: `pip install matplotlib`"),
        NeedsDevice("device='cuda' needs onnxruntime-gpu"),
        _raise_from(inside, RuntimeError("backend 'triton' needs a CUDA GPU, and torch sees none")),
        _raise_from(inside, RuntimeError("backend 'torch' needs PyTorch (x); install it with ...")),
    ]:
        assert is_user_error(err), repr(err)
    for err in [
        KeyError("k"),
        IndexError("i"),
        AttributeError("a"),
        AssertionError("a"),
        ZeroDivisionError("z"),
        # torch's own RuntimeErrors, even when they mention CUDA, are not fastrsa's messages
        _raise_from("/site-packages/torch/cuda/__init__.py", RuntimeError("CUDA error: needs GPU")),
        _raise_from(inside, RuntimeError("shape mismatch in the kernel")),
        _raise_from(inside, ModuleNotFoundError("No module named 'fastrsa.kernels'")),
        RuntimeError("needs a GPU"),  # raised nowhere: no traceback to tell where it came from
    ]:
        assert not is_user_error(err), repr(err)


def test_a_runtime_error_from_elsewhere_keeps_its_traceback(tmp_path, monkeypatch):
    np.save(tmp_path / "r.npy", _condensed())

    def torch_internal(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr("fastrsa.cli.compare.compare", torch_internal)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        main(["compare", str(tmp_path / "r.npy")])


# ---- no process-wide side effects ---------------------------------------------------------------


def test_a_taxonomy_plot_keeps_matplotlib_backend_and_pyplot(tmp_path):
    import matplotlib

    from fastrsa.taxonomy import taxonomy

    before = matplotlib.get_backend()
    result = taxonomy(_condensed(), LABELS_BY_KEY, n_clusters=2)
    result.save(tmp_path / "tx")
    assert matplotlib.get_backend() == before
    assert (tmp_path / "tx" / "taxonomy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "tx" / "taxonomy.svg").read_bytes()[:2000]
    # in a fresh interpreter with a backend of the user's choice: kept, and pyplot never imported
    code = (
        "import sys, matplotlib\n"
        "matplotlib.use('pdf')\n"
        "import fastrsa, numpy as np\n"
        "from fastrsa.taxonomy import taxonomy\n"
        "from fastrsa.plots import plot_taxonomy\n"
        "rng = np.random.default_rng(0)\n"
        "t = taxonomy(rng.random((4, 15)), ['a', 'b', 'c', 'd'])\n"
        f"plot_taxonomy(t, {str(tmp_path / 'p.png')!r})\n"
        "t.save(" + repr(str(tmp_path / "tx2")) + ")\n"
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["pdf", "False"]


def test_the_umask_is_read_without_changing_it(monkeypatch):
    if not os.path.exists("/proc/self/status"):
        pytest.skip("no /proc: the umask can only be read by setting it")
    real = os.umask(0o022)
    os.umask(real)

    def refuse(mask):
        raise AssertionError("os.umask changed the process's umask")

    monkeypatch.setattr(os, "umask", refuse)
    assert io_atomic.umask() == real


def test_features_follow_the_sessions_gpu_not_gpu_0():
    from fastrsa import onnx

    class Session:
        def __init__(self, providers, options):
            self._providers, self._options = providers, options

        def get_providers(self):
            return self._providers

        def get_provider_options(self):
            return self._options

    cuda = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    on_gpu_1 = Session(cuda, {"CUDAExecutionProvider": {"device_id": "1"}})
    assert onnx.torch_device(on_gpu_1) == "cuda:1" and onnx.cuda_device_id(on_gpu_1) == 1
    assert onnx.torch_device(Session(cuda, {"CUDAExecutionProvider": {}})) == "cuda:0"
    assert onnx.torch_device(Session(["CPUExecutionProvider"], {})) == "cpu"
    assert onnx.cuda_index("cuda:2") == 2 and onnx.cuda_index("cuda") is None
    with pytest.raises(ValueError, match="'cuda:N'"):
        onnx.cuda_index("gpu")


def test_cli_features_refuses_an_unknown_device_in_one_line(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    (tmp_path / "images").mkdir()
    argv = ["features", "--models", str(tmp_path / "m.onnx"), "--images", str(tmp_path / "images")]
    assert main([*argv, "--out", str(tmp_path / "f.npz"), "--device", "tpu"]) == 2
    assert "device must be 'auto', 'cuda', 'cuda:N' or 'cpu'" in capsys.readouterr().err


def test_export_onnx_leaves_torch_global_rng_alone(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from fastrsa.models import SmallEncoder, export_onnx

    model = SmallEncoder()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(model, tmp_path / "small.onnx", layers=["compressed"], image_size=32)
    assert torch.equal(torch.get_rng_state(), state)


# ---- versions -----------------------------------------------------------------------------------


def test_one_versions_helper_for_taxonomy_and_diff(tmp_path, capsys):
    from fastrsa._versions import package_versions
    from fastrsa.taxonomy import taxonomy

    versions = package_versions()
    assert {"fastrsa", "numpy", "scipy"} <= set(versions)
    result = taxonomy(_condensed(), LABELS_BY_KEY)
    assert result.metadata["versions"] == versions
    result.save(tmp_path / "old", plots=False)
    result.metadata["versions"] = {**versions, "numpy": "0.0.1"}
    result.save(tmp_path / "new", plots=False)
    old, new = tmp_path / "old" / "taxonomy.json", tmp_path / "new" / "taxonomy.json"
    assert main(["diff", str(old), str(new)]) == 0  # metadata is not compared ...
    out = capsys.readouterr().out
    assert out.startswith("equal:")
    assert f"package versions differ: numpy {versions['numpy']} -> 0.0.1" in out  # ... but noted
