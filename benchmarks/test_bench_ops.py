"""Each op x every provider x the profile's sizes (bench_helpers.py), against the naive reference.

Ops: the full pipeline (features (B, n, d) -> RDMs -> all-pairs Spearman (B, B)), `rdms` alone,
`compare` (Spearman of B RDMs of M entries) alone, `rank_transform`, and Kendall's tau-b.
Headline: 20 models x 500 images x 2048 features (float32). `make bench` runs the CPU profile;
benchmarks/report.py turns the saved JSON into a table of ratios.
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


def _ids(shapes):
    return ["x".join(map(str, s)) for s in shapes]


def _bench(benchmark, op, provider, shape, data):
    skip_unless_runs(provider, op, shape)
    fn = op_function(op, provider)
    arg = on_device(provider, data)
    tiny = on_device(provider, data[:2, :8, :4] + 1 if data.ndim == 3 else data[:2, :8] + 1)
    benchmark.group = f"{op} {'x'.join(map(str, shape))}"
    out = time_case(
        benchmark,
        provider,
        fn,
        arg,
        {"op": op, "shape": list(shape), **counts(op, shape)},
        slow_warmup=tiny,
    )
    assert out is not None


def _features(shape):
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def _vectors(shape):
    return np.random.default_rng(1).random(shape).astype(np.float32)


@pytest.mark.parametrize("shape", SIZES["pipeline"], ids=_ids(SIZES["pipeline"]))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_pipeline(benchmark, provider, shape):
    _bench(benchmark, "pipeline", provider, shape, _features(shape))


@pytest.mark.parametrize("shape", SIZES["rdms"], ids=_ids(SIZES["rdms"]))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_rdms(benchmark, provider, shape):
    _bench(benchmark, "rdms", provider, shape, _features(shape))


@pytest.mark.parametrize("shape", SIZES["compare"], ids=_ids(SIZES["compare"]))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_compare(benchmark, provider, shape):
    _bench(benchmark, "compare", provider, shape, _vectors(shape))


@pytest.mark.parametrize("shape", SIZES["rank"], ids=_ids(SIZES["rank"]))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_rank_transform(benchmark, provider, shape):
    _bench(benchmark, "rank", provider, shape, _vectors(shape))


@pytest.mark.parametrize("shape", SIZES["kendall"], ids=_ids(SIZES["kendall"]))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_kendall(benchmark, provider, shape):
    _bench(benchmark, "kendall", provider, shape, _vectors(shape).astype(np.float64))
