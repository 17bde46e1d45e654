"""The RDM backward kernel (fastrsa.kernels.triton.rdm_backward): dU = -S U from the condensed
gradient, against the float64 dense reference and torch autograd. Without CUDA the kernel runs
under TRITON_INTERPRET=1 (set by conftest) on small shapes; gpu-marked tests use real sizes.

Tolerance (float32 kernel vs the float64 reference on the same values): the error of a float32
sum of n products is bounded by ~n * 6e-8 of the sum of their absolute values, so each entry
must lie within RTOL_ABS = 1e-5 of (|S| |U|)_ik (n <= 33 here: the worst case is 2e-6)."""

import pytest
from helpers import HAS_CUDA, HAS_TRITON

torch = pytest.importorskip("torch")
pytest.importorskip("triton")
pytestmark = pytest.mark.skipif(not HAS_TRITON, reason="triton backend unavailable")

from fastrsa.kernels.triton.rdm_backward import (  # noqa: E402
    rdm_backward,
    rdm_backward_reference,
    rdm_backward_triton,
)

import fastrsa.torch as ft  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"
SMALL = (16, 16, 16, 4, 2)  # (BLOCK_I, BLOCK_J, BLOCK_D, warps, stages): n = 17, 33 span tiles
RTOL_ABS = 1e-5


def _inputs(seed, b, n, d, dtype=torch.float32):
    """Unit rows u (b, n, d) and a condensed gradient g (b, m), from a fixed generator."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn((b, n, d), generator=gen, dtype=torch.float64)
    u = u / torch.linalg.vector_norm(u, dim=-1, keepdim=True)
    g = torch.randn((b, n * (n - 1) // 2), generator=gen, dtype=torch.float64)
    return u.to(dtype).to(DEVICE), g.to(dtype).to(DEVICE)


def _dense_abs(u, g):
    """(|S| |U|) in float64: the scale of each entry's rounding error."""
    return rdm_backward_reference(u.double().abs(), -g.double().abs())


def _assert_close(out, u, g):
    ref = rdm_backward_reference(u.double(), g.double())
    err = (out.double() - ref).abs()
    bound = RTOL_ABS * _dense_abs(u, g) + 1e-30
    assert out.shape == u.shape
    assert bool((err <= bound).all()), f"max err {err.max():.3g}, ratio {(err / bound).max():.3g}"


@pytest.mark.parametrize("b", [1, 3])
@pytest.mark.parametrize("d", [1, 7, 40])
@pytest.mark.parametrize("n", [3, 5, 17, 33])
def test_kernel_matches_reference(n, d, b):
    """n = 3, n not a multiple of the block, d = 1 and d not a multiple of BLOCK_D, B = 1, 3."""
    u, g = _inputs(1000 * n + 10 * d + b, b, n, d)
    out = rdm_backward_triton(u, g, config=SMALL)
    assert out.dtype == torch.float32
    _assert_close(out, u, g)


def test_kernel_default_config_and_batch_dims():
    """The default (untuned) blocks, which exceed n and d here, and two leading batch dims."""
    u, g = _inputs(7, 6, 33, 40)
    out = rdm_backward_triton(u.reshape(2, 3, 33, 40), g.reshape(2, 3, -1))
    assert out.shape == (2, 3, 33, 40)
    _assert_close(out.reshape(6, 33, 40), u, g)


def test_kernel_strided_inputs():
    """u with feature stride != 1 (a transposed view) and g a strided slice: no copy needed."""
    u, g = _inputs(8, 3, 17, 7)
    ut = u.transpose(-1, -2).contiguous().transpose(-1, -2)  # (3, 17, 7), stride_ud = 17
    g2 = torch.stack([g, torch.full_like(g, float("nan"))], -1)[..., 0]  # stride_gm = 2
    assert ut.stride(-1) != 1 and g2.stride(-1) == 2
    _assert_close(rdm_backward_triton(ut, g2, config=SMALL), u, g)


def test_kernel_float64_input_is_fp32_inside():
    """float64 u and g: loaded as fp32, summed in fp32, returned as float64 (fp32 accuracy)."""
    u, g = _inputs(9, 2, 17, 7, torch.float64)
    out = rdm_backward_triton(u, g, config=SMALL)
    assert out.dtype == torch.float64
    _assert_close(out, u, g)


