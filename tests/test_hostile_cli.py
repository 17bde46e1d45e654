"""Hostile input through the API (features.extract / load_images / image_paths) and the CLI: a
correct result, or one clear error naming the user's argument, file, label or model (exit 2 and
one line on stderr), with nothing half written and nothing silently NaN or merged."""

import importlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from fastrsa import features as F  # noqa: E402
from fastrsa import io  # noqa: E402
from fastrsa.cli import main  # noqa: E402

SIZE = 8  # the test models' input: (batch, 3, 8, 8)


def _rng(seed: int = 11) -> np.random.Generator:
    return np.random.default_rng(seed)


def _model(path: Path, op: str = "Identity") -> Path:
    """A one-node ONNX model: "compressed" = op(images), images (batch, 3, SIZE, SIZE)."""
    from onnx import TensorProto, helper

    shape = ["batch", 3, SIZE, SIZE]
    graph = helper.make_graph(
        [helper.make_node(op, ["images"], ["compressed"])],
        f"test_{op}",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("compressed", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def _image_folder(folder: Path, n: int = 4, seed: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = _rng(seed)
    for i in range(n):
        pixels = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:02d}.png")
    return folder


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height RGB pixels and holds none: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def _error_line(capsys) -> str:
    """The one line the CLI wrote on stderr (no traceback, nothing else)."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _features_cli(models, images, out, *extra) -> int:
    return main(
        ["features", "--models", *map(str, models), "--images", str(images), "--out", str(out)]
        + [str(e) for e in extra]
    )


# ---- 1. models whose outputs are NaN or Inf ------------------------------------------------


def _dark_third_image(folder: Path) -> Path:
    """White images (log(1) = 0 is finite) except img02, black: log(-1) = NaN."""
    folder.mkdir()
    for i in range(4):
        value = 0 if i == 2 else 255
        Image.fromarray(np.full((SIZE, SIZE, 3), value, np.uint8)).save(folder / f"img{i:02d}.png")
    return folder


def test_nan_outputs_are_refused_naming_model_layer_and_image(tmp_path):
    model = _model(tmp_path / "logmodel.onnx", "Log")
    images = _dark_third_image(tmp_path / "images")
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"logmodel\.onnx gives NaN or Inf at layer 'compressed'"):
        F.extract([model], images, batch_size=2, cache_dir=cache, progress=False)
    with pytest.raises(ValueError, match=r"first .*img02\.png"):
        F.extract([model], images, batch_size=2, progress=False)
    assert list(cache.iterdir()) == []  # nothing cached


def test_inf_outputs_from_an_array_name_the_image_index(tmp_path):
    model = _model(tmp_path / "logmodel.onnx", "Log")
    pixels = np.full((3, 3, SIZE, SIZE), 0.5, np.float32)
    pixels[1, 0, 2, 2] = 0.0  # log(0) = -inf
    with pytest.raises(ValueError, match=r"logmodel\.onnx .*'compressed'.*images\[1\]"):
        F.extract([model], pixels, progress=False)


def test_cli_nan_outputs_exit_2(tmp_path, capsys):
    model = _model(tmp_path / "logmodel.onnx", "Log")
    images = _dark_third_image(tmp_path / "images")
    out = tmp_path / "feats.npz"
    assert _features_cli([model], images, out) == 2
    line = _error_line(capsys)
    assert "logmodel.onnx" in line and "'compressed'" in line and "img02.png" in line
    assert not out.exists()


# ---- 2. two models with the same file stem -------------------------------------------------


def test_models_sharing_a_stem_keep_distinct_labels(tmp_path):
    a = _model(tmp_path / "a" / "enc.onnx", "Identity")
    b = _model(tmp_path / "b" / "enc.onnx", "Neg")
    c = _model(tmp_path / "b" / "other.onnx", "Abs")
    images = _image_folder(tmp_path / "images")
    feats = F.extract([a, b, c], images, progress=False)
    assert feats.models == ["a/enc", "b/enc", "other"]
    x = feats.stack("compressed")
    assert x.shape == (3, 4, 3 * SIZE * SIZE)
    np.testing.assert_array_equal(x[1], -x[0])  # the second enc.onnx is not the first's copy


def test_the_same_model_given_twice_is_refused(tmp_path):
    a = _model(tmp_path / "a" / "enc.onnx")
    images = _image_folder(tmp_path / "images")
    with pytest.raises(ValueError, match=r"enc\.onnx .*same file, given twice"):
        F.extract([a, tmp_path / "a" / ".." / "a" / "enc.onnx"], images, progress=False)


def test_cli_models_sharing_a_stem_are_saved_apart(tmp_path, capsys):
    a = _model(tmp_path / "a" / "enc.onnx", "Identity")
    b = _model(tmp_path / "b" / "enc.onnx", "Neg")
    out = tmp_path / "feats.npz"
    assert _features_cli([a, b], _image_folder(tmp_path / "images"), out) == 0
    saved = io.load_arrays(out)
    assert sorted(saved) == ["a/enc.compressed", "b/enc.compressed"]
    np.testing.assert_array_equal(saved["b/enc.compressed"], -saved["a/enc.compressed"])


# ---- 3. image folders and image arrays -----------------------------------------------------


@pytest.mark.parametrize("kind", ["dangling", "looping"])
def test_bad_symlinks_in_the_image_folder_are_named(tmp_path, capsys, kind):
    images = _image_folder(tmp_path / "images")
    link = images / "img99.png"
    if kind == "dangling":
        link.symlink_to(tmp_path / "gone.png")
    else:
        link.symlink_to(images / "img98.png")
        (images / "img98.png").symlink_to(link)
    with pytest.raises(ValueError, match=r"img9[89]\.png is a symbolic link that dangles or loops"):
        F.image_paths(images)
    with pytest.raises(ValueError, match=r"img9[89]\.png"):
        F.load_images(images, SIZE)
    out = tmp_path / "feats.npz"
    assert _features_cli([_model(tmp_path / "m.onnx")], images, out) == 2
    assert "symbolic link" in _error_line(capsys) and not out.exists()


def test_sixteen_bit_pngs_are_scaled_not_clipped(tmp_path):
    gray8 = _rng().integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(gray8).save(folder / "a8.png")
    Image.fromarray(gray8.astype(np.uint16) * 257).save(folder / "b16.png")
    with Image.open(folder / "b16.png") as img:
        assert img.mode.startswith("I")  # really a 16-bit image
    eight, sixteen = F.load_images(folder, SIZE)
    np.testing.assert_allclose(sixteen, eight, atol=1e-5)
    assert sixteen.min() >= -1 and sixteen.max() <= 1


def test_cli_sixteen_bit_pngs_give_the_same_features(tmp_path):
    gray8 = _rng(5).integers(0, 256, (3, SIZE, SIZE), dtype=np.uint8)
    folders = {8: tmp_path / "eight", 16: tmp_path / "sixteen"}
    for bits, folder in folders.items():
        folder.mkdir()
        for i, g in enumerate(gray8):
            Image.fromarray(g if bits == 8 else g.astype(np.uint16) * 257).save(folder / f"{i}.png")
    model = _model(tmp_path / "m.onnx")
    for bits, folder in folders.items():
        assert _features_cli([model], folder, tmp_path / f"f{bits}.npz") == 0
    f8, f16 = (io.load_arrays(tmp_path / f"f{b}.npz")["m.compressed"] for b in (8, 16))
    np.testing.assert_allclose(f16, f8, atol=1e-5)


def test_float_pixels_outside_minus_one_to_one_are_refused(tmp_path):
    model = _model(tmp_path / "m.onnx")
    pixels = _rng().uniform(0, 255, (3, 3, SIZE, SIZE)).astype(np.float32)
    with pytest.raises(ValueError, match=r"images: float pixels must lie in \[-1, 1\]"):
        F.load_images(pixels, SIZE)
    with pytest.raises(ValueError, match=r"images: .*\[-1, 1\].*first outside at index"):
        F.extract([model], pixels, progress=False)
    ok = pixels / 127.5 - 1.0
    np.testing.assert_array_equal(F.load_images(ok, SIZE), ok)


def test_decompression_bomb_is_refused_naming_the_file(tmp_path, capsys):
    images = _image_folder(tmp_path / "images")
    _png_header_only(images / "zbomb.png", 100_000, 100_000)
    with pytest.raises(ValueError, match=r"zbomb\.png declares more pixels .*MAX_IMAGE_PIXELS"):
        F.load_images(images, SIZE)
    out = tmp_path / "feats.npz"
    assert _features_cli([_model(tmp_path / "m.onnx")], images, out) == 2
    line = _error_line(capsys)
    assert "zbomb.png" in line and "decompression bomb" in line and not out.exists()


def test_images_over_the_warning_limit_are_not_decoded(tmp_path, monkeypatch, capsys):
    """Between MAX_IMAGE_PIXELS and twice that, PIL only warns, then decodes: refuse instead."""
    images = _image_folder(tmp_path / "images")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(images / "zbig.png")  # 1600 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"zbig\.png declares more pixels"):
        F.load_images(images, SIZE)
    assert _features_cli([_model(tmp_path / "m.onnx")], images, tmp_path / "f.npz") == 2
    assert "zbig.png" in _error_line(capsys)


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("broken.png", b"\x89PNG\r\n\x1a\n garbage", r"broken\.png is not a readable image"),
        ("notes.txt", b"hello", r"not images: \['notes\.txt'\]"),
    ],
)
def test_corrupt_or_foreign_files_are_named(tmp_path, capsys, name, content, match):
    images = _image_folder(tmp_path / "images")
    (images / name).write_bytes(content)
    with pytest.raises(ValueError, match=match):
        F.load_images(images, SIZE)
    out = tmp_path / "feats.npz"
    assert _features_cli([_model(tmp_path / "m.onnx")], images, out) == 2
    assert name in _error_line(capsys) and not out.exists()


def test_images_of_the_wrong_kind_are_type_errors(tmp_path):
    with pytest.raises(TypeError, match="images must be a folder, a list of image paths"):
        F.load_images(42, SIZE)
    with pytest.raises(ValueError, match="images: .* is a file; expected a folder"):
        F.image_paths(_model(tmp_path / "m.onnx"))


def test_onnx_external_data_stays_in_the_models_folder(tmp_path, capsys):
    """Still holds: a model whose weights point outside its folder ("../w.bin") is refused."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((1, 3, SIZE, SIZE), np.float32), "w")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in {"location": "../w.bin", "offset": "0", "length": "768"}.items():
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    weight.ClearField("raw_data")
    (tmp_path / "w.bin").write_bytes(np.ones(3 * SIZE * SIZE, np.float32).tobytes())
    shape = ["batch", 3, SIZE, SIZE]
    graph = helper.make_graph(
        [helper.make_node("Mul", ["images", "w"], ["compressed"])],
        "escapes",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("compressed", TensorProto.FLOAT, shape)],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "models" / "ext.onnx"
    path.parent.mkdir()
    path.write_bytes(model.SerializeToString())
    images = _image_folder(tmp_path / "images")
    with pytest.raises(ValueError, match=r"models: could not load .*ext\.onnx"):
        F.extract([path], images, progress=False)
    assert _features_cli([path], images, tmp_path / "f.npz") == 2
    assert "ext.onnx" in _error_line(capsys) and not (tmp_path / "f.npz").exists()


# ---- 4. the features cache ------------------------------------------------------------------


def _no_inference(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("inference ran")

    monkeypatch.setattr(F, "_run", refuse)


def test_a_cache_path_that_is_a_file_is_refused_before_inference(tmp_path, monkeypatch, capsys):
    model = _model(tmp_path / "m.onnx")
    images = _image_folder(tmp_path / "images")
    (tmp_path / "cache").write_text("a file")
    _no_inference(monkeypatch)
    with pytest.raises(ValueError, match=r"cache_dir: .*cache is a file; expected a folder"):
        F.extract([model], images, cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(ValueError, match=r"cache_dir: cannot create the folder .*cache[/\\]sub"):
        F.extract([model], images, cache_dir=tmp_path / "cache" / "sub", progress=False)
    out = tmp_path / "feats.npz"
    assert _features_cli([model], images, out, "--cache", tmp_path / "cache") == 2
    line = _error_line(capsys)
    assert "--cache" in line and str(tmp_path / "cache") in line and not out.exists()


@pytest.mark.parametrize("tamper", ["fewer images", "float64", "1-D", "garbage", "NaN"])
def test_a_cache_entry_of_the_wrong_shape_is_recomputed(tmp_path, tamper):
    model = _model(tmp_path / "m.onnx")
    images = _image_folder(tmp_path / "images")
    cache = tmp_path / "cache"
    want = F.extract([model], images, cache_dir=cache, progress=False).stack("compressed")
    (entry,) = cache.glob("*.npy")
    good = np.load(entry)
    if tamper == "fewer images":
        np.save(entry, good[:2])
    elif tamper == "float64":
        np.save(entry, good.astype(np.float64) + 1.0)
    elif tamper == "1-D":
        np.save(entry, good.ravel())
    elif tamper == "garbage":
        entry.write_bytes(b"not an npy")
    else:
        bad = good.copy()
        bad[1, 3] = np.nan
        np.save(entry, bad)
    got = F.extract([model], images, cache_dir=cache, progress=False).stack("compressed")
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.load(entry), good)  # and the entry is repaired


def test_cli_cache_entry_of_another_image_count_is_recomputed(tmp_path):
    model = _model(tmp_path / "m.onnx")
    images = _image_folder(tmp_path / "images", n=5)
    cache = tmp_path / "cache"
    assert _features_cli([model], images, tmp_path / "a.npz", "--cache", cache) == 0
    (entry,) = cache.glob("*.npy")
    np.save(entry, np.zeros((3, 3 * SIZE * SIZE), np.float32))
    assert _features_cli([model], images, tmp_path / "b.npz", "--cache", cache) == 0
    a, b = (io.load_arrays(tmp_path / f"{k}.npz")["m.compressed"] for k in "ab")
    assert b.shape == (5, 3 * SIZE * SIZE)
    np.testing.assert_array_equal(a, b)


def test_cache_still_resumes_after_a_kill(tmp_path, monkeypatch):
    models = [_model(tmp_path / f"{name}.onnx", op) for name, op in [("p", "Abs"), ("q", "Neg")]]
    images = _image_folder(tmp_path / "images")
    real, calls = F._run, []

    def dies_at_q(session, pixels, layers, batch_size, label, *rest):
        if label == "q":
            raise KeyboardInterrupt
        calls.append(label)
        return real(session, pixels, layers, batch_size, label, *rest)

    monkeypatch.setattr(F, "_run", dies_at_q)
    with pytest.raises(KeyboardInterrupt):
        F.extract(models, images, cache_dir=tmp_path / "cache", progress=False)
    monkeypatch.setattr(F, "_run", real)
    got = F.extract(models, images, cache_dir=tmp_path / "cache", progress=False)
    want = F.extract(models, images, progress=False)
    np.testing.assert_array_equal(got.stack("compressed"), want.stack("compressed"))
    assert calls == ["p"]


# ---- 5. output paths in the CLI ----------------------------------------------------------------


@pytest.fixture
def inputs(tmp_path):
    """Small valid inputs for every command: features, RDMs, affinities, a model, images."""
    rng = _rng(7)
    feats = {f"m{i}": rng.standard_normal((6, 5)) for i in range(3)}
    np.savez(tmp_path / "feats.npz", **feats)
    from scipy.spatial.distance import pdist

    np.savez(tmp_path / "rdms.npz", **{k: pdist(v, "correlation") for k, v in feats.items()})
    pairs = [(s, t) for s in feats for t in feats if s != t]
    affinity = {
        f"{s}__{t}": float(v) for (s, t), v in zip(pairs, rng.random(len(pairs)), strict=True)
    }
    io.save_json(tmp_path / "aff.json", {"affinity": affinity})
    _model(tmp_path / "m.onnx")
    _image_folder(tmp_path / "images")
    (tmp_path / "weights").mkdir()
    return tmp_path


COMMANDS = {
    "rdms": ("--out", "file", ["rdms", "{d}/feats.npz", "--out", "{o}"]),
    "compare": ("--out", "file", ["compare", "{d}/rdms.npz", "--out", "{o}"]),
    "features": (
        "--out",
        "file",
        ["features", "--models", "{d}/m.onnx", "--images", "{d}/images", "--out", "{o}"],
    ),
    "features --cache": (
        "--cache",
        "folder",
        ["features", "--models", "{d}/m.onnx", "--images", "{d}/images", "--out", "{d}/f.npz"]
        + ["--cache", "{o}"],
    ),
    "taxonomy": ("--out", "folder", ["taxonomy", "--rdms", "{d}/rdms.npz", "--out", "{o}"]),
    "evaluate": (
        "--json",
        "file",
        ["evaluate", "--rdms", "{d}/rdms.npz", "--affinities", "{d}/aff.json", "--json", "{o}"],
    ),
    "demo": ("--out", "folder", ["demo", "--images", "12", "--no-reference", "--out", "{o}"]),
    "export-taskonomy": (
        "--out",
        "folder",
        ["export-taskonomy", "--weights", "{d}/weights", "--out", "{o}"],
    ),
}


def _listing(folder: Path) -> set:
    return {p.relative_to(folder) for p in folder.rglob("*")}


def _expensive_work_refused(monkeypatch):
    """Any of these running means the output was not checked first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the command started its work before checking its output")

    # where each command module looks its work up (fastrsa/cli/<command>.py)
    for target in [
        "fastrsa.cli.rdms.rdms",
        "fastrsa.cli.compare.compare",
        "fastrsa.cli.taxonomy.taxonomy",
        "fastrsa.cli.evaluate.taxonomy",
        "fastrsa.cli.demo.run_demo",
        "fastrsa.cli.demo.run_real_data",
        "fastrsa.cli._common.rdms",  # taxonomy --models
    ]:
        monkeypatch.setattr(target, refuse)
    monkeypatch.setattr(F, "session", refuse)  # fastrsa.onnx.session, as extract calls it
    # fastrsa.rdms is also a function: reach the module itself (rdms_of_feature_file, --features)
    monkeypatch.setattr(importlib.import_module("fastrsa.rdms"), "rdms", refuse)


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("wrong", ["the other kind", "under a file"])
def test_cli_refuses_an_unusable_output_before_any_work(
    inputs, capsys, monkeypatch, command, wrong
):
    option, kind, argv = COMMANDS[command]
    if wrong == "the other kind":  # a folder where a file is meant, a file where a folder is
        out = inputs / "target"
        out.mkdir() if kind == "file" else out.write_text("a file")
    else:
        (inputs / "plain.txt").write_text("a file")
        out = inputs / "plain.txt" / "sub" / ("x.npz" if kind == "file" else "dir")
    _expensive_work_refused(monkeypatch)
    before = _listing(inputs)
    assert main([a.format(d=inputs, o=out) for a in argv]) == 2
    line = _error_line(capsys)
    assert f"{option}: " in line and str(out) in line
    assert _listing(inputs) == before  # nothing written


@pytest.mark.parametrize("command", ["rdms", "compare", "taxonomy", "evaluate", "features"])
def test_cli_refuses_a_read_only_output_folder(inputs, capsys, monkeypatch, command):
    option, kind, argv = COMMANDS[command]
    locked = inputs / "locked"
    locked.mkdir()
    out = locked / ("out.json" if command == "evaluate" else "out.npz")
    out = out if kind == "file" else locked / "result"
    real_access = os.access
    # tests run as root here, where a chmod 0o555 folder stays writable: fake the permission
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode)
    )
    _expensive_work_refused(monkeypatch)
    assert main([a.format(d=inputs, o=out) for a in argv]) == 2
    line = _error_line(capsys)
    assert f"{option}: cannot write {out}: permission denied in {locked}" in line
    assert list(locked.iterdir()) == []


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write a 0o555 folder"
)
def test_cli_refuses_a_chmod_read_only_folder(inputs, capsys):
    locked = inputs / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["rdms", str(inputs / "feats.npz"), "--out", str(locked / "o.npz")]) == 2
        assert "--out: cannot write" in _error_line(capsys)
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize(
    "command,option,out",
    [
        ("rdms", "--out", "o.npz"),
        ("compare", "--out", "o.json"),
        ("taxonomy", "--out", "tx"),
        ("evaluate", "--json", "o.json"),
    ],
)
def test_cli_a_write_that_fails_late_is_one_line(inputs, capsys, monkeypatch, command, option, out):
    """Permission denied only at the write (e.g. a quota, a race): exit 2, one line, no file."""

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(Path(path).parent / ".tmp123"))

    monkeypatch.setattr(io, "save_npz", denied)
    monkeypatch.setattr(io, "save_json", denied)
    taxonomy_class = importlib.import_module("fastrsa.taxonomy").Taxonomy
    monkeypatch.setattr(taxonomy_class, "save", lambda self, out_dir, **kw: denied(out_dir))
    _, _, argv = COMMANDS[command]
    assert main([a.format(d=inputs, o=inputs / out) for a in argv]) == 2
    line = _error_line(capsys)
    assert f"{option}: cannot write {inputs / out} (Permission denied)" in line
    assert not (inputs / out).exists() or (inputs / out).is_dir()


@pytest.mark.parametrize("error", [PermissionError, IsADirectoryError, NotADirectoryError])
def test_cli_os_errors_of_user_paths_exit_2(inputs, capsys, monkeypatch, error):
    def fails(path, name="file"):
        raise error(13, os.strerror(13), str(path))

    monkeypatch.setattr("fastrsa.io.rdm_files.load_arrays", fails)  # as io.load_rdms reads
    assert main(["compare", str(inputs / "rdms.npz")]) == 2
    assert str(inputs / "rdms.npz") in _error_line(capsys)


def test_cli_other_exceptions_keep_their_traceback(inputs, monkeypatch):
    def bug(path, name="file"):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("fastrsa.io.rdm_files.load_arrays", bug)  # as io.load_rdms reads
    with pytest.raises(ZeroDivisionError):
        main(["compare", str(inputs / "rdms.npz")])


# ---- 6. square (k, k) arrays: one square RDM or k condensed RDMs --------------------------------


def _condensed_rows(k: int = 6, seed: int = 9) -> np.ndarray:
    """k condensed RDMs of 4 images (length 6): a (6, 6) array that is no square RDM."""
    from scipy.spatial.distance import pdist

    rng = _rng(seed)
    return np.stack([pdist(rng.standard_normal((4, 3)), "correlation") for _ in range(k)])


def _square_rdm(n: int = 6, seed: int = 10) -> np.ndarray:
    from scipy.spatial.distance import pdist, squareform

    return squareform(pdist(_rng(seed).standard_normal((n, 3)), "correlation"))


def _compare(capsys, *argv) -> tuple[int, dict, list[str]]:
    out = Path(argv[-1])
    code = main(["compare", *map(str, argv[:-1]), "--out", str(out)])
    captured = capsys.readouterr()
    saved = io.load_arrays(out) if code == 0 else {}
    return code, saved, captured.err.strip().splitlines()


def test_square_batch_of_condensed_rdms_is_read_as_rows_with_a_note(tmp_path, capsys):
    rows = _condensed_rows()
    np.save(tmp_path / "batch.npy", rows)
    code, saved, err = _compare(capsys, tmp_path / "batch.npy", tmp_path / "s.npz")
    assert code == 0 and saved["similarity"].shape == (6, 6)
    assert list(saved["labels_a"]) == [f"batch[{i}]" for i in range(6)]
    assert len(err) == 1 and "read as 6 condensed RDMs" in err[0] and "--condensed" in err[0]
    from fastrsa.reference import compare_ref

    np.testing.assert_allclose(saved["similarity"], compare_ref(rows), atol=1e-10)


def test_a_valid_square_rdm_says_how_it_was_read(tmp_path, capsys):
    np.save(tmp_path / "one.npy", _square_rdm())
    rows = np.stack([_square_rdm(seed=s)[np.triu_indices(6, 1)] for s in (1, 2, 3)])
    np.save(tmp_path / "more.npy", rows)
    code, saved, err = _compare(
        capsys, tmp_path / "one.npy", "--with", tmp_path / "more.npy", tmp_path / "s.npz"
    )
    assert code == 0 and saved["similarity"].shape == (1, 3)
    assert list(saved["labels_a"]) == ["one"]
    assert len(err) == 1 and "read as one square RDM of 6 images" in err[0]


def test_condensed_and_square_flags_decide(tmp_path, capsys):
    sym = _square_rdm()  # symmetric, zero diagonal: either reading is possible
    np.save(tmp_path / "x.npy", sym)
    np.save(tmp_path / "y.npy", np.stack([_square_rdm(seed=s) for s in (4, 5)]))
    code, saved, err = _compare(capsys, tmp_path / "x.npy", "--condensed", tmp_path / "c.npz")
    assert code == 0 and saved["similarity"].shape == (6, 6) and err == []
    code, saved, err = _compare(
        capsys, tmp_path / "x.npy", "--with", tmp_path / "y.npy", "--square", tmp_path / "s.npz"
    )
    assert code == 0 and saved["similarity"].shape == (1, 2) and err == []
    assert list(saved["labels_b"]) == ["y[0]", "y[1]"]  # a (k, n, n) stack of square RDMs
    np.save(tmp_path / "rows.npy", _condensed_rows())
    code, _, err = _compare(capsys, tmp_path / "rows.npy", "--square", tmp_path / "t.npz")
    assert code == 2 and len(err) == 1
    assert "rdms: array 'rows' of shape (6, 6) is not a square RDM" in err[0]
    assert not (tmp_path / "t.npz").exists()
    with pytest.raises(SystemExit) as exit_:
        main(["compare", str(tmp_path / "x.npy"), "--square", "--condensed"])
    assert exit_.value.code == 2


def test_a_square_array_that_fits_neither_reading_is_refused(tmp_path, capsys):
    bad = _rng().random((5, 5))  # 5 is no condensed length, and it is not symmetric
    np.savez(tmp_path / "r.npz", odd=bad)
    assert main(["compare", str(tmp_path / "r.npz")]) == 2
    line = _error_line(capsys)
    assert "rdms: array 'odd' of shape (5, 5) is not a square RDM" in line


@pytest.mark.parametrize("problem", ["nan", "constant"])
def test_compare_errors_name_the_rdm_not_an_internal_variable(tmp_path, capsys, problem):
    rows = _condensed_rows(k=3)
    if problem == "nan":
        rows[2, 4] = np.nan
    else:
        rows[2] = 0.5
    np.savez(tmp_path / "r.npz", good=rows[0], also=rows[1], bad=rows[2])
    assert main(["compare", str(tmp_path / "r.npz")]) == 2
    line = _error_line(capsys)
    assert "'bad'" in line and " a[" not in line and "a holds" not in line
