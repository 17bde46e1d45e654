"""`fastrsa sweep --models` with models by name (timm, Hugging Face) on --images or --texts, its
pooling and preprocessing options, `--status` model lines, `fastrsa layers MODEL-SPEC`, and
one-line errors with exit 2. Random weights only, nothing downloads (HF_HUB_OFFLINE=1,
FASTRSA_OFFLINE=1, HF_HOME and TORCH_HOME in tmp_path). The command's RDMs equal fastrsa.sweep's
with the same models and options exactly (the same code path, float32 RDMs)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
tf = pytest.importorskip("transformers")
Image = pytest.importorskip("PIL.Image")
pytest.importorskip("zarr")

import fastrsa  # noqa: E402
from fastrsa.cli import main  # noqa: E402
from fastrsa.sweeps import ModelSource, open_store  # noqa: E402
from fastrsa.zoo import Model  # noqa: E402

R18 = "timm:resnet18@random"
SHAPES = [(37, 91), (80, 60), (64, 64), (100, 50), (45, 70)]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "the a cat dog sat on mat ran park red blue big small house tree , .".split()
)
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
}
TEXTS = [
    "the cat sat on the mat .",
    "a dog ran",
    "red tree , blue house .",
    "the big dog sat",
    "a small cat ran in the park .",
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FASTRSA_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """5 random images of mixed sizes and modes."""
    out = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i, ((h, w), mode) in enumerate(zip(SHAPES, ["RGB", "L", "RGBA", "P", "LA"], strict=True)):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode).save(
            out / f"im{i}.png"
        )
    return out


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("vit") / "tiny-vit"
    torch.manual_seed(2)
    tf.ViTModel(tf.ViTConfig(image_size=32, patch_size=8, **TINY)).save_pretrained(out)
    tf.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(out)
    return out


def _vocab_kwarg(path) -> dict:
    """The vocab file as BertTokenizerFast takes it (transformers 5 ignores vocab_file=)."""
    major = int(tf.__version__.split(".")[0])
    return {"vocab" if major >= 5 else "vocab_file": str(path)}


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bert") / "tiny-bert"
    out.mkdir()
    vocab = out.parent / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    tok = tf.BertTokenizerFast(**_vocab_kwarg(vocab))
    assert 1 not in tok(TEXTS)["input_ids"][0]  # the words are known: no [UNK]
    tok.save_pretrained(out)
    torch.manual_seed(1)
    config = tf.BertConfig(vocab_size=len(VOCAB), max_position_embeddings=64, **TINY)
    tf.BertModel(config).save_pretrained(out)
    return out


def _cli(*args) -> int:
    return main(["sweep", *map(str, args), "--no-progress"])


def _same_rdms(a, b) -> None:
    assert a.layers == b.layers
    for layer in a.layers:
        assert a.rdms(layer).labels == b.rdms(layer).labels
        np.testing.assert_array_equal(a.rdms(layer)[:], b.rdms(layer)[:])


def test_models_by_name_on_images_equal_the_python_sweep(folder, vit_dir, tmp_path, capsys):
    """A timm and a Hugging Face model in one command, with --resize/--crop (given to both: timm
    through ImagePrep, the ViT through its processor) and --pool; --status shows each model's
    spec, weights, pooling and preprocessing; a second run reuses everything."""
    store = tmp_path / "s"
    argv = [
        "--store",
        store,
        "--models",
        R18,
        f"hf:{vit_dir}",
        "--images",
        folder,
        "--pool",
        "flatten",
        "--resize",
        40,
        "--crop",
        32,
        "--keep-features",
    ]
    assert _cli(*argv) == 0
    out = capsys.readouterr().out
    assert "2 sources x layers layer1, layer2, layer3, layer4, " in out and "n=5" in out
    assert "RDMs: 6 computed, 0 reused" in out
    ref = fastrsa.sweep(
        [Model(R18, resize=40, crop=32), Model(f"hf:{vit_dir}", resize=40, crop=32)],
        images=folder,
        store=tmp_path / "ref",
        pool="flatten",
        progress=False,
    )
    got = open_store(store)
    _same_rdms(got, ref)
    assert got.features("resnet18@random", "layer1").shape == (5, 64 * 8 * 8)
    assert _cli(*argv) == 0
    assert "RDMs: 0 computed, 6 reused" in capsys.readouterr().out

    assert main(["sweep", "--status", str(store)]) == 0
    status = capsys.readouterr().out
    lines = [line.strip() for line in status.splitlines()]
    r18 = next(line for line in lines if line.startswith("resnet18@random: "))
    assert r18.startswith(f"resnet18@random: {R18} (weights random), pool flatten; preprocessing")
    assert "library=timm" in r18 and "size=40" in r18 and "crop=32" in r18
    assert "interpolation=bicubic" in r18  # timm's, for resnet18
    vit = next(line for line in lines if line.startswith("tiny-vit: "))
    assert f"hf:{vit_dir} (weights pretrained:{vit_dir}), pool flatten" in vit
    assert "library=hf" in vit and "crop_size={'height': 32, 'width': 32}" in vit


def test_text_model_with_pool_and_max_tokens(bert_dir, tmp_path, capsys):
    texts = tmp_path / "t.jsonl"
    texts.write_text("".join(f'{{"text": "{t}"}}\n' for t in TEXTS))
    store = tmp_path / "s"
    argv = [
        "--store",
        store,
        "--models",
        f"mine=hf:{bert_dir}",
        "--texts",
        texts,
        "--layers",
        "hidden_states.2",
        "@blocks",
        "--pool",
        "masked-mean",
        "--max-tokens",
        4,
    ]
    assert _cli(*argv) == 0
    out = capsys.readouterr().out
    assert "1 sources x layers " in out and "RDMs: 3 computed" in out
    source = ModelSource(Model(f"hf:{bert_dir}", max_tokens=4), "mine", pool="masked-mean")
    ref = fastrsa.sweep(
        [source],
        texts=TEXTS,
        layers=["hidden_states.2", "@blocks"],
        store=tmp_path / "ref",
        progress=False,
    )
    got = open_store(store)
    assert sorted(got.layers) == ["encoder.layer.0", "encoder.layer.1", "hidden_states.2"]
    _same_rdms(got, ref)
    assert main(["sweep", "--status", str(store)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "mine: " in x)
    assert "pool masked-mean" in line and "max_tokens=4" in line and "kind" not in line


def test_layers_lists_a_model_by_name_and_its_preset(capsys):
    assert main(["layers", R18]) == 0
    out = capsys.readouterr().out
    rows = {
        line.split()[0]: line.split(None, 1)[1]
        for line in out.splitlines()
        if not line.startswith("preset ")
    }
    assert rows["layer1"] == "(1, 64, 56, 56)" and rows["layer4"] == "(1, 512, 7, 7)"
    assert "preset @blocks (4 layers): layer1, layer2, layer3, layer4" in out
    assert main(["layers", R18, "--layers", "layer4.*.conv?"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines() if not line.startswith("preset")] == [
        "layer4.0.conv1",
        "layer4.0.conv2",
        "layer4.1.conv1",
        "layer4.1.conv2",
    ]


def _bad_inputs(folder, tmp_path):
    (tmp_path / "f.npy").write_bytes(b"")
    (tmp_path / "m.onnx").write_bytes(b"")
    (tmp_path / "t.txt").write_text("a cat\na dog\na tree\n")
    return {"d": folder, "t": tmp_path}


BAD = [
    (["sweep", "--store", "{t}/s", "--models", "timm:resnet181@random", "--images", "{d}"],
     "model 'timm:resnet181@random': timm has no model 'resnet181'; closest: resnet18"),
    (["sweep", "--store", "{t}/s", "--models", "timm:resnet18", "--images", "{d}"],
     "pretrained weights are not in the cache"),
    (["sweep", "--store", "{t}/s", "--models", R18, "--images", "{d}", "--layers", "layer9"],
     "'layer9' matches no layer of the model; closest:"),
    (["sweep", "--store", "{t}/s", "--models", R18, "--texts", "{t}/t.txt"],
     "takes images; the sweep gives texts"),
    (["sweep", "--store", "{t}/s", "--models", R18, "--images", "{d}", "--texts", "{t}/t.txt"],
     "--texts: give --images or --texts, not both"),
    (["sweep", "--store", "{t}/s", "--models", "{t}/m.onnx", "--images", "{d}", "--resize", "64"],
     "--resize: apply to models by name; {t}/m.onnx is an ONNX file"),
    (["sweep", "--store", "{t}/s", "--features", "{t}/f.npy", "--pool", "gap"],
     "--pool: only --models are pooled; --features files are not"),
    (["sweep", "--store", "{t}/s", "--features", "{t}/f.npy", "--crop", "64"],
     "--crop: only --models take it; --features files do not"),
    (["sweep", "--store", "{t}/s", "--models", R18],
     "--images: --models need an image folder (--images DIR) or --texts"),
    (["layers", "timm:resnet181@random"], "timm has no model 'resnet181'; closest: resnet18"),
    (["layers", R18, "--layers", "layer9"], "'layer9' matches no layer"),
]  # fmt: skip


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a[3:6]) for a, _ in BAD])
def test_errors_are_one_line_with_exit_2(folder, tmp_path, capsys, argv, message):
    where = _bad_inputs(folder, tmp_path)
    argv = [a.format(**where) for a in argv] + (["--no-progress"] if argv[0] == "sweep" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"fastrsa {argv[0]}: error: "), err
    assert message.format(**where) in err, err
