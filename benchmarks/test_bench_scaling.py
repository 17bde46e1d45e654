"""How the pipeline's cost grows with n (images), B (models) and d (features).

Sizes come from the profile (bench_helpers.py); `benchmarks/plot.py` draws time against each swept
size, log-log, one line per provider.
"""

import numpy as np
import pytest
from bench_helpers import (
    PROVIDERS,
    SIZES,
    counts,
    on_device,
    op_function,
    skip_unless_runs,
    time_case,
)


def _sweep(benchmark, provider, sweep, value):
    fixed, _ = SIZES[f"sweep_{sweep}"]
    sizes = {**fixed, sweep: value}
    shape = (sizes["B"], sizes["n"], sizes["d"])
    skip_unless_runs(provider, "pipeline", shape)
    feats = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    tiny = on_device(provider, feats[:2, :8, :4] + 1)
    benchmark.group = f"scaling in {sweep} ({', '.join(f'{k}={v}' for k, v in fixed.items())})"
    info = {"op": "pipeline", "shape": list(shape), "sweep": sweep, **sizes}
    time_case(
        benchmark,
        provider,
        op_function("pipeline", provider),
        on_device(provider, feats),
        {**info, **counts("pipeline", shape)},
        slow_warmup=tiny,
    )


@pytest.mark.parametrize("n", SIZES["sweep_n"][1])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_scaling_in_n(benchmark, provider, n):
    _sweep(benchmark, provider, "n", n)


@pytest.mark.parametrize("b", SIZES["sweep_B"][1])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_scaling_in_B(benchmark, provider, b):
    _sweep(benchmark, provider, "B", b)


@pytest.mark.parametrize("d", SIZES["sweep_d"][1])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_scaling_in_d(benchmark, provider, d):
    _sweep(benchmark, provider, "d", d)
