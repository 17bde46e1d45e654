"""fastrsa.zoo.prep with torch, PIL and numpy only: open_rgb in every mode against numpy
formulas, read_rgb's errors, ImagePrep's resize / crop / normalisation arithmetic, its configs
(Taskonomy equal to fastrsa.images.read_image, timm and torchvision presets as plain data), and
TextPrep with a stand-in tokenizer. Against torchvision, timm and transformers themselves:
test_zoo_prep_libraries.py."""

import json
import pickle
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from fastrsa.images import read_image
from fastrsa.zoo.prep import ImagePrep, TextPrep, open_rgb, read_rgb

FLOAT32 = 1e-6  # float32 rounding of values of magnitude <= ~3


def _rgb(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _sixteen(rng, h, w):
    return rng.integers(0, 65536, (h, w), dtype=np.uint16)


def _gray3(plane):
    return np.repeat(plane[:, :, None], 3, axis=2)


# ---------------------------------------------------------------- open_rgb


def test_open_rgb_eight_bit_modes(rng):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = _rgb(rng, 5, 7)
        rgb = Image.fromarray(a)
        assert open_rgb(rgb) is rgb
        gray = rng.integers(0, 256, (5, 7), dtype=np.uint8)
        np.testing.assert_array_equal(np.asarray(open_rgb(Image.fromarray(gray))), _gray3(gray))
        la = Image.fromarray(np.stack([gray, gray[::-1]], axis=2), mode="LA")
        np.testing.assert_array_equal(np.asarray(open_rgb(la)), _gray3(gray))
        alpha = rng.integers(0, 256, (5, 7, 1), dtype=np.uint8)
        rgba = Image.fromarray(np.concatenate([a, alpha], axis=2), mode="RGBA")
        np.testing.assert_array_equal(np.asarray(open_rgb(rgba)), a)  # alpha dropped
        bits = rng.integers(0, 2, (5, 7)).astype(bool)
        np.testing.assert_array_equal(
            np.asarray(open_rgb(Image.fromarray(bits))), _gray3(bits.astype(np.uint8) * 255)
        )
        for mode in ("CMYK", "YCbCr"):
            img = rgb.convert(mode)
            np.testing.assert_array_equal(np.asarray(open_rgb(img)), np.asarray(img.convert("RGB")))


@pytest.mark.parametrize("transparency", [None, 3, "bytes"])
def test_open_rgb_palette(rng, transparency, tmp_path):
    idx = rng.integers(0, 16, (6, 9), dtype=np.uint8)
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    img = Image.fromarray(idx, mode="P")
    img.putpalette(palette.ravel().tolist())
    if transparency == "bytes":
        img.info["transparency"] = bytes(rng.integers(0, 256, 16, dtype=np.uint8))
        img.save(tmp_path / "p.png")  # a tRNS chunk: PIL warns on convert("RGB")
        img = Image.open(tmp_path / "p.png")
    elif transparency is not None:
        img.info["transparency"] = transparency
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = open_rgb(img)
    assert out.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(out), palette[idx])


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I (PNG)"])
def test_open_rgb_sixteen_bit(rng, mode):
    a = _sixteen(rng, 4, 6)
    a[0, :4] = [0, 128, 129, 65535]  # round(p / 257): 0, 0, 1, 255
    if mode == "I (PNG)":  # what older Pillow reads from a 16-bit PNG
        img = Image.fromarray(a.astype(np.int32))
        img.format = "PNG"
    else:
        dtype = ">u2" if mode == "I;16B" else "<u2"
        img = Image.frombytes(mode, (6, 4), a.astype(dtype).tobytes())
    out = np.asarray(open_rgb(img))
    want = np.rint(a.astype(np.float64) / 257.0).astype(np.uint8)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, _gray3(want))
    np.testing.assert_array_equal(out[0, :4, 0], [0, 0, 1, 255])


def test_open_rgb_refusals(rng):
    i32 = Image.fromarray(rng.integers(0, 2**20, (3, 3)).astype(np.int32))
    with pytest.raises(
        ValueError, match=r"^photo\.tif holds 32-bit integer pixels of unknown range"
    ):
        open_rgb(i32, name="photo.tif")
    with pytest.raises(ValueError, match=r"^image holds float pixels of unknown range"):
        open_rgb(Image.fromarray(rng.random((3, 3)).astype(np.float32)))
    with pytest.raises(ValueError, match=r"^image 4 is empty \(0 x 5 pixels\)"):
        open_rgb(Image.new("RGB", (0, 5)), name="image 4")
    with pytest.raises(TypeError, match="image must be a PIL image; got ndarray"):
        open_rgb(np.zeros((3, 3, 3), np.uint8))


