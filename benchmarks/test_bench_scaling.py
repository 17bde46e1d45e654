"""How the cost grows: the features -> similarity pipeline against n (images) and B (models).

Sized for a 2-core CPU (the naive reference only at the small end); `benchmarks/plot.py` draws
time against n and against B, log-log, one line per provider.
"""

import numpy as np
import pytest
from conftest import machine_info, pipeline, skip_unavailable

D = 256
N_SWEEP = [100, 200, 400, 800, 1600]  # B = 10
B_SWEEP = [5, 10, 20, 40, 80]  # n = 200
REFERENCE_MAX = {"n": 400, "B": 20}  # the reference is slow: only the small end


def _run(benchmark, provider, b, n, sweep, value):
    skip_unavailable(provider)
    if provider == "reference" and value > REFERENCE_MAX[sweep]:
        pytest.skip("the naive reference only at small sizes")
    feats = np.random.default_rng(0).standard_normal((b, n, D)).astype(np.float32)
    run = pipeline(provider)
    run(feats[:2, :8, :4] + np.arange(4, dtype=np.float32))  # compile / warm up
    benchmark.group = f"scaling in {sweep} (d={D})"
    benchmark.extra_info.update(machine_info(), provider=provider, B=b, n=n, d=D, sweep=sweep)
    rounds = 1 if provider == "reference" else 3
    benchmark.pedantic(run, args=(feats,), rounds=rounds, warmup_rounds=0)


@pytest.mark.parametrize("provider", ["reference", "numpy", "numba", "torch"])
@pytest.mark.parametrize("n", N_SWEEP)
def test_scaling_in_n(benchmark, provider, n):
    _run(benchmark, provider, 10, n, "n", n)


@pytest.mark.parametrize("provider", ["reference", "numpy", "numba", "torch"])
@pytest.mark.parametrize("b", B_SWEEP)
def test_scaling_in_B(benchmark, provider, b):
    _run(benchmark, provider, b, 200, "B", b)
