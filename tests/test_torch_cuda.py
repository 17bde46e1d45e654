"""fastrsa.torch's RDM op beyond plain use (CPU here): `set_checks`, the torch version check,
torch.func transforms, no double backward, in-place changes of its output; and on CUDA
(gpu-marked) a training step under torch.cuda.set_sync_debug_mode("error"), a
CUDA-graph capture of a step replayed against eager, and the Triton RDM backward inside
fastrsa.torch.rdms against float64."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastrsa.torch as ft  # noqa: E402
from fastrsa.torch.checks import checking, require_custom_ops  # noqa: E402


def _constant_row(dtype=torch.float64, device="cpu"):
    x = torch.randn((6, 4), dtype=dtype, generator=torch.Generator().manual_seed(1)).to(device)
    x[2] = 0.5
    return x


def test_set_checks_turns_the_data_checks_off_and_restores_them():
    x = _constant_row()
    with pytest.raises(ValueError, match=r"x: row \(2,\) is constant"):
        ft.rdms(x)
    with ft.set_checks(False):
        assert not checking(x)
        assert bool(torch.isnan(ft.rdms(x)).any())  # off: NaN, as under torch.compile
        with pytest.raises(ValueError, match="at least 3 images"):  # shapes: always checked
            ft.rdms(x[:2])
    assert checking(x)
    ft.set_checks(False)
    try:
        assert not checking(x)
        assert bool(torch.isfinite(ft.cka(x, x)))  # cka: one constant row is no error
    finally:
        ft.set_checks(True)
    with pytest.raises(ValueError, match="NaN or Inf"):
        ft.rdms(torch.full((4, 3), float("nan")))
    with pytest.raises(TypeError, match="enabled must be True or False"):
        ft.set_checks(1)


def test_an_old_torch_is_named(monkeypatch):
    require_custom_ops()  # this torch has custom_op
    monkeypatch.delattr(torch.library, "custom_op")
    monkeypatch.setattr(torch, "__version__", "2.3.1")
    with pytest.raises(ImportError, match=r"needs torch >= 2\.4 .*found torch 2\.3\.1"):
        require_custom_ops()


def test_no_double_backward_through_the_rdm_says_so():
    x = torch.randn((5, 4), dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(ft.rdms(x).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="no double backward"):
        g.sum().backward()
    nested = torch.func.grad(lambda z: torch.func.grad(lambda v: ft.rdms(v).sum())(z).sum())
    with pytest.raises(RuntimeError, match="no double backward"):
        nested(x.detach())
    (plain,) = torch.autograd.grad(ft.rdms(x, "euclidean").sum(), x, create_graph=True)
    plain.sum().backward()  # euclidean: plain autograd, twice differentiable


def _plain_rdm(x, centre):
    c = x - x.mean(-1, keepdim=True) if centre else x
    u = c / torch.linalg.vector_norm(c, dim=-1, keepdim=True)
    i, j = torch.triu_indices(x.shape[-2], x.shape[-2], 1)
    return 1 - (u @ u.mT)[..., i, j]


@pytest.mark.parametrize("metric", ["correlation", "cosine"])
def test_torch_func_transforms_equal_plain_autograd(metric):
    """torch.func.grad, jacrev and vmap (per-sample gradients) through the RDM's custom backward
    equal the same transforms of the plain formula (float64, 1e-12); under vmap the data checks
    (host reads) must be off."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn((7, 5), generator=gen, dtype=torch.float64)
    w = torch.randn(21, generator=gen, dtype=torch.float64)
    centre = metric == "correlation"

    def mine(z):
        return (w * ft.rdms(z, metric)).sum()

    def plain(z):
        return (w * _plain_rdm(z, centre)).sum()

    func = torch.func
    torch.testing.assert_close(func.grad(mine)(x), func.grad(plain)(x), rtol=0, atol=1e-12)
    jac = func.jacrev(lambda z: ft.rdms(z, metric))(x)
    assert jac.shape == (21, 7, 5)
    want = func.jacrev(lambda z: _plain_rdm(z, centre))(x)
    torch.testing.assert_close(jac, want, rtol=0, atol=1e-12)
    batch = torch.randn((3, 7, 5), generator=gen, dtype=torch.float64)
    with ft.set_checks(False):
        got = func.vmap(func.grad(mine))(batch)
    torch.testing.assert_close(got, func.vmap(func.grad(plain))(batch), rtol=0, atol=1e-12)