# ---------------------------------------------------------------- read_rgb


def test_read_rgb_files(rng, tmp_path):
    a = _rgb(rng, 9, 4)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(np.concatenate([a, a[:, :, :1]], axis=2), mode="RGBA").save(tmp_path / "b.png")
    s = _sixteen(rng, 5, 8)
    Image.fromarray(s).save(tmp_path / "c.png")
    for name in ("a.png", "b.png"):
        img = read_rgb(tmp_path / name)
        (tmp_path / name).unlink()  # decoded, closed: the pixels outlive the file
        assert img.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(img), a)
    got = np.asarray(read_rgb(str(tmp_path / "c.png")))
    np.testing.assert_array_equal(got, _gray3(np.rint(s / 257.0).astype(np.uint8)))


def test_read_rgb_errors(rng, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="images: no such file: .*nope.png"):
        read_rgb(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=r"images: .*bad\.png is not a readable image \("):
        read_rgb(tmp_path / "bad.png")
    Image.fromarray(rng.integers(0, 2**20, (3, 3)).astype(np.int32)).save(tmp_path / "i.tif")
    with pytest.raises(ValueError, match=r"images: .*i\.tif holds 32-bit integer pixels"):
        read_rgb(tmp_path / "i.tif")
    Image.fromarray(_rgb(rng, 20, 20)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150)  # 400 pixels: over twice the limit
    with pytest.raises(ValueError, match=r"big\.png declares more pixels than PIL's limit"):
        read_rgb(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # between the limit and twice it
    with pytest.raises(ValueError, match=r"big\.png declares more pixels"):
        read_rgb(tmp_path / "big.png")


# ---------------------------------------------------------------- ImagePrep


def _reference(a, size, crop, mean, std, interpolation="bilinear"):
    """float64 reference: PIL resize to the stated size, crop by pasting into a zero canvas."""
    img = Image.fromarray(a)
    h, w = a.shape[:2]
    if isinstance(size, int):
        if w <= h:
            new_w, new_h = size, int(size * h / w)
        else:
            new_w, new_h = int(size * w / h), size
        img = img.resize((new_w, new_h), getattr(Image.Resampling, interpolation.upper()))
    x = np.asarray(img).astype(np.float64)
    if crop is not None:
        ch, cw = crop
        h, w = x.shape[:2]
        ph, pw = max(ch, h), max(cw, w)
        canvas = np.zeros((ph, pw, 3))
        t0, l0 = (ph - h) // 2, (pw - w) // 2
        canvas[t0 : t0 + h, l0 : l0 + w] = x
        top, left = int(round((ph - ch) / 2)), int(round((pw - cw) / 2))
        x = canvas[top : top + ch, left : left + cw]
    return ((x / 255.0 - np.asarray(mean)) / np.asarray(std)).transpose(2, 0, 1)


@pytest.mark.parametrize("hw", [(37, 91), (300, 200), (20, 20), (61, 13)])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest", "lanczos"])
def test_image_prep_vs_reference(rng, hw, interpolation):
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    a = _rgb(rng, *hw)
    for size, crop in ((32, (32, 32)), (48, (40, 24)), (16, (30, 30)), (None, (50, 17))):
        prep = ImagePrep(size=size, crop=crop, mean=mean, std=std, interpolation=interpolation)
        got = prep(Image.fromarray(a))
        assert got.dtype == np.float32 and got.shape == (3, *crop)
        want = _reference(a, size, crop, mean, std, interpolation)
        np.testing.assert_allclose(got, want, atol=FLOAT32, rtol=0)


def test_resize_sizes_and_crop_padding():
    white = Image.new("RGB", (91, 37), (255, 255, 255))  # w 91, h 37
    assert ImagePrep(size=256)(white).shape == (3, 256, 629)  # int(256 * 91 / 37)
    assert ImagePrep(size=(40, 50))(white).shape == (3, 40, 50)
    assert ImagePrep()(white).shape == (3, 37, 91)
    # (h 3, w 5) cropped to (6, 4): rows padded 1 above, 2 below; columns 0..3 (round(0.5) = 0)
    small = Image.fromarray(
        np.arange(1, 16, dtype=np.uint8).reshape(3, 5).repeat(3).reshape(3, 5, 3)
    )
    got = ImagePrep(crop=(6, 4), scale=1.0)(small)[0]
    want = np.zeros((6, 4))
    want[1:4] = np.arange(1, 16).reshape(3, 5)[:, :4]
    np.testing.assert_array_equal(got, want)


def test_taskonomy_equals_read_image(rng, tmp_path):
    prep = ImagePrep.taskonomy(size=32)
    assert prep.size == (32, 32) and prep.crop is None
    for i, hw in enumerate([(37, 91), (64, 64), (17, 40)]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(_rgb(rng, *hw)).save(path)
        want = read_image(path, 32)
        np.testing.assert_allclose(prep(read_rgb(path)), want, atol=FLOAT32, rtol=0)


def test_batch(rng):
    imgs = [Image.fromarray(_rgb(rng, h, w)) for h, w in [(30, 40), (50, 20), (33, 33)]]
    prep = ImagePrep(size=24, crop=20)
    out = prep.batch(imgs)
    assert out.shape == (3, 3, 20, 20) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1], prep(imgs[1]))
    with pytest.raises(
        ValueError,
        match=r"image 11 comes out \(60, 24\) pixels but image 10 "
        r"\(24, 32\).*need a crop or an \(h, w\) size",
    ):
        ImagePrep(size=24).batch(imgs[:2], first=10)
    with pytest.raises(ValueError, match="images is an empty list"):
        prep.batch([])
    with pytest.raises(ValueError, match="image 2 holds float pixels"):
        prep.batch([imgs[0], imgs[1], Image.new("F", (4, 4))])


