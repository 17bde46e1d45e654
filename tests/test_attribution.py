"""Attribution similarity (Song et al., NeurIPS 2019) and gradient attribution maps of torch
modules, against plain per-pair and per-image references written here."""

import numpy as np
import pytest
import torch
from torch import nn

from fastrsa.measures.attribution import attribution_similarity, attributions
from fastrsa.models import SmallEncoder


def similarity_loop(a, b):
    """S[p, q] = mean over images i of cos(a[p, i], b[q, i]): one model pair at a time."""
    a = np.asarray(a, dtype=np.float64).reshape(a.shape[0], a.shape[1], -1)
    b = np.asarray(b, dtype=np.float64).reshape(b.shape[0], b.shape[1], -1)
    out = np.zeros((len(a), len(b)))
    for p in range(len(a)):
        for q in range(len(b)):
            cosines = [
                a[p, i] @ b[q, i] / (np.linalg.norm(a[p, i]) * np.linalg.norm(b[q, i]))
                for i in range(a.shape[1])
            ]
            out[p, q] = np.mean(cosines)
    return out


@pytest.mark.parametrize("shape", [(1, 1, 5), (4, 3, 7), (5, 6, 3, 4, 4), (3, 2, 1), (7, 11, 2, 3)])
def test_matches_the_per_pair_loop(rng, shape):
    maps = rng.standard_normal(shape)
    got = attribution_similarity(maps)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    np.testing.assert_allclose(got, similarity_loop(maps, maps), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(got, got.T)
    np.testing.assert_array_equal(np.diag(got), 1.0)
    other = rng.standard_normal((3,) + shape[1:])
    got = attribution_similarity(maps, other)
    assert got.shape == (shape[0], 3)
    np.testing.assert_allclose(got, similarity_loop(maps, other), rtol=0, atol=1e-10)


def test_float32_and_integers(rng):
    maps = rng.standard_normal((4, 5, 3, 6))
    got = attribution_similarity(maps.astype(np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, similarity_loop(maps, maps), atol=2e-6)
    ints = rng.integers(-5, 6, size=(3, 4, 10))
    ints[:, :, 0] = 7  # no all-zero map
    np.testing.assert_allclose(
        attribution_similarity(ints), similarity_loop(ints, ints), rtol=0, atol=1e-12
    )


def test_any_scale(rng):
    """Each map is scaled before its norm: tiny and huge float32 maps are fine."""
    maps = rng.standard_normal((3, 4, 50))
    want = similarity_loop(maps, maps)
    for scale in (1e-35, 1e30):
        got = attribution_similarity((maps * scale).astype(np.float32))
        np.testing.assert_allclose(got, want, atol=2e-6)
    scales = 10.0 ** rng.uniform(-200, 200, size=(3, 4, 1))
    np.testing.assert_allclose(attribution_similarity(maps * scales), want, rtol=0, atol=1e-10)


def test_chunking_does_not_change_the_result(rng):
    maps = rng.standard_normal((5, 9, 2, 8))
    other = rng.standard_normal((2, 9, 2, 8))
    whole = attribution_similarity(maps, other)
    per_image = 8 * (2 * (5 + 2) * 16 + 5 * 2)  # unit maps and Gram of one image, float64
    for memory in (1, 2 * per_image, 5 * per_image):  # one image per chunk, 2, 5 (of 9)
        np.testing.assert_allclose(
            attribution_similarity(maps, other, memory=memory), whole, rtol=0, atol=1e-13
        )
    np.testing.assert_allclose(
        attribution_similarity(maps, memory=1), attribution_similarity(maps), rtol=0, atol=1e-13
    )


def test_torch_in_torch_out(rng):
    maps = rng.standard_normal((4, 5, 6))
    other = rng.standard_normal((2, 5, 6))
    got = attribution_similarity(torch.from_numpy(maps), torch.from_numpy(other), memory=1)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), similarity_loop(maps, other), rtol=0, atol=1e-10)
    got = attribution_similarity(torch.from_numpy(maps).float())
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), similarity_loop(maps, maps), atol=2e-6)
    assert torch.equal(torch.diagonal(got), torch.ones(4))


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_bad_input(rng, kind):
    def arr(x):
        return torch.from_numpy(x) if kind == "torch" else x

    maps = rng.standard_normal((3, 4, 2, 5))
    bad = maps.copy()
    bad[1, 2, 1, 3] = np.nan
    with pytest.raises(ValueError, match=r"maps holds NaN or Inf \(first at index \(1, 2, 1, 3\)"):
        attribution_similarity(arr(bad))
    bad = maps.copy()
    bad[0, 1, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"other holds NaN or Inf"):
        attribution_similarity(arr(maps), arr(bad))
    bad = maps.copy()
    bad[2, 3] = 0.0
    with pytest.raises(ValueError, match=r"maps: the map of model 2 for image 3 is all zeros"):
        attribution_similarity(arr(bad))
    with pytest.raises(ValueError, match=r"other must hold maps of the same images"):
        attribution_similarity(arr(maps), arr(maps[:, :3]))
    with pytest.raises(ValueError, match=r"other must hold maps of the same images"):
        attribution_similarity(arr(maps), arr(maps[..., :4]))
    with pytest.raises(ValueError, match=r"maps must be attribution maps"):
        attribution_similarity(arr(maps[0, 0]))
    with pytest.raises(ValueError, match=r"maps is empty"):
        attribution_similarity(arr(maps[:, :0]))
    with pytest.raises(TypeError, match=r"maps must be real"):
        attribution_similarity(arr(maps.astype(np.complex128)))


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(4 * 6 * 6, 2)

    def forward(self, x):
        x = torch.tanh(self.bn(self.conv(x)))
        return self.head(self.drop(x).flatten(1))


