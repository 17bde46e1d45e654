"""fastrsa.zoo.pooling: every pooling against plain numpy float64 formulas on random tensors, the
"auto" choices, and every refusal's message."""

import numpy as np
import pytest
import torch

from fastrsa.zoo.pooling import POOLINGS, pool, resolve_pool

TOL = 1e-5  # float32 pooling vs float64 formulas (values ~N(0, 1), at most 13 terms averaged)


def _t(rng, *shape):
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))


def _right_mask(lengths, n):
    return torch.tensor([[1] * k + [0] * (n - k) for k in lengths])


def _left_mask(lengths, n):
    return torch.tensor([[0] * (n - k) + [1] * k for k in lengths])


@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (4, 7), (2, 3, 5), (1, 1, 1), (2, 4, 3, 5)])
def test_flatten(rng, shape):
    t = _t(rng, *shape)
    got = pool(t, "flatten")
    np.testing.assert_array_equal(got.numpy(), t.numpy().reshape(shape[0], -1))


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 4, 5), (3, 1, 7, 1), (2, 5, 1, 9)])
def test_gap(rng, shape):
    t = _t(rng, *shape)
    want = t.numpy().astype(np.float64).mean(axis=(2, 3))
    got = pool(t, "gap")
    assert got.shape == shape[:2] and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), want, atol=TOL, rtol=0)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 4), (2, 1, 6), (4, 6, 1)])
def test_cls_last_mean(rng, shape):
    t = _t(rng, *shape)
    x = t.numpy().astype(np.float64)
    np.testing.assert_array_equal(pool(t, "cls").numpy(), x[:, 0])
    np.testing.assert_array_equal(pool(t, "last").numpy(), x[:, -1])
    np.testing.assert_allclose(pool(t, "mean").numpy(), x.mean(axis=1), atol=TOL, rtol=0)
    if shape[1] > 1:
        got = pool(t, "mean", prefix_tokens=1)
        np.testing.assert_allclose(got.numpy(), x[:, 1:].mean(axis=1), atol=TOL, rtol=0)
        got = pool(t, "mean", prefix_tokens=shape[1] - 1)
        np.testing.assert_allclose(got.numpy(), x[:, -1], atol=TOL, rtol=0)


@pytest.mark.parametrize("side", ["right", "left"])
def test_masked_mean_rows_of_different_lengths(rng, side):
    lengths, n = [5, 1, 3, 5], 5
    t = _t(rng, len(lengths), n, 6)
    mask = (_right_mask if side == "right" else _left_mask)(lengths, n)
    x = t.numpy().astype(np.float64)
    for how, mk in (
        ("masked-mean", mask),
        ("masked-mean", mask.bool()),
        ("masked-mean", mask.float()),
    ):
        got = pool(t, how, mask=mk).numpy()
        for i, k in enumerate(lengths):
            kept = x[i, :k] if side == "right" else x[i, n - k :]
            np.testing.assert_allclose(got[i], kept.mean(axis=0), atol=TOL, rtol=0)


@pytest.mark.parametrize("side", ["right", "left"])
def test_last_with_padding(rng, side):
    lengths, n = [4, 1, 2], 4
    t = _t(rng, len(lengths), n, 3)
    mask = (_right_mask if side == "right" else _left_mask)(lengths, n)
    got = pool(t, "last", mask=mask).numpy()
    x = t.numpy()
    for i, k in enumerate(lengths):
        want = x[i, k - 1] if side == "right" else x[i, n - 1]
        np.testing.assert_array_equal(got[i], want)


def test_masked_mean_dtypes(rng):
    t = _t(rng, 2, 3, 4)
    mask = _right_mask([3, 2], 3)
    x = t.numpy().astype(np.float64)
    want = np.stack([x[0].mean(0), x[1, :2].mean(0)])
    got64 = pool(t.double(), "masked-mean", mask=mask)
    assert got64.dtype == torch.float64
    np.testing.assert_allclose(got64.numpy(), want, atol=1e-12, rtol=0)
    got16 = pool(t.half(), "masked-mean", mask=mask)
    assert got16.dtype == torch.float16
    np.testing.assert_allclose(got16.float().numpy(), want, atol=5e-3, rtol=0)


def test_masked_mean_prefix_tokens(rng):
    t = _t(rng, 2, 4, 3)
    mask = _right_mask([4, 3], 4)
    x = t.numpy().astype(np.float64)
    got = pool(t, "masked-mean", mask=mask, prefix_tokens=1).numpy()
    np.testing.assert_allclose(got, np.stack([x[0, 1:].mean(0), x[1, 1:3].mean(0)]), atol=TOL)


