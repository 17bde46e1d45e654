# The two commands of the README: `make demo` and `make test`. Each creates the environment first.
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned to the CPU build that lies on disk here; a looser pin downloads a CUDA build.
TORCH ?= torch==2.13.0

.PHONY: demo test bench env clean

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

clean:
	rm -rf $(VENV) build *.egg-info
