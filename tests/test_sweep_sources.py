"""Sweep sources, the image set and the features -> RDM buffer (fastrsa.sweeps.image_set, .sources,
.feature_buffer): every source kind against the in-memory path (extract + rdms, or rdms of the
arrays), the spilled FeatureBuffer against the float64 reference, and bad input named before any
work."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import fastrsa
from fastrsa.reference import METRICS, rdm_ref
from fastrsa.sweeps.feature_buffer import FeatureBuffer
from fastrsa.sweeps.image_set import ImageSet, image_set
from fastrsa.sweeps.sources import (
    FeatureSource,
    ModuleSource,
    ONNXSource,
    RDMSource,
    resolve_sources,
)
from fastrsa.sweeps.spill import spill_files

SIZE = 32
# (dtype, atol of correlation/cosine, relative tolerance of euclidean): the rdms contract
TOLERANCES = [(np.float32, 1e-5, 1e-6), (np.float64, 1e-12, 1e-10)]


def _spilled(x, metric, chunk=16, tmp=None, batch=5):
    n, d = x.shape
    with FeatureBuffer(n, d, x.dtype, 64, tmp, chunk=chunk) as buf:
        assert buf.spilled
        order = list(range(0, n, batch))[::-1]  # rows may come in any order
        for start in order:
            buf.add(start, x[start : start + batch])
        return buf.rdm(metric)


def _check(out, x, metric, atol, rtol):
    ref = rdm_ref(x[None].astype(np.float64), metric)[0]
    assert out.shape == ref.shape
    if metric == "euclidean":
        np.testing.assert_allclose(out, ref, rtol=rtol, atol=0)
    else:
        np.testing.assert_allclose(out, ref, rtol=0, atol=atol)


# ---- FeatureBuffer ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,atol,rtol", TOLERANCES)
@pytest.mark.parametrize("shape", [(3, 5), (9, 1), (37, 101), (20, 16)], ids=str)
@pytest.mark.parametrize("metric", METRICS)
def test_spilled_matches_reference(rng, tmp_path, metric, shape, dtype, atol, rtol):
    x = (rng.standard_normal(shape) + 2.0).astype(dtype)
    if shape[1] == 1 and metric == "correlation":
        pytest.skip("one feature: every row is constant")
    out = _spilled(x, metric, tmp=tmp_path)
    assert out.dtype == dtype
    _check(out, x, metric, atol, rtol)
    assert spill_files(tmp_path) == []


@pytest.mark.parametrize("dtype,atol,rtol", TOLERANCES)
@pytest.mark.parametrize("metric", METRICS)
def test_spilled_shared_values_and_near_duplicates(rng, tmp_path, metric, dtype, atol, rtol):
    """Repeated rows, ties (integer-valued rows), a large offset, and rows 1e-3 apart at norm
    ~400 beside far-away rows (euclidean must recompute them, not return 0)."""
    x = 50.0 * rng.standard_normal((23, 64))
    x[4] = x[2]  # a repeated row
    x[6] = np.round(x[6] / 25.0)  # ties
    step = rng.standard_normal(64)
    x[1] = x[0] + 1e-3 * step / np.linalg.norm(step)
    x[10:] += 5000.0
    x = x.astype(dtype)
    out = _spilled(x, metric, chunk=17, tmp=tmp_path)
    _check(out, x, metric, atol if metric != "correlation" else 10 * atol, rtol)
    if metric == "euclidean":
        assert out[0] > 0


def test_spilled_matches_in_memory_and_integer(rng, tmp_path):
    x = rng.integers(-5, 6, size=(12, 40))
    for metric in METRICS:
        out = _spilled(x, metric, tmp=tmp_path)
        want = fastrsa.rdms(x, metric)
        assert out.dtype == want.dtype == np.float64
        np.testing.assert_allclose(out, want, atol=1e-12, rtol=1e-10)


def test_spilled_extreme_scales(rng, tmp_path):
    """float64 rows near 1e+-200 (their squares over- or underflow): scaled by powers of two."""
    y = rng.standard_normal((7, 30))
    for scale in (1e-200, 1e200):
        for metric in METRICS:
            got = _spilled(scale * y, metric, tmp=tmp_path)
            ref = rdm_ref(y[None], metric)[0] * (scale if metric == "euclidean" else 1.0)
            np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_in_memory_is_rdms_exactly(rng, tmp_path):
    x = rng.standard_normal((10, 8)).astype(np.float32)
    with FeatureBuffer(10, 8, np.float32, 1 << 20, tmp_path) as buf:
        assert not buf.spilled
        buf.add(0, x[:4])
        buf.add(4, x[4:])
        for metric in METRICS:
            np.testing.assert_array_equal(buf.rdm(metric), fastrsa.rdms(x, metric))


def test_refusals_match_rdms(rng, tmp_path):
    x = rng.standard_normal((6, 20)).astype(np.float32)
    x[3] = 1.5
    with pytest.raises(ValueError) as want:
        fastrsa.rdms(x, "correlation")
    with FeatureBuffer(6, 20, np.float32, 64, tmp_path) as buf:
        buf.add(0, x)
        with pytest.raises(ValueError) as got:
            buf.rdm("correlation")
    assert str(got.value) == str(want.value)
    assert "row 3" in str(got.value) and "constant" in str(got.value)
    x[3] = 0.0
    with FeatureBuffer(6, 20, np.float32, 64, tmp_path) as buf:
        buf.add(0, x)
        with pytest.raises(ValueError, match="all zeros.*row 3"):
            buf.rdm("cosine")
        assert buf.rdm("euclidean").shape == (15,)
    x[2, 7] = np.nan
    with FeatureBuffer(6, 20, np.float32, 64, tmp_path) as buf:
        with pytest.raises(ValueError, match=r"NaN or Inf \(first at index \(2, 7\)\)"):
            buf.add(0, x)
    x[2, 7] = 0.5
    with FeatureBuffer(6, 20, np.float32, 64, tmp_path) as buf:
        buf.add(0, x[:3])
        with pytest.raises(ValueError, match="row 1 was added twice"):
            buf.add(1, x[1:2])
        with pytest.raises(ValueError, match=r"rows must be \(b, 20\)"):
            buf.add(3, x[3:, :5])
        with pytest.raises(ValueError, match="3 of 6 rows were never added"):
            buf.rdm("euclidean")
    assert spill_files(tmp_path) == []


def test_spill_file_removed_on_close_and_on_error(rng, tmp_path):
    x = rng.standard_normal((8, 50)).astype(np.float32)
    buf = FeatureBuffer(8, 50, np.float32, 64, tmp_path / "spill")  # the folder is created
    buf.add(0, x)
    assert buf.path is not None and os.path.exists(buf.path)
    assert [str(p) for p in spill_files(tmp_path / "spill")] == [buf.path]
    buf.rdm("correlation")
    buf.close()
    buf.close()  # idempotent
    assert spill_files(tmp_path / "spill") == []
    with pytest.raises(ValueError, match="closed"):
        buf.rdm("correlation")
    with pytest.raises(RuntimeError, match="boom"):
        with FeatureBuffer(8, 50, np.float32, 64, tmp_path / "spill") as buf:
            buf.add(0, x[:4])
            raise RuntimeError("boom")
    assert spill_files(tmp_path / "spill") == []
    buf = FeatureBuffer(8, 50, np.float32, 64, tmp_path / "spill")
    del buf  # garbage collected: the file goes too
    assert spill_files(tmp_path / "spill") == []


def test_full_disk_is_an_error_without_a_file(rng, tmp_path, monkeypatch):
    x = rng.standard_normal((8, 50)).astype(np.float32)
    buf = FeatureBuffer(8, 50, np.float32, 64, tmp_path)

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(buf, "_write", full)
    with pytest.raises(ValueError, match="could not write the spill file.*No space left"):
        buf.add(0, x)
    assert spill_files(tmp_path) == []


_RSS_SCRIPT = """
import json, resource, sys
import numpy as np
from fastrsa.sweeps.feature_buffer import FeatureBuffer
n, d, folder = 256, 80_000, sys.argv[1]
rng = np.random.default_rng(0)
first = rng.standard_normal((16, d), dtype=np.float32)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with FeatureBuffer(n, d, np.float32, 4 << 20, folder) as buf:
    for start in range(0, n, 16):
        buf.add(start, first + np.float32(start))
        first[:, ::7] += 1.0
    out = buf.rdm("correlation")
    spilled = buf.spilled
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ok = bool(np.isfinite(out).all())
print(json.dumps({"base": base, "peak": peak, "spilled": spilled, "ok": ok}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB on Linux")
def test_spilled_memory_stays_bounded(tmp_path):
    """82 MB of features through a 4 MiB budget: the peak RSS grows by a few MB, not 82."""
    run = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["spilled"] and got["ok"]
    grew = (got["peak"] - got["base"]) * 1024
    assert grew < 24 << 20, f"peak RSS grew by {grew / 2**20:.1f} MiB"
    assert spill_files(tmp_path) == []


# ---- the image set ------------------------------------------------------------------------------


@pytest.fixture
def image_dir(tmp_path, rng):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(7):
        h, w = rng.integers(20, 50, size=2)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            folder / f"img{i:02d}.png"
        )
    return folder


def test_image_set_batches_as_load_images(image_dir, rng):
    pytest.importorskip("PIL")
    from fastrsa.images import image_paths, load_images

    want = load_images(image_dir, SIZE)
    for images in (image_dir, image_paths(image_dir)):
        s = image_set(images)
        assert s.n == 7 and s.names is not None
        got = list(s.batches(SIZE, 3))
        assert [start for start, _ in got] == [0, 3, 6]
        np.testing.assert_array_equal(np.concatenate([b for _, b in got]), want)
    pixels = rng.integers(0, 256, (5, SIZE, SIZE, 3), dtype=np.uint8)
    for arr in (pixels, load_images(pixels, SIZE)):
        got = np.concatenate([b for _, b in image_set(arr).batches(SIZE, 2)])
        np.testing.assert_array_equal(got, load_images(arr, SIZE))
    with pytest.raises(ValueError, match=f"holds {SIZE} x {SIZE} images but"):
        next(image_set(pixels).batches(64, 2))


def test_image_set_fingerprint_is_content(image_dir, tmp_path):
    pytest.importorskip("PIL")
    a = image_set(image_dir).fingerprint
    assert (
        a
        == image_set(str(image_dir)).fingerprint
        == ImageSet(paths=sorted(image_dir.iterdir())).fingerprint
    )
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in image_dir.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    assert image_set(copy).fingerprint == a  # content, not place
    (copy / "img03.png").write_bytes((image_dir / "img04.png").read_bytes())
    assert image_set(copy).fingerprint != a
    x = np.zeros((4, 3, 8, 8), dtype=np.float32)
    assert image_set(x).fingerprint != image_set(x.astype(np.float64)).fingerprint
    assert image_set(x).fingerprint != image_set(x[:3]).fingerprint


def test_image_set_refuses_bad_input(tmp_path, image_dir):
    pytest.importorskip("PIL")
    (image_dir / "img03.png").write_bytes(b"not a png")
    images = image_set(image_dir)
    with pytest.raises(ValueError, match=r"img03.png is not a readable image"):
        images.check()
    with pytest.raises(FileNotFoundError, match="no such folder"):
        image_set(tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="no such file.*a.png"):
        image_set([tmp_path / "a.png"])
    bad = np.zeros((6, 3, 8, 8), dtype=np.float32)
    bad[5, 0, 1, 2] = 3.0
    with pytest.raises(ValueError, match="must lie in"):  # the Taskonomy way; models take it
        image_set(bad).check_size(8)
    with pytest.raises(ValueError, match="expected uint8"):
        image_set(np.zeros((2, 8, 8), dtype=np.uint8))
    with pytest.raises(TypeError, match="images must be"):
        image_set(3)


# ---- sources against the in-memory path ---------------------------------------------------------


def _all(src, layers, images=None, metric="correlation", memory=1 << 30, tmp=None, **kw):
    return dict(src.rdms(layers, images, metric, "numpy", memory, tmp, **kw))


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from fastrsa.models import LAYERS, SmallEncoder, export_onnx

    folder = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(1)
    return [
        export_onnx(SmallEncoder(), folder / name / "enc.onnx", layers=LAYERS, image_size=SIZE)
        for name in ("a", "b")
    ]


@pytest.mark.parametrize("memory", [1 << 30, 40_000], ids=["in-memory", "spilled"])
def test_onnx_source_matches_extract(onnx_models, image_dir, tmp_path, memory, monkeypatch):
    from fastrsa.features import extract
    from fastrsa.sweeps import encoders

    made = []

    def recording(*args, **kwargs):
        made.append(FeatureBuffer(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(encoders, "FeatureBuffer", recording)  # the buffers the encoders make

    layers = ["block3", "compressed"]
    src = ONNXSource(onnx_models[0])
    src.check(layers, None)
    kept = []
    got = _all(
        src,
        layers,
        image_set(image_dir),
        memory=memory,
        tmp=tmp_path,
        batch_size=3,
        keep=lambda layer, start, rows: kept.append((layer, start, rows.shape)),
    )
    assert list(got) == layers
    feats = extract([onnx_models[0]], image_dir, layers=layers, batch_size=3, progress=False)
    for layer in layers:
        want = fastrsa.rdms(feats.stack(layer)[0], backend="numpy")
        assert got[layer].dtype == np.float32
        np.testing.assert_allclose(got[layer], want, atol=2e-6)
    assert [k[:2] for k in kept if k[0] == "compressed"] == [("compressed", s) for s in (0, 3, 6)]
    # one pass, a buffer per layer: the small layer in memory, the large one spilled when tight
    assert [b.spilled for b in made] == ([False, False] if memory > 1 << 20 else [True, False])
    assert spill_files(tmp_path) == []


def test_module_source_matches_hooks_and_rdms(image_dir, tmp_path):
    torch = pytest.importorskip("torch")
    from fastrsa.images import load_images
    from fastrsa.models import SmallEncoder

    torch.manual_seed(2)
    model = SmallEncoder().train()
    layers = ["blocks.3", "blocks.4.1"]
    src = ModuleSource(model, "small", input_size=SIZE)
    src.check(layers, None)
    got = _all(src, layers, image_set(image_dir), metric="cosine", tmp=tmp_path, batch_size=4)
    assert model.training and not model._forward_hooks  # mode restored, no hook left
    assert all(not m._forward_hooks for m in model.modules())
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(load_images(image_dir, SIZE))
        want = {"blocks.3": model.blocks[3](model.blocks[2](model.blocks[1](model.blocks[0](x))))}
        want["blocks.4.1"] = model.blocks[4][1](model.blocks[4][0](want["blocks.3"]))
    for layer in layers:
        ref = fastrsa.rdms(want[layer].reshape(7, -1).numpy(), "cosine", backend="numpy")
        np.testing.assert_allclose(got[layer], ref, atol=2e-6)
    a = ModuleSource(model, "x").fingerprint()
    assert a == ModuleSource(model, "y").fingerprint()
    with torch.no_grad():
        model.blocks[0][0].weight[0, 0, 0, 0] += 1.0
    assert ModuleSource(model, "x").fingerprint() != a


@pytest.mark.parametrize("memory", [1 << 30, 1000], ids=["in-memory", "spilled"])
def test_feature_sources_match_rdms(rng, tmp_path, memory):
    zarr = pytest.importorskip("zarr")
    a = rng.standard_normal((11, 30)).astype(np.float32)
    b = rng.standard_normal((11, 7))
    np.save(tmp_path / "one.npy", a)
    np.savez(tmp_path / "many.npz", taskA=a, taskB=b)
    np.savez_compressed(tmp_path / "packed.npz", taskC=b)
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("taskD", shape=a.shape, dtype=a.dtype, chunks=(4, 30))[:] = a
    zarr.save_array(str(tmp_path / "arr.zarr"), b)
    sources = resolve_sources(
        [
            tmp_path / "one.npy",
            tmp_path / "many.npz",
            tmp_path / "packed.npz",
            tmp_path / "g.zarr",
            tmp_path / "arr.zarr",
        ]
    )
    assert [s.label for s in sources] == ["one", "taskA", "taskB", "taskC", "taskD", "arr"]
    arrays = [a, a, b, b, a, b]
    for src, x in zip(sources, arrays, strict=True):
        assert src.n_images() == 11
        src.check(["default"], 11)
        for metric in METRICS:
            got = _all(src, None, metric=metric, memory=memory, tmp=tmp_path)
            want = fastrsa.rdms(x, metric, backend="numpy")
            assert list(got) == ["default"] and got["default"].dtype == want.dtype
            if memory > 1 << 20:
                np.testing.assert_array_equal(got["default"], want)
            else:
                np.testing.assert_allclose(got["default"], want, rtol=1e-5, atol=1e-6)
    assert len({s.fingerprint() for s in sources}) == len(sources)
    assert spill_files(tmp_path) == []


def test_rdm_source_one_per_rdm(rng, tmp_path):
    rdms = fastrsa.rdms(rng.standard_normal((3, 6, 5)))
    np.savez(tmp_path / "r.npz", x=rdms[0], stack=rdms[1:])
    sources = resolve_sources([RDMSource(tmp_path / "r.npz")], layers=["block4"])
    assert [s.label for s in sources] == ["x", "stack[0]", "stack[1]"]
    for src, want in zip(sources, rdms, strict=True):
        assert src.n_images() == 6 and src.layer_names(["block4"]) == ["block4"]
        got = _all(src, ["block4"])
        np.testing.assert_array_equal(got["block4"], want)
    labelled = resolve_sources({"mine": RDMSource(tmp_path / "r.npz")})
    assert [s.label for s in labelled] == ["mine/x", "mine/stack[0]", "mine/stack[1]"]
    with pytest.raises(ValueError, match=r"source 'x' \(.*r.npz, RDM 'x'\): is an RDM of 6"):
        sources[0].check(["default"], 7)


def test_sources_and_images_copy_by_reduce(onnx_models, tmp_path, rng):
    """Sources and image sets reduce to their constructor state (the protocol by which Ray ships
    a unit to a worker): a deep copy through __reduce_ex__ keeps label and fingerprint. No
    pickle.loads here: the test never deserialises bytes."""
    import copy

    torch = pytest.importorskip("torch")
    np.save(tmp_path / "f.npy", rng.standard_normal((5, 3)))
    items = [
        ONNXSource(onnx_models[0]),
        FeatureSource(tmp_path / "f.npy"),
        RDMSource(tmp_path / "f.npy", "r"),
        ModuleSource(torch.nn.Linear(2, 2), "m"),
    ]
    for src in items:
        back = copy.deepcopy(src)
        assert back.label == src.label and back.fingerprint() == src.fingerprint()
    images = image_set(np.zeros((4, 3, 8, 8), dtype=np.float32))
    assert copy.deepcopy(images).fingerprint == images.fingerprint


def test_resolve_labels(onnx_models, tmp_path, rng):
    torch = pytest.importorskip("torch")
    np.save(tmp_path / "enc.npy", rng.standard_normal((5, 3)))
    got = resolve_sources([*onnx_models, tmp_path / "enc.npy"])
    assert [s.kind for s in got] == ["onnx", "onnx", "features"]
    assert [s.label for s in got][:2] == ["a/enc", "b/enc"]
    got = resolve_sources({"run3/epoch10": onnx_models[0], "m": torch.nn.Linear(2, 2)}, ["0"])
    assert [s.label for s in got] == ["run3/epoch10", "m"] and got[1].kind == "module"
    assert json.dumps([s.describe() for s in got])
    with pytest.raises(ValueError, match=r"labels \['x'\] name more than one source"):
        resolve_sources([ONNXSource(onnx_models[0], "x"), FeatureSource(tmp_path / "enc.npy", "x")])
    with pytest.raises(ValueError, match="same file, given twice"):
        resolve_sources([onnx_models[0], onnx_models[0]])
    with pytest.raises(ValueError, match="needs a label"):
        resolve_sources([torch.nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="layers are required"):
        resolve_sources({"m": torch.nn.Linear(2, 2)})
    with pytest.raises(ValueError, match=r"'notes' .*notes.txt\) is not a source"):
        resolve_sources([tmp_path / "notes.txt"])


# ---- bad input, named before any work -----------------------------------------------------------


def test_bad_sources_are_named(onnx_models, tmp_path, rng):
    torch = pytest.importorskip("torch")
    missing = tmp_path / "gone.onnx"
    with pytest.raises(FileNotFoundError, match=r"source 'gone' \(.*gone.onnx\): no such file"):
        ONNXSource(missing).check(["compressed"], None)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"source 'junk' \(.*junk.onnx\).*could not load"):
        ONNXSource(junk).check(["compressed"], None)
    with pytest.raises(ValueError, match=r"source 'enc' \(.*enc.onnx\): layers: 'fc' matches no"):
        ONNXSource(onnx_models[0]).check(["fc"], None)
    with pytest.raises(ValueError, match=r"source 'm' \(module Linear\): layers: 'layer4' matc"):
        ModuleSource(torch.nn.Linear(2, 2), "m").check(["layer4"], None)
    with pytest.raises(FileNotFoundError, match=r"source 'f' \(.*f.npy\): no such file"):
        FeatureSource(tmp_path / "f.npy").check(["default"], None)
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match=r"source 'broken' \(.*broken.npy\).*not a valid .npy"):
        FeatureSource(tmp_path / "broken.npy").check(["default"], None)
    (tmp_path / "broken.npz").write_bytes(b"PK garbage")
    with pytest.raises(ValueError, match=r"source 'broken' \(.*broken.npz\).*cannot read"):
        resolve_sources([tmp_path / "broken.npz"])
    np.save(tmp_path / "flat.npy", rng.standard_normal(10))
    with pytest.raises(ValueError, match=r"source 'flat' \(.*flat.npy\).*got shape \(10,\)"):
        FeatureSource(tmp_path / "flat.npy").check(["default"], None)
    np.save(tmp_path / "short.npy", rng.standard_normal((6, 4)))
    with pytest.raises(ValueError, match=r"source 'short' \(.*short.npy\).*6 images; the sweep"):
        FeatureSource(tmp_path / "short.npy").check(["default"], 7)
    np.save(tmp_path / "cut.npy", rng.standard_normal((6, 4)))
    data = (tmp_path / "cut.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-20])
    with pytest.raises(ValueError, match=r"cut.npy.*truncated or forged"):
        FeatureSource(tmp_path / "cut.npy").check(["default"], None)
    with zipfile.ZipFile(tmp_path / "odd.npz", "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match=r"odd.npz.*'readme.txt' is not an .npy"):
        resolve_sources([tmp_path / "odd.npz"])
    with pytest.raises(FileNotFoundError, match=r"source 'r' \(.*r.npz\): no such file"):
        RDMSource(tmp_path / "r.npz").check(["default"], None)
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan], [2.0, 3.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"source 'nan' \(.*nan.npy\): features holds NaN"):
        _all(FeatureSource(tmp_path / "nan.npy"), None, tmp=tmp_path)