def test_changing_the_returned_rdm_in_place_before_backward_is_an_error():
    """The RDM is saved for the backward (as torch.exp saves its output): autograd's version
    counter catches an in-place change, rather than a wrong gradient."""
    x = torch.randn((5, 4), dtype=torch.float64, requires_grad=True)
    r = ft.rdms(x)
    r -= r.mean()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        r.sum().backward()


def _step_inputs(seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    student = torch.randn((4, 40, 24), generator=gen, dtype=dtype)
    teacher = torch.randn((4, 40, 16), generator=gen, dtype=dtype) + 2.0
    return student.cuda().requires_grad_(True), teacher.cuda()


def _loss(student, teacher):
    """An alignment loss that uses every op on the no-synchronisation path."""
    rsa = ft.rsa(student, teacher).mean() + ft.rsa(student, teacher, "cosine", "cosine").mean()
    return (2 - rsa) + (1 - ft.cka(student, teacher)).mean() + ft.cka_matrix(student).mean()


@pytest.mark.gpu
def test_training_step_never_synchronises_on_cuda():
    student, teacher = _step_inputs(2)
    _loss(student, teacher).backward()  # warm: compile the Triton kernel, load libraries
    student.grad = None
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with ft.set_checks(False):
            _loss(student, teacher).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert bool(torch.isfinite(student.grad).all())


@pytest.mark.gpu
def test_cuda_graph_capture_of_a_step_equals_eager():
    student, teacher = _step_inputs(3)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up on a side stream, as CUDA graphs require
        for _ in range(2):
            student.grad = None
            _loss(student, teacher).backward()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    student.grad = None
    with torch.cuda.graph(graph):  # checks are skipped while capturing (no set_checks needed)
        static_loss = _loss(student, teacher)
        static_loss.backward()
    for seed in (4, 5):
        fresh_s, fresh_t = _step_inputs(seed)
        with torch.no_grad():
            student.copy_(fresh_s)
            teacher.copy_(fresh_t)
        graph.replay()
        fresh_s.grad = None
        want = _loss(fresh_s, fresh_t)
        want.backward()
        np.testing.assert_allclose(float(static_loss), float(want), rtol=0, atol=1e-5)
        torch.testing.assert_close(student.grad, fresh_s.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("metric", ["correlation", "cosine"])
def test_rdms_backward_on_cuda_equals_float64(metric):
    """float32 on CUDA (the Triton backward) against float64 on the CPU (the torch reference),
    B = 3, n = 300 (not a block multiple), d = 200, rows offset by 100 (correlation; cosine of
    such rows loses about 1e-5 to cancellation in float32 whatever computes it, so no offset
    there): within 1e-5 of the gradient's largest entry."""
    gen = torch.Generator().manual_seed(6)
    offset = 100.0 if metric == "correlation" else 0.0  # cosine of offset rows: ill-conditioned
    x = torch.randn((3, 300, 200), generator=gen, dtype=torch.float64) + offset
    w = torch.randn((3, 300 * 299 // 2), generator=gen, dtype=torch.float64)
    x64 = x.clone().requires_grad_(True)
    (want,) = torch.autograd.grad((w * ft.rdms(x64, metric)).sum(), x64)
    x32 = x.float().cuda().requires_grad_(True)
    (got,) = torch.autograd.grad((w.float().cuda() * ft.rdms(x32, metric)).sum(), x32)
    scale = float(want.abs().max())
    torch.testing.assert_close(got.double().cpu(), want, rtol=0, atol=1e-5 * scale)
