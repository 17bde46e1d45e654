"""ONNX inference: images/s of the Taskonomy encoder in onnxruntime against torch eager (CPU; on
a GPU also torch eager on CUDA and onnxruntime's CUDA provider with IO binding), and features ->
similarity end to end for many encoders over one image set. Sizes come from the profile."""

import numpy as np
import pytest
from bench_helpers import CUDA, PROFILE, SIZES, machine_info

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

import fastrsa  # noqa: E402
from fastrsa.features import extract  # noqa: E402
from fastrsa.models import SmallEncoder, TaskonomyEncoder, export_onnx  # noqa: E402

BATCH = SIZES["onnx_batch"]
IMAGE = 64 if PROFILE == "smoke" else 256
ORT_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
ROUNDS = 1 if PROFILE == "smoke" else 2 if not CUDA else 10


@pytest.fixture(scope="module")
def taskonomy_onnx(tmp_path_factory):
    torch.manual_seed(0)
    model = TaskonomyEncoder().eval()
    path = export_onnx(model, tmp_path_factory.mktemp("tx") / "taskonomy.onnx", image_size=IMAGE)
    return model, path


def _runner(provider, model, path, images):
    """A callable for one batch of inference; inputs and outputs stay on the provider's device."""
    if provider.startswith("torch-eager"):
        model = model.cuda() if provider.endswith("cuda") else model.cpu()
        x = images.to("cuda") if provider.endswith("cuda") else images

        def run():
            with torch.no_grad():
                out = model(x)
            if provider.endswith("cuda"):
                torch.cuda.synchronize()
            return out

        return run
    if provider == "onnxruntime-cpu":
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {"images": images.numpy()}
        return lambda: session.run(None, feed)
    # onnxruntime-cuda: input and output bound to CUDA memory (IO binding), no host copies
    session = ort.InferenceSession(str(path), providers=["CUDAExecutionProvider"])
    x = images.to("cuda:0").contiguous()
    out = torch.empty((len(x), 8, IMAGE // 16, IMAGE // 16), device="cuda:0")
    binding = session.io_binding()
    binding.bind_input("images", "cuda", 0, np.float32, tuple(x.shape), x.data_ptr())
    binding.bind_output("compressed", "cuda", 0, np.float32, tuple(out.shape), out.data_ptr())

    def run():
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return out

    return run


@pytest.mark.parametrize(
    "provider", ["torch-eager", "onnxruntime-cpu", "torch-eager-cuda", "onnxruntime-cuda"]
)
def test_taskonomy_encoder_images_per_second(benchmark, taskonomy_onnx, provider):
    if provider.endswith("cuda") and not CUDA:
        pytest.skip("needs a CUDA GPU")
    if provider == "onnxruntime-cuda" and not ORT_CUDA:
        pytest.skip(f"onnxruntime has no CUDAExecutionProvider: {ort.get_available_providers()}")
    model, path = taskonomy_onnx
    images = torch.rand(BATCH, 3, IMAGE, IMAGE) * 2 - 1
    run = _runner(provider, model, path, images)
    run()  # warm-up, untimed
    benchmark.group = f"Taskonomy encoder, batch {BATCH}, {IMAGE}x{IMAGE}"
    info = machine_info(gpu=provider.endswith("cuda"))
    benchmark.extra_info.update(info, provider=provider, batch=BATCH, image=IMAGE)
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=0)
    benchmark.extra_info["images_per_s"] = BATCH / benchmark.stats.stats.median


def test_features_to_similarity_end_to_end(benchmark, tmp_path):
    n_models, n_images = SIZES["onnx_e2e"]
    torch.manual_seed(0)
    models = [
        export_onnx(SmallEncoder(), tmp_path / f"task{i:02d}.onnx", image_size=IMAGE)
        for i in range(n_models)
    ]
    images = np.random.default_rng(0).integers(0, 256, (n_images, IMAGE, IMAGE, 3), dtype=np.uint8)
    gpu = ORT_CUDA and CUDA
    output = "torch" if gpu else "numpy"

    def run():
        feats = extract(models, images, batch_size=BATCH, progress=False, output=output)
        sim = fastrsa.compare(fastrsa.rdms(feats.stack("compressed")))
        if gpu:
            torch.cuda.synchronize()
        return sim

    provider = "onnxruntime-cuda + triton" if gpu else "onnxruntime-cpu + numba"
    benchmark.group = f"features -> similarity, {n_models} SmallEncoders x {n_images} images"
    benchmark.extra_info.update(machine_info(gpu=gpu), provider=provider)
    sim = benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    assert sim.shape == (n_models, n_models)
