"""fastrsa.torch under torch.compile: the registered custom ops pass torch.library.opcheck; the
functional ops trace with no graph break (dynamo's explain); a small training step (a linear
student matched to a teacher with rsa (soft-rank Spearman) and with cka) compiled with
fullgraph=True equals eager within 1e-10 (float64) after three SGD steps, with the aot_eager
backend (dynamo + AOTAutograd: fake tensors, the op's registered autograd) and with inductor
(marked slow: about 35 s on 2 CPU cores).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastrsa.torch as ft  # noqa: E402
from fastrsa.torch.ops import CUSTOM_OPS, unit_rdm_forward  # noqa: E402


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("shape, eps", [((1, 1), 1.0), ((3, 8), 0.2), ((2, 30), 1e-3)])
def test_opcheck_soft_rank(rng, shape, eps, descending):
    values = torch.tensor(rng.standard_normal(shape), requires_grad=True)
    torch.library.opcheck(CUSTOM_OPS["fastrsa::soft_rank"], (values, eps, descending))


@pytest.mark.parametrize("centre", [True, False])
@pytest.mark.parametrize("shape, dtype", [((1, 3, 4), torch.float64), ((2, 7, 5), torch.float32)])
def test_opcheck_unit_rdm_backward(rng, shape, dtype, centre):
    """The RDM's backward op: schema, fake tensors, AOT dispatch (no autograd of its own)."""
    x = torch.tensor(rng.standard_normal(shape), dtype=dtype)
    rdm, hi, lo, inv = unit_rdm_forward(x, centre)
    grad = torch.tensor(rng.standard_normal(rdm.shape), dtype=dtype)
    torch.library.opcheck(CUSTOM_OPS["fastrsa::unit_rdm_backward"], (x, hi, lo, inv, rdm, grad))


def test_functional_ops_trace_without_graph_breaks(rng):
    x = torch.tensor(rng.standard_normal((2, 6, 4)))
    y = torch.tensor(rng.standard_normal((6, 3)))

    def everything(x, y):
        out = ft.rsa(x, y) + ft.rsa(x, y, "euclidean", "spearman", 0.1)
        out = out + ft.cka(x, y) + ft.cka(x, y, "rbf", True)
        out = out.sum() + ft.cka_matrix(x).sum() + ft.compare(ft.rdms(x, "cosine")).sum()
        return out + ft.soft_rank(y, 0.5).sum()

    torch._dynamo.reset()
    explained = torch._dynamo.explain(everything)(x, y)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_training_step_compiled_fullgraph_equals_eager(rng, backend):
    n, d_in, d_out = 9, 5, 4
    inputs = torch.tensor(rng.standard_normal((n, d_in)))
    teacher = torch.tensor(rng.standard_normal((n, 6)))
    w0 = torch.tensor(rng.standard_normal((d_in, d_out)))

    def loss_fn(w, inputs, teacher):
        student = inputs @ w
        rsa_loss = 1 - ft.rsa(student, teacher, method="spearman", regularization=0.05)
        return rsa_loss + (1 - ft.cka(student, teacher))

    def train(step):
        w = w0.clone().requires_grad_(True)
        losses = []
        for _ in range(3):
            loss = step(w, inputs, teacher)
            (grad,) = torch.autograd.grad(loss, w)
            with torch.no_grad():
                w -= 0.1 * grad
            losses.append(float(loss.detach()))
        return w.detach(), losses

    torch._dynamo.reset()
    w_eager, l_eager = train(loss_fn)
    w_comp, l_comp = train(torch.compile(loss_fn, backend=backend, fullgraph=True, dynamic=False))
    np.testing.assert_allclose(l_comp, l_eager, rtol=0, atol=1e-10)
    np.testing.assert_allclose(w_comp, w_eager, rtol=0, atol=1e-10)
    assert l_eager[-1] < l_eager[0]  # it learns
