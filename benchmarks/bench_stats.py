"""Benchmark of fastrsa.stats: permutation tests and bootstrap of all pairs of RDMs.

    python benchmarks/bench_stats.py [--quick] [--out results.json]

Cases (full size; --quick shrinks them to run in seconds):
- permutation: 10,000 permutations x all pairs of 20 RDMs of n = 500 (float32 RDMs, Spearman)
  against a plain loop of scipy.stats.spearmanr, timed on a subset of permutations and
  extrapolated linearly to the full count (said so in the table).
- bootstrap: 1,000 resamples of 20 RDMs of n = 500 (Spearman).
Data generation stays out of the timed regions. Prints a markdown table; --out writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import scipy.stats as ss

import fastrsa
from fastrsa import stats


def _loop_spearman(a: np.ndarray, perms: np.ndarray, n: int) -> np.ndarray:
    i, j = np.triu_indices(n, 1)
    out = np.empty((len(perms), len(a), len(a)))
    for k, p in enumerate(perms):
        lo, hi = np.minimum(p[i], p[j]), np.maximum(p[i], p[j])
        idx = lo * (2 * n - lo - 1) // 2 + hi - lo - 1
        for x in range(len(a)):
            for y in range(len(a)):
                out[k, x, y] = ss.spearmanr(a[x, idx], a[y]).statistic
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, seconds")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    b, n = (8, 100) if args.quick else (20, 500)
    n_perm, n_boot = (200, 50) if args.quick else (10_000, 1_000)
    n_loop = 2 if args.quick else 5  # permutations timed for the scipy loop

    rng = np.random.default_rng(0)
    rdms = fastrsa.rdms(rng.standard_normal((b, n, 64)).astype(np.float32))
    stats.permutation_test(rdms, n_perm=2, seed=0, backend=args.backend)  # compile, warm up
    perms = np.array([rng.permutation(n) for _ in range(n_loop)])

    rows = []
    t = time.perf_counter()
    stats.permutation_test(rdms, n_perm=n_perm, seed=1, backend=args.backend)
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    _loop_spearman(rdms.astype(np.float64), perms, n)
    t_loop = (time.perf_counter() - t) * n_perm / n_loop
    rows.append(
        dict(
            case=f"permutation_test {n_perm} perms x {b}x{b} pairs, n={n}",
            fastrsa_s=t_fast,
            baseline="scipy.stats.spearmanr loop "
            f"(timed on {n_loop} permutations, extrapolated x{n_perm // n_loop})",
            baseline_s=t_loop,
        )
    )
    t = time.perf_counter()
    stats.bootstrap(rdms, n_boot=n_boot, seed=1, backend=args.backend)
    t_boot = time.perf_counter() - t
    rows.append(
        dict(
            case=f"bootstrap {n_boot} resamples of {b} RDMs, n={n}",
            fastrsa_s=t_boot,
            baseline="-",
            baseline_s=None,
        )
    )

    print("| case | fastrsa (s) | baseline | baseline (s) | speed-up |")
    print("|---|---:|---|---:|---:|")
    for r in rows:
        base = r["baseline_s"]
        ratio = f"{base / r['fastrsa_s']:.0f}x" if base else "-"
        base_s = f"{base:.1f}" if base else "-"
        print(f"| {r['case']} | {r['fastrsa_s']:.2f} | {r['baseline']} | {base_s} | {ratio} |")
    if args.out:
        meta = dict(
            machine=platform.machine(),
            processor=platform.processor(),
            python=platform.python_version(),
            numpy=np.__version__,
            fastrsa=fastrsa.__version__,
            quick=args.quick,
            backend=args.backend,
        )
        with open(args.out, "w") as f:
            json.dump(dict(meta=meta, results=rows), f, indent=2)


if __name__ == "__main__":
    main()
