# The two commands of the README: `make demo` and `make test`. Each creates the environment first.
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned to the CPU build that lies on disk here; a looser pin downloads a CUDA build.
TORCH ?= torch==2.13.0

.PHONY: demo test bench bench-gpu bench-memory bench-baseline bench-compare env clean
# The regression subset: fast, stable cases of every compiled CPU provider.
BENCH_SUBSET := -k "test_pipeline and (numba or numpy) or test_rank_transform and numba-20x124750"
BASELINE := --benchmark-storage=file://benchmarks/baseline

$(VENV)/.installed: pyproject.toml setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test,triton,onnx]"
	touch $@

env: $(VENV)/.installed

demo: env
	$(VENV)/bin/fastrsa demo

test: env
	$(PY) -m pytest -q tests

bench: env
	$(PY) -m pip install -q --disable-pip-version-check -e ".[bench]"
	$(PY) -m pytest benchmarks -q -p no:cacheprovider --benchmark-json=benchmarks/results/cpu-latest.json
	$(PY) benchmarks/report.py benchmarks/results/cpu-latest.json
	$(PY) benchmarks/plot.py benchmarks/results/cpu-latest.json --out benchmarks/results

bench-memory: env
	$(PY) benchmarks/memory.py --out benchmarks/results/memory-latest.json

# On a machine with a CUDA GPU: the suite's GPU profile (CUDA and CPU providers), its table and
# plots, peak memory, then the kernel-level comparisons with cuBLAS / torch.sort (gpu_bench.py).
bench-gpu: env
	FASTRSA_BENCH=gpu $(PY) -m pytest benchmarks -q -p no:cacheprovider --benchmark-json=benchmarks/results/gpu-latest.json
	$(PY) benchmarks/report.py benchmarks/results/gpu-latest.json
	$(PY) benchmarks/plot.py benchmarks/results/gpu-latest.json --out benchmarks/results --prefix gpu-
	$(PY) benchmarks/memory.py --sizes gpu --out benchmarks/results/gpu-memory-latest.json
	$(PY) benchmarks/gpu_bench.py --out benchmarks/results/gpu-kernels-latest.json

# Save this machine's timings as the baseline (benchmarks/baseline/<machine>/0001_baseline.json).
bench-baseline: env
	$(PY) -m pytest benchmarks/test_bench_ops.py -q -p no:cacheprovider $(BENCH_SUBSET) $(BASELINE) --benchmark-save=baseline

# Fails when a case's median is more than 1.5x the baseline's (50% slower).
bench-compare: env
	$(PY) -m pytest benchmarks/test_bench_ops.py -q -p no:cacheprovider $(BENCH_SUBSET) $(BASELINE) --benchmark-compare=0001 --benchmark-compare-fail=median:50%

clean:
	rm -rf $(VENV) build *.egg-info
