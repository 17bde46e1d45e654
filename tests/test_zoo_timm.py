"""fastrsa.zoo with timm models on random weights (nothing downloads: HF_HUB_OFFLINE=1,
FASTRSA_OFFLINE=1, HF_HOME and TORCH_HOME in tmp_path): preprocessing equal to timm's own
transform (atol 1e-6, float32 rounding), outputs equal to the module called plainly (exact: the
same float32 ops), weights hashes, weights files, a fake hub cache, and every error message."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
Image = pytest.importorskip("PIL.Image")

from fastrsa.errors import MissingPackage  # noqa: E402
from fastrsa.zoo.model import Model, state_dict_sha256  # noqa: E402
from fastrsa.zoo.prep import ImagePrep  # noqa: E402


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FASTRSA_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


def _images(seed: int, n: int = 3) -> list:
    rng = np.random.default_rng(seed)
    shapes, modes = [(37, 91), (300, 200), (100, 100)], ["RGB", "L", "RGBA"]
    out = []
    for i in range(n):
        h, w = shapes[i % 3]
        rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        out.append(rgb.convert(modes[i % 3]))
    return out


def _timm_pixels(module, images, **cfg_over):
    cfg = timm.data.resolve_data_config({}, model=module)
    cfg.update(cfg_over)
    transform = timm.data.create_transform(**cfg)
    return torch.stack([transform(im.convert("RGB")) for im in images])


@pytest.mark.parametrize(
    "name, blocks, prefix",
    [
        ("resnet18", ["layer1", "layer2", "layer3", "layer4"], 0),
        ("vit_tiny_patch16_224", [f"blocks.{i}" for i in range(12)], 1),
    ],
)
def test_random_model_matches_timm_itself(name, blocks, prefix):
    m = Model(f"timm:{name}@random")
    loaded = m.load()
    assert (loaded.modality, loaded.prefix_tokens, loaded.library) == ("image", prefix, "timm")
    assert loaded.presets == {"@blocks": blocks} and m.default_label == f"{name}@random"
    assert loaded.weights == "random" and not loaded.module.training
    images = _images(0)
    want = _timm_pixels(loaded.module, images)
    got = m.prepare(images)["pixel_values"]
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    with torch.no_grad():
        plain = loaded.module(want[:1])
    torch.testing.assert_close(m.forward({"pixel_values": want[:1]}), plain, rtol=0, atol=0)
    assert m.describe()["preprocessing"]["library"] == "timm"


def test_small_input_override_and_stages():
    m = Model("timm:convnext_atto@random", resize=72, crop=64, interpolation="bilinear")
    loaded = m.load()
    assert loaded.presets == {"@blocks": [f"stages.{i}" for i in range(4)]}
    images = _images(1, 2)
    got = m.prepare(images)["pixel_values"]
    assert got.shape == (2, 3, 64, 64)
    want = _timm_pixels(
        loaded.module, images, input_size=(3, 64, 64), crop_pct=64 / 72, interpolation="bilinear"
    )
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert m.forward({"pixel_values": got[:1]}).shape == (1, 1000)
    assert m.fingerprint() != Model("timm:convnext_atto@random").fingerprint()


def test_weights_hash_is_stable_and_follows_the_weights(tmp_path):
    a, b = Model("timm:resnet18@random").load(), Model("timm:resnet18", weights="random").load()
    assert a.weights_sha256 == b.weights_sha256 == state_dict_sha256(a.module)
    torch.manual_seed(5)
    other = timm.create_model("resnet18", pretrained=False)
    torch.save(other.state_dict(), tmp_path / "w.pth")
    from safetensors.torch import save_file

    save_file(other.state_dict(), str(tmp_path / "w.safetensors"))
    for fname in ("w.pth", "w.safetensors"):
        loaded = Model(f"timm:resnet18@{tmp_path / fname}").load()
        assert loaded.weights == f"file:{tmp_path / fname}"
        assert loaded.weights_sha256 == state_dict_sha256(other) != a.weights_sha256
    nested = tmp_path / "nested.pt"
    torch.save({"state_dict": other.state_dict(), "epoch": 3}, nested)
    assert Model("timm:resnet18", weights=str(nested)).load().weights_sha256 == state_dict_sha256(
        other
    )


def test_weights_file_errors(tmp_path):
    torch.save(timm.create_model("resnet10t").state_dict(), tmp_path / "other.pth")
    with pytest.raises(
        ValueError,
        match=r"^model 'timm:resnet18@.*other.pth': weights file .* does not fit the "
        r"architecture \(missing: ",
    ):
        Model(f"timm:resnet18@{tmp_path / 'other.pth'}").load()
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"bad.pth' cannot be read \("):
        Model(f"timm:resnet18@{tmp_path / 'bad.pth'}").load()
    with pytest.raises(FileNotFoundError, match=r"nothere.pth'?: no such file$"):
        Model(f"timm:resnet18@{tmp_path / 'nothere.pth'}").load()


def _fake_hub_cache(tmp_path, repo: str, state) -> None:
    """The hub cache layout huggingface_hub reads: refs/main -> snapshots/<commit>/FILE."""
    from safetensors.torch import save_file

    base = tmp_path / "hf_home" / "hub" / f"models--{repo.replace('/', '--')}"
    snap = base / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text("0" * 40)
    save_file(state, str(snap / "model.safetensors"))


def test_pretrained_comes_from_the_cache_offline_or_fails_in_one_line(tmp_path):
    with pytest.raises(ValueError) as err:
        Model("timm:resnet18.a1_in1k").load()
    cache = str(tmp_path / "hf_home" / "hub")
    assert str(err.value) == (
        f"model 'timm:resnet18.a1_in1k': pretrained weights are not in the cache ({cache}) and "
        "cannot be downloaded (offline: HF_HUB_OFFLINE=1 or FASTRSA_OFFLINE=1); download once "
        "with network, or use @random or @FILE"
    )
    torch.manual_seed(7)
    cached = timm.create_model("resnet18", pretrained=False)
    _fake_hub_cache(tmp_path, "timm/resnet18.a1_in1k", cached.state_dict())
    for spec in ("timm:resnet18.a1_in1k", "timm:resnet18@a1_in1k"):
        loaded = Model(spec).load()
        assert loaded.weights == "pretrained:resnet18.a1_in1k"
        assert loaded.weights_sha256 == state_dict_sha256(cached)


def test_names_and_tags_are_checked_with_the_closest():
    with pytest.raises(
        ValueError,
        match=r"^model 'timm:resnt18@random': timm has no model 'resnt18'; closest: resnet18",
    ):
        Model("timm:resnt18@random").load()
    with pytest.raises(ValueError, match=r"is no pretrained tag of timm; closest: resnet18\."):
        Model("timm:resnet18.zz_in1k").load()
    with pytest.raises(ValueError, match="give the pretrained tag once"):
        Model("timm:resnet18.a1_in1k@a2_in1k").load()
    with pytest.raises(ValueError, match="unknown library 'timmm'; known: timm:, torchvision:"):
        Model("timmm:resnet18")


def test_from_object_brings_timm_preprocessing():
    obj = timm.create_model("resnet18", pretrained=False)
    m = Model.from_object(obj, crop=160)
    loaded = m.load()
    assert m.library == "timm" and loaded.weights == "object" and m.default_label == "resnet18"
    images = _images(2, 2)
    prep = ImagePrep.from_timm(timm.data.resolve_data_config({}, model=obj)).replace(crop=160)
    got = m.prepare(images)["pixel_values"]
    assert got.shape == (2, 3, 160, 160)
    np.testing.assert_array_equal(got.numpy(), prep.batch(images))


def test_plain_module_gets_the_taskonomy_convention_and_pickles_with_its_object():
    torch.manual_seed(0)
    obj = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    m = Model.from_object(obj)
    assert m.spec == "module:torch.nn.modules.container.Sequential" and m.default_label is None
    images = _images(3, 2)
    got = m.prepare(images)["pixel_values"]
    np.testing.assert_array_equal(got.numpy(), ImagePrep.taskonomy(256).batch(images))
    again = pickle.loads(pickle.dumps(m))
    assert again._loaded is None and again.fingerprint() == m.fingerprint()
    with pytest.raises(TypeError, match="obj must be a torch.nn.Module"):
        Model.from_object("resnet18")
    with pytest.raises(ValueError, match=r"^model 'module:.*' takes images; texts were given$"):
        m.prepare(["a sentence"])


def test_pickle_and_prepared_arrays():
    m = Model("timm:resnet18@random")
    fp = m.fingerprint()
    again = pickle.loads(pickle.dumps(m))
    assert again._loaded is None and again.fingerprint() == fp
    arr = np.random.default_rng(4).standard_normal((2, 3, 40, 50)).astype(np.float32) * 9
    assert np.array_equal(m.prepare(arr)["pixel_values"].numpy(), arr)  # any range, as given
    with pytest.raises(ValueError, match="must be float32 \\(b, 3, H, W\\); got float64"):
        m.prepare(arr.astype(np.float64))


def test_missing_timm_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(
        MissingPackage, match=r"^model 'timm:resnet18' needs timm: pip install fastrsa\[timm\]$"
    ):
        Model("timm:resnet18").load()


def test_swin_stages_are_channels_last():
    from fastrsa.sweeps.model_source import channels_last

    assert channels_last(timm.create_model("swin_tiny_patch4_window7_224", pretrained=False))
    assert not channels_last(timm.create_model("resnet18", pretrained=False))