def test_describe_replace():
    prep = ImagePrep(size=[256, 300], crop=224, mean=[0.5, 0.4, 0.3], interpolation="bicubic")
    d = json.loads(json.dumps(prep.describe()))
    assert d == {
        "kind": "image", "size": [256, 300], "crop": 224, "mean": [0.5, 0.4, 0.3],
        "std": [1.0, 1.0, 1.0], "interpolation": "bicubic", "scale": 1 / 255,
    }  # fmt: skip
    assert ImagePrep(**{k: v for k, v in d.items() if k != "kind"}) == prep
    assert prep.replace(crop=None, size=128) == ImagePrep(
        size=128, crop=224, mean=(0.5, 0.4, 0.3), interpolation="bicubic"
    )
    with pytest.raises(TypeError, match="ImagePrep has no field 'resize'"):
        prep.replace(resize=3)
    assert hash(prep) == hash(ImagePrep(**{k: v for k, v in d.items() if k != "kind"}))
    assert pickle.loads(pickle.dumps(prep)) == prep


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(size=0), ValueError, "size must be positive; got 0"),
        (dict(size=(3, -1)), ValueError, r"size must be positive; got \(3, -1\)"),
        (dict(size=2.5), TypeError, "size must be an int, an \\(h, w\\) pair"),
        (dict(size=True), TypeError, "size must be an int"),
        (dict(crop=(1, 2, 3)), TypeError, "crop must be an int, an \\(h, w\\) pair"),
        (dict(mean=(0.5, 0.5)), ValueError, "mean must be 3 finite numbers"),
        (dict(mean="abc"), ValueError, "mean must be 3 numbers"),
        (dict(std=(1, float("nan"), 1)), ValueError, "std must be 3 finite numbers"),
        (dict(std=(1, 0, 1)), ValueError, "std must be nonzero"),
        (dict(interpolation="cubic"), ValueError, "interpolation must be one of 'nearest', "),
        (dict(scale=0), ValueError, "scale must be a finite number > 0; got 0"),
        (dict(scale="1"), TypeError, "scale must be a number > 0"),
    ],
)
def test_image_prep_validation(kwargs, error, words):
    with pytest.raises(error, match=words):
        ImagePrep(**kwargs)


def test_from_timm_configs():
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    base = dict(input_size=(3, 224, 224), interpolation="bicubic", mean=mean, std=std)
    assert ImagePrep.from_timm({**base, "crop_pct": 0.875, "crop_mode": "center"}) == ImagePrep(
        size=256, crop=224, mean=mean, std=std, interpolation="bicubic"
    )
    assert ImagePrep.from_timm({**base, "crop_pct": 0.9, "crop_mode": "squash"}) == ImagePrep(
        size=(248, 248), crop=224, mean=mean, std=std, interpolation="bicubic"
    )
    assert ImagePrep.from_timm({**base, "crop_pct": 1.0}).size == 224
    assert ImagePrep.from_timm({**base, "input_size": (3, 160, 256), "crop_mode": "squash",
                                "crop_pct": 1.0}).crop == (160, 256)  # fmt: skip
    with pytest.raises(ValueError, match="crop_mode 'border' is not supported"):
        ImagePrep.from_timm({**base, "crop_mode": "border"})
    with pytest.raises(ValueError, match=r"non-square input_size \(160, 256\)"):
        ImagePrep.from_timm({**base, "input_size": (3, 160, 256)})
    with pytest.raises(ValueError, match="timm data config must be a dict with 'input_size'"):
        ImagePrep.from_timm({"mean": mean})