def per_image_reference(model, images, method, output):
    """Each image alone, in eval mode: g = d output(model(x))/dx by torch.autograd.grad."""
    model.eval()
    maps = []
    for image in images:
        x = image[None].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(output(model(x)).sum(), x)
        maps.append((g.abs() if method == "saliency" else x.detach() * g)[0])
    return torch.stack(maps)


def _randomise_batchnorm(model, generator):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5, generator=generator)
            m.running_var.uniform_(0.5, 2.0, generator=generator)


@pytest.mark.parametrize("method", ["saliency", "gradient_x_input"])
def test_attributions_of_a_small_conv_net(rng, method):
    torch.manual_seed(0)
    model = TinyNet().double()
    _randomise_batchnorm(model, torch.Generator().manual_seed(1))
    model.train()
    model.bn.eval()  # mixed modes: each is restored as it was
    images = rng.uniform(-1, 1, size=(7, 3, 6, 6))

    def second_logit(out):
        return out[:, 1]

    got = attributions(model, images, method=method, output=second_logit, batch_size=3)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == images.shape
    assert model.training and model.drop.training and not model.bn.training
    assert all(p.grad is None for p in model.parameters())
    want = per_image_reference(model, torch.from_numpy(images), method, second_logit)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-14)
    if method == "saliency":
        assert (got >= 0).all()


@pytest.mark.parametrize("method", ["saliency", "gradient_x_input"])
def test_attributions_of_small_encoder(rng, method):
    torch.manual_seed(0)
    model = SmallEncoder()
    _randomise_batchnorm(model, torch.Generator().manual_seed(2))
    images = torch.from_numpy(rng.uniform(-1, 1, size=(5, 3, 32, 32)).astype(np.float32))
    got = attributions(model, images, method=method, batch_size=2)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    assert got.shape == images.shape and not model.training
    want = per_image_reference(model, images, method, lambda out: out.flatten(1).sum(1))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    as_numpy = attributions(model, images, method=method, output_type="numpy", batch_size=5)
    assert isinstance(as_numpy, np.ndarray) and as_numpy.dtype == np.float32
    np.testing.assert_allclose(as_numpy, want.numpy(), rtol=1e-5, atol=1e-6)
    # the maps feed the similarity: two models' maps of the same images
    other = attributions(SmallEncoder(), images, method=method, output_type="numpy")
    sim = attribution_similarity(np.stack([as_numpy, other]))
    assert sim.shape == (2, 2) and np.all(np.abs(sim) <= 1 + 1e-6)


