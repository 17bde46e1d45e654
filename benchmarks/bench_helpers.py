"""Shared benchmark helpers: size profiles, providers, the machine, and one way to time a case.

Profiles (environment variable FASTRSA_BENCH):
- "cpu" (default, `make bench`): sized for a 2-core CPU, a few minutes.
- "gpu" (`make bench-gpu`): the CUDA providers at B up to 1,000, n up to 5,000, d up to 8,192;
  the CPU providers only where their work is at most a few times the headline's.
- "smoke": tiny shapes, one round each, every provider (Triton in its interpreter without a
  GPU); the test suite runs it so the benchmarks cannot rot.

Providers: "reference" (scipy pdist + spearmanr), the backends "numpy", "numba", "torch" (CPU
tensors), "torch-cuda" and "triton" (CUDA tensors in, results left on the GPU; CUDA is
synchronised inside the timed region), and "rsatoolbox" when installed. Inputs are made and moved
to their device before timing.
"""

import math
import os
import platform
import time

import numpy as np
import pytest

try:
    import torch

    CUDA = torch.cuda.is_available()
except ImportError:
    torch = None
    CUDA = False

PROFILE = os.environ.get("FASTRSA_BENCH", "cpu")
if PROFILE not in ("cpu", "gpu", "smoke"):
    raise SystemExit(f"FASTRSA_BENCH must be 'cpu', 'gpu' or 'smoke'; got {PROFILE!r}")
if PROFILE == "smoke" and not CUDA:  # Triton's interpreter runs the kernels on CPU tensors
    os.environ.setdefault("TRITON_INTERPRET", "1")

import fastrsa  # noqa: E402
from fastrsa.reference import compare_ref, rank_ref, rdm_ref  # noqa: E402

SLOW = ("reference", "rsatoolbox")  # run once per case, and only up to the headline's work
GPU_PROVIDERS = ("torch-cuda", "triton")
CPU_PROVIDERS = ("reference", "numpy", "numba", "torch", "rsatoolbox")
PROVIDERS = CPU_PROVIDERS + GPU_PROVIDERS

# (B, n, d) feature shapes; (B, M) RDM shapes (M = n(n-1)/2). Sweeps: (fixed sizes, values).
HEADLINE = (20, 500, 2048)
SIZES = {
    "cpu": {
        "pipeline": [HEADLINE],
        "rdms": [HEADLINE, (10, 500, 128), (10, 500, 8192), (2, 5000, 256)],
        "compare": [(20, 124750), (200, 19900)],
        "rank": [(20, 124750), (20, 1999000)],
        "kendall": [(8, 124750)],
        "sweep_n": ({"B": 5, "d": 256}, [100, 200, 400, 800, 1600, 3200, 5000]),
        "sweep_B": ({"n": 200, "d": 256}, [5, 10, 20, 40, 80, 160, 320, 1000]),
        "sweep_d": ({"B": 10, "n": 500}, [128, 512, 2048, 8192]),
        "onnx_batch": 64,
        "onnx_e2e": (20, 500),  # encoders, images
    },
    "gpu": {
        "pipeline": [(b, n, 2048) for n in (500, 2000) for b in (20, 100, 1000)],
        "rdms": [(100, 500, 2048), (100, 2000, 2048), (1000, 500, 2048), (20, 5000, 2048)],
        "compare": [(100, 124750), (1000, 124750), (100, 1999000)],
        "rank": [(100, 124750), (1000, 124750), (20, 1999000), (20, 12497500)],
        "kendall": [(8, 124750)],
        "sweep_n": ({"B": 20, "d": 2048}, [100, 200, 500, 1000, 2000, 5000]),
        "sweep_B": ({"n": 500, "d": 2048}, [5, 20, 100, 300, 1000]),
        "sweep_d": ({"B": 100, "n": 500}, [128, 512, 2048, 8192]),
        "onnx_batch": 64,
        "onnx_e2e": (20, 500),
    },
    "smoke": {
        "pipeline": [(3, 9, 5)],
        "rdms": [(3, 9, 5), (2, 3, 2)],
        "compare": [(3, 36)],
        "rank": [(3, 36)],
        "kendall": [(3, 36)],
        "sweep_n": ({"B": 3, "d": 4}, [5, 10]),
        "sweep_B": ({"n": 6, "d": 4}, [3, 4]),
        "sweep_d": ({"B": 3, "n": 6}, [3, 5]),
        "onnx_batch": 2,
        "onnx_e2e": (2, 4),
    },
}[PROFILE]