def test_from_torchvision_preset():
    preset = SimpleNamespace(
        resize_size=[232], crop_size=[224], mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225], interpolation=SimpleNamespace(value="bilinear"),
    )  # fmt: skip
    prep = ImagePrep.from_torchvision(preset)
    assert (prep.size, prep.crop, prep.interpolation) == (232, 224, "bilinear")
    preset.resize_size, preset.interpolation = [240, 320], SimpleNamespace(value="nearest-exact")
    assert ImagePrep.from_torchvision(preset).size == (240, 320)
    assert ImagePrep.from_torchvision(preset).interpolation == "nearest"
    with pytest.raises(TypeError, match="ImageClassification preset.*has no 'resize_size'"):
        ImagePrep.from_torchvision(SimpleNamespace(crop_size=[3]))


# ---------------------------------------------------------------- TextPrep


class WordTokenizer:
    """A stand-in for a Hugging Face tokenizer: one id per word, right padding with 0."""

    model_max_length = 1000000000000000019884624838656  # what HF sets without a limit
    name_or_path = "words"
    pad_token = "[PAD]"

    def __call__(self, texts, padding, truncation, max_length, return_tensors, **kwargs):
        assert padding is True and truncation is True and return_tensors == "pt"
        self.last_max_length = max_length
        ids = [[len(w) for w in t.split()][:max_length] for t in texts]
        n = max(map(len, ids))
        return {
            "input_ids": torch.tensor([r + [0] * (n - len(r)) for r in ids]),
            "attention_mask": torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in ids]),
        }


def test_text_prep_batches():
    tok = WordTokenizer()
    prep = TextPrep(tok)
    out = prep(["a bb ccc", "dddd"])
    np.testing.assert_array_equal(out["input_ids"].numpy(), [[1, 2, 3], [4, 0, 0]])
    np.testing.assert_array_equal(out["attention_mask"].numpy(), [[1, 1, 1], [1, 0, 0]])
    assert tok.last_max_length == 512 and prep.max_length == 512
    short = TextPrep(tok, max_tokens=2)
    assert short(["a bb ccc"])["input_ids"].shape == (1, 2)
    tok.model_max_length = 128
    assert TextPrep(tok).max_length == 128
    assert TextPrep(tok).describe() == {
        "kind": "text", "tokenizer": "WordTokenizer", "name_or_path": "words",
        "max_tokens": 128, "padding": "longest", "padding_side": "right", "truncation": True,
    }  # fmt: skip
    back = pickle.loads(pickle.dumps(short))
    assert back.max_tokens == 2 and back(["x y z"])["input_ids"].tolist() == [[1, 1]]


def test_text_prep_refusals():
    prep = TextPrep(WordTokenizer())
    with pytest.raises(ValueError, match="^text 7 is empty$"):
        prep(["a", "b", ""], first=5)
    with pytest.raises(ValueError, match="^text 1 is empty$"):
        prep(["a", "  \n"])
    with pytest.raises(ValueError, match="^text 1 is not a str; got int$"):
        prep(["a", 3])
    with pytest.raises(TypeError, match="texts must be a list of str; got str"):
        prep("a b")
    with pytest.raises(ValueError, match="texts is an empty list"):
        prep([])
    with pytest.raises(TypeError, match="max_tokens must be an int > 0 or None"):
        TextPrep(WordTokenizer(), max_tokens=2.0)
    with pytest.raises(ValueError, match="max_tokens must be > 0; got 0"):
        TextPrep(WordTokenizer(), max_tokens=0)
    with pytest.raises(TypeError, match="tokenizer must be a callable tokenizer; got str"):
        TextPrep("bert")
    tok = WordTokenizer()
    tok.pad_token = None
    with pytest.raises(ValueError, match="WordTokenizer has no padding token; set tokenizer.pad"):
        TextPrep(tok)(["a", "b c"])
    assert TextPrep(tok)(["a b"])["input_ids"].shape == (1, 2)  # one text needs no padding
