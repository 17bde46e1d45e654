"""Models by name end to end through fastrsa.sweep: the features a sweep keeps equal each
library's own documented pipeline written plainly here (timm: resolve_data_config +
create_transform + forward_intermediates; torchvision: weights.transforms() + forward hooks;
transformers: the saved image processor / tokenizer + output_hidden_states, pooled by hand), and
the stored RDMs equal 1 - np.corrcoef of those features (float64 reference). Then model objects,
torch datasets and prepared arrays as inputs, the store's content keys, one-line errors, and Ray.

Random weights only: nothing downloads (HF_HUB_OFFLINE=1, FASTRSA_OFFLINE=1, HF_HOME and
TORCH_HOME in tmp_path). Tolerances: features atol 1e-5 x the reference's largest magnitude,
rtol 1e-5 (float32 rounding: the same float32 ops, in another order where pooled); RDMs atol
1e-5 (a float32 RDM against a float64 one from the same features)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
tv = pytest.importorskip("torchvision")
tf = pytest.importorskip("transformers")
Image = pytest.importorskip("PIL.Image")
pytest.importorskip("zarr")

import fastrsa  # noqa: E402
from fastrsa.sweeps import ModelSource  # noqa: E402
from fastrsa.zoo import Model  # noqa: E402

N = 7
# sizes (h, w) and modes of the images: every aspect and a mode convert("RGB") takes
SHAPES = [(37, 91), (80, 60), (64, 64), (100, 50), (70, 90), (45, 45), (66, 99)]
MODES = ["RGB", "L", "RGBA", "P", "LA", "RGB", "CMYK"]
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
    "blue",
    "the red house , the blue tree , the big mat .",
]
R18 = "timm:resnet18@random"
SMALL = {"resize": 72, "crop": 64}  # resnet18 on 64 x 64 crops: fast


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FASTRSA_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """N random images of mixed sizes and modes (PNG; CMYK as JPEG), named in sweep order."""
    out = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i, ((h, w), mode) in enumerate(zip(SHAPES, MODES, strict=True)):
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
        img.save(out / f"im{i}.{'jpg' if mode == 'CMYK' else 'png'}")
    return out


def _pils(folder) -> list:
    """The folder's images in sweep order (by name), as PIL opens them."""
    out = []
    for p in sorted(folder.iterdir()):
        with Image.open(p) as img:
            img.load()
            out.append(img)
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
    tf.BertModel(
        tf.BertConfig(vocab_size=len(VOCAB), max_position_embeddings=64, **TINY)
    ).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("vit") / "tiny-vit"
    torch.manual_seed(2)
    tf.ViTModel(tf.ViTConfig(image_size=32, patch_size=8, **TINY)).save_pretrained(out)
    size = {"height": 32, "width": 32}
    tf.ViTImageProcessor(size=size, image_mean=[0.4, 0.5, 0.6]).save_pretrained(out)
    return out


def _close(got, want, what=""):
    want = np.asarray(want, dtype=np.float64)
    scale = max(float(np.abs(want).max()), 1e-30)
    np.testing.assert_allclose(
        np.asarray(got, np.float64), want, rtol=1e-5, atol=1e-5 * scale, err_msg=what
    )


def _rdm_ref(feats) -> np.ndarray:
    """Condensed 1 - Pearson r of the rows, in float64."""
    r = 1.0 - np.corrcoef(np.asarray(feats, dtype=np.float64))
    return r[np.triu_indices(len(r), k=1)]


def _check_store(store, want: dict) -> None:
    """Every {(label, layer): reference features}: the kept features and the stored RDM."""
    for (label, layer), ref in want.items():
        got = np.asarray(store.features(label, layer)[:])
        assert got.dtype == np.float32 and got.shape == ref.shape, (label, layer, got.shape)
        _close(got, ref, f"features {label} {layer}")
        rdms = store.rdms(layer)
        row = np.asarray(rdms[rdms.labels.index(label)], dtype=np.float64)
        np.testing.assert_allclose(row, _rdm_ref(got), rtol=0, atol=1e-5, err_msg=layer)
        np.testing.assert_allclose(row, _rdm_ref(ref), rtol=0, atol=1e-4, err_msg=layer)


