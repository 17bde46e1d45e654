"""fastrsa.stats (issue 15) against the code users compare with, ratios measured in one run.

    python benchmarks/bench_stats.py [--quick] [--out FILE.json] [--backend auto]

1. permutation: `fastrsa.stats.permutation_test` of all pairs of 20 float32 RDMs of n = 500
   (Spearman), 10,000 permutations, against a plain loop of `scipy.stats.spearmanr` over the
   same relabelled rows, timed on LOOP_PERMS permutations and extrapolated (said so).
2. bootstrap: `fastrsa.stats.bootstrap`, 1,000 resamples of the images of the same RDMs,
   against rsatoolbox's own bootstrap of the same size (`bootstrap_sample_pattern`, then
   `rdm.compare(sample, sample, "spearman")` per resample), timed on RSA_BOOTS resamples and
   extrapolated (said so); values checked equal on those resamples' indices.
3. taxonomy support: `fastrsa.taxonomy(..., n_boot=1000)` (bootstrap, a dendrogram per
   resample, the support of each cluster) against rsatoolbox's bootstrap extrapolated as in 2
   plus the same support computation on its samples (measured).
Targets (issue 15, this 2-core machine): permutation <= 30 s; taxonomy support <= 60 s. Data
generation stays out of the timed regions; fastrsa's figure is the median of 3 runs (all
three in the JSON) after a small warm-up (numba kernels load); each baseline runs once.
Writes JSON (machine, versions, timings) and a markdown table beside it (.md). Default
output: benchmarks/results/cpu-stats-<date>.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import scipy.stats as ss

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastrsa  # noqa: E402
from fastrsa import stats  # noqa: E402

FULL = {
    "b": 20,
    "n": 500,
    "n_perm": 10_000,
    "n_boot": 1_000,
    "loop_perms": 5,
    "rsa_boots": 5,
    "repeats": 3,
}
QUICK = {
    "b": 5,
    "n": 40,
    "n_perm": 200,
    "n_boot": 20,
    "loop_perms": 2,
    "rsa_boots": 2,
    "repeats": 1,
}
TARGETS = {"permutation": 30.0, "taxonomy_support": 60.0}


def _rdms(size: dict) -> np.ndarray:
    rng = np.random.default_rng(0)
    return fastrsa.rdms(rng.standard_normal((size["b"], size["n"], 64)).astype(np.float32))


def _timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _median_timed(fn, repeats: int) -> tuple[float, list[float], object]:
    """(median seconds, every run's seconds, the last result) of `repeats` runs of fn()."""
    times, out = [], None
    for _ in range(repeats):
        t, out = _timed(fn)
        times.append(t)
    return float(np.median(times)), times, out


def _relabelled(row: np.ndarray, p: np.ndarray, n: int) -> np.ndarray:
    i, j = np.triu_indices(n, 1)
    lo, hi = np.minimum(p[i], p[j]), np.maximum(p[i], p[j])
    return row[lo * (2 * n - lo - 1) // 2 + hi - lo - 1]


def case_permutation(size: dict, rdms: np.ndarray, backend: str) -> dict:
    n, k = size["n"], size["n_perm"]
    stats.permutation_test(rdms, n_perm=2, seed=0, backend=backend)  # warm-up
    ours, runs, res = _median_timed(
        lambda: stats.permutation_test(rdms, n_perm=k, seed=1, backend=backend, return_null=True),
        size["repeats"],
    )
    perms = res.permutations[: size["loop_perms"]]
    a = rdms.astype(np.float64)

    def loop():
        return np.array(
            [
                [[ss.spearmanr(_relabelled(x, p, n), y).statistic for y in a] for x in a]
                for p in perms
            ]
        )

    loop_s, ref = _timed(loop)
    diff = float(np.abs(res.null[: len(perms)] - ref).max())
    theirs = loop_s * k / len(perms)
    return {
        "case": "permutation",
        "rdms": size["b"],
        "n": n,
        "n_perm": k,
        "fastrsa_s": ours,
        "fastrsa_runs_s": runs,
        "baseline": f"scipy.stats.spearmanr loop, timed on {len(perms)} permutations, "
        f"extrapolated x{k // len(perms)}",
        "baseline_s": theirs,
        "speedup": theirs / ours,
        "max_abs_diff": diff,
        "target_s": TARGETS["permutation"],
    }


def _rsatoolbox_bootstrap(rdms: np.ndarray, count: int) -> tuple[float, np.ndarray, np.ndarray]:
    """rsatoolbox's bootstrap of `count` resamples: (seconds, samples (count, B, B), indices)."""
    import rsatoolbox
    from rsatoolbox.inference.bootstrap import bootstrap_sample_pattern

    r = rsatoolbox.rdm.RDMs(rdms.astype(np.float64))
    np.random.seed(0)  # rsatoolbox draws with numpy's global generator
    samples, indices = [], []
    t0 = time.perf_counter()
    for _ in range(count):
        sample, idx = bootstrap_sample_pattern(r)
        samples.append(rsatoolbox.rdm.compare(sample, sample, method="spearman"))
        indices.append(idx)
    return time.perf_counter() - t0, np.array(samples), np.array(indices)


def case_bootstrap(size: dict, rdms: np.ndarray, backend: str) -> dict:
    k = size["n_boot"]
    stats.bootstrap(rdms, n_boot=2, seed=0, backend=backend)  # warm-up
    ours, runs, _ = _median_timed(
        lambda: stats.bootstrap(rdms, n_boot=k, seed=1, backend=backend), size["repeats"]
    )
    rsa_s, rsa_samples, idx = _rsatoolbox_bootstrap(rdms, size["rsa_boots"])
    same = stats.bootstrap(rdms, indices=idx, backend=backend).samples
    theirs = rsa_s * k / len(idx)
    return {
        "case": "bootstrap",
        "rdms": size["b"],
        "n": size["n"],
        "n_boot": k,
        "fastrsa_s": ours,
        "fastrsa_runs_s": runs,
        "baseline": f"rsatoolbox bootstrap_sample_pattern + compare, timed on {len(idx)} "
        f"resamples, extrapolated x{k // len(idx)}",
        "baseline_s": theirs,
        "speedup": theirs / ours,
        "max_abs_diff": float(np.abs(same - rsa_samples).max()),
    }


def case_taxonomy_support(size: dict, rdms: np.ndarray, backend: str) -> dict:
    from fastrsa.support import cluster_support

    k = size["n_boot"]
    labels = [f"model{i}" for i in range(len(rdms))]
    fastrsa.taxonomy(rdms, labels, n_boot=2, seed=0, backend=backend)  # warm-up
    ours, runs, tax = _median_timed(
        lambda: fastrsa.taxonomy(rdms, labels, n_boot=k, seed=1, backend=backend), size["repeats"]
    )
    rsa_s, rsa_samples, _ = _rsatoolbox_bootstrap(rdms, size["rsa_boots"])
    reps = -(-k // len(rsa_samples))  # the same support work on k samples (rsatoolbox's, tiled)
    tiled = np.tile(rsa_samples, (reps, 1, 1))[:k]
    support_s, _ = _timed(lambda: cluster_support(tax.similarity, tiled))
    theirs = rsa_s * k / len(rsa_samples) + support_s
    return {
        "case": "taxonomy_support",
        "rdms": size["b"],
        "n": size["n"],
        "n_boot": k,
        "fastrsa_s": ours,
        "fastrsa_runs_s": runs,
        "baseline": f"rsatoolbox bootstrap (timed on {len(rsa_samples)} resamples, "
        f"extrapolated x{k // len(rsa_samples)}) + the same cluster support ({support_s:.2f} s)",
        "baseline_s": theirs,
        "speedup": theirs / ours,
        "target_s": TARGETS["taxonomy_support"],
    }


def machine() -> dict:
    from bench_helpers import cpu_machine

    return cpu_machine(("rsatoolbox",))


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Statistics benchmark ({'quick' if result['quick'] else 'full size'}, backend "
        f"{result['backend']}), {result['created']}; {m['cpu']} ({m['cores']} cores); fastrsa: "
        "median of the runs in the JSON.",
        "",
        "| case | fastrsa (s) | baseline | baseline (s) | ratio | target |",
        "| --- | ---: | --- | ---: | ---: | --- |",
    ]
    for c in result["cases"]:
        what = {
            "permutation": f"{c.get('n_perm')} permutations x all pairs",
            "bootstrap": f"{c.get('n_boot')} bootstrap resamples",
            "taxonomy_support": f"taxonomy support, {c.get('n_boot')} resamples",
        }[c["case"]]
        target = f"<= {c['target_s']:.0f} s" if "target_s" in c else ""
        lines.append(
            f"| {what}, {c['rdms']} RDMs of n = {c['n']} | {c['fastrsa_s']:.3g} | "
            f"{c['baseline']} | {c['baseline_s']:.3g} | {c['speedup']:.0f}x | {target} |"
        )
    diffs = [f"{c['case']} {c['max_abs_diff']:.1e}" for c in result["cases"] if "max_abs_diff" in c]
    lines += ["", "Largest difference from the baseline's values: " + ", ".join(diffs) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--out", help="output .json (a .md table is written beside it)")
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    rdms = _rdms(size)
    result = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "backend": args.backend,
        "machine": machine(),
        "cases": [
            case_permutation(size, rdms, args.backend),
            case_bootstrap(size, rdms, args.backend),
            case_taxonomy_support(size, rdms, args.backend),
        ],
    }
    from bench_helpers import write_results

    write_results(result, markdown(result), args.out, "stats", args.quick)


if __name__ == "__main__":
    main()
