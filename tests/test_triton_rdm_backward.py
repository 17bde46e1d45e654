"""The RDM backward from the features (fastrsa.kernels.triton.rdm_backward, the Triton kernel,
and fastrsa.kernels.torch.rdm_backward, its torch reference), against torch autograd of the plain
formula in float64 and against each other. Without CUDA the kernel runs under TRITON_INTERPRET=1
(set by conftest) on small shapes; gpu-marked tests use real sizes.

Tolerance (float32 kernel vs the float64 reference on the same inputs): the kernel's error is that
of float32 sums of n products of size |g| |u|, so each entry must lie within RTOL_ABS = 1e-5 of
the scale (|S| |U| + |a| |u_i|) / |c_i| (n <= 33 here: the worst case is about 4e-6)."""

import pytest
from helpers import HAS_CUDA, HAS_TRITON

torch = pytest.importorskip("torch")
pytest.importorskip("triton")
pytestmark = pytest.mark.skipif(not HAS_TRITON, reason="triton backend unavailable")

from fastrsa.kernels.torch import unit_rdm_backward_torch  # noqa: E402
from fastrsa.kernels.triton.rdm_backward import unit_rdm_backward_triton  # noqa: E402

import fastrsa.torch as ft  # noqa: E402
from fastrsa.torch.ops import unit_rdm_backward, unit_rdm_forward  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"
SMALL = (16, 16, 16, 4, 2)  # (BLOCK_I, BLOCK_J, BLOCK_D, warps, stages): n = 17, 33 span tiles
RTOL_ABS = 1e-5


def _inputs(seed, b, n, d, centre=True, dtype=torch.float32, offset=3.0):
    """Features x (b, n, d) (rows offset by about `offset`, scales 0.1 to 10), the forward's
    outputs for them and a condensed gradient g (b, m), from a fixed generator."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((b, n, d), generator=gen, dtype=torch.float64)
    x = x * torch.exp(2 * torch.rand((b, n, 1), generator=gen, dtype=torch.float64) - 1) * 3
    x = (x + offset * torch.randn((b, n, 1), generator=gen, dtype=torch.float64)).to(dtype)
    if d == 1 and centre:  # one feature: every row constant; cosine only
        raise ValueError("d = 1 has no correlation RDM")
    rdm, hi, lo, inv = unit_rdm_forward(x, centre)
    g = torch.randn(rdm.shape, generator=gen, dtype=torch.float64).to(dtype)
    return [t.to(DEVICE) for t in (x, hi, lo, inv, rdm, g)]


def _scale(x, hi, lo, inv, rdm, g):
    """The size of each entry's float32 rounding error, float64 (module docstring)."""
    ab = [t.double().abs() for t in (x, hi, lo, inv, rdm, g)]
    u = ((x.double() - hi.double()[..., None]) - lo.double()[..., None]) * inv.double()[..., None]
    big = unit_rdm_backward_torch(u.abs(), *[torch.zeros_like(t) for t in ab[1:3]], ab[3] ** 0,
                                  torch.full_like(ab[4], 2.0), -ab[5])  # fmt: skip
    return big * ab[3][..., None]


def _assert_close(out, inputs):
    ref = unit_rdm_backward_torch(*[t.double() for t in inputs])
    err = (out.double() - ref).abs()
    bound = RTOL_ABS * _scale(*inputs) + 1e-30
    assert out.shape == inputs[0].shape
    assert bool((err <= bound).all()), f"max err {err.max():.3g}, ratio {(err / bound).max():.3g}"


def _plain_forward(x, centre):
    """The RDM by plain torch autograd (float64): centre, normalise, 1 - Gram, upper triangle."""
    c = x - x.mean(-1, keepdim=True) if centre else x
    u = c / torch.linalg.vector_norm(c, dim=-1, keepdim=True)
    i, j = torch.triu_indices(x.shape[-2], x.shape[-2], 1, device=x.device)
    return 1 - (u @ u.mT)[..., i, j]


@pytest.mark.parametrize(
    "b, n, d, centre",
    [(1, 3, 3, True), (2, 4, 1, False), (3, 17, 7, True), (3, 17, 7, False), (2, 33, 40, True)],
)
def test_reference_is_autograd_of_the_plain_formula(b, n, d, centre):
    """float64: the torch reference equals autograd of the plain formula to 1e-12 of each entry's
    scale (module docstring), d = 1 (cosine) and n = 3 included."""
    x, hi, lo, inv, rdm, g = _inputs(100 * n + d, b, n, d, centre, torch.float64)
    xr = x.clone().requires_grad_(True)
    torch.testing.assert_close(rdm, _plain_forward(xr, centre), rtol=0, atol=1e-13)
    (want,) = torch.autograd.grad((g * _plain_forward(xr, centre)).sum(), xr)
    got = unit_rdm_backward_torch(x, hi, lo, inv, rdm, g)
    assert got.dtype == torch.float64
    bound = 1e-12 * _scale(x, hi, lo, inv, rdm, g)  # d = 1 (cosine): the gradient is 0
    assert bool(((got - want).abs() <= bound).all()), float((got - want).abs().max())


@pytest.mark.parametrize("b", [1, 3])
@pytest.mark.parametrize("d, centre", [(1, False), (2, True), (7, True), (7, False), (40, True)])
@pytest.mark.parametrize("n", [3, 5, 17, 33])
def test_kernel_matches_reference(n, d, centre, b):
    """n = 3, n not a multiple of the block, d = 1 (cosine; centred rows of one feature are
    zero), d not a multiple of BLOCK_D, B = 1, 3."""
    inputs = _inputs(1000 * n + 10 * d + b, b, n, d, centre)
    out = unit_rdm_backward_triton(*inputs, config=SMALL)
    assert out.dtype == torch.float32
    _assert_close(out, inputs)


