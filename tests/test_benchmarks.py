"""The benchmark suite itself, on its smoke profile (tiny shapes, one round): every op and
provider runs, the report and the plots come out of the saved JSON, the memory script measures,
and the regression gate fails when a case got slower than the baseline allows."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("pytest_benchmark")


def _run(*args, **env):
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, "FASTRSA_BENCH": "smoke", **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc


def _pytest(*args):
    return _run("-m", "pytest", "-q", "-p", "no:cacheprovider", *args)


@pytest.fixture(scope="module")
def smoke_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    proc = _pytest("benchmarks", f"--benchmark-json={out}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_every_op_and_provider_runs(smoke_json):
    data = json.loads(smoke_json.read_text())
    seen = {(b["extra_info"].get("op"), b["extra_info"]["provider"]) for b in data["benchmarks"]}
    for op in ("pipeline", "rdms", "compare", "rank", "kendall"):
        for provider in ("reference", "numpy", "numba", "torch", "torch-cuda", "triton"):
            assert (op, provider) in seen, (op, provider)
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        assert info["device"] and info["versions"]["fastrsa"]
        if info.get("op") == "pipeline":
            assert info["gflop_per_s"] > 0 and info["gb_per_s"] > 0
    sweeps = {b["extra_info"].get("sweep") for b in data["benchmarks"]}
    assert {"n", "B", "d"} <= sweeps


def test_report_and_plots(smoke_json, tmp_path):
    proc = _run("benchmarks/report.py", str(smoke_json))
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| pipeline 3x9x5 |")]
    assert {row.split("|")[2].strip() for row in rows} >= {"reference", "numba", "triton"}
    assert any(row.split("|")[2].strip() == "reference" and "| 1x |" in row for row in rows)
    proc = _run("benchmarks/plot.py", str(smoke_json), "--out", str(tmp_path), "--prefix", "t-")
    assert proc.returncode == 0, proc.stderr
    for sweep in ("n", "B", "d"):
        assert (tmp_path / f"t-scaling-{sweep}.png").stat().st_size > 1000


def test_memory_script(tmp_path):
    out = tmp_path / "memory.json"
    proc = _run(
        "benchmarks/memory.py", "--sizes", "smoke", "--providers", "numpy", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())
    assert [(r["B"], r["n"], r["d"]) for r in rows] == [(3, 9, 5), (4, 6, 3)]
    assert all(r["host_peak_MB"] > 0 for r in rows)


def test_regression_gate_fails_on_a_slowdown(tmp_path):
    """Save a baseline, make it 100x faster than what was measured, and compare against it."""
    storage = f"--benchmark-storage=file://{tmp_path}"
    case = ["benchmarks/test_bench_ops.py", "-k", "test_rdms and numpy and 3x9x5"]
    assert _pytest(*case, storage, "--benchmark-save=base").returncode == 0
    (saved,) = tmp_path.rglob("0001_base.json")
    data = json.loads(saved.read_text())
    for bench in data["benchmarks"]:
        for key in ("min", "max", "mean", "median"):
            bench["stats"][key] /= 100
    saved.write_text(json.dumps(data))
    compare = [storage, "--benchmark-compare=0001", "--benchmark-compare-fail=median:50%"]
    proc = _pytest(*case, *compare)
    assert proc.returncode != 0 and "Performance has regressed" in proc.stdout + proc.stderr


def test_stats_benchmark_quick(tmp_path):
    """benchmarks/bench_stats.py on its quick sizes: every case runs, fastrsa's values equal
    the baselines' (scipy loop, rsatoolbox's bootstrap) and the table is written."""
    pytest.importorskip("rsatoolbox")
    out = tmp_path / "stats.json"
    proc = _run("benchmarks/bench_stats.py", "--quick", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    cases = {c["case"]: c for c in result["cases"]}
    assert set(cases) == {"permutation", "bootstrap", "taxonomy_support"}
    assert cases["permutation"]["max_abs_diff"] < 1e-5  # float32 RDMs
    assert cases["bootstrap"]["max_abs_diff"] < 1e-12
    assert all(c["fastrsa_s"] > 0 and c["baseline_s"] > 0 for c in cases.values())
    assert "taxonomy support" in out.with_suffix(".md").read_text()