def test_reference_is_autograd_of_the_rdm():
    """float64: the gradient of sum(w * (1 - <u_i, u_j>)_{i<j}) w.r.t. u by torch autograd of
    the plain formula equals -S U (reference to 1e-12, the kernel to the float32 bound)."""
    u, w = _inputs(11, 3, 17, 7, torch.float64)
    u = u.clone().requires_grad_(True)
    i, j = torch.triu_indices(17, 17, 1, device=u.device)
    rdm = 1 - (u @ u.mT)[..., i, j]
    (grad,) = torch.autograd.grad((w * rdm).sum(), u)
    torch.testing.assert_close(rdm_backward_reference(u.detach(), w), grad, rtol=0, atol=1e-12)
    _assert_close(rdm_backward_triton(u.detach().float(), w.float(), config=SMALL), u.detach(), w)


class _OneMinusGram(torch.autograd.Function):
    """1 - condensed(U Uᵀ) with the kernel as its backward (how fastrsa.torch can route it)."""

    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        i, j = torch.triu_indices(u.shape[-2], u.shape[-2], 1, device=u.device)
        return 1 - (u @ u.mT)[..., i, j]

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return rdm_backward_triton(u, grad, config=SMALL)


def test_end_to_end_through_rdms():
    """float32 x (2, 17, 7): the kernel-backed correlation RDM (rows centred and normalised by
    autograd, then _OneMinusGram) gives fastrsa.torch.rdms's values and input gradient."""
    gen = torch.Generator().manual_seed(12)
    x = torch.randn((2, 17, 7), generator=gen).to(DEVICE).requires_grad_(True)
    w = torch.randn((2, 136), generator=gen).to(DEVICE)
    xc = x - x.mean(-1, keepdim=True)
    u = xc / torch.linalg.vector_norm(xc, dim=-1, keepdim=True)
    mine = _OneMinusGram.apply(u)
    (g_mine,) = torch.autograd.grad((w * mine).sum(), x)
    ref = ft.rdms(x, "correlation")
    (g_ref,) = torch.autograd.grad((w * ref).sum(), x)
    torch.testing.assert_close(mine, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(g_mine, g_ref, rtol=1e-4, atol=1e-5)


def test_dispatch_on_cpu_and_float64():
    """CPU tensors (even under the interpreter) and float64 go to the dense torch reference."""
    u, g = _inputs(13, 2, 5, 3, torch.float64)
    torch.testing.assert_close(rdm_backward(u, g), rdm_backward_reference(u, g), rtol=0, atol=0)
    if DEVICE == "cpu":
        u32, g32 = u.float(), g.float()
        assert torch.equal(rdm_backward(u32, g32), rdm_backward_reference(u32, g32))


def test_bad_input():
    u, g = _inputs(14, 2, 5, 3)
    with pytest.raises(ValueError, match="grad_condensed"):
        rdm_backward(u, g[:, :-1])
    with pytest.raises(ValueError, match="grad_condensed"):
        rdm_backward(u, g[:1])
    with pytest.raises(ValueError, match="u must be"):
        rdm_backward(u[0, 0], g)
    with pytest.raises(ValueError, match="precision"):
        rdm_backward_triton(u, g, precision="fp8")


@pytest.mark.gpu
@pytest.mark.parametrize("precision,rtol_abs", [("ieee", 1e-5), ("tf32x3", 1e-5), ("tf32", 2e-3)])
def test_kernel_cuda_sizes(precision, rtol_abs):
    """Real sizes on CUDA: B = 4, n = 1000 (not a block multiple), d = 300; ieee and tf32x3 at
    the float32 bound (n = 1000: worst case 6e-5, typical ~sqrt(n) * 6e-8), tf32 at 2e-3."""
    u, g = _inputs(15, 4, 1000, 300)
    out = rdm_backward_triton(u, g, precision=precision)
    ref = rdm_backward_reference(u.double(), g.double())
    bound = rtol_abs * _dense_abs(u, g)
    assert bool(((out.double() - ref).abs() <= bound).all())
    assert torch.equal(rdm_backward(u, g), rdm_backward_triton(u, g))