def _sweep(sources, store, **kw):
    kw.setdefault("progress", False)
    return fastrsa.sweep(sources, store=store, keep_features=True, **kw)


# ------------------------------------------------------------------------ 1. the libraries' own


def _timm_ref(module, pils, indices, **cfg_over) -> list:
    cfg = timm.data.resolve_data_config({}, model=module)
    cfg.update(cfg_over)
    transform = timm.data.create_transform(**cfg)
    x = torch.stack([transform(im.convert("RGB")) for im in pils])
    with torch.no_grad():
        return module.forward_intermediates(x, indices=indices, intermediates_only=True)


def test_timm_conv_maps_flatten_and_gap_equal_timms_pipeline(folder, tmp_path):
    """resnet18 at 72 -> 64 (timm's cfg: input_size 64, crop_pct 64 / 72), pool given to the
    sweep (flatten) and per source (gap), both in one sweep."""
    sources = {
        "flat": Model(R18, **SMALL),
        "gap": ModelSource(Model(R18, **SMALL), "gap", pool="gap"),
    }
    store = _sweep(
        sources, tmp_path / "s", images=folder, layers=["layer1", "layer4"], pool="flatten"
    )
    module = Model(R18).load().module
    l1, l4 = _timm_ref(module, _pils(folder), [1, 4], input_size=(3, 64, 64), crop_pct=64 / 72)
    assert l1.shape == (N, 64, 16, 16) and l4.shape == (N, 512, 2, 2)
    want = {
        ("flat", "layer1"): l1.reshape(N, -1).numpy(),
        ("flat", "layer4"): l4.reshape(N, -1).numpy(),
        ("gap", "layer1"): l1.double().mean((2, 3)).numpy(),
        ("gap", "layer4"): l4.double().mean((2, 3)).numpy(),
    }
    _check_store(store, want)
    assert store.index["sources"]["gap"]["layer1"]["pool"] == "gap"
    assert store.index["sources"]["flat"]["layer1"]["pool"] == "flatten"


def _hooked(module, x, names) -> dict:
    """{name: the submodule's output} of module(x), caught with plain forward hooks."""
    caught = {}
    hooks = [
        module.get_submodule(n).register_forward_hook(
            lambda _m, _i, out, n=n: caught.__setitem__(n, out)
        )
        for n in names
    ]
    with torch.no_grad():
        module(x)
    for h in hooks:
        h.remove()
    return caught


def test_timm_vit_tokens_cls_and_mean_skip_the_prefix(folder, tmp_path):
    """timm's test_vit (1 prefix token) at its own preprocessing (160 crop): cls is token 0,
    mean the mean of the patch tokens only."""
    spec = "timm:test_vit@random"
    store = _sweep(
        {
            "cls": ModelSource(Model(spec), "cls", pool="cls"),
            "mean": ModelSource(Model(spec), "mean", pool="mean"),
        },
        tmp_path / "s",
        images=folder,
        layers=["blocks.1", "blocks.5"],
    )
    module = Model(spec).load().module
    assert module.num_prefix_tokens == 1
    cfg = timm.data.resolve_data_config({}, model=module)
    transform = timm.data.create_transform(**cfg)
    x = torch.stack([transform(im.convert("RGB")) for im in _pils(folder)])
    caught = _hooked(module, x, ["blocks.1", "blocks.5"])
    want = {}
    for layer, t in caught.items():
        want["cls", layer] = t[:, 0].numpy()
        want["mean", layer] = t[:, 1:].double().mean(1).numpy()
    _check_store(store, want)


