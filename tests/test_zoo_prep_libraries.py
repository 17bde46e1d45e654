"""fastrsa.zoo.prep against the libraries' own pipelines (nothing downloaded: random weights,
a tokenizer built from a vocabulary written here): torchvision's transforms and its weights'
presets, timm's evaluation transform for a ResNet's and a ViT's data config, a Hugging Face
tokenizer's padded batch. Images of odd sizes and aspects, smaller than the crop, in modes L,
RGBA, P and I;16; pixels agree to float32 rounding."""

import functools
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")
transformers = pytest.importorskip("transformers")

from timm.data import create_transform, resolve_data_config  # noqa: E402
from torchvision import transforms as T  # noqa: E402
from torchvision.models import (  # noqa: E402
    EfficientNet_B1_Weights,
    ResNet18_Weights,
    ViT_B_16_Weights,
)

from fastrsa.zoo.prep import ImagePrep, TextPrep, open_rgb  # noqa: E402

FLOAT32 = 1e-6  # max |difference|: float32 rounding of normalised pixels (|x| <= ~3)
SIZES = [(37, 91), (300, 200), (91, 37), (150, 151)]  # (h, w)
MODES = ["L", "RGBA", "P", "I;16"]
IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def _image(rng, h, w, mode):
    """A random PIL image of mode `mode`, and the 8-bit RGB image the libraries' loaders (and
    open_rgb) make of it: convert("RGB"), or round(p / 257) for 16-bit gray."""
    if mode == "I;16":
        a = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        img = Image.frombytes("I;16", (w, h), a.astype("<u2").tobytes())
        gray = np.rint(a / 257.0).astype(np.uint8)
        return img, Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "P":
        img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), mode="P")
        img.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tolist())
    else:
        bands = {"L": 1, "RGBA": 4}[mode]
        a = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
        img = Image.fromarray(a[:, :, 0] if bands == 1 else a, mode=mode)
    return img, img.convert("RGB")


def _check(prep, library, rng):
    for h, w in SIZES:
        for mode in MODES:
            img, rgb = _image(rng, h, w, mode)
            np.testing.assert_array_equal(np.asarray(open_rgb(img)), np.asarray(rgb))
            want = library(rgb).numpy()
            got = prep(img)
            assert got.shape == want.shape, (h, w, mode)
            assert np.abs(got - want).max() <= FLOAT32, (h, w, mode)


@pytest.mark.parametrize(
    "size, crop, interpolation",
    [(256, 224, "bilinear"), (40, 32, "bicubic"), (64, (48, 40), "lanczos"), ((50, 60), 40, "box"),
     (None, 224, "bilinear"), (None, (20, 120), "nearest"), (33, None, "hamming")],
)  # fmt: skip
def test_torchvision_transforms(rng, size, crop, interpolation):
    mode = getattr(T.InterpolationMode, interpolation.upper())
    steps = [] if size is None else [T.Resize(size, interpolation=mode)]
    steps += [] if crop is None else [T.CenterCrop(crop)]
    library = T.Compose(steps + [T.ToTensor(), T.Normalize(**IMAGENET)])
    prep = ImagePrep(size=size, crop=crop, interpolation=interpolation, **IMAGENET)
    _check(prep, library, rng)


WEIGHTS = [
    ResNet18_Weights.IMAGENET1K_V1,
    ViT_B_16_Weights.IMAGENET1K_V1,
    EfficientNet_B1_Weights.IMAGENET1K_V2,
]


@pytest.mark.parametrize("weights", WEIGHTS)
def test_torchvision_weights_presets(rng, weights):
    preset = (
        weights.transforms()
    )  # an ImageClassification preset; builds nothing, downloads nothing
    _check(ImagePrep.from_torchvision(preset), preset, rng)


@functools.cache
def _timm_config(name):
    return resolve_data_config({}, model=timm.create_model(name, pretrained=False))


@pytest.mark.parametrize("name", ["resnet18", "vit_tiny_patch16_224"])
@pytest.mark.parametrize("crop_mode", [None, "squash"])
def test_timm_transforms(rng, name, crop_mode):
    cfg = dict(_timm_config(name))
    if crop_mode is not None:
        cfg["crop_mode"] = crop_mode
    library = create_transform(**cfg)
    _check(ImagePrep.from_timm(cfg), library, rng)


def test_timm_non_square_squash(rng):
    cfg = dict(input_size=(3, 96, 128), interpolation="bilinear", crop_pct=0.9, crop_mode="squash",
               **IMAGENET)  # fmt: skip
    _check(ImagePrep.from_timm(cfg), create_transform(**cfg), rng)


def _tokenizer(tmp_path):
    words = "[PAD] [UNK] [CLS] [SEP] [MASK] the cat sat on mat a dog ran far ##s away".split()
    if int(transformers.__version__.split(".")[0]) >= 5:
        tok = transformers.BertTokenizerFast(vocab={w: i for i, w in enumerate(words)})
    else:
        (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
        tok = transformers.BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    tok.save_pretrained(tmp_path / "tok")
    return transformers.AutoTokenizer.from_pretrained(tmp_path / "tok")


def test_text_prep_equals_tokenizer(tmp_path):
    tok = _tokenizer(tmp_path)
    texts = ["the cat sat on the mat", "a dog", "the dogs ran far far away", "cat"]
    for max_tokens, length in ((None, 512), (5, 5)):
        prep = TextPrep(tok, max_tokens=max_tokens)
        want = tok(texts, padding=True, truncation=True, max_length=length, return_tensors="pt")
        got = prep(texts)
        assert set(got) == set(want) and "attention_mask" in got
        for key in want:
            assert torch.equal(got[key], want[key]), key
        assert got["input_ids"][0, 1] == 5  # "the": the vocabulary is used, not [UNK]
        again = pickle.loads(pickle.dumps(prep))(texts)
        assert all(torch.equal(again[k], got[k]) for k in got)
    assert TextPrep(tok, max_tokens=5)(texts)["input_ids"].shape == (4, 5)
    described = TextPrep(tok).describe()
    assert described["tokenizer"] == type(tok).__name__ and described["max_tokens"] == 512
    assert described["name_or_path"] == str(tmp_path / "tok")
