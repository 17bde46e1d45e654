"""Huge counts (issue 22): permutations and bootstrap resamples are drawn and held a block at a
time within the memory budget, so any count runs in bounded memory and gives the same results
for a seed whatever the budget; what must be held whole (a returned null, bootstrap samples,
a ranking's scores, explicit permutations or indices) is refused before any work, in one line
naming the argument or flag, the count, the bytes and the budget. Pearson and cosine
permutation tests stay within the budget too.

A huge count that runs would run for days: those tests let the draw yield a few blocks and then
stop the run (`Stop`), measuring the memory up to there with tracemalloc."""

from __future__ import annotations

import importlib
import json
import tracemalloc

import numpy as np
import pytest

import fastrsa
from fastrsa import rdms, stats
from fastrsa.cli import main
from fastrsa.taxonomy import rank_sources, taxonomy

SLACK = 1.5  # peak / budget allowed, as the other budget tests


class Stop(Exception):
    """Raised by the patched draw to end a run of a huge count after a few blocks."""


def stop_after(monkeypatch, module: str, blocks: int = 3) -> list[tuple[int, ...]]:
    """Let `module`'s draw_rows yield `blocks` blocks, then raise Stop; returns the shapes of
    the blocks drawn. (Code that draws everything at once never calls it.)"""
    mod = importlib.import_module(module)
    original = getattr(mod, "draw_rows", None)
    shapes: list[tuple[int, ...]] = []

    def draw_rows(*args, **kwargs):
        for i, block in enumerate(original(*args, **kwargs)):
            if i == blocks:
                raise Stop
            shapes.append(block.shape)
            yield block

    monkeypatch.setattr(mod, "draw_rows", draw_rows, raising=False)
    return shapes


def no_work(monkeypatch, module: str) -> None:
    """Make `module`'s compare fail: a refusal must come before it."""

    def compare(*args, **kwargs):
        raise AssertionError("compare ran before the refusal")

    monkeypatch.setattr(importlib.import_module(module), "compare", compare)


def peak_of(fn):
    """(fn's result or the exception it raised, the peak of traced memory during it)."""
    tracemalloc.start()
    try:
        try:
            out = fn()
        except Exception as err:  # noqa: BLE001 - returned to the test, which checks it
            out = err
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def budget_setting():
    """set_memory_budget for one test, restored after."""
    yield fastrsa.set_memory_budget
    fastrsa.set_memory_budget(None)