def test_torchvision_equals_its_weights_transforms_and_hooks(folder, tmp_path):
    store = _sweep(
        ["torchvision:resnet18@random"],
        tmp_path / "s",
        images=folder,
        layers=["layer2", "avgpool"],
        pool="flatten",
    )
    module = Model("torchvision:resnet18@random").load().module
    transform = tv.models.get_model_weights("resnet18").DEFAULT.transforms()
    x = torch.stack([transform(im.convert("RGB")) for im in _pils(folder)])
    caught = _hooked(module, x, ["layer2", "avgpool"])
    label = store.labels[0]
    assert label == "resnet18@random"
    _check_store(store, {(label, n): t.reshape(N, -1).numpy() for n, t in caught.items()})


def test_hf_vision_equals_its_processor_and_hidden_states(folder, vit_dir, tmp_path):
    """Tiny ViT: cls, mean (patch tokens: the CLS token skipped), last (no mask: the last
    token) and flatten, on hidden_states.1 and the last one."""
    layers = ["hidden_states.1", "hidden_states.2"]
    pools = ("cls", "mean", "last", "flatten")
    sources = {p: ModelSource(Model(f"hf:{vit_dir}"), p, pool=p) for p in pools}
    store = _sweep(sources, tmp_path / "s", images=folder, layers=layers)
    proc = tf.AutoImageProcessor.from_pretrained(vit_dir, backend="pil")  # the PIL processor
    pixels = proc(images=[im.convert("RGB") for im in _pils(folder)], return_tensors="pt")
    ref = tf.ViTModel.from_pretrained(vit_dir).eval()
    with torch.no_grad():
        states = ref(**pixels, output_hidden_states=True).hidden_states
    want = {}
    for layer in layers:
        t = states[int(layer[-1])].double()
        assert t.shape == (N, 17, 32)
        want["cls", layer] = t[:, 0].numpy()
        want["mean", layer] = t[:, 1:].mean(1).numpy()
        want["last", layer] = t[:, -1].numpy()
        want["flatten", layer] = t.reshape(N, -1).numpy()
    _check_store(store, want)


def test_hf_text_pools_equal_the_tokenizer_and_hidden_states(bert_dir, tmp_path):
    """Tiny BERT on texts of different lengths (padded): masked-mean (pad tokens left out),
    cls, last (the last token that is no padding); mean (padding included) is refused."""
    layers = ["hidden_states.1", "hidden_states.2", "encoder.layer.1"]
    with pytest.raises(ValueError, match="'mean' would average a text's padding"):
        _sweep({"m": ModelSource(Model(f"hf:{bert_dir}"), "m", pool="mean")}, tmp_path / "x",
               texts=TEXTS, layers=layers)  # fmt: skip
    pools = ("masked-mean", "cls", "last")
    sources = {p: ModelSource(Model(f"hf:{bert_dir}"), p, pool=p) for p in pools}
    store = _sweep(sources, tmp_path / "s", texts=TEXTS, layers=layers)
    tok = tf.AutoTokenizer.from_pretrained(bert_dir)
    batch = tok(TEXTS, padding=True, truncation=True, return_tensors="pt")
    mask = batch["attention_mask"].double()
    assert not bool(mask.all())  # some texts are padded
    ref = tf.BertModel.from_pretrained(bert_dir).eval()
    with torch.no_grad():
        states = ref(**batch, output_hidden_states=True).hidden_states
    last = mask.sum(1).long() - 1  # right padding: the last kept token
    want = {}
    for layer in layers:
        t = (states[2] if layer == "encoder.layer.1" else states[int(layer[-1])]).double()
        want["masked-mean", layer] = ((t * mask[:, :, None]).sum(1) / mask.sum(1)[:, None]).numpy()
        want["cls", layer] = t[:, 0].numpy()
        want["last", layer] = t[torch.arange(N), last].numpy()
    _check_store(store, want)
    # the sweep's pool="auto" is masked-mean for text tokens; a .txt file equals the list
    (tmp_path / "t.txt").write_text("\n".join(TEXTS) + "\n")
    auto = _sweep([f"hf:{bert_dir}"], tmp_path / "a", texts=tmp_path / "t.txt", layers=layers[:1])
    np.testing.assert_array_equal(
        auto.features("tiny-bert", layers[0])[:], store.features("masked-mean", layers[0])[:]
    )


