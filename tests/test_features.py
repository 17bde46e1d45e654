"""ONNX inference: checkpoint -> torch -> ONNX -> features agree; features -> RDMs; the cache; the
CLI; and the errors (missing/corrupt models and images, wrong sizes, inconsistent models)."""

import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

import fastrsa  # noqa: E402
from fastrsa import features as F  # noqa: E402
from fastrsa.cli import main  # noqa: E402
from fastrsa.models import LAYERS, SmallEncoder, TaskonomyEncoder, export_onnx  # noqa: E402
from fastrsa.reference import compare_ref, rdm_ref  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(1)
    return [
        export_onnx(SmallEncoder(), folder / f"{name}.onnx", layers=LAYERS, image_size=SIZE)
        for name in ("depth", "normal", "edges")
    ]


@pytest.fixture
def image_dir(tmp_path, rng):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(9):
        h, w = rng.integers(20, 50, size=2)
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img = Image.fromarray(pixels)
        (img.convert("L") if i == 3 else img).save(folder / f"img{i:02d}.png")  # one grayscale
    (folder / ".DS_Store").write_bytes(b"hidden files are skipped")
    return folder


def test_checkpoint_torch_onnx_features_agree(tmp_path, image_dir):
    from fastrsa.models import load_taskonomy

    torch.manual_seed(0)
    model = TaskonomyEncoder()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
    torch.save(model.state_dict(), tmp_path / "rgb2depth_encoder.pth")
    loaded = load_taskonomy(tmp_path / "rgb2depth_encoder.pth")
    onnx = export_onnx(
        loaded, tmp_path / "rgb2depth.onnx", layers=["block3", "compressed"], image_size=64
    )
    feats = F.extract(
        [onnx], image_dir, layers=["block3", "compressed"], batch_size=4, progress=False
    )
    pixels = torch.from_numpy(F.load_images(image_dir, 64))
    with torch.no_grad():
        want = loaded(pixels, layers=["block3", "compressed"])
    for layer in ("block3", "compressed"):
        got = feats.stack(layer)[0]
        ref = want[layer].reshape(len(pixels), -1).numpy()
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-4