def test_kernel_default_config_and_large_offsets():
    """The default (untuned) blocks, which exceed n and d here; rows offset by 1e4 (float32:
    the mean's rounding, lo, matters)."""
    inputs = _inputs(7, 6, 33, 40, offset=1e4)
    assert bool((inputs[2] != 0).any())  # lo carries what hi's rounding lost
    _assert_close(unit_rdm_backward_triton(*inputs), inputs)


def test_kernel_strided_inputs():
    """x with feature stride != 1 (a transposed view), rdm and g strided slices: no copy."""
    x, hi, lo, inv, rdm, g = _inputs(8, 3, 17, 7)
    xt = x.transpose(-1, -2).contiguous().transpose(-1, -2)  # (3, 17, 7), stride_xd = 17
    g2 = torch.stack([g, torch.full_like(g, float("nan"))], -1)[..., 0]  # stride 2
    r2 = torch.stack([torch.full_like(rdm, float("nan")), rdm], -1)[..., 1]
    assert xt.stride(-1) != 1 and g2.stride(-1) == 2 and r2.stride(-1) == 2
    out = unit_rdm_backward_triton(xt, hi, lo, inv, r2, g2, config=SMALL)
    _assert_close(out, [x, hi, lo, inv, rdm, g])


def test_kernel_float64_and_half_inputs():
    """float64 x is fp32 inside and returned as float64; float16 / bfloat16 x: fp32 sums,
    returned in x's dtype (within that dtype's rounding of the fp32 result)."""
    inputs = _inputs(9, 2, 17, 7, dtype=torch.float64)
    out = unit_rdm_backward_triton(*inputs, config=SMALL)
    assert out.dtype == torch.float64
    _assert_close(out, inputs)
    for dtype in (torch.float16, torch.bfloat16):
        x, hi, lo, inv, rdm, g = _inputs(10, 2, 17, 7)
        xh = x.to(dtype)
        rdm, hi, lo, inv = unit_rdm_forward(xh, True)
        out = unit_rdm_backward_triton(xh, hi, lo, inv, rdm, g, config=SMALL)
        ref = unit_rdm_backward_torch(xh.double(), hi, lo, inv, rdm.double(), g.double())
        assert out.dtype == dtype
        torch.testing.assert_close(out.double(), ref, rtol=1e-2, atol=1e-2 * float(ref.abs().max()))


def test_rdms_gradient_through_the_kernel_equals_float64():
    """The whole path as fastrsa.torch.rdms runs it on CUDA, forced here: float32 x (2, 17, 7),
    its forward op, then the kernel; the input gradient equals float64 autograd of the plain
    formula within float32 accuracy."""
    x, _, _, _, _, g = _inputs(12, 2, 17, 7)
    rdm, hi, lo, inv = unit_rdm_forward(x, True)
    got = unit_rdm_backward_triton(x, hi, lo, inv, rdm, g, config=SMALL)
    xr = x.double().requires_grad_(True)
    (want,) = torch.autograd.grad((g.double() * _plain_forward(xr, True)).sum(), xr)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5 * float(want.abs().max()))
    torch.testing.assert_close(rdm.double(), ft.rdms(x.double()), rtol=0, atol=1e-6)


def test_dispatch_off_cuda():
    """CPU tensors (even under the interpreter) and float64 take the torch reference."""
    inputs = _inputs(13, 2, 5, 3, dtype=torch.float64)
    assert torch.equal(unit_rdm_backward(*inputs), unit_rdm_backward_torch(*inputs))
    if DEVICE == "cpu":
        inputs = _inputs(13, 2, 5, 3)
        assert torch.equal(unit_rdm_backward(*inputs), unit_rdm_backward_torch(*inputs))


def test_bad_input():
    x, hi, lo, inv, rdm, g = _inputs(14, 2, 5, 3)
    with pytest.raises(ValueError, match="grad must have shape"):
        unit_rdm_backward_torch(x, hi, lo, inv, rdm, g[:, :-1])
    with pytest.raises(ValueError, match="rdm must have shape"):
        unit_rdm_backward_triton(x, hi, lo, inv, rdm[:1], g)
    with pytest.raises(ValueError, match="inv_norm must have shape"):
        unit_rdm_backward_torch(x, hi, lo, inv[:, :-1], rdm, g)
    with pytest.raises(ValueError, match="x must be"):
        unit_rdm_backward_torch(x[0], hi, lo, inv, rdm, g)
    with pytest.raises(TypeError, match="grad must be"):
        unit_rdm_backward_torch(x, hi, lo, inv, rdm, g.long())
    with pytest.raises(ValueError, match="precision"):
        unit_rdm_backward_triton(x, hi, lo, inv, rdm, g, precision="fp8")


@pytest.mark.gpu
@pytest.mark.parametrize("precision,rtol_abs", [("ieee", 1e-5), ("tf32x3", 1e-5), ("tf32", 2e-3)])
def test_kernel_cuda_sizes(precision, rtol_abs):
    """Real sizes on CUDA: B = 4, n = 1000 (not a block multiple), d = 300; ieee and tf32x3 at
    the float32 bound, tf32 at 2e-3; the dispatcher takes the kernel ("ieee")."""
    inputs = _inputs(15, 4, 1000, 300)
    out = unit_rdm_backward_triton(*inputs, precision=precision)
    ref = unit_rdm_backward_torch(*[t.double() for t in inputs])
    assert bool(((out.double() - ref).abs() <= rtol_abs * _scale(*inputs)).all())
    assert torch.equal(unit_rdm_backward(*inputs), unit_rdm_backward_triton(*inputs))
