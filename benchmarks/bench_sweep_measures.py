"""Measures at sweep scale: a sweep of U (source, layer) units of n images computing RSA, CKA
and mutual kNN under a memory budget, against the in-memory path, in one run.

    python benchmarks/bench_sweep_measures.py [--units 1000] [--images 500] [--features 256]
                                              [--memory 2GB] [--k 10] [--out FILE.json]

Units are U feature files (.npy, float32 standard normal plus a per-unit random linear mix of a
shared signal, so measures are not all ~0), written to a temporary folder. The sweep
(`fastrsa.sweep(files, measures=["rsa", "cka", "mutual-knn:k=K"], memory=...)`) runs in a child
process whose peak RSS (ru_maxrss) is reported; the in-memory path
(`fastrsa.similarity(features, "rsa" | "cka" | "mutual-knn")`, all features loaded) runs in
another child, also with its peak RSS, on the same units (or on the first --memory-units when U
is too large to hold: said so). Per measure, time per pair-entry = seconds / (U * (U + 1) / 2)
and the largest |difference| between the two results are reported. Writes JSON and a markdown
table beside it (default benchmarks/results/sweep-measures-<date>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np

_SWEEP = """
import json, resource, sys, time
import fastrsa
files, store, memory, k = json.loads(sys.argv[1])
t0 = time.perf_counter()
st = fastrsa.sweep(files, store=store, memory=memory, progress=False,
                   measures=["rsa", "cka", f"mutual-knn:k={k}"])
total = time.perf_counter() - t0
print(json.dumps({"seconds": total, "stages": st.summary.stages,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

_MEMORY = """
import json, resource, sys, time
import numpy as np
import fastrsa
files, out, k = json.loads(sys.argv[1])
feats = {f"u{i}": np.load(f) for i, f in enumerate(files)}
times = {}
for name, opts in (("rsa", {}), ("cka", {}), ("mutual-knn", {"k": k})):
    t0 = time.perf_counter()
    sim = np.asarray(fastrsa.similarity(feats, name, **opts), dtype=np.float64)
    times[name] = time.perf_counter() - t0
    np.save(f"{out}-{name}.npy", sim)
print(json.dumps({"times": times,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def _units(folder: Path, count: int, n: int, d: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((n, 16))
    paths = []
    for i in range(count):
        x = rng.standard_normal((n, d)) + signal @ rng.standard_normal((16, d)) * 0.5
        path = folder / f"u{i:04d}.npy"
        np.save(path, x.astype(np.float32))
        paths.append(str(path))
    return paths


def _child(code: str, arg: object) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(arg)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"child failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=1000)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--features", type=int, default=256)
    ap.add_argument("--memory", default="2GB")
    ap.add_argument("--memory-units", type=int, default=1000, help="units of the in-memory path")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--out", default=f"benchmarks/results/sweep-measures-{date.today()}.json")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = _units(folder, args.units, args.images, args.features, 0)
        store = str(folder / "store")
        sweep = _child(_SWEEP, [files, store, args.memory, args.k])
        held = min(args.units, args.memory_units)
        memory = _child(_MEMORY, [files[:held], str(folder / "mem"), args.k])
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        import fastrsa

        st = fastrsa.sweeps.open_store(store)
        diffs = {}
        for name, opts in (("rsa", {}), ("cka", {}), ("mutual-knn", {"k": args.k})):
            got = st.similarity() if name == "rsa" else st.similarity(measure=name, **opts)
            want = np.load(folder / f"mem-{name}.npy")
            diffs[name] = float(np.max(np.abs(got[:held, :held] - want)))
        store_bytes = sum(p.stat().st_size for p in Path(store).rglob("*") if p.is_file())
    pairs = args.units * (args.units + 1) // 2
    held_pairs = held * (held + 1) // 2
    result = {
        "machine": f"{platform.node()}: {os.cpu_count()} cores, {platform.processor() or ''}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_before": load0,
        "load_after": os.getloadavg()[0],
        "units": args.units,
        "images": args.images,
        "features": args.features,
        "memory": args.memory,
        "k": args.k,
        "sweep": sweep,
        "in_memory": memory,
        "in_memory_units": held,
        "max_abs_diff": diffs,
        "store_bytes": store_bytes,
        "pairs": pairs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    mem_total = sum(memory["times"].values())
    lines = [
        f"# Measures at sweep scale ({date.today()})",
        "",
        f"Machine: {result['machine']}; load {load0:.2f} before, {result['load_after']:.2f} after.",
        f"`python benchmarks/bench_sweep_measures.py --units {args.units} --images {args.images} "
        f"--features {args.features} --memory {args.memory}`: {args.units} feature files "
        f"({args.images} x {args.features} float32), RSA + CKA + mutual kNN (k = {args.k}).",
        "",
        "| path | units | peak RSS | seconds (all) | per pair-entry |",
        "|---|---|---|---|---|",
        f"| sweep (--memory {args.memory}; stages {json.dumps(sweep['stages'])}) | {args.units} | "
        f"{sweep['peak_rss'] / 2**30:.2f} GiB | {sweep['seconds']:.1f} | "
        f"{sweep['seconds'] / pairs * 1e6:.1f} us |",
        f"| in memory (fastrsa.similarity x 3: {json.dumps(memory['times'])}) | {held} | "
        f"{memory['peak_rss'] / 2**30:.2f} GiB | {mem_total:.1f} | "
        f"{mem_total / held_pairs * 1e6:.1f} us |",
        "",
        f"Store on disk: {store_bytes / 2**30:.2f} GiB. Largest |sweep - in memory| over the "
        f"in-memory units: {json.dumps(diffs)}.",
        "The sweep's time includes reading the files, the RDMs and ranks, the states (Grams, kNN "
        "tables) and every tile; the in-memory time is the three similarity calls after loading.",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
