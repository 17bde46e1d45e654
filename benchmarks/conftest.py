"""pytest's hooks for the benchmarks. The shared helpers (size profiles, providers, the machine,
timing) live in bench_helpers.py, which benchmark modules import; it is imported here first so
that TRITON_INTERPRET is set (smoke profile without a GPU) before anything imports triton."""

import bench_helpers  # noqa: F401
