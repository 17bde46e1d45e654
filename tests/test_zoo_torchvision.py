"""fastrsa.zoo with torchvision models on random weights (nothing downloads: FASTRSA_OFFLINE=1,
TORCH_HOME in tmp_path): preprocessing equal to the weights' own transforms (atol 1e-6, float32
rounding), outputs equal to the module called plainly, weights enum names, a fake torch.hub
cache, and every error message."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tv = pytest.importorskip("torchvision")
Image = pytest.importorskip("PIL.Image")

from fastrsa.errors import MissingPackage  # noqa: E402
from fastrsa.zoo.model import Model, state_dict_sha256  # noqa: E402


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTRSA_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def _images(seed: int, n: int = 3) -> list:
    rng = np.random.default_rng(seed)
    shapes, modes = [(37, 91), (300, 200), (100, 100)], ["RGB", "P", "I;16"]
    out = []
    for i in range(n):
        h, w = shapes[i % 3]
        if modes[i % 3] == "I;16":
            pixels = rng.integers(0, 65536, (h, w), dtype=np.uint16)
            out.append(Image.fromarray(pixels))  # mode I;16
            continue
        rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        out.append(rgb.convert(modes[i % 3]))
    return out


def _rgb(image):
    if image.mode == "I;16":  # 16-bit gray to 8 bits (round(p / 257)), as open_rgb documents
        pixels = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.round(pixels / 257).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def test_resnet18_matches_the_weights_transforms_and_module():
    m = Model("torchvision:resnet18@random")
    loaded = m.load()
    assert (loaded.modality, loaded.prefix_tokens, loaded.library) == ("image", 0, "torchvision")
    assert loaded.presets == {"@blocks": ["layer1", "layer2", "layer3", "layer4"]}
    assert loaded.weights == "random" and m.default_label == "resnet18@random"
    images = _images(0)
    transform = tv.models.ResNet18_Weights.DEFAULT.transforms()
    want = torch.stack([transform(_rgb(im)) for im in images])
    got = m.prepare(images)["pixel_values"]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    with torch.no_grad():
        plain = loaded.module(want[:1])
    torch.testing.assert_close(m.forward({"pixel_values": want[:1]}), plain, rtol=0, atol=0)
    again = Model("torchvision:resnet18", weights="random").load()
    assert again.weights_sha256 == loaded.weights_sha256 == state_dict_sha256(loaded.module)


def test_features_models_and_overrides():
    m = Model("torchvision:mobilenet_v3_small@random", resize=80, crop=64, std=(0.5, 0.5, 0.5))
    loaded = m.load()
    assert loaded.presets["@blocks"] == [f"features.{i}" for i in range(13)]
    images = _images(1, 2)
    transform = tv.transforms.Compose(
        [
            tv.transforms.Resize(80, antialias=True),
            tv.transforms.CenterCrop(64),
            tv.transforms.ToTensor(),
            tv.transforms.Normalize((0.485, 0.456, 0.406), (0.5, 0.5, 0.5)),
        ]
    )
    want = torch.stack([transform(_rgb(im)) for im in images])
    torch.testing.assert_close(m.prepare(images)["pixel_values"], want, rtol=0, atol=1e-6)


def test_pretrained_from_the_torch_hub_cache_offline(tmp_path):
    weights = tv.models.ResNet18_Weights.IMAGENET1K_V1
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    with pytest.raises(ValueError) as err:
        Model("torchvision:resnet18").load()
    assert str(err.value) == (
        f"model 'torchvision:resnet18': pretrained weights are not in the cache ({cache}) and "
        "cannot be downloaded (offline: HF_HUB_OFFLINE=1 or FASTRSA_OFFLINE=1); download once "
        "with network, or use @random or @FILE"
    )
    torch.manual_seed(3)
    fake = tv.models.resnet18()
    cache.mkdir(parents=True)
    torch.save(fake.state_dict(), cache / weights.url.rsplit("/", 1)[1])
    for spec in ("torchvision:resnet18", "torchvision:resnet18@IMAGENET1K_V1"):
        loaded = Model(spec).load()
        assert loaded.weights == "pretrained:ResNet18_Weights.IMAGENET1K_V1"
        assert loaded.weights_sha256 == state_dict_sha256(fake)


def test_weights_file_and_errors(tmp_path):
    torch.manual_seed(4)
    other = tv.models.resnet18()
    torch.save(other.state_dict(), tmp_path / "r18.pth")
    loaded = Model(f"torchvision:resnet18@{tmp_path / 'r18.pth'}").load()
    assert loaded.weights_sha256 == state_dict_sha256(other)
    with pytest.raises(ValueError, match=r"does not fit the architecture \(missing: "):
        Model(f"torchvision:resnet34@{tmp_path / 'r18.pth'}").load()
    with pytest.raises(
        ValueError, match="'V9' is no weights of resnet18; torchvision has IMAGENET1K_V1, DEFAULT"
    ):
        Model("torchvision:resnet18@V9").load()
    with pytest.raises(
        ValueError, match="has no classification model 'resnt18'; closest: resnet18"
    ):
        Model("torchvision:resnt18").load()


def test_pickle_drops_the_module():
    m = Model("torchvision:resnet18@random")
    fp = m.fingerprint()
    again = pickle.loads(pickle.dumps(m))
    assert again._loaded is None and again.fingerprint() == fp


def test_missing_torchvision_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(
        MissingPackage, match=r"needs torchvision: pip install fastrsa\[torchvision\]$"
    ):
        Model("torchvision:resnet18").load()