# Work relative to the headline, past which a provider is not run: the slow ones take seconds at
# the headline already; on a GPU machine the CPU backends are compared at the smaller sizes only.
MAX_WORK = {"slow": 1.3, "cpu": math.inf if PROFILE != "gpu" else 25.0, "gpu": math.inf}


def work(op: str, shape: tuple) -> float:
    """Cost of a case relative to the headline (20 x 500 x 2048 -> Spearman): the larger of its
    Gram work (B n^2 d), its comparison work (B^2 M) and its ranking work (B M)."""
    hb, hn, hd = HEADLINE
    hm = hn * (hn - 1) // 2
    if op in ("rank", "compare", "kendall"):
        b, m = shape
        gram = 0.0
    else:
        b, n, d = shape
        m = n * (n - 1) // 2
        gram = b * n * n * d / (hb * hn * hn * hd)
        if op == "rdms":
            return gram
    pairs = 0.0 if op == "rank" else b * b * m / (hb * hb * hm)
    return max(gram, pairs, b * m / (20 * 1999000))


def skip_unless_runs(provider: str, op: str, shape: tuple) -> None:
    """Skips the case when the provider cannot run here or the size is beyond its class."""
    if provider == "rsatoolbox" and not has_module("rsatoolbox"):
        pytest.skip("rsatoolbox is not installed (pip install fastrsa[bench])")
    if provider in GPU_PROVIDERS and not (CUDA or PROFILE == "smoke"):
        pytest.skip("needs a CUDA GPU")
    backend = backend_of(provider)
    if backend in fastrsa.BACKENDS and backend not in fastrsa.available_backends():
        pytest.skip(f"backend {backend!r} cannot run here")
    cls = "slow" if provider in SLOW else "gpu" if provider in GPU_PROVIDERS else "cpu"
    if work(op, shape) > MAX_WORK[cls]:
        pytest.skip(f"{provider} only up to {MAX_WORK[cls]}x the headline's work")


def has_module(name: str) -> bool:
    try:
        __import__(name)
        return True
    except ImportError:
        return False


def backend_of(provider: str) -> str:
    return "torch" if provider == "torch-cuda" else provider


def on_device(provider: str, x: np.ndarray):
    """The provider's input: numpy for the CPU backends, a CPU tensor for "torch", a CUDA tensor
    for the GPU providers (a CPU tensor in the smoke profile without a GPU)."""
    if provider == "torch":
        return torch.from_numpy(x)
    if provider in GPU_PROVIDERS:
        return torch.from_numpy(x).to("cuda" if CUDA else "cpu")
    return x


def synchronised(provider: str, fn):
    """fn, followed by a CUDA synchronise for the GPU providers, so the timing holds the work."""
    if provider not in GPU_PROVIDERS or not CUDA:
        return fn

    def run(*args):
        out = fn(*args)
        torch.cuda.synchronize()
        return out

    return run


def _rsatoolbox_rdms(feats: np.ndarray):
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm

    return calc_rdm([Dataset(f) for f in feats], method="correlation")


def _rsatoolbox_compare(vectors: np.ndarray) -> np.ndarray:
    from rsatoolbox.rdm import RDMs
    from rsatoolbox.rdm import compare as rsa_compare

    rdms = RDMs(vectors)
    return rsa_compare(rdms, rdms, method="spearman")