# ------------------------------------------------------------------- 2. objects given in Python


def test_timm_object_brings_its_pretrained_cfg(folder, tmp_path):
    """A timm model built in Python with its own data config (64 px, bilinear, crop_pct 0.8,
    mean/std of its own): the sweep prepares images the way that config says."""
    torch.manual_seed(3)
    cfg = {
        "input_size": (3, 64, 64),
        "crop_pct": 0.8,
        "interpolation": "bilinear",
        "mean": (0.3, 0.4, 0.5),
        "std": (0.2, 0.25, 0.3),
    }
    obj = timm.create_model("resnet18", pretrained=False, pretrained_cfg_overlay=cfg).eval()
    store = _sweep([obj], tmp_path / "s", images=folder, layers=["layer2"], pool="gap")
    assert store.labels == ["resnet18"]
    (l2,) = _timm_ref(obj, _pils(folder), [2])
    assert l2.shape[-1] == 8  # 64 px in: stride 8 at layer2
    _check_store(store, {("resnet18", "layer2"): l2.double().mean((2, 3)).numpy()})
    entry = store.index["sources"]["resnet18"]["layer2"]
    assert entry["weights"] == "object" and entry["preprocessing"]["size"] == 80


def test_hf_object_and_model_with_overrides(folder, vit_dir, tmp_path):
    """A transformers model object (its processor found in its local directory) and a
    fastrsa.zoo.Model with every image override, in one store (pool "auto": flatten)."""
    obj = tf.AutoModel.from_pretrained(vit_dir)
    over = {
        "resize": 80,
        "crop": 64,
        "mean": (0.5, 0.4, 0.3),
        "std": (0.3, 0.2, 0.1),
        "interpolation": "bicubic",
    }
    _sweep({"vit": obj}, tmp_path / "s", images=folder, layers=["hidden_states.2"])
    store = _sweep({"r18": Model(R18, **over)}, tmp_path / "s", images=folder, layers=["layer3"])
    pils = _pils(folder)
    proc = tf.AutoImageProcessor.from_pretrained(vit_dir, backend="pil")
    with torch.no_grad():
        pixels = proc(images=[im.convert("RGB") for im in pils], return_tensors="pt")
        state = obj.eval()(**pixels, output_hidden_states=True).hidden_states[2]
    module = Model(R18).load().module
    (l3,) = _timm_ref(
        module,
        pils,
        [3],
        input_size=(3, 64, 64),
        crop_pct=0.8,
        interpolation="bicubic",
        mean=over["mean"],
        std=over["std"],
    )
    _check_store(
        store,
        {
            ("vit", "hidden_states.2"): state.reshape(N, -1).numpy(),
            ("r18", "layer3"): l3.reshape(N, -1).numpy(),
        },
    )
    assert store.rdms("layer3").labels == ["r18"]
    assert store.rdms("hidden_states.2").labels == ["vit"]


class _Images(torch.utils.data.Dataset):
    """Items as a torchvision-style dataset gives them: (PIL image, label)."""

    def __init__(self, pils):
        self.pils = pils

    def __len__(self):
        return len(self.pils)

    def __getitem__(self, i):
        return self.pils[i], i % 2