def test_features_to_similarity_end_to_end(encoders, image_dir):
    feats = F.extract(
        encoders, image_dir, layers=["block4", "compressed"], batch_size=4, progress=False
    )
    assert feats.models == ["depth", "normal", "edges"]
    x = feats.stack("block4")
    assert x.shape == (3, 9, 64 * (SIZE // 16) ** 2) and x.dtype == np.float32
    sim = fastrsa.compare(fastrsa.rdms(x))
    np.testing.assert_allclose(sim, compare_ref(rdm_ref(x)), atol=2e-5)


def test_batching_does_not_change_features(encoders, image_dir):
    one = F.extract(encoders[:1], image_dir, batch_size=1, progress=False).stack("compressed")
    all_ = F.extract(encoders[:1], image_dir, batch_size=64, progress=False).stack("compressed")
    np.testing.assert_allclose(one, all_, rtol=1e-5, atol=1e-6)


def test_cache_skips_finished_work_and_resumes(encoders, image_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    real_run = F._run
    calls = []

    def run_then_die(session, pixels, layers, batch_size, label, *rest):
        if label == "normal":
            raise KeyboardInterrupt  # the run is killed at the second model
        calls.append(label)
        return real_run(session, pixels, layers, batch_size, label, *rest)

    monkeypatch.setattr(F, "_run", run_then_die)
    with pytest.raises(KeyboardInterrupt):
        F.extract(encoders, image_dir, cache_dir=cache, progress=False)
    assert calls == ["depth"]

    def counting(session, pixels, layers, batch_size, label, *rest):
        calls.append(label)
        return real_run(session, pixels, layers, batch_size, label, *rest)

    monkeypatch.setattr(F, "_run", counting)
    first = F.extract(encoders, image_dir, cache_dir=cache, progress=False)
    assert calls == ["depth", "normal", "edges"]  # depth came from the cache
    again = F.extract(encoders, image_dir, cache_dir=cache, progress=False)
    assert calls == ["depth", "normal", "edges"]  # nothing ran
    np.testing.assert_array_equal(first.stack("compressed"), again.stack("compressed"))


def test_array_input_and_labels(encoders, rng):
    pixels = rng.integers(0, 256, (5, SIZE, SIZE, 3), dtype=np.uint8)
    feats = F.extract({"a": encoders[0], "b": encoders[1]}, pixels, progress=False)
    assert feats.models == ["a", "b"] and feats.stack("compressed").shape[:2] == (2, 5)


def _export_module(module: torch.nn.Module, path):
    """A bare ONNX export (input "images", output "compressed", dynamic batch) of a test module
    that export_onnx would refuse: the point is a model that misbehaves."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(
            module,
            (torch.rand(4, 3, SIZE, SIZE),),
            str(path),
            input_names=["images"],
            output_names=["compressed"],
            dynamic_axes={"images": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return path


class _FixedBatch(torch.nn.Module):
    def forward(self, images):
        return images[:1].mean(dim=1)  # always one image, whatever the batch


@pytest.mark.parametrize(
    "case,error,match",
    [
        ("missing model", FileNotFoundError, "no such file"),
        ("corrupt model", ValueError, "could not load"),
        ("not an image", ValueError, "not images"),
        ("corrupt image", ValueError, "not a readable image"),
        ("wrong array size", ValueError, r"expected \(N, 32, 32, 3\); got \(2, 33, 32, 3\)"),
        ("unknown layer", ValueError, "has no output"),
        ("fixed batch", ValueError, "returned 1 images for a batch of 4"),
        ("sizes differ", ValueError, "different image sizes"),
        ("empty folder", ValueError, "holds no images"),
    ],
)
def test_extract_refuses(encoders, image_dir, tmp_path, case, error, match):
    models, images, layers = list(encoders), image_dir, ["compressed"]
    if case == "missing model":
        models = [tmp_path / "nope.onnx"]
    elif case == "corrupt model":
        (tmp_path / "bad.onnx").write_bytes(b"garbage")
        models = [tmp_path / "bad.onnx"]
    elif case == "not an image":
        (image_dir / "notes.txt").write_text("hello")
    elif case == "corrupt image":
        (image_dir / "broken.png").write_bytes(b"not a png")
    elif case == "wrong array size":
        images = np.zeros((2, SIZE + 1, SIZE, 3), dtype=np.uint8)
    elif case == "unknown layer":
        layers = ["fc7"]
    elif case == "fixed batch":
        models = [_export_module(_FixedBatch(), tmp_path / "fixed.onnx")]
    elif case == "sizes differ":
        models.append(export_onnx(SmallEncoder(), tmp_path / "big.onnx", image_size=2 * SIZE))
    elif case == "empty folder":
        images = tmp_path / "empty"
        images.mkdir()
    with pytest.raises(error, match=match):
        F.extract(models, images, layers=layers, batch_size=4, progress=False)


def test_without_onnxruntime_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"fastrsa\[onnx\].*never both"):
        F.onnxruntime()


def test_cuda_provider_requested_without_it():
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
        F.providers("cuda")
    assert F.providers("auto") == ["CPUExecutionProvider"]


def test_cli_export_taskonomy_and_features(tmp_path, image_dir, encoders, capsys):
    torch.save(TaskonomyEncoder().state_dict(), tmp_path / "curvature_encoder-00ff.pth")
    code = main(
        [
            "export-taskonomy",
            "--weights",
            str(tmp_path),
            "--out",
            str(tmp_path / "onnx"),
            "--layers",
            "compressed",
        ]
    )
    assert code == 0 and (tmp_path / "onnx" / "curvature.onnx").is_file()
    out = tmp_path / "feats.npz"
    code = main(
        [
            "features",
            "--models",
            *map(str, encoders),
            "--images",
            str(image_dir),
            "--layers",
            "block4",
            "compressed",
            "--out",
            str(out),
            "--batch-size",
            "4",
        ]
    )
    assert code == 0
    saved = fastrsa.io.load_arrays(out)
    assert sorted(saved) == sorted(
        f"{m}.{layer}" for m in ("depth", "normal", "edges") for layer in ("block4", "compressed")
    )
    assert main(["rdms", str(out), "--out", str(tmp_path / "rdms.npz")]) == 0
    assert (
        main(
            [
                "features",
                "--models",
                str(tmp_path / "x.onnx"),
                "--images",
                str(image_dir),
                "--out",
                str(tmp_path / "f.npz"),
            ]
        )
        == 2
    )
    assert "no such file" in capsys.readouterr().err


def test_cli_taxonomy_from_models_and_images(encoders, image_dir, tmp_path):
    args = [
        "taxonomy",
        "--models",
        *map(str, encoders),
        "--images",
        str(image_dir),
        "--layer",
        "block4",
        "--clusters",
        "2",
        "--out",
        str(tmp_path / "tx"),
    ]
    assert main(args) == 0
    saved = fastrsa.io.load_arrays(tmp_path / "tx" / "taxonomy.npz")
    assert list(saved["labels"]) == ["depth", "normal", "edges"]


def test_io_binding_matches_onnxruntime_run(encoders, image_dir):
    """Batches after the first are written by onnxruntime straight into the result (IO binding);
    several layers at once, a partial last batch, numpy and torch results."""
    import onnxruntime as ort

    pixels = F.load_images(image_dir, SIZE)
    session = ort.InferenceSession(str(encoders[0]), providers=["CPUExecutionProvider"])
    layers = ["block2", "block4", "compressed"]
    want = session.run(layers, {"images": pixels})
    as_numpy = F.extract(encoders[:1], image_dir, layers=layers, batch_size=2, progress=False)
    as_torch = F.extract(
        encoders[:1], image_dir, layers=layers, batch_size=4, progress=False, output="torch"
    )
    for layer, expected in zip(layers, want, strict=True):
        expected = expected.reshape(len(pixels), -1)
        np.testing.assert_allclose(as_numpy.stack(layer)[0], expected, rtol=1e-5, atol=1e-6)
        got = as_torch.stack(layer)
        assert isinstance(got, torch.Tensor) and got.device.type == "cpu"
        np.testing.assert_allclose(got[0].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_torch_output_feeds_the_kernels_and_saves(encoders, image_dir, tmp_path):
    feats = F.extract(encoders, image_dir, batch_size=4, progress=False, output="torch")
    rdms = fastrsa.rdms(feats.stack("compressed"))
    assert isinstance(rdms, torch.Tensor) and rdms.shape == (3, 36)
    ref = rdm_ref(feats.stack("compressed").numpy().astype(np.float64))
    np.testing.assert_allclose(rdms.numpy(), ref, atol=2e-5)
    cached = F.extract(
        encoders, image_dir, batch_size=4, progress=False, output="torch", cache_dir=tmp_path
    )
    again = F.extract(
        encoders, image_dir, batch_size=4, progress=False, output="torch", cache_dir=tmp_path
    )
    assert torch.equal(cached.stack("compressed"), again.stack("compressed"))
    saved = np.load(feats.save(tmp_path / "f.npz"), allow_pickle=False)
    np.testing.assert_array_equal(saved["depth.compressed"], feats.stack("compressed")[0].numpy())
    with pytest.raises(ValueError, match="output must be one of 'numpy', 'torch'"):
        F.extract(encoders, image_dir, progress=False, output="cupy")


class _PadsToFour(torch.nn.Module):
    def forward(self, images):
        return torch.cat([images] * 4)[:4].mean(dim=1)  # 4 images whatever the batch


def test_a_later_batch_of_the_wrong_size_is_named(tmp_path, image_dir):
    path = _export_module(_PadsToFour(), tmp_path / "pads.onnx")
    # 9 images in batches of 4: the first two fit, the last (1 image) gets 4 rows back
    with pytest.raises(ValueError, match="pads returned outputs that do not fit a batch of 1"):
        F.extract([path], image_dir, batch_size=4, progress=False)


@pytest.mark.gpu
def test_cuda_provider_keeps_features_on_the_gpu(encoders, image_dir):
    """With onnxruntime-gpu: outputs bound to CUDA memory, then the Triton kernels, no host copy."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(
            f"this onnxruntime has no CUDAExecutionProvider: {ort.get_available_providers()}"
        )
    on_gpu = F.extract(
        encoders, image_dir, batch_size=4, device="cuda", progress=False, output="torch"
    )
    on_cpu = F.extract(encoders, image_dir, batch_size=4, device="cpu", progress=False)
    feats = on_gpu.stack("compressed")
    assert feats.is_cuda
    np.testing.assert_allclose(
        feats.cpu().numpy(), on_cpu.stack("compressed"), rtol=1e-3, atol=1e-4
    )
    sim = fastrsa.compare(fastrsa.rdms(feats))
    assert sim.is_cuda and sim.shape == (3, 3)


class _HalfOutput(torch.nn.Module):
    def forward(self, images):
        return images.mean(dim=1).half()  # a float16 output: no IO binding into float32 rows


def test_float16_outputs_run_plainly_and_come_back_float32(tmp_path, image_dir):
    import onnxruntime as ort

    path = _export_module(_HalfOutput(), tmp_path / "half.onnx")
    feats = F.extract([path], image_dir, batch_size=4, progress=False).stack("compressed")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"images": F.load_images(image_dir, SIZE)})
    assert feats.dtype == np.float32 and want.dtype == np.float16
    np.testing.assert_array_equal(feats[0], want.reshape(len(want), -1).astype(np.float32))
