"""fastrsa.torch.nn: RSALoss and CKALoss.

Values against fastrsa's numpy measures on the same float64 values (1 - fastrsa.compare(
fastrsa.rdms(x), target), 1 - fastrsa.similarity([x, y], "cka")) within ATOL = 1e-10 (float64)
and F32_ATOL = 1e-5 (float32 inputs), and against 1 - fastrsa.torch.functional within ATOL;
gradients by torch.autograd.gradcheck in float64; a few SGD steps of a linear student lower
each loss.
"""

import numpy as np
import pytest

import fastrsa

torch = pytest.importorskip("torch")
F = pytest.importorskip("fastrsa.torch.functional")
from fastrsa.torch.nn import CKALoss, RSALoss  # noqa: E402

ATOL = 1e-10
F32_ATOL = 1e-5
DTYPES = [(torch.float64, ATOL), (torch.float32, F32_ATOL)]


def feats(rng, *shape):
    return rng.standard_normal(shape) + rng.standard_normal(shape[-1])


def np_rsa(x, target_rdm, metric="correlation", method="pearson"):
    """(..., n, d) numpy features vs one (m,) RDM -> (...) similarity, by fastrsa's numpy ops."""
    r = np.asarray(fastrsa.rdms(x.reshape(-1, *x.shape[-2:]), metric))
    return np.asarray(fastrsa.compare(r, target_rdm[None], method))[:, 0].reshape(x.shape[:-2])


@pytest.mark.parametrize("dtype, atol", DTYPES)
@pytest.mark.parametrize("method", ["pearson", "cosine"])
@pytest.mark.parametrize(
    "batch, n, d, metric",
    [((), 3, 2, "correlation"), ((4,), 9, 5, "correlation"), ((2, 3), 7, 1, "euclidean")],
)
def test_rsa_loss_with_a_target_rdm(rng, batch, n, d, metric, method, dtype, atol):
    x = feats(rng, *batch, n, d)
    target = np.asarray(fastrsa.rdms(feats(rng, n, 6), "correlation"))
    loss = RSALoss(torch.as_tensor(target), metric=metric, method=method, reduction="none")
    got = loss(torch.as_tensor(x, dtype=dtype))
    assert got.shape == batch and got.dtype == dtype
    want = 1 - np_rsa(x, target, metric, method)
    np.testing.assert_allclose(got.double().numpy(), want, rtol=0, atol=atol)
    xt = torch.as_tensor(x)  # the same as functional's compare of rdms
    fn = 1 - F.compare(F.rdms(xt.reshape(-1, n, d), metric), torch.as_tensor(target)[None], method)
    np.testing.assert_allclose(
        RSALoss(reduction="none", metric=metric, method=method)(xt, torch.as_tensor(target))
        .reshape(-1)
        .numpy(),
        fn[:, 0].detach().numpy(),
        rtol=0,
        atol=ATOL,
    )


def test_rsa_loss_with_target_features_and_batched_rdms(rng):
    x, t = torch.as_tensor(feats(rng, 3, 8, 4)), torch.as_tensor(feats(rng, 3, 8, 6))
    got = RSALoss(reduction="none")(x, t)
    np.testing.assert_allclose(got.numpy(), (1 - F.rsa(x, t)).numpy(), rtol=0, atol=ATOL)
    want = [1 - np_rsa(x[i].numpy(), np.asarray(fastrsa.rdms(t[i].numpy()))) for i in range(3)]
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=ATOL)
    rdms_t = torch.as_tensor(np.asarray(fastrsa.rdms(t.numpy())))  # (3, m): one per model
    np.testing.assert_allclose(RSALoss(reduction="none")(x, rdms_t).numpy(), want, atol=ATOL)
    broadcast = RSALoss(reduction="none")(x[:, None], rdms_t[None])  # (3, 3): every pair
    np.testing.assert_allclose(broadcast.diagonal().numpy(), want, rtol=0, atol=ATOL)
    np.testing.assert_allclose(
        broadcast.numpy(), (1 - F.compare(F.rdms(x), rdms_t)).numpy(), rtol=0, atol=ATOL
    )
    spearman = RSALoss(method="spearman", regularization=0.1, reduction="none")(x, t)
    want_soft = 1 - F.rsa(x, t, method="spearman", regularization=0.1)
    np.testing.assert_allclose(spearman.numpy(), want_soft.numpy(), rtol=0, atol=ATOL)


@pytest.mark.parametrize("cls, args", [(RSALoss, 1), (CKALoss, 2)])
def test_reductions(rng, cls, args):
    x, y = torch.as_tensor(feats(rng, 5, 6, 3)), torch.as_tensor(feats(rng, 5, 6, 4))
    inputs = (x, y)
    none = cls(reduction="none")(*inputs)
    assert none.shape == (5,)
    assert torch.allclose(cls(reduction="mean")(*inputs), none.mean(), rtol=0, atol=ATOL)
    assert torch.allclose(cls(reduction="sum")(*inputs), none.sum(), rtol=0, atol=ATOL)
    assert cls()(*inputs).shape == ()
    with pytest.raises(ValueError, match="reduction must be one of"):
        cls(reduction="avg")


