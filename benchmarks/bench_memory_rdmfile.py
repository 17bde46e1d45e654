"""Peak RSS of `fastrsa sweep --rdms FILE --memory BUDGET` over a large RDM file, against the
budget plus the baseline a process needs (issue 22: memory bounded for every input kind).

    python benchmarks/bench_memory_rdmfile.py [--rdms 3000] [--n 300] [--memory 256MB]
        [--before /tmp/fastrsa-head] [--quick] [--out FILE.json]

The file (RDMs x n*(n-1)/2 float64, condensed, .npy: 1.08 GB at the defaults) is made in a
temporary folder and deleted afterwards. Each run is a fresh `python -m fastrsa sweep` process;
its peak RSS is the kernel's high-water mark (getrusage of the child). The baselines are fresh
processes too, each importing only what it names, with the peak read from /proc/self/status
(VmHWM). `--before PATH` also runs the command with PYTHONPATH=PATH (e.g. a `git worktree` of
an earlier commit) for the figure before the change.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_helpers import cpu_machine, write_results

BASELINES = {
    "python": "pass",
    "python + numpy + scipy": "import numpy, scipy.linalg, scipy.stats, scipy.spatial",
    "+ fastrsa": "import fastrsa",
    "+ fastrsa's command line": "import fastrsa.cli",
    "+ torch": "import fastrsa, torch",
    "+ numba (kernels compiled)": (
        "import numpy as np, fastrsa; fastrsa.rdms(np.random.rand(2, 5, 3), "
        "backend='numba'); fastrsa.compare(np.random.rand(3, 10), backend='numba')"
    ),
}
# a fresh parent per run, so that its children's high-water mark is that run's alone
WRAP = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=sys.stderr); "
    "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)
HWM = "; print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"


def baseline(code: str) -> float:
    """Peak RSS (MB) of a fresh interpreter that runs `code`."""
    out = subprocess.run(
        [sys.executable, "-c", code + HWM], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1]) * 1024 / 1e6  # the kernel's kB are KiB


def sweep_peak(path: Path, store: Path, memory: str, pythonpath: str | None) -> dict:
    """Peak RSS (MB) and seconds of one `fastrsa sweep --rdms` process."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cmd = [sys.executable, "-m", "fastrsa", "sweep", "--rdms", str(path), "--store", str(store)]
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", WRAP, *cmd, "--memory", memory, "--no-progress"],
        env=env,
        cwd=path.parent,  # not the checkout: `-m` puts the working folder first on sys.path
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t0
    code, maxrss = proc.stdout.split()[-2:]
    peak = int(maxrss) * 1024 / 1e6  # ru_maxrss: KiB on Linux
    return {
        "exit": int(code),
        "peak_rss_MB": round(peak, 1),
        "seconds": round(seconds, 1),
        "last_line": proc.stderr.strip().splitlines()[-1:],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rdms", type=int, default=3000)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--memory", default="256MB")
    p.add_argument("--before", help="PYTHONPATH of the code before the change (optional)")
    p.add_argument("--quick", action="store_true", help="300 RDMs of n = 100 (a check)")
    p.add_argument("--out")
    args = p.parse_args()
    count, n = (300, 100) if args.quick else (args.rdms, args.n)
    m = n * (n - 1) // 2
    bases = {name: round(baseline(code), 1) for name, code in BASELINES.items()}
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rdms.npy"
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(count, m))
        rng = np.random.default_rng(0)
        for s in range(0, count, 100):
            out[s : s + 100] = rng.random((min(100, count - s), m)) * 2
        out.flush()
        del out
        size = path.stat().st_size
        tiny = Path(tmp) / "tiny.npy"  # the command's own baseline: imports, compiled kernels
        np.save(tiny, np.random.default_rng(1).random((3, 45)))
        runs["tiny file (the command's baseline)"] = sweep_peak(
            tiny, Path(tmp) / "tiny", args.memory, None
        )
        runs["after"] = sweep_peak(path, Path(tmp) / "after", args.memory, None)
        if args.before:
            runs["before"] = sweep_peak(path, Path(tmp) / "before", args.memory, args.before)
    from fastrsa._memory import parse_memory

    budget = parse_memory(args.memory, "--memory") / 1e6
    base = runs["tiny file (the command's baseline)"]["peak_rss_MB"]
    bases["the same command over a 3-RDM file"] = base
    result = {
        "machine": cpu_machine(),
        "file": {"rdms": count, "n": n, "dtype": "float64", "MB": round(size / 1e6, 1)},
        "memory": args.memory,
        "baselines_MB": bases,
        "runs": runs,
        "bound_MB": round(budget + base, 1),
    }
    mach = result["machine"]
    lines = [
        f"Peak RSS of `fastrsa sweep --rdms FILE --memory {args.memory}`, "
        f"{time.strftime('%Y-%m-%d')}; {mach['cpu']} ({mach['cores']} cores), "
        f"Python {mach['python']}.",
        "",
        f"File: {count} condensed RDMs of n = {n}, float64 .npy, {size / 1e6:,.0f} MB.",
        "",
        "| process | peak RSS (MB) |",
        "| --- | ---: |",
        *(f"| baseline: {k} | {v:,.0f} |" for k, v in bases.items()),
        "",
        "| run | exit | peak RSS (MB) | budget + the command's baseline (MB) | within | seconds |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for name, r in runs.items():
        ok = "yes" if r["peak_rss_MB"] <= budget + base else "no"
        lines.append(
            f"| {name} | {r['exit']} | {r['peak_rss_MB']:,.0f} | {budget + base:,.0f} | {ok} | "
            f"{r['seconds']:,.0f} |"
        )
    print(json.dumps(result), flush=True)  # kept in the log even if the write fails
    write_results(result, "\n".join(lines) + "\n", args.out, "memory-rdmfile", args.quick)


if __name__ == "__main__":
    main()
