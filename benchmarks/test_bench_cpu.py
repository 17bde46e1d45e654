"""CPU benchmarks: every provider against the naive reference (scipy pdist + spearmanr).

Headline: 20 models x 500 images x 2048 features (float32) -> all-pairs Spearman of their RDMs.
Run with `make bench`; benchmarks/report.py turns the saved JSON into a table of ratios.
"""

import numpy as np
import pytest
from conftest import CPU_PROVIDERS, machine_info, pipeline, skip_unavailable

import fastrsa

HEADLINE = (20, 500, 2048)


def _rounds(provider: str) -> int:
    return 1 if provider in ("reference", "rsatoolbox") else 5


@pytest.mark.parametrize("provider", CPU_PROVIDERS)
def test_pipeline_headline(benchmark, provider):
    skip_unavailable(provider)
    b, n, d = HEADLINE
    feats = np.random.default_rng(0).standard_normal(HEADLINE).astype(np.float32)
    run = pipeline(provider)
    run(feats[:2, :8, :4] + np.arange(4, dtype=np.float32))  # compile / warm up, untimed
    benchmark.group = f"pipeline B={b} n={n} d={d}"
    benchmark.extra_info.update(machine_info())
    benchmark.extra_info.update(
        shape=list(HEADLINE),
        provider=provider,
        gflop=2 * b * n * n * d / 1e9,  # the Gram products (a full product; syrk does half)
    )
    sim = benchmark.pedantic(run, args=(feats,), rounds=_rounds(provider), warmup_rounds=0)
    assert sim.shape == (b, b)


@pytest.mark.parametrize("provider", ["reference", "numpy", "numba", "torch"])
@pytest.mark.parametrize("n", [500, 2000])
def test_rank_transform(benchmark, provider, n):
    skip_unavailable(provider)
    m = n * (n - 1) // 2
    x = np.random.default_rng(1).random((20, m)).astype(np.float32)
    fastrsa.rank_transform(x[:, :10], backend=provider)
    benchmark.group = f"rank_transform 20 x {m}"
    benchmark.extra_info.update(machine_info(), shape=[20, m], provider=provider)
    benchmark.pedantic(
        fastrsa.rank_transform,
        args=(x,),
        kwargs={"backend": provider},
        rounds=_rounds(provider),
        warmup_rounds=0,
    )


@pytest.mark.parametrize("provider", ["reference", "numpy", "numba", "torch"])
def test_kendall(benchmark, provider):
    skip_unavailable(provider)
    x = np.random.default_rng(2).random((8, 124750))
    fastrsa.compare(x[:2, :10], method="kendall", backend=provider)
    benchmark.group = "compare kendall 8 x 124750"
    benchmark.extra_info.update(machine_info(), shape=[8, 124750], provider=provider)
    benchmark.pedantic(
        fastrsa.compare,
        args=(x,),
        kwargs={"method": "kendall", "backend": provider},
        rounds=_rounds(provider),
        warmup_rounds=0,
    )