def test_attributions_restore_training_mode_after_an_error(rng):
    model = TinyNet()
    model.train()
    images = rng.uniform(-1, 1, size=(2, 3, 6, 6)).astype(np.float32)
    with pytest.raises(ValueError, match="one score per image"):
        attributions(model, images, output=lambda out: out)  # (2, 2): two scores per image
    assert all(m.training for m in model.modules())


def test_attributions_from_image_files(tmp_path, rng):
    from PIL import Image

    for k in range(3):
        pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"im{k}.png")
    model = SmallEncoder()
    from fastrsa.images import load_images

    want = attributions(model, load_images(tmp_path, size=16))
    np.testing.assert_array_equal(attributions(model, tmp_path, size=16), want)
    paths = sorted(tmp_path.glob("*.png"))
    np.testing.assert_array_equal(attributions(model, paths, size=16), want)


def test_attributions_bad_input(rng):
    model = TinyNet()
    images = rng.uniform(-1, 1, size=(2, 3, 6, 6)).astype(np.float32)
    with pytest.raises(ValueError, match="method must be one of"):
        attributions(model, images, method="lrp")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        attributions(model, images, batch_size=0)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        attributions(lambda x: x, images)
    with pytest.raises(ValueError, match="output_type must be"):
        attributions(model, images, output_type="list")
    bad = images.copy()
    bad[1, 0, 2, 2] = np.nan
    with pytest.raises(ValueError, match="images holds NaN or Inf"):
        attributions(model, bad)
    with pytest.raises(ValueError, match="do not depend on the images"):
        attributions(model, images, output=lambda out: out.detach()[:, 0])
    with pytest.raises(ValueError, match="the model's parameters lie on cpu"):
        attributions(model, images, device="meta")

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model  # a submodule: put in eval mode (no dropout) with the rest

        def forward(self, x):
            return {"a": self.inner(x), "b": self.inner(x)}

    with pytest.raises(TypeError, match="pass output="):
        attributions(TwoHeads(), images)
    got = attributions(TwoHeads(), images, output=lambda out: out["a"][:, 0] - out["b"][:, 0])
    np.testing.assert_array_equal(got, 0.0)  # a legitimate zero gradient


class IgnoresItsInput(nn.Module):
    """Scores from its parameters only: one per image, with a gradient path to the weight but
    none to the images."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3))

    def forward(self, x):
        return self.weight.sum().expand(x.shape[0], 1) * 2.0


@pytest.mark.parametrize("method", ["saliency", "gradient_x_input"])
def test_attributions_of_a_model_that_ignores_its_input_are_refused(rng, method):
    """Issue 22: such a model returned all-zero maps; its docstring says it is refused. The
    error names the model's class and the output."""
    images = rng.uniform(-1, 1, size=(3, 3, 4, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=r"IgnoresItsInput \(the default output.*ignores its"):
        attributions(IgnoresItsInput(), images, method=method)

    def first(out):
        return out[:, 0]

    with pytest.raises(ValueError, match=r"IgnoresItsInput \(output=first\)"):
        attributions(IgnoresItsInput(), torch.from_numpy(images), output=first)
    # an output of TinyNet that reads only its head's bias ignores the images too
    model = TinyNet()
    six = rng.uniform(-1, 1, size=(3, 3, 6, 6)).astype(np.float32)
    with pytest.raises(ValueError, match=r"TinyNet \(output=<lambda>\).*do not depend"):
        attributions(model, six, output=lambda out: model.head.bias.expand(len(out), 2)[:, 0])