@pytest.mark.parametrize("dtype, atol", DTYPES)
@pytest.mark.parametrize("kernel, debiased", [("linear", False), ("linear", True), ("rbf", False)])
@pytest.mark.parametrize("batch, n, d1, d2", [((), 5, 1, 3), ((3,), 11, 4, 7)])
def test_cka_loss_equals_one_minus_cka(rng, batch, n, d1, d2, kernel, debiased, dtype, atol):
    x, y = feats(rng, *batch, n, d1), feats(rng, *batch, n, d2)
    got = CKALoss(kernel, debiased, reduction="none")(
        torch.as_tensor(x, dtype=dtype), torch.as_tensor(y, dtype=dtype)
    )
    assert got.shape == batch
    xs, ys = x.reshape(-1, n, d1), y.reshape(-1, n, d2)
    want = [
        1 - fastrsa.similarity([a, b], "cka", kernel=kernel, debiased=debiased)[0, 1]
        for a, b in zip(xs, ys, strict=True)
    ]
    np.testing.assert_allclose(got.double().numpy().reshape(-1), want, rtol=0, atol=atol)


def test_gradcheck_float64(rng):
    x = torch.as_tensor(feats(rng, 2, 5, 3), dtype=torch.float64).requires_grad_()
    y = torch.as_tensor(feats(rng, 2, 5, 4), dtype=torch.float64).requires_grad_()
    target = torch.as_tensor(np.asarray(fastrsa.rdms(feats(rng, 5, 3))))
    assert torch.autograd.gradcheck(RSALoss(target), (x,))
    assert torch.autograd.gradcheck(lambda a, b: RSALoss(reduction="sum")(a, b), (x, y))
    assert torch.autograd.gradcheck(CKALoss(debiased=True), (x, y))


@pytest.mark.parametrize("which", ["rsa", "rsa-features", "cka"])
def test_a_few_sgd_steps_lower_the_loss(which):
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(20, 8, generator=g)
    teacher = torch.tanh(inputs @ torch.randn(8, 6, generator=g))
    student = torch.nn.Linear(8, 5)
    torch.nn.init.normal_(student.weight, generator=g)
    torch.nn.init.normal_(student.bias, generator=g)  # fixed: no draw from torch's global RNG
    if which == "cka":
        loss_fn, args = CKALoss(), (teacher,)
    elif which == "rsa":
        rdm = np.asarray(fastrsa.rdms(teacher.numpy().astype(np.float64)))
        loss_fn, args = RSALoss(torch.as_tensor(rdm, dtype=torch.float32)), ()
    else:
        loss_fn, args = RSALoss(), (teacher,)
    opt = torch.optim.SGD(student.parameters(), lr=0.5)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = loss_fn(student(inputs), *args)
        loss.backward()
        assert student.weight.grad is not None and torch.isfinite(student.weight.grad).all()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.75 * losses[0]


def test_target_rdm_is_a_buffer_that_moves(rng):
    target = torch.as_tensor(np.asarray(fastrsa.rdms(feats(rng, 6, 3))))
    loss = RSALoss(target)
    assert "target_rdm" in dict(loss.named_buffers()) and "target_rdm" in loss.state_dict()
    assert loss.target_rdm is not target and not loss.target_rdm.requires_grad
    assert loss.float().target_rdm.dtype == torch.float32
    assert loss.to("meta").target_rdm.device.type == "meta"
    again = RSALoss(torch.zeros(15, dtype=torch.float64))
    again.load_state_dict(RSALoss(target).state_dict())
    assert torch.equal(again.target_rdm, target)
    assert "target_rdm=(15,)" in repr(again)
    assert RSALoss().target_rdm is None and "target_rdm" not in RSALoss().state_dict()


def test_refusals(rng):
    x = torch.as_tensor(feats(rng, 2, 6, 3))
    rdm = torch.as_tensor(np.asarray(fastrsa.rdms(feats(rng, 6, 3))))
    with pytest.raises(ValueError, match="no target"):
        RSALoss()(x)
    with pytest.raises(ValueError, match="target given twice"):
        RSALoss(rdm)(x, rdm)
    with pytest.raises(ValueError, match="target_rdm must be a condensed RDM"):
        RSALoss(torch.zeros(14))
    with pytest.raises(ValueError, match="target_rdm must be a condensed RDM"):
        RSALoss(torch.zeros(1))  # n = 2 images
    with pytest.raises(TypeError, match="target_rdm must hold floating"):
        RSALoss(torch.zeros(15, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"must have n\(n-1\)/2 = 15 entries"):
        RSALoss()(x, torch.zeros(10))
    with pytest.raises(ValueError, match="x's 6 images"):
        RSALoss()(x, torch.randn(2, 5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"target's batch dims \(3,\) do not broadcast"):
        RSALoss()(x, rdm.expand(3, 15))
    with pytest.raises(ValueError, match="more than x's 3"):
        RSALoss()(x, torch.randn(1, 2, 6, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"x must be \(\.\.\., n, d\)"):
        RSALoss(rdm)(x[0, 0])
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        RSALoss(rdm)(x.numpy())
    with pytest.raises(TypeError, match="y must hold floating"):
        CKALoss()(x, torch.ones(2, 6, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="same images"):
        CKALoss()(x, torch.randn(2, 5, 3, dtype=torch.float64))