def test_dataset_and_dataloader_equal_the_folder(folder, tmp_path):
    model = Model(R18, **SMALL)
    by_folder = _sweep([model], tmp_path / "f", images=folder, layers=["layer2"], pool="gap")
    data = _Images(_pils(folder))
    by_data = _sweep([model], tmp_path / "d", images=data, layers=["layer2"], pool="gap")
    loader = torch.utils.data.DataLoader(data, batch_size=3, shuffle=False)
    by_loader = _sweep(
        [model], tmp_path / "l", images=loader, layers=["layer2"], pool="gap", batch_size=4
    )
    want = np.asarray(by_folder.features("resnet18@random", "layer2")[:])
    for store in (by_data, by_loader):
        np.testing.assert_array_equal(store.features("resnet18@random", "layer2")[:], want)
        np.testing.assert_array_equal(store.rdms("layer2")[0], by_folder.rdms("layer2")[0])


def test_float_array_is_taken_as_given(tmp_path):
    """Float pixels of any range go to a timm model as they are: no resize, no mean/std."""
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((N, 3, 40, 48)) * 300 + 1000).astype(np.float32)
    store = _sweep([R18], tmp_path / "s", images=x, layers=["layer1", "layer3"], pool="gap")
    module = Model(R18).load().module
    with torch.no_grad():
        l1, l3 = module.forward_intermediates(
            torch.from_numpy(x), indices=[1, 3], intermediates_only=True
        )
    _check_store(
        store,
        {
            ("resnet18@random", "layer1"): l1.double().mean((2, 3)).numpy(),
            ("resnet18@random", "layer3"): l3.double().mean((2, 3)).numpy(),
        },
    )


# ------------------------------------------------------------------------------ 3. content keys


def test_content_keys_refuse_another_source_under_one_label(folder, tmp_path):
    path = tmp_path / "s"
    first = _sweep({"m": Model(R18, **SMALL)}, path, images=folder, layers=["layer1"], pool="gap")
    assert first.summary.rdms_computed == 1
    for other, pool in ((Model(R18, **SMALL), "flatten"), (Model(R18, resize=80, crop=64), "gap")):
        with pytest.raises(
            ValueError,
            match=r"label 'm' in layer 'layer1' holds the results of "
            r"another model",
        ) as err:
            _sweep({"m": other}, path, images=folder, layers=["layer1"], pool=pool)
        assert str(err.value).count("\n") == 0
    both = _sweep(
        {
            "m": ModelSource(Model(R18, **SMALL), "m", pool="gap"),
            "flat": Model(R18, **SMALL),
            "big": ModelSource(Model(R18, resize=80, crop=64), "big", pool="gap"),
        },
        path,
        images=folder,
        layers=["layer1"],
        pool="flatten",
    )
    assert both.rdms("layer1").labels == ["m", "flat", "big"]
    assert both.summary.rdms_reused == 1 and both.summary.rdms_computed == 2
    rdms = np.asarray(both.rdms("layer1")[:])
    assert not np.allclose(rdms[0], rdms[1]) and not np.allclose(rdms[0], rdms[2])
    assert both.features("flat", "layer1").shape == (N, 64 * 16 * 16)
    again = _sweep(
        {"flat": Model(R18, **SMALL)}, path, images=folder, layers=["layer1"], pool="flatten"
    )
    assert (again.summary.rdms_reused, again.summary.rdms_computed) == (1, 0)
    assert again.summary.tiles_computed == 0


# ------------------------------------------------------------------------------ 4. bad input


