"""ONNX inference benchmarks (CPU here): the Taskonomy encoder in onnxruntime against torch eager
at batch 64, and features -> similarity end to end for 20 encoders x 500 images."""

import numpy as np
import pytest
from conftest import machine_info

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

import fastrsa  # noqa: E402
from fastrsa.features import extract  # noqa: E402
from fastrsa.models import SmallEncoder, TaskonomyEncoder, export_onnx  # noqa: E402

BATCH = 64


@pytest.fixture(scope="module")
def taskonomy_onnx(tmp_path_factory):
    torch.manual_seed(0)
    model = TaskonomyEncoder()
    path = export_onnx(model, tmp_path_factory.mktemp("tx") / "taskonomy.onnx")
    return model, path


@pytest.mark.parametrize("provider", ["torch-eager", "onnxruntime-cpu"])
def test_taskonomy_encoder_images_per_second(benchmark, taskonomy_onnx, provider):
    model, path = taskonomy_onnx
    images = torch.rand(BATCH, 3, 256, 256) * 2 - 1
    if provider == "torch-eager":

        def run():
            with torch.no_grad():
                return model(images)
    else:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {"images": images.numpy()}

        def run():
            return session.run(None, feed)

    run()  # warm-up, untimed
    benchmark.group = f"Taskonomy encoder, batch {BATCH}, 256x256"
    benchmark.extra_info.update(machine_info(), provider=provider, batch=BATCH)
    benchmark.pedantic(run, rounds=2, warmup_rounds=0)
    benchmark.extra_info["images_per_s"] = BATCH / benchmark.stats.stats.median


def test_features_to_similarity_end_to_end(benchmark, tmp_path):
    torch.manual_seed(0)
    models = [
        export_onnx(SmallEncoder(), tmp_path / f"task{i:02d}.onnx", image_size=256)
        for i in range(20)
    ]
    images = np.random.default_rng(0).integers(0, 256, (500, 256, 256, 3), dtype=np.uint8)

    def run():
        feats = extract(models, images, batch_size=BATCH, progress=False)
        return fastrsa.compare(fastrsa.rdms(feats.stack("compressed")))

    benchmark.group = "features -> similarity, 20 SmallEncoders x 500 images"
    benchmark.extra_info.update(machine_info(), provider="onnxruntime-cpu + numba")
    sim = benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    assert sim.shape == (20, 20)
