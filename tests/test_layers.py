"""fastrsa.layers (every layer with its output shape, one forward pass), select_layers (names and
glob patterns, closest names for a miss), `fastrsa layers`, and globs in a sweep's layers."""

import json

import numpy as np
import pytest

import fastrsa
from fastrsa.cli import main
from fastrsa.layers import first_tensor, select_layers
from fastrsa.sweeps import ModuleSource

torch = pytest.importorskip("torch")
nn = torch.nn


class Pair(nn.Module):
    """Returns a tuple, the hidden state first (as a transformer block may)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(8, 6, 1)

    def forward(self, x):
        y = self.proj(x)
        return y, y.mean(dim=(2, 3))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.blocks = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU()), Pair()]
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(6, 5)
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        x = self.stem(x)
        x = self.blocks[0](x)
        x, _ = self.blocks[1](x)
        return self.head(self.pool(x).flatten(1))


def test_module_layers_match_a_manual_forward():
    torch.manual_seed(0)
    net = Net().train()
    x = torch.randn(2, 3, 16, 16)
    got = fastrsa.layers(net, x)
    with torch.no_grad():
        s0 = net.stem[0](x)
        b0 = net.blocks[0](net.stem(x))
        proj = net.blocks[1].proj(b0)
        pooled = net.pool(proj)
        want = [
            ("stem", net.stem(x).shape),
            ("stem.0", s0.shape),
            ("stem.1", s0.shape),
            ("blocks.0", b0.shape),
            ("blocks.0.0", b0.shape),
            ("blocks.0.1", b0.shape),
            ("blocks.1", proj.shape),  # the tuple's first tensor
            ("blocks.1.proj", proj.shape),
            ("pool", pooled.shape),
            ("head", net.head(pooled.flatten(1)).shape),
        ]
    assert got == [(name, tuple(shape)) for name, shape in want]  # `unused` did not run
    assert net.training and all(not m._forward_hooks for m in net.modules())
    assert fastrsa.layers(net, (1, 3, 8, 8))[-1] == ("head", (1, 5))  # a shape: zeros
    with pytest.raises(ValueError, match="example is required for a torch module"):
        fastrsa.layers(net)
    with pytest.raises(TypeError, match="example must be a tensor or a shape; got str"):
        fastrsa.layers(net, "x")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module or an .onnx path"):
        fastrsa.layers(3, x)
    with pytest.raises(ValueError, match=r"model: .*\.pt is not an \.onnx file"):
        fastrsa.layers("model.pt")


def test_first_tensor_hidden_state_first():
    t = torch.zeros(2, 3)
    assert first_tensor(t) is t
    assert first_tensor((None, [t, torch.ones(1)])) is t
    assert first_tensor({"last_hidden_state": t, "pooler_output": torch.ones(1)}) is t
    assert first_tensor(("no", None)) is None


def test_onnx_layers_of_a_shipped_encoder(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from fastrsa.demo import shipped_models

    path = next(iter(shipped_models().values()))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    size = sess.get_inputs()[0].shape[2]
    outs = sess.run(names, {sess.get_inputs()[0].name: np.zeros((1, 3, size, size), np.float32)})
    want = [(n, o.shape) for n, o in zip(names, outs, strict=True)]
    assert fastrsa.layers(path) == want == fastrsa.layers(str(path))
    assert [n for n, _ in want] == ["block4", "compressed"]

    # the command line: one line per layer, --json, --layers with globs
    assert main(["layers", str(path), "--json", str(tmp_path / "l.json")]) == 0
    assert json.loads((tmp_path / "l.json").read_text()) == [
        {"name": n, "shape": list(s)} for n, s in want
    ]
    assert main(["layers", str(path), "--layers", "comp*"]) == 0


def test_cli_output_and_errors(capsys, tmp_path):
    pytest.importorskip("onnxruntime")
    from fastrsa.demo import shipped_models

    path = str(next(iter(shipped_models().values())))
    assert main(["layers", path]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "block4      (1, 64, 4, 4)",
        "compressed  (1, 8, 4, 4)",
    ]
    for argv, message in [
        ([path, "--layers", "blok4"], "--layers: 'blok4' matches no layer of the model; "
         "closest: 'block4'"),
        ([str(tmp_path / "m.pt")], "is neither an .onnx file nor a model by name"),
        ([str(tmp_path / "gone.onnx")], "no such file"),
    ]:  # fmt: skip
        assert main(["layers", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("fastrsa layers: error: ")
        assert message in err


def test_select_layers_globs_order_and_misses():
    names = ["stem", "blocks.0", "blocks.0.act", "blocks.1", "layer1", "layer2", "layer4", "head"]
    assert select_layers(names, "head") == ["head"]
    assert select_layers(names, ["head", "blocks.?"]) == ["blocks.0", "blocks.1", "head"]
    assert select_layers(names, ["blocks.*", "blocks.0"]) == ["blocks.0", "blocks.1"]  # one part
    assert select_layers(names, ["blocks.**"]) == ["blocks.0", "blocks.0.act", "blocks.1"]
    assert select_layers(names, ["*"]) == ["stem", "layer1", "layer2", "layer4", "head"]
    assert select_layers(names, ["**.act", "[!bl]*"]) == ["stem", "blocks.0.act", "head"]
    assert select_layers(names, ["layer[1-3]"]) == ["layer1", "layer2"]
    assert select_layers(["out[0]", "out1"], ["out[0]"]) == ["out[0]"]  # a name before a pattern
    with pytest.raises(ValueError, match=r"^layers: 'layer5' matches no layer of the model; "
                       r"closest: 'layer4', 'layer2', 'layer1'$"):  # fmt: skip
        select_layers(names, ["stem", "layer5"])
    with pytest.raises(ValueError, match=r"^--layers: 'blocks\.9\*' matches no layer .*closest"):
        select_layers(names, "blocks.9*", "--layers")
    with pytest.raises(ValueError, match="'zzz' matches no layer of the model; it has 'stem'"):
        select_layers(names, "zzz")
    with pytest.raises(ValueError, match="layers must be a non-empty list of names"):
        select_layers(names, [])


def test_sweep_of_a_module_with_a_glob_layer(tmp_path):
    torch.manual_seed(1)
    net = Net()
    images = np.random.default_rng(0).uniform(-1, 1, (5, 3, 16, 16)).astype(np.float32)
    store = fastrsa.sweep(
        [ModuleSource(net, "net", input_size=16)], images, layers=["stem.*", "blocks.0"],
        store=tmp_path / "s", backend="numpy", progress=False,
    )  # fmt: skip
    assert sorted(store.layers) == ["blocks.0", "stem.0", "stem.1"]
    with torch.no_grad():
        want = {"stem.0": net.stem[0](torch.from_numpy(images))}
        want["stem.1"] = net.stem(torch.from_numpy(images))
        want["blocks.0"] = net.blocks[0](want["stem.1"])
    for layer, out in want.items():
        ref = fastrsa.rdms(out.reshape(5, -1).double().numpy(), "correlation", backend="numpy")
        np.testing.assert_allclose(np.asarray(store.rdms(layer))[0], ref, atol=1e-5)
    for layers, message in [
        (["blocks.5"], r"layers: 'blocks\.5' matches no layer of the model; "
         r"closest: 'blocks\.1', 'blocks\.0'"),
        (["head", "x*"], r"layers: 'x\*' matches no layer of the model"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=r"^source 'net' \(module Net\): " + message):
            fastrsa.sweep({"net": net}, images, layers=layers, store=tmp_path / "t")
        assert not (tmp_path / "t").exists()  # refused before any work


def test_onnx_source_expands_globs_and_names_the_closest():
    pytest.importorskip("onnxruntime")
    from fastrsa.demo import shipped_models
    from fastrsa.sweeps import ONNXSource

    src = ONNXSource(next(iter(shipped_models().values())), "enc")
    assert src.layer_names(["*"]) == ["block4", "compressed"]
    assert src.layer_names(["compressed", "block?"]) == ["block4", "compressed"]
    with pytest.raises(ValueError, match=r"^source 'enc' .*layers: 'blok4' .*closest: 'block4'$"):
        src.check(["blok4"], None)


def test_a_failed_source_gives_its_label_to_the_next(tmp_path):
    """A pooling that does not fit fails while the sweep runs; the corrected call under the same
    label is then taken (the failed source's RDM never finished), and a finished one is kept."""
    torch.manual_seed(0)
    images = np.random.default_rng(0).integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)
    net, store = Net(), tmp_path / "s"
    with pytest.raises(ValueError, match="'cls'.*conv|conv.*'cls'|cls"):
        fastrsa.sweep({"m": ModuleSource(net, "m", 16, pool="cls")}, images, ["stem"], store)
    done = fastrsa.sweep({"m": ModuleSource(net, "m", 16, pool="gap")}, images, ["stem"], store)
    assert done.summary.rdms_computed == 1 and done.labels == ["m"]
    with pytest.raises(fastrsa.errors.UserError, match="'m' in layer 'stem' holds the results"):
        fastrsa.sweep({"m": ModuleSource(net, "m", 16, pool="flatten")}, images, ["stem"], store)