def op_function(op: str, provider: str):
    """The callable timed for (op, provider); it takes the provider's input."""
    if provider == "reference":
        return {
            "pipeline": lambda x: compare_ref(rdm_ref(x), method="spearman"),
            "rdms": rdm_ref,
            "compare": lambda x: compare_ref(x, method="spearman"),
            "rank": rank_ref,
            "kendall": lambda x: compare_ref(x, method="kendall"),
        }[op]
    if provider == "rsatoolbox":
        if op == "pipeline":
            return lambda x: _rsatoolbox_compare(_rsatoolbox_rdms(x).dissimilarities)
        if op == "rdms":
            return _rsatoolbox_rdms
        if op == "compare":
            return _rsatoolbox_compare
        pytest.skip(f"rsatoolbox has no separate {op}")
    backend = backend_of(provider)
    fn = {
        "pipeline": lambda x: fastrsa.compare(fastrsa.rdms(x, backend=backend), backend=backend),
        "rdms": lambda x: fastrsa.rdms(x, backend=backend),
        "compare": lambda x: fastrsa.compare(x, backend=backend),
        "rank": lambda x: fastrsa.rank_transform(x, backend=backend),
        "kendall": lambda x: fastrsa.compare(x, method="kendall", backend=backend),
    }[op]
    return synchronised(provider, fn)


def counts(op: str, shape: tuple) -> dict:
    """FLOPs (the full Gram product and the correlation product) and the fewest bytes moved."""
    if op in ("rank", "compare", "kendall"):
        b, m = shape
        out = {"bytes": b * m * (4 + 8)} if op == "rank" else {"bytes": b * m * 4 + b * b * 8}
        if op == "compare":
            out["flop"] = 2 * b * b * m
        return out
    b, n, d = shape
    m = n * (n - 1) // 2
    flop = 2 * b * n * n * d + (2 * b * b * m if op == "pipeline" else 0)
    return {"flop": flop, "bytes": b * n * d * 4 + b * m * 4}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_machine(extra_packages: tuple[str, ...] = ()) -> dict:
    """Where a CPU script benchmark ran: CPU name, cores, Python, package versions."""
    import sys

    from fastrsa._versions import PACKAGES, package_versions

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "versions": package_versions((*PACKAGES, *extra_packages)),
    }


def write_results(result: dict, table: str, out: str | None, name: str, quick: bool) -> None:
    """A script benchmark's JSON at `out` (default benchmarks/results/cpu-<name>-<date>.json, or
    /tmp/bench-<name>-quick.json for --quick) and its markdown `table` beside it (.md)."""
    import json
    from pathlib import Path

    default = f"benchmarks/results/cpu-{name}-{time.strftime('%Y-%m-%d')}.json"
    path = Path(out or (f"/tmp/bench-{name}-quick.json" if quick else default))
    path.write_text(json.dumps(result, indent=1))
    path.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {path} and {path.with_suffix('.md')}")


def versions() -> dict:
    """fastrsa's and its dependencies' versions: the package's one helper."""
    from fastrsa._versions import package_versions

    return package_versions()


def machine_info(gpu: bool = False) -> dict:
    """Where a case ran: the GPU's name for GPU work on a CUDA machine, else the CPU's."""
    gpu = gpu and CUDA
    return {
        "device": torch.cuda.get_device_name() if gpu else cpu_name(),
        "cores": os.cpu_count(),
        "profile": PROFILE,
        "versions": versions(),
    }


def time_case(benchmark, provider: str, fn, arg, info: dict, slow_warmup=None):
    """Times fn(arg) with pytest-benchmark and records the case in extra_info.

    The slow providers run once, after a warm-up on `slow_warmup` (a tiny input) if given; the
    others run once untimed at full size, then enough rounds for about a second (3 to 50), or
    one round where the untimed run took over 3 s.
    FLOP/s and GB/s come from the median and the counts in info ("flop", "bytes")."""
    if PROFILE == "smoke":
        rounds = 1
    elif provider in SLOW:
        if slow_warmup is not None:
            fn(slow_warmup)
        rounds = 1
    else:
        start = time.perf_counter()
        fn(arg)
        seconds = time.perf_counter() - start
        rounds = 1 if seconds > 3 else min(50, max(3, math.ceil(1.0 / max(seconds, 1e-6))))
    benchmark.extra_info.update(machine_info(provider in GPU_PROVIDERS), provider=provider, **info)
    out = benchmark.pedantic(fn, args=(arg,), rounds=rounds, warmup_rounds=0)
    median = benchmark.stats.stats.median
    if "flop" in info:
        benchmark.extra_info["gflop_per_s"] = info["flop"] / median / 1e9
    if "bytes" in info:
        benchmark.extra_info["gb_per_s"] = info["bytes"] / median / 1e9
    return out
