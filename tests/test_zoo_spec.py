"""fastrsa.zoo.spec: parsing `LIB:NAME[@WEIGHTS]`, weights files and hashes, and the Model's
pickling and missing-library errors: no model library needed (the main venv: torch only)."""

from __future__ import annotations

import pickle
import sys

import pytest

from fastrsa.errors import MissingPackage
from fastrsa.zoo.model import Model
from fastrsa.zoo.spec import Spec, is_spec, parse_spec


@pytest.mark.parametrize(
    "text, want, kind",
    [
        ("timm:resnet18", Spec("timm", "resnet18", "pretrained"), "pretrained"),
        ("timm:resnet18.a1_in1k", Spec("timm", "resnet18.a1_in1k"), "pretrained"),
        ("timm:resnet18@random", Spec("timm", "resnet18", "random"), "random"),
        ("timm:resnet18@a1_in1k", Spec("timm", "resnet18", "a1_in1k"), "tag"),
        (
            "torchvision:resnet18@IMAGENET1K_V1",
            Spec("torchvision", "resnet18", "IMAGENET1K_V1"),
            "tag",
        ),
        (
            "torchvision:resnet18@/w/r@18.pth",
            Spec("torchvision", "resnet18", "/w/r@18.pth"),
            "file",
        ),
        ("timm:vit_small@/w/w.safetensors", Spec("timm", "vit_small", "/w/w.safetensors"), "file"),
        (
            "hf:sentence-transformers/all-MiniLM-L6-v2",
            Spec("hf", "sentence-transformers/all-MiniLM-L6-v2"),
            "pretrained",
        ),
        ("hf:org/name@random", Spec("hf", "org/name", "random"), "random"),
        ("taskonomy:/ck/a@b.pth", Spec("taskonomy", "/ck/a@b.pth"), "pretrained"),
    ],
)
def test_parse(text, want, kind):
    got = parse_spec(text)
    assert got == want and got.weights_kind == kind
    assert parse_spec(str(got)) == got  # the canonical form parses back


def test_local_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mdir").mkdir()
    assert parse_spec("hf:mdir") == Spec("hf", str(tmp_path / "mdir"))
    assert parse_spec("timm:resnet18@w/x.pth").weights == str(tmp_path / "w" / "x.pth")
    assert parse_spec("taskonomy:enc.pth").name == str(tmp_path / "enc.pth")
    assert parse_spec("hf:not/here").name == "not/here"  # a hub id


def test_weights_argument_overrides_and_hf_local_dirs(tmp_path):
    assert parse_spec("timm:resnet18@a1_in1k", weights="random") == Spec(
        "timm", "resnet18", "random"
    )
    local = tmp_path / "my@model"
    local.mkdir()
    assert parse_spec(f"hf:{local}") == Spec("hf", str(local))
    assert parse_spec(f"hf:{local}", weights="random").weights == "random"
    assert str(parse_spec("timm:resnet18@random")) == "timm:resnet18@random"
    assert str(parse_spec("timm:resnet18")) == "timm:resnet18"


@pytest.mark.parametrize(
    "text, match",
    [
        ("timmm:resnet18", r"unknown library 'timmm'; known: timm:, torchvision:, hf:, taskonomy:"),
        ("resnet18", r"unknown library 'resnet18'"),
        ("timm:", r"the model name after 'timm:' is empty"),
        ("timm:resnet18@", r"the weights after '@' are empty"),
        ("hf:org/name@w.bin", r"hf models take '@random' or no '@'"),
    ],
)
def test_parse_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_spec(text)
    with pytest.raises(TypeError, match="model spec must be a str"):
        parse_spec(3)  # type: ignore[arg-type]


def test_is_spec():
    assert is_spec("timm:resnet18") and is_spec("hf:org/x") and is_spec("taskonomy:a.pth")
    for text in ("C:\\models\\a.pth", "model.onnx", "timm:x.onnx", "features.npz", "x", 3, None):
        assert not is_spec(text)


def test_model_options_are_checked_at_once_and_pickle():
    with pytest.raises(ValueError, match="max_tokens must be a positive int"):
        Model("hf:org/x", max_tokens=0)
    with pytest.raises(ValueError):
        Model("timm:resnet18", crop=-3)
    m = Model("timm:resnet18@random", resize=300, crop=256)
    want = ("timm:resnet18@random", "timm", "resnet18@random")  # random weights: labelled so
    assert (m.spec, m.library, m.default_label) == want
    assert Model("timm:resnet18").default_label == "resnet18"
    assert Model("hf:org/a/b/").default_label == "b"
    assert Model("taskonomy:/ck/class_object_encoder.pth").default_label == "class_object_encoder"
    again = pickle.loads(pickle.dumps(m))
    assert again.spec == m.spec and again._overrides == {"size": 300, "crop": 256}


def test_missing_library_is_one_line(monkeypatch):
    for module, spec, extra in (
        ("timm", "timm:resnet18", "timm"),
        ("torchvision", "torchvision:resnet18", "torchvision"),
        ("transformers", "hf:org/x", "hf"),
    ):
        monkeypatch.setitem(sys.modules, module, None)
        with pytest.raises(MissingPackage) as err:
            Model(spec).load()
        assert str(err.value) == f"model '{spec}' needs {module}: pip install fastrsa[{extra}]"


def test_taskonomy_spec_loads_with_its_convention(tmp_path):
    torch = pytest.importorskip("torch")
    from fastrsa.models import TaskonomyEncoder
    from fastrsa.zoo.spec import state_dict_sha256

    torch.manual_seed(0)
    enc = TaskonomyEncoder()
    torch.save(enc.state_dict(), tmp_path / "enc.pth")
    m = Model(f"taskonomy:{tmp_path / 'enc.pth'}")
    loaded = m.load()
    assert loaded.weights == f"file:{tmp_path / 'enc.pth'}" and loaded.library == "taskonomy"
    assert loaded.weights_sha256 == state_dict_sha256(enc)
    assert loaded.presets == {"@blocks": ["layer1", "layer2", "layer3", "layer4"]}
    assert loaded.preprocessing["size"] == [256, 256] and loaded.preprocessing["mean"] == [0.5] * 3
    with pytest.raises(FileNotFoundError):
        Model(f"taskonomy:{tmp_path / 'none.pth'}").load()