def _broken_folder(folder, tmp_path):
    out = tmp_path / "broken"
    out.mkdir()
    for p in sorted(folder.iterdir())[:3]:
        (out / p.name).write_bytes(p.read_bytes())
    (out / "im9.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 10)
    return out


def _text_file(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("the cat\na dog\n\nred tree\n")
    return path


BAD = [
    ("unknown timm name", lambda d: dict(sources=["timm:resnet181@random"]),
     r"model 'timm:resnet181@random': timm has no model 'resnet181'; closest: resnet18"),
    ("timm weights offline", lambda d: dict(sources=["timm:resnet18"]),
     r"model 'timm:resnet18': pretrained weights are not in the cache \(.*hf_home.*\) and "
     r"cannot be downloaded \(offline: HF_HUB_OFFLINE=1"),
    ("torchvision weights offline", lambda d: dict(sources=["torchvision:resnet18"]),
     r"model 'torchvision:resnet18': pretrained weights are not in the cache \(.*torch_home.*\)"),
    ("hf model offline", lambda d: dict(sources=["hf:nobody/nothing"]),
     r"model 'hf:nobody/nothing': config is not in the cache \(.*hf_home"),
    ("no such layer", lambda d: dict(layers=["layer9"]),
     r"source 'resnet18@random' .*'layer9' matches no layer of the model; closest: 'layer4', "
     r"'layer3', 'layer2', 'layer1'"),
    ("texts for a vision model", lambda d: dict(images=None, texts=TEXTS),
     r"source 'resnet18@random' .*takes images; the sweep gives texts"),
    ("images for a text model", lambda d: dict(sources=[f"hf:{d['bert']}"], layers=None),
     r"source 'tiny-bert' .*takes texts; the sweep gives images"),
    ("empty line of a text file",
     lambda d: dict(sources=[f"hf:{d['bert']}"], layers=None, images=None,
                    texts=_text_file(d["tmp"])),
     r"texts: .*texts.txt line 3 is empty"),
    ("unreadable image", lambda d: dict(images=_broken_folder(d["folder"], d["tmp"])),
     r"images: .*im9.png is not a readable image"),
    ("cls on a conv map", lambda d: dict(pool="cls"),
     r"layer 'layer1': pool 'cls' needs a 3-d token sequence \(b, tokens, d\); its output is "
     r"4-d \(use flatten or gap\)"),
    ("masked-mean on images", lambda d: dict(sources=["timm:test_vit@random"], layers=["blocks.0"],
                                             pool="masked-mean"),
     r"layer 'blocks.0': pool 'masked-mean' needs text \(an attention mask\)"),
    ("a preset the model lacks", lambda d: dict(layers=["@hidden_states"]),
     r"layers: no preset '@hidden_states' for this model \(it has @blocks\)"),
    ("images and texts", lambda d: dict(texts=TEXTS), r"^give images or texts, not both$"),
]  # fmt: skip


@pytest.mark.parametrize("case, given, match", BAD, ids=[c for c, _, _ in BAD])
def test_bad_input_is_one_line(folder, bert_dir, tmp_path, case, given, match):
    kw = {"sources": [R18], "images": folder, "layers": ["layer1"], "progress": False}
    kw.update(given({"folder": folder, "bert": bert_dir, "tmp": tmp_path}))
    with pytest.raises((ValueError, FileNotFoundError), match=match) as err:
        fastrsa.sweep(kw.pop("sources"), store=tmp_path / "s", **kw)
    assert str(err.value).count("\n") == 0, str(err.value)


# ------------------------------------------------------------------------------------ 5. Ray


@pytest.mark.slow  # about 35 s on 2 cores: Ray's start and its workers' imports
def test_ray_equals_local(folder, tmp_path):
    """The same sweep of a model by name on a local Ray cluster (2 CPUs): the Model is pickled
    without its module and loaded again in the worker; RDMs, features and similarity equal."""
    ray = pytest.importorskip("ray")
    import logging

    kw = {"images": folder, "layers": ["layer1", "layer3"], "pool": "gap"}
    local = _sweep([Model(R18, **SMALL)], tmp_path / "local", **kw)
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2,
            num_gpus=0,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    try:
        remote = _sweep([Model(R18, **SMALL)], tmp_path / "ray", executor="ray", **kw)
    finally:
        if started:
            ray.shutdown()
    assert remote.summary.rdms_computed == 2
    for layer in kw["layers"]:
        np.testing.assert_array_equal(remote.rdms(layer)[:], local.rdms(layer)[:])
        np.testing.assert_array_equal(
            remote.features("resnet18@random", layer)[:],
            local.features("resnet18@random", layer)[:],
        )
        np.testing.assert_array_equal(remote.similarity(layer), local.similarity(layer))