@pytest.mark.parametrize(
    "how, ndim, modality, want",
    [
        ("auto", 3, "text", "masked-mean"),
        ("auto", 2, "text", "flatten"),
        ("auto", 4, "image", "flatten"),
        ("auto", 3, "image", "flatten"),
        ("auto", 2, "image", "flatten"),
        ("gap", 4, "image", "gap"),
        ("cls", 3, "image", "cls"),
        ("mean", 3, "image", "mean"),
        ("last", 3, "text", "last"),
        ("masked-mean", 3, "text", "masked-mean"),
        ("flatten", 3, "image", "flatten"),
        ("flatten", 2, "text", "flatten"),
    ],
)
def test_resolve_pool(how, ndim, modality, want):
    assert resolve_pool(how, ndim, modality) == want


@pytest.mark.parametrize(
    "how, ndim, modality, words",
    [
        ("gap", 3, "image", ["'blocks.3'", "'gap'", "4-d conv map", "3-d"]),
        ("gap", 2, "text", ["'blocks.3'", "'gap'", "2-d"]),
        ("cls", 4, "image", ["'blocks.3'", "'cls'", "3-d token sequence", "4-d", "gap"]),
        ("mean", 2, "image", ["'mean'", "2-d"]),
        ("last", 4, "text", ["'last'", "4-d"]),
        ("masked-mean", 3, "image", ["'blocks.3'", "'masked-mean'", "needs text"]),
        ("masked-mean", 2, "text", ["'masked-mean'", "2-d"]),
        ("mean", 3, "text", ["'blocks.3'", "'mean'", "padding", "masked-mean"]),
        ("flatten", 3, "text", ["'blocks.3'", "'flatten'", "masked-mean", "token counts"]),
    ],
)
def test_resolve_pool_refusals(how, ndim, modality, words):
    with pytest.raises(ValueError) as err:
        resolve_pool(how, ndim, modality, layer="blocks.3")
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_bad_choices():
    with pytest.raises(ValueError, match="pool must be one of 'auto', 'flatten'"):
        resolve_pool("max", 3, "image")
    with pytest.raises(ValueError, match="modality must be 'image' or 'text'; got 'audio'"):
        resolve_pool("auto", 3, "audio")
    with pytest.raises(ValueError, match="pool must be one of"):
        pool(torch.zeros(2, 3), "avg")
    assert POOLINGS == ("auto", "flatten", "gap", "cls", "mean", "last", "masked-mean")


def test_pool_refusals(rng):
    t = _t(rng, 2, 3, 4)
    cases = [
        (dict(t=t, how="auto"), ["'auto' must be resolved first"]),
        (dict(t=t, how="gap"), ["'x'", "4-d conv map", "3-d"]),
        (dict(t=t[:, 0], how="cls"), ["'x'", "3-d token sequence", "2-d"]),
        (dict(t=torch.zeros(()), how="flatten"), ["'x'", "0-d"]),
        (dict(t=t, how="masked-mean"), ["'x'", "needs the attention mask"]),
        (dict(t=t, how="masked-mean", mask=torch.ones(2, 4)), ["mask has shape (2, 4)", "(2, 3)"]),
        (dict(t=t, how="last", mask=torch.ones(3, 3)), ["mask has shape (3, 3)"]),
        (dict(t=t, how="masked-mean", mask=torch.full((2, 3), 2)), ["only 0 and 1"]),
        (dict(t=t, how="last", mask=torch.full((2, 3), 0.5)), ["only 0 and 1"]),
        (dict(t=t, how="masked-mean", mask=_right_mask([3, 0], 3)), ["mask row 1 keeps no token"]),
        (dict(t=t, how="last", mask=_right_mask([0, 2], 3)), ["mask row 0 keeps no token"]),
        (dict(t=t, how="mean", prefix_tokens=3), ["prefix_tokens must be in [0, 3)", "got 3"]),
        (dict(t=t, how="mean", prefix_tokens=-1), ["prefix_tokens must be in [0, 3)"]),
        (
            dict(t=t, how="masked-mean", mask=_right_mask([3, 1], 3), prefix_tokens=1),
            ["keeps no token after prefix_tokens=1"],
        ),
        (dict(t=torch.zeros(2, 3, 4, dtype=torch.int64), how="mean"), ["floating point"]),
    ]
    for kwargs, words in cases:
        with pytest.raises(ValueError) as err:
            pool(kwargs.pop("t"), kwargs.pop("how"), layer="x", **kwargs)
        msg = str(err.value)
        assert "\n" not in msg and all(w in msg for w in words), msg


def test_integer_outputs_flatten_cls_last():
    t = torch.arange(24).reshape(2, 3, 4)
    assert pool(t, "flatten").dtype == torch.int64
    np.testing.assert_array_equal(pool(t, "cls").numpy(), t.numpy()[:, 0])
    np.testing.assert_array_equal(pool(t, "last").numpy(), t.numpy()[:, -1])


def test_gap_of_a_channels_last_map_averages_its_height_and_width():
    t = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 5, 7, 3)))  # (b, h, w, c)
    got = pool(t, "gap", layer="layers.1", channels_last=True)
    np.testing.assert_allclose(got.numpy(), t.numpy().mean(axis=(1, 2)), atol=1e-12)
    assert tuple(pool(t, "gap", layer="x").shape) == (2, 5)  # channels first: (b, c, h, w)
