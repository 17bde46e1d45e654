"""Peak memory of each provider at each size: features -> all-pairs Spearman.

    python benchmarks/memory.py [--sizes cpu|gpu|smoke] [--out FILE.json]

Each (provider, size) runs in a fresh subprocess: its host peak is the rise of the resident set
over what the process held just before the job (imports and input data excluded). The GPU
providers ("torch-cuda", "triton") take CUDA features and report torch's peak allocated GPU
memory, input included (the CUDA input's size is its own column).
"""

import argparse
import json
import subprocess
import sys

from fastrsa.io import save_json

SIZES = {  # (B, n, d); the reference runs at the first size only (minutes beyond it)
    "cpu": [(20, 500, 2048), (100, 500, 512), (20, 2000, 512), (5, 5000, 256), (1000, 200, 256)],
    "gpu": [
        (100, 500, 2048),
        (1000, 500, 2048),
        (100, 2000, 2048),
        (1000, 2000, 2048),
        (20, 5000, 2048),
    ],
    "smoke": [(3, 9, 5), (4, 6, 3)],
}
PROVIDERS = {
    "cpu": ["reference", "numpy", "numba", "torch"],
    "gpu": ["numba", "torch-cuda", "triton"],
    "smoke": ["reference", "numpy", "numba", "torch"],
}
CHILD = r"""
import json, resource, sys
import numpy as np
import fastrsa
from fastrsa.reference import compare_ref, rdm_ref
provider, b, n, d = sys.argv[1], *map(int, sys.argv[2:5])
feats = np.random.default_rng(0).standard_normal((b, n, d)).astype(np.float32)
cuda = provider in ("torch-cuda", "triton")
backend = "torch" if provider == "torch-cuda" else provider
if cuda:
    import torch
    feats = torch.from_numpy(feats).cuda()
    torch.cuda.reset_peak_memory_stats()
elif provider == "torch":
    import torch
    feats = torch.from_numpy(feats)
run = (lambda x: compare_ref(rdm_ref(x))) if provider == "reference" else (
    lambda x: fastrsa.compare(fastrsa.rdms(x, backend=backend), backend=backend))
if provider not in ("reference",):
    run(feats[:2, :8, :4] + 1)  # compile / warm up
page = resource.getpagesize()
before = int(open("/proc/self/statm").read().split()[1]) * page
run(feats)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
out = {"host_peak_rise_MB": max(0, peak - before) / 1e6, "host_peak_MB": peak / 1e6,
       "input_MB": b * n * d * 4 / 1e6}
if cuda:
    out["cuda_peak_MB"] = torch.cuda.max_memory_allocated() / 1e6
print(json.dumps(out))
"""


def measure(provider: str, size: tuple[int, int, int]) -> dict | None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, provider, *map(str, size)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        print(f"{provider} {size}: failed: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", choices=sorted(SIZES), default="cpu")
    parser.add_argument("--out", default="benchmarks/results/memory-latest.json")
    parser.add_argument("--providers", nargs="+", help="default: the profile's")
    args = parser.parse_args()
    sizes = SIZES[args.sizes]
    providers = args.providers or PROVIDERS[args.sizes]
    rows = []
    print("| B | n | d | provider | input (MB) | host peak rise (MB) | CUDA peak (MB) |")
    print("| ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for size in sizes:
        for provider in providers:
            if provider == "reference" and size != sizes[0]:
                continue  # minutes at the larger sizes
            result = measure(provider, size)
            if result is None:
                continue
            rows.append({"B": size[0], "n": size[1], "d": size[2], "provider": provider, **result})
            cuda = f"{result['cuda_peak_MB']:.0f}" if "cuda_peak_MB" in result else "-"
            print(
                f"| {size[0]} | {size[1]} | {size[2]} | {provider} | {result['input_MB']:.0f} | "
                f"{result['host_peak_rise_MB']:.0f} | {cuda} |",
                flush=True,
            )
    save_json(args.out, rows)


if __name__ == "__main__":
    main()