def _rdms(rng, count: int, n: int) -> np.ndarray:
    return rng.random((count, n * (n - 1) // 2))


# ---- permutation_test ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine"])
def test_a_huge_n_perm_runs_in_bounded_memory(rng, monkeypatch, method):
    a = _rdms(rng, 3, 30)
    budget = 1_000_000
    stats.permutation_test(a, method=method, n_perm=2, seed=0)  # compile and cache outside
    shapes = stop_after(monkeypatch, "fastrsa.stats.permutation", blocks=1)
    err, peak = peak_of(
        lambda: stats.permutation_test(a, method=method, n_perm=10**12, seed=1, memory=budget)
    )
    assert isinstance(err, Stop), repr(err)  # HEAD: MemoryError drawing 10**12 permutations
    assert len(shapes) == 1 and shapes[0][0] * shapes[0][1] * 8 < budget
    assert peak < SLACK * budget, peak


def test_a_returned_null_over_the_budget_is_refused_before_any_work(rng, monkeypatch):
    a = _rdms(rng, 3, 10)
    no_work(monkeypatch, "fastrsa.stats.permutation")
    err, peak = peak_of(
        lambda: stats.permutation_test(a, n_perm=10**12, return_null=True, memory="64MB")
    )
    assert isinstance(err, ValueError), repr(err)
    msg = str(err)
    assert "\n" not in msg and msg.startswith("n_perm: 1000000000000 rounds")
    assert "152.00 TB" in msg and "memory budget of 64.00 MB" in msg  # 10**12 x (9 + 10) x 8
    assert "ask for at most 421052" in msg and "FASTRSA_MEMORY" in msg
    assert peak < 1_000_000


def test_explicit_permutations_over_the_budget_are_refused(rng, monkeypatch):
    a = _rdms(rng, 2, 10)
    perms = np.tile(np.arange(10), (200_000, 1))  # 16 MB as int64
    no_work(monkeypatch, "fastrsa.stats.permutation")
    with pytest.raises(ValueError, match=r"^permutations: 200000 rounds .* 16\.00 MB .* 1\.00 MB"):
        stats.permutation_test(a, permutations=perms, memory="1MB")


def test_p_values_are_bounded_and_equal_for_any_budget(rng):
    """50,000 permutations of 10 images (4 MB drawn whole) under a 1 MB budget: the peak stays
    within it and the p-values equal those of a large budget and of the seed's whole draw
    given as `permutations` (the draw order is kept exactly)."""
    a = _rdms(rng, 2, 10)
    k, seed, budget = 50_000, 5, 1_000_000
    big = stats.permutation_test(a, n_perm=k, seed=seed, memory="256MB")
    small, peak = peak_of(lambda: stats.permutation_test(a, n_perm=k, seed=seed, memory=budget))
    assert peak < SLACK * budget, peak
    np.testing.assert_array_equal(small.p, big.p)
    whole = np.random.default_rng(seed).permuted(np.broadcast_to(np.arange(10), (k, 10)), axis=1)
    given = stats.permutation_test(a, permutations=whole, memory="256MB")
    np.testing.assert_array_equal(given.p, big.p)
    assert small.permutations is None and small.n_perm == k


def test_a_returned_null_and_its_permutations_are_the_same_for_any_budget(rng):
    a = _rdms(rng, 3, 12)
    runs = [
        stats.permutation_test(a, n_perm=400, seed=2, return_null=True, memory=m)
        for m in ("256MB", "200kB")
    ]
    np.testing.assert_allclose(runs[0].null, runs[1].null, atol=1e-12)  # BLAS sums by batch
    np.testing.assert_array_equal(runs[0].p, runs[1].p)
    np.testing.assert_array_equal(runs[0].permutations, runs[1].permutations)
    whole = np.random.default_rng(2).permuted(np.broadcast_to(np.arange(12), (400, 12)), axis=1)
    np.testing.assert_array_equal(runs[1].permutations, whole)


@pytest.mark.parametrize(
    "method,dtype,sizes,n,k",
    [
        ("cosine", np.float64, (3, None), 120, 200),  # HEAD: the pair index of 200 rounds, 11 MB
        ("pearson", np.float32, (1, 1), 200, 300),  # HEAD: its batches left out the index
        ("spearman", np.float32, (1, 1), 200, 300),
    ],
)
@pytest.mark.parametrize("backend", ["numpy", "auto"])  # numpy's op builds the pair index
def test_permutation_tests_stay_within_the_budget(rng, method, dtype, sizes, n, k, backend):
    a = _rdms(rng, sizes[0], n).astype(dtype)
    b = None if sizes[1] is None else _rdms(rng, sizes[1], n).astype(dtype)
    budget = 4_000_000
    stats.permutation_test(a[:, :3], None, method, n_perm=2, seed=0, backend=backend)
    result, peak = peak_of(
        lambda: stats.permutation_test(a, b, method, k, 0, memory=budget, backend=backend)
    )
    assert not isinstance(result, Exception), repr(result)
    assert peak < SLACK * budget, peak


# ---- bootstrap, taxonomy, rank_sources -----------------------------------------------------


def test_bootstrap_samples_over_the_budget_are_refused_before_any_work(rng, monkeypatch):
    d = _rdms(rng, 3, 10)
    no_work(monkeypatch, "fastrsa.stats.bootstrap")
    err, peak = peak_of(lambda: stats.bootstrap(d, n_boot=10**10, seed=0, memory="64MB"))
    assert isinstance(err, ValueError), repr(err)  # HEAD: MemoryError drawing the indices
    msg = str(err)
    assert "\n" not in msg and msg.startswith("n_boot: 10000000000 resamples")
    assert "1.52 TB" in msg and "64.00 MB" in msg  # 10**10 x (3 x 3 + 10) x 8 bytes
    assert "memory=" in msg and peak < 1_000_000


def test_explicit_indices_over_the_budget_are_refused(rng, monkeypatch):
    d = _rdms(rng, 2, 10)
    no_work(monkeypatch, "fastrsa.stats.bootstrap")
    idx = np.tile(np.arange(10), (100_000, 1))
    with pytest.raises(ValueError, match=r"^indices: 100000 resamples .* over the memory budget"):
        stats.bootstrap(d, indices=idx, memory="1MB")


def test_bootstrap_draws_are_the_same_for_any_budget(rng):
    d = _rdms(rng, 3, 15)
    runs = [stats.bootstrap(d, n_boot=300, seed=5, memory=m) for m in ("256MB", "60kB")]
    np.testing.assert_array_equal(runs[0].samples, runs[1].samples)
    np.testing.assert_array_equal(
        runs[1].indices, np.random.default_rng(5).integers(0, 15, (300, 15))
    )
    blocks = list(stats.bootstrap_batches(d, n_boot=300, seed=5, memory="20kB"))
    assert len(blocks) > 1 and [k0 for k0, _ in blocks][:2] == [0, len(blocks[0][1])]
    np.testing.assert_array_equal(np.concatenate([s for _, s in blocks]), runs[0].samples)


def test_a_huge_taxonomy_bootstrap_runs_in_bounded_memory(rng, monkeypatch, budget_setting):
    d = _rdms(rng, 4, 12)
    taxonomy(d, [f"m{i}" for i in range(4)], n_boot=2, seed=0)  # compile and cache outside
    budget_setting(1_000_000)
    shapes = stop_after(monkeypatch, "fastrsa.stats.bootstrap", blocks=1)
    err, peak = peak_of(lambda: taxonomy(d, [f"m{i}" for i in range(4)], n_boot=10**9, seed=1))
    assert isinstance(err, Stop), repr(err)  # HEAD: MemoryError drawing the indices
    assert len(shapes) == 1 and peak < SLACK * 1_000_000, peak


def test_taxonomy_support_is_bounded_and_equal_for_any_budget(rng, budget_setting):
    """2,000 resamples of 4 models on 60 images: 1.2 MB of samples and indices if held whole;
    under a 512 kB budget the bootstrap adds less than the budget to the peak of the taxonomy
    without one, and the support and co-clustering equal those of a large budget."""
    d = _rdms(rng, 4, 60)
    d[1] = d[0] + 0.3 * d[1]
    labels = [f"m{i}" for i in range(4)]
    big = taxonomy(d, labels, n_clusters=2, n_boot=2000, seed=3, method="pearson")
    budget_setting(512_000)
    _, baseline = peak_of(lambda: taxonomy(d, labels, n_clusters=2, method="pearson"))
    small, peak = peak_of(
        lambda: taxonomy(d, labels, n_clusters=2, n_boot=2000, seed=3, method="pearson")
    )
    assert peak - baseline < 512_000, (peak, baseline)  # HEAD: +790 kB
    np.testing.assert_array_equal(small.support, big.support)
    np.testing.assert_array_equal(small.co_clustering, big.co_clustering)


def test_rank_sources_scores_over_the_budget_are_refused_before_any_work(rng, monkeypatch):
    d = _rdms(rng, 4, 10)
    no_work(monkeypatch, "fastrsa.transfer.ranking")
    err, peak = peak_of(lambda: rank_sources(d[0], d[1:], ["a", "b", "c"], n_boot=10**10))
    assert isinstance(err, ValueError), repr(err)  # HEAD: MemoryError drawing the indices
    msg = str(err)
    assert "\n" not in msg and msg.startswith("n_boot: 10000000000 resamples")
    assert "1.44 TB" in msg and "set_memory_budget" in msg  # 10**10 x 6 arrays x 3 x 8 bytes
    assert peak < 1_000_000


# ---- the command line ----------------------------------------------------------------------


@pytest.fixture
def files(tmp_path, rng):
    """An RDM file of 4 models (12 images), a target and 3 sources, an affinity table."""
    x = rng.standard_normal((5, 12, 6))
    rows = np.stack([np.asarray(rdms(x[i])) for i in range(5)])
    np.savez(tmp_path / "r.npz", **{f"m{i}": rows[i] for i in range(4)})
    np.save(tmp_path / "target.npy", rows[4])
    np.savez(tmp_path / "sources.npz", a=rows[0], b=rows[1], c=rows[2])
    aff = {f"m{s}__m{t}": float(rng.random()) for s in range(4) for t in range(4) if s != t}
    (tmp_path / "aff.json").write_text(json.dumps(aff))
    return tmp_path


@pytest.mark.parametrize(
    "argv,module",
    [
        (["compare", "{d}/r.npz", "--permutations", "1000000000"], "permutation"),
        (
            ["taxonomy", "--rdms", "{d}/r.npz", "--out", "{d}/t", "--bootstrap", "1000000000"],
            "bootstrap",
        ),
    ],
)
def test_cli_huge_counts_run_in_bounded_memory(files, monkeypatch, argv, module):
    argv = [a.format(d=files) for a in argv]
    rows = np.stack(list(np.load(files / "r.npz").values()))
    stats.permutation_test(rows, n_perm=2, seed=0)  # compile and cache outside
    taxonomy(rows, [f"m{i}" for i in range(4)], n_boot=2, seed=0)
    monkeypatch.setenv("FASTRSA_MEMORY", "1MB")
    shapes = stop_after(monkeypatch, f"fastrsa.stats.{module}", blocks=1)
    err, peak = peak_of(lambda: main(argv))
    assert isinstance(err, Stop), repr(err)  # HEAD: a MemoryError traceback, exit 1
    assert len(shapes) == 1 and peak < SLACK * 1_000_000, peak


def test_cli_cosine_permutations_stay_within_the_budget(tmp_path, rng, monkeypatch, capsys):
    np.save(tmp_path / "r.npy", _rdms(rng, 5, 100))
    argv = ["compare", str(tmp_path / "r.npy"), "--method", "cosine", "--seed", "0"]
    main([*argv, "--permutations", "2"])  # compile and cache outside
    monkeypatch.setenv("FASTRSA_MEMORY", "2MB")
    code, peak = peak_of(lambda: main([*argv, "--permutations", "150"]))
    assert code == 0, repr(code)  # HEAD: the pair index of 150 rounds, 5.9 MB
    assert peak < SLACK * 2_000_000, peak
    assert "p-values (150 permutations of the images, seed 0)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["rank", "--target", "{d}/target.npy", "--sources", "{d}/sources.npz"],
        ["evaluate", "--rdms", "{d}/r.npz", "--affinities", "{d}/aff.json"],
    ],
)
def test_cli_held_bootstraps_over_the_budget_exit_2_naming_the_flag(
    files, monkeypatch, capsys, argv
):
    monkeypatch.setenv("FASTRSA_MEMORY", "64MB")
    argv = [a.format(d=files) for a in argv]
    assert main([*argv, "--bootstrap", "1000000000"]) == 2  # HEAD: MemoryError traceback
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "error: --bootstrap: 1000000000 resamples" in err
    assert "over the memory budget of 64.00 MB" in err and "FASTRSA_MEMORY" in err
    assert "n_boot" not in err
