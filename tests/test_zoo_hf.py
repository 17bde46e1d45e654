"""fastrsa.zoo with Hugging Face transformers models on random weights: tiny BERT and ViT configs
saved to tmp_path (with a tokenizer from a tiny vocab file and a saved image processor), checked
against the library's own processor / tokenizer and model called plainly. Nothing downloads:
HF_HUB_OFFLINE=1 and HF_HOME points into tmp_path. Tolerances: exact for inputs and weights,
float32 rounding (atol 1e-6) for outputs."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("transformers")
Image = pytest.importorskip("PIL.Image")

from fastrsa.errors import MissingPackage  # noqa: E402
from fastrsa.zoo.hf_models import pil_backend  # noqa: E402
from fastrsa.zoo.model import Model, state_dict_sha256  # noqa: E402
from fastrsa.zoo.prep import TextPrep  # noqa: E402

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "the a cat dog sat on mat ran park red blue big small house tree , .".split()
)
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
}
TEXTS = ["the cat sat on the mat .", "a dog ran", "red tree , blue house ."]


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FASTRSA_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


@pytest.fixture
def bert_dir(tmp_path):
    out = tmp_path / "tiny-bert"
    out.mkdir()
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    major = int(tf.__version__.split(".")[0])  # transformers 5 ignores vocab_file=
    tok = tf.BertTokenizerFast(**{"vocab" if major >= 5 else "vocab_file": str(vocab)})
    unk = tok.convert_tokens_to_ids("[UNK]")
    assert unk not in tok(" ".join(VOCAB[5:]))["input_ids"]  # every word known: no [UNK]
    tok.save_pretrained(out)
    config = tf.BertConfig(vocab_size=len(VOCAB), max_position_embeddings=64, **TINY)
    torch.manual_seed(1)
    tf.BertModel(config).save_pretrained(out)
    return out


@pytest.fixture
def vit_dir(tmp_path):
    out = tmp_path / "tiny-vit"
    config = tf.ViTConfig(image_size=32, patch_size=8, **TINY)
    torch.manual_seed(2)
    tf.ViTModel(config).save_pretrained(out)
    size = {"height": 32, "width": 32}
    tf.ViTImageProcessor(size=size, image_mean=[0.4, 0.5, 0.6]).save_pretrained(out)
    return out


def _images(rng, n=3):
    shapes = [(37, 91), (60, 45), (20, 20)]
    modes = ["RGB", "L", "RGBA"]
    out = []
    for i in range(n):
        h, w = shapes[i % 3]
        rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        out.append(rgb.convert(modes[i % 3]))
    return out


def test_text_model_matches_its_tokenizer_and_model(bert_dir):
    m = Model(f"hf:{bert_dir}")
    loaded = m.load()
    assert (loaded.modality, loaded.prefix_tokens, loaded.library) == ("text", 0, "hf")
    assert loaded.presets["@blocks"] == ["encoder.layer.0", "encoder.layer.1"]
    assert loaded.presets["@hidden_states"] == [f"hidden_states.{i}" for i in range(3)]
    assert "hidden_states.2" in loaded.layer_names and "encoder.layer.1" in loaded.layer_names
    assert m.default_label == "tiny-bert" and loaded.weights == f"pretrained:{bert_dir}"
    tok = tf.AutoTokenizer.from_pretrained(bert_dir)
    want = tok(TEXTS, padding=True, truncation=True, max_length=512, return_tensors="pt")
    got = m.prepare(TEXTS)
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    ref = tf.BertModel.from_pretrained(bert_dir).eval()
    assert loaded.weights_sha256 == state_dict_sha256(ref)
    with torch.no_grad():
        plain = ref(**want, output_hidden_states=True)
    out = m.forward(got, hidden_states=True)
    assert len(out.hidden_states) == 3
    for a, b in zip(out.hidden_states, plain.hidden_states, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert m.describe()["preprocessing"]["kind"] == "text"


def test_max_tokens_truncates(bert_dir):
    got = Model(f"hf:{bert_dir}", max_tokens=4).prepare(TEXTS)
    assert got["input_ids"].shape == (3, 4)


def test_random_weights_are_seeded_and_differ_from_the_saved_ones(bert_dir):
    a, b = Model(f"hf:{bert_dir}@random").load(), Model(f"hf:{bert_dir}", weights="random").load()
    pre = Model(f"hf:{bert_dir}").load()
    assert a.weights == "random" and a.weights_sha256 == b.weights_sha256
    assert a.weights_sha256 != pre.weights_sha256
    assert Model(f"hf:{bert_dir}").fingerprint() == Model(f"hf:{bert_dir}").fingerprint()
    assert Model(f"hf:{bert_dir}").fingerprint() != Model(f"hf:{bert_dir}@random").fingerprint()
    assert (
        Model(f"hf:{bert_dir}", max_tokens=8).fingerprint() != Model(f"hf:{bert_dir}").fingerprint()
    )


def test_vision_model_matches_its_processor(vit_dir):
    rng = np.random.default_rng(0)
    m = Model(f"hf:{vit_dir}")
    loaded = m.load()
    assert (loaded.modality, loaded.prefix_tokens) == ("image", 1)
    blocks = loaded.presets["@blocks"]  # transformers 5: layers.N; before: encoder.layer.N
    assert len(blocks) == 2 and blocks[1].endswith(("layer.1", "layers.1"))
    assert set(blocks) <= set(loaded.layer_names)
    images = _images(rng)
    rgb = [im.convert("RGB") for im in images]
    proc = tf.AutoImageProcessor.from_pretrained(vit_dir, **pil_backend(tf))
    want = proc(images=rgb, return_tensors="pt")["pixel_values"]
    got = m.prepare(images)
    assert list(got) == ["pixel_values"] and got["pixel_values"].dtype == torch.float32
    torch.testing.assert_close(got["pixel_values"], want, rtol=0, atol=1e-6)
    ref = tf.ViTModel.from_pretrained(vit_dir).eval()
    with torch.no_grad():
        plain = ref(pixel_values=want, output_hidden_states=True)
    out = m.forward(got, hidden_states=True)
    torch.testing.assert_close(out.last_hidden_state, plain.last_hidden_state, rtol=0, atol=1e-5)
    prepared = want.numpy().astype(np.float32)  # an array prepared by the user: taken as given
    assert torch.equal(m.prepare(prepared)["pixel_values"], want)


def test_vision_overrides_go_to_the_processor(vit_dir):
    rng = np.random.default_rng(1)
    images = [im.convert("RGB") for im in _images(rng, 2)]
    m = Model(f"hf:{vit_dir}", resize=(40, 48), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    got = m.prepare(images)["pixel_values"]
    proc = tf.AutoImageProcessor.from_pretrained(
        vit_dir,
        **pil_backend(tf),
        size={"height": 40, "width": 48},
        image_mean=[0.5] * 3,
        image_std=[0.25] * 3,
    )
    want = proc(images=images, return_tensors="pt")["pixel_values"]
    assert got.shape == (2, 3, 40, 48)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert m.describe()["preprocessing"]["image_std"] == [0.25, 0.25, 0.25]


def test_register_and_distillation_tokens_count_as_prefix_tokens(tmp_path):
    dino = tf.Dinov2WithRegistersConfig(image_size=32, patch_size=8, num_register_tokens=4, **TINY)
    deit = tf.DeiTConfig(image_size=32, patch_size=8, **TINY)
    for config, want in ((dino, 5), (deit, 2)):
        out = tmp_path / type(config).__name__
        config.save_pretrained(out)
        tf.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(out)
        assert Model(f"hf:{out}@random").load().prefix_tokens == want


def test_wrong_modality_is_one_line(bert_dir, vit_dir):
    rng = np.random.default_rng(2)
    with pytest.raises(
        ValueError, match=r"^model 'hf:.*tiny-bert' takes texts; images were given$"
    ):
        Model(f"hf:{bert_dir}").prepare(_images(rng, 1))
    with pytest.raises(ValueError, match=r"^model 'hf:.*tiny-vit' takes images; texts were given$"):
        Model(f"hf:{vit_dir}").prepare(["a text"])
    with pytest.raises(ValueError, match="takes texts; an array was given"):
        Model(f"hf:{bert_dir}").prepare(np.zeros((1, 3, 32, 32), np.float32))


def test_errors_name_the_model_and_what_is_wrong(tmp_path, vit_dir):
    with pytest.raises(
        ValueError, match=r"^model 'hf:nobody/nothing': config is not in the cache \("
    ):
        Model("hf:nobody/nothing").load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"has no usable config"):
        Model(f"hf:{tmp_path / 'empty'}").load()
    (tmp_path / "afile.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a model directory"):
        Model(f"hf:{tmp_path / 'afile.txt'}").load()
    with pytest.raises(ValueError, match="hf models take '@random' or no '@'"):
        Model("hf:org/name@weights.bin")
    clip = tmp_path / "clip"
    tf.CLIPConfig(
        text_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
        vision_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
    ).save_pretrained(clip)
    with pytest.raises(ValueError, match="text and a vision tower"):
        Model(f"hf:{clip}@random").load()
    (tmp_path / "noproc").mkdir()
    tf.ViTConfig(image_size=32, patch_size=8, **TINY).save_pretrained(tmp_path / "noproc")
    with pytest.raises(ValueError, match="has no usable image processor"):
        Model(f"hf:{tmp_path / 'noproc'}@random").load()


def test_from_object_finds_the_tokenizer_or_asks_for_prep(bert_dir):
    obj = tf.BertModel.from_pretrained(bert_dir)
    m = Model.from_object(obj)
    assert m.library == "hf" and m.load().modality == "text" and m.load().weights == "object"
    tok = tf.AutoTokenizer.from_pretrained(bert_dir)
    want = tok(TEXTS, padding=True, truncation=True, max_length=512, return_tensors="pt")
    assert torch.equal(m.prepare(TEXTS)["input_ids"], want["input_ids"])
    bare = tf.BertModel(obj.config.__class__(vocab_size=len(VOCAB), **TINY))
    with pytest.raises(ValueError, match="give prep="):
        Model.from_object(bare).load()
    custom = Model.from_object(bare, prep=TextPrep(tok))
    assert torch.equal(custom.prepare(TEXTS)["input_ids"], want["input_ids"])
    assert custom.describe()["preprocessing"]["library"] == "custom"


def test_pickle_drops_the_module_and_loads_again(bert_dir):
    m = Model(f"hf:{bert_dir}")
    sha = m.load().weights_sha256
    again = pickle.loads(pickle.dumps(m))
    assert again._loaded is None and again.spec == m.spec
    assert again.load().weights_sha256 == sha


def test_missing_transformers_is_one_line(monkeypatch, bert_dir):
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingPackage, match=r"needs transformers: pip install fastrsa\[hf\]$"):
        Model(f"hf:{bert_dir}").load()
