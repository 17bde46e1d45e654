"""fastrsa.compare's rsatoolbox measures without tie correction, rho-a and tau-a, on every CPU
backend: against rsatoolbox's own `compare`, the float64 reference (fastrsa.reference) and plain
per-pair definitions written here (a direct count of concordant and discordant pairs)."""

import json

import numpy as np
import pytest
from helpers import CPU_BACKENDS, HAS_TRITON
from scipy import stats

import fastrsa
from fastrsa.reference import METHODS, compare_ref

RANK_A = ("rho-a", "tau-a")
ATOL = 1e-10
# (Ba, Bb, M): M = 3 (n = 3 images); M not a multiple of any block (57, 1225 - 2); many rows
SHAPES = [(1, 1, 3), (3, None, 3), (5, 4, 57), (4, None, 1223), (40, 7, 45)]


def _rows(rng, shape, decimals=1):
    """Random rows rounded to `decimals`: many ties."""
    return np.round(rng.standard_normal(shape), decimals)


def _count_tau_a(u, v):
    """tau-a by its definition: sum over pairs k < l of sign(u_k - u_l) sign(v_k - v_l), over
    the number of pairs (ties in either vector contribute 0)."""
    n = u.shape[0]
    i, j = np.triu_indices(n, 1)
    return float(np.sum(np.sign(u[i] - u[j]) * np.sign(v[i] - v[j]))) / (n * (n - 1) // 2)


def _formula_rho_a(u, v):
    n = u.shape[0]
    x, y = stats.rankdata(u), stats.rankdata(v)
    return 12.0 * float(x @ y) / (n**3 - n) - 3.0 * (n + 1) / (n - 1)


def _plain(a, b, method):
    f = _formula_rho_a if method == "rho-a" else _count_tau_a
    b = a if b is None else b
    return np.array([[f(u, v) for v in b] for u in a])


def test_methods_are_listed():
    assert set(RANK_A) <= set(METHODS)
    from fastrsa.sweeps.blocks import TILE_METHODS

    assert set(RANK_A) <= set(TILE_METHODS)


@pytest.mark.parametrize("method", RANK_A)
@pytest.mark.parametrize("ba,bb,m", SHAPES)
def test_matches_rsatoolbox(backend, rng, method, ba, bb, m):
    rsa = pytest.importorskip("rsatoolbox")
    a = _rows(rng, (ba, m))
    b = None if bb is None else _rows(rng, (bb, m))
    out = fastrsa.compare(a, b, method=method, backend=backend)
    want = rsa.rdm.compare(rsa.rdm.RDMs(a), rsa.rdm.RDMs(a if b is None else b), method=method)
    assert out.dtype == np.float64 and out.shape == want.shape
    np.testing.assert_allclose(out, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize("method", RANK_A)
@pytest.mark.parametrize("ba,bb,m", SHAPES)
@pytest.mark.parametrize("decimals", [0, 1, 8])  # many ties, some, (almost surely) none
def test_matches_reference_and_definition(backend, rng, method, ba, bb, m, decimals):
    a = _rows(rng, (ba, m), decimals)
    b = None if bb is None else _rows(rng, (bb, m), decimals)
    out = fastrsa.compare(a, b, method=method, backend=backend)
    ref = compare_ref(a, b, method)
    np.testing.assert_allclose(out, ref, rtol=0, atol=ATOL)
    if m <= 100:  # the O(M^2) definition, independent of scipy's kendalltau
        np.testing.assert_allclose(ref, _plain(a, b, method), rtol=0, atol=ATOL)


@pytest.mark.parametrize("method", RANK_A)
def test_self_similarity_below_one_with_ties(backend, rng, method):
    """No ones forced on the diagonal: with ties, a row's rho-a / tau-a with itself is < 1,
    exactly what the pair formula gives; without ties it is 1."""
    a = _rows(rng, (6, 80), 0)
    a[0] = rng.permutation(80)  # no ties
    out = fastrsa.compare(a, method=method, backend=backend)
    np.testing.assert_array_equal(out, out.T)
    diag = np.diag(out)
    np.testing.assert_allclose(diag, np.diag(_plain(a, a, method)), rtol=0, atol=ATOL)
    assert diag[0] == 1.0 and np.all(diag[1:] < 1.0)
    np.testing.assert_allclose(
        out, fastrsa.compare(a, a, method=method, backend=backend), atol=ATOL
    )


@pytest.mark.parametrize("method", RANK_A)
def test_constant_rows_score_zero(backend, rng, method):
    """rho-a and tau-a need no variance: a constant row is 0 against every row (rsatoolbox's
    value), itself included; the tie-corrected methods still refuse it."""
    a = _rows(rng, (3, 30))
    a[1] = 2.5
    b = _rows(rng, (2, 30))
    np.testing.assert_array_equal(fastrsa.compare(a, b, method=method, backend=backend)[1], 0.0)
    sym = fastrsa.compare(a, method=method, backend=backend)
    np.testing.assert_array_equal(sym[1], 0.0)
    np.testing.assert_array_equal(sym[:, 1], 0.0)
    with pytest.raises(ValueError, match="constant"):
        fastrsa.compare(a, b, method="spearman", backend=backend)


@pytest.mark.parametrize("method", RANK_A)
def test_exact_orders(backend, rng, method):
    """Identical and reversed rows without ties: exactly 1 and -1."""
    a = rng.permutation(101)[None].astype(np.float64)
    b = np.concatenate([a, -a])
    np.testing.assert_array_equal(fastrsa.compare(a, b, method=method, backend=backend), [[1, -1]])


@pytest.mark.parametrize("method", RANK_A)
def test_float32_and_integers(backend, rng, method):
    """float32 rows give float64 results (the values' exact rank statistic); integer rows are
    ranked as integers, exactly (beyond 2**53 too)."""
    a = _rows(rng, (4, 60)).astype(np.float32)
    out = fastrsa.compare(a, method=method, backend=backend)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, compare_ref(a, None, method), rtol=0, atol=ATOL)
    big = rng.integers(-(2**62), 2**62, size=(3, 50))
    big[:, :10] = 2**60 + 1  # ties, and values 2**53 cannot tell apart from their neighbours
    big[:, 10] = 2**60
    out = fastrsa.compare(big, method=method, backend=backend)
    np.testing.assert_allclose(out, _plain(big, None, method), rtol=0, atol=ATOL)


@pytest.mark.parametrize("method", RANK_A)
def test_torch_in_torch_out(backend, rng, method):
    torch = pytest.importorskip("torch")
    a, b = _rows(rng, (3, 28)), _rows(rng, (2, 28))
    out = fastrsa.compare(torch.from_numpy(a), torch.from_numpy(b), method=method, backend=backend)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.shape == (3, 2)
    np.testing.assert_allclose(out.numpy(), compare_ref(a, b, method), rtol=0, atol=ATOL)
    sym = fastrsa.compare(torch.from_numpy(a).float(), method=method, backend=backend)
    assert isinstance(sym, torch.Tensor) and sym.dtype == torch.float64
    ref = compare_ref(a.astype(np.float32), None, method)
    np.testing.assert_allclose(sym.numpy(), ref, rtol=0, atol=ATOL)


@pytest.mark.parametrize("method", RANK_A)
def test_host_rows_in_blocks(rng, method):
    """numpy rows for the torch backend with a budget far below them: compared a block of rows
    at a time (rho-a on the device's ranks, tau-a on the CPU); same numbers."""
    pytest.importorskip("torch")
    a, b = _rows(rng, (9, 300)), _rows(rng, (5, 300))
    for other in (b, None):
        out = fastrsa.compare(a, other, method=method, backend="torch", memory=16_000)
        assert isinstance(out, np.ndarray) and out.dtype == np.float64
        np.testing.assert_allclose(out, compare_ref(a, other, method), rtol=0, atol=ATOL)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("method", RANK_A)
def test_triton_routes_to_torch(rng, method):
    """The triton backend computes rho-a with torch's float64 ranks and product, tau-a on the
    CPU (no Triton kernel runs: fast under TRITON_INTERPRET=1 too)."""
    torch = pytest.importorskip("torch")
    a, b = _rows(rng, (4, 45)).astype(np.float32), _rows(rng, (3, 45)).astype(np.float32)
    for other in (b, None):
        tb = None if other is None else torch.from_numpy(other)
        out = fastrsa.compare(torch.from_numpy(a), tb, method=method, backend="triton")
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
        ref = compare_ref(a, other, method)
        np.testing.assert_allclose(out.cpu().numpy(), ref, rtol=0, atol=ATOL)


@pytest.mark.parametrize("method", RANK_A)
def test_kernels_return_both_variants(rng, method):
    """The tau-b kernels return tau-a when asked, from the same count (no second copy)."""
    from fastrsa.kernels import numpy as knp

    a, b = _rows(rng, (3, 40)), _rows(rng, (2, 40))
    kernels = [knp.kendall_numpy]
    if "numba" in CPU_BACKENDS:
        from fastrsa.kernels import numba as knb

        kernels.append(knb.kendall_numba)
    for kendall in kernels:
        tau_a = kendall(a, b, "a")
        np.testing.assert_allclose(tau_a, compare_ref(a, b, "tau-a"), rtol=0, atol=ATOL)
        np.testing.assert_allclose(kendall(a, b), compare_ref(a, b, "kendall"), atol=ATOL)
        with pytest.raises(ValueError, match="variant"):
            kendall(a, b, "c")


@pytest.mark.parametrize("method", RANK_A)
def test_cli_compare(tmp_path, rng, method):
    from fastrsa.cli import main

    rdms = _rows(rng, (3, 36))
    np.savez(tmp_path / "rdms.npz", rdms=rdms)
    out = tmp_path / "sim.json"
    assert main(["compare", str(tmp_path / "rdms.npz"), "--method", method, "--out", str(out)]) == 0
    got = np.array(json.loads(out.read_text())["similarity"])
    np.testing.assert_allclose(got, compare_ref(rdms, None, method), rtol=0, atol=ATOL)
