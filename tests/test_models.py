"""Encoders, Taskonomy checkpoints (made here, in the published key layout) and ONNX export."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from fastrsa.models import (  # noqa: E402
    LAYERS,
    SmallEncoder,
    TaskonomyEncoder,
    export_onnx,
    load_taskonomy,
)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    model = TaskonomyEncoder()
    for m in model.modules():  # non-trivial BatchNorm statistics, so a wrong mode would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def test_taskonomy_shapes(encoder):
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        out = encoder(x, layers=LAYERS)
    shapes = {k: tuple(v.shape[1:]) for k, v in out.items()}
    assert shapes == {
        "block1": (256, 32, 32),
        "block2": (512, 16, 16),
        "block3": (1024, 16, 16),
        "block4": (2048, 16, 16),
        "compressed": (8, 16, 16),
    }
    assert (out["compressed"] >= 0).all()  # ReLU after the compression


def test_taskonomy_published_layout(encoder):
    """The parameter names and strides of visualpriors' TaskonomyEncoder."""
    state = encoder.state_dict()
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert "layer1.0.downsample.1.running_var" in state
    assert state["compress1.weight"].shape == (8, 2048, 3, 3)
    assert "compress_bn.num_batches_tracked" in state
    assert not any(k.startswith("groupnorm") for k in state)  # affine-free
    assert not any(k.startswith("layer1.2.downsample") for k in state)  # max-pool shortcut
    assert encoder.layer1[2].conv2.stride == (2, 2) and encoder.layer2[3].conv2.stride == (2, 2)
    assert encoder.layer3[5].conv2.stride == (1, 1) and encoder.layer4[2].conv2.stride == (1, 1)
    assert encoder.conv1.padding == (0, 0) and encoder.maxpool.ceil_mode


def test_group_norm_option():
    model = TaskonomyEncoder(normalize_outputs=True)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    flat = out.reshape(8, -1)
    assert torch.allclose(flat.mean(1), torch.zeros(8), atol=1e-4)


@pytest.mark.parametrize("nested", [False, True])
def test_load_taskonomy_round_trip(encoder, tmp_path, nested):
    state = encoder.state_dict()
    path = tmp_path / "autoencoding_encoder-0123abcd.pth"
    torch.save({"state_dict": state} if nested else state, path)
    loaded = load_taskonomy(path)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), encoder(x), rtol=0, atol=0)


def _save(tmp_path, state):
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    return path


def test_load_taskonomy_refuses(encoder, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_taskonomy(tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not read|not a plain state dict"):
        load_taskonomy(garbage)
    state = dict(encoder.state_dict())
    del state["layer2.1.bn2.weight"]
    state["decoder.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"missing keys: layer2\.1\.bn2\.weight.*unexpected keys"):
        load_taskonomy(_save(tmp_path, state))
    state = dict(encoder.state_dict())
    state["compress1.weight"] = torch.zeros(16, 2048, 3, 3)
    with pytest.raises(
        ValueError, match=r"wrong shape keys: compress1\.weight: \(16, 2048, 3, 3\)"
    ):
        load_taskonomy(_save(tmp_path, state))
    with pytest.raises(ValueError, match="not a plain state dict|could not read"):
        load_taskonomy(_save(tmp_path, {"object": object()}))  # weights_only refuses pickles


def test_export_onnx_matches_torch(encoder, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = export_onnx(
        encoder, tmp_path / "enc.onnx", layers=["block2", "compressed"], image_size=64
    )
    assert not encoder.training
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["block2", "compressed"]
    x = torch.rand(5, 3, 64, 64) * 2 - 1  # another batch size than the export's
    got = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        want = encoder(x, layers=["block2", "compressed"])
    for g, w in zip(got, want.values(), strict=True):
        w = w.numpy()
        assert np.linalg.norm(g - w) / np.linalg.norm(w) < 1e-4


def test_export_small_encoder(tmp_path):
    pytest.importorskip("onnxruntime")
    path = export_onnx(SmallEncoder(), tmp_path / "small.onnx", layers=LAYERS, image_size=64)
    assert path.is_file()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"layers": ["fc7"]}, "layers must be"),
        ({"layers": []}, "layers must be"),
        ({"opset": 13}, "opset must be 17"),
    ],
)
def test_export_refuses(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        export_onnx(SmallEncoder(), tmp_path / "x.onnx", **kwargs)
    assert not (tmp_path / "x.onnx").exists()
