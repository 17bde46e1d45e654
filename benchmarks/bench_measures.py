"""The measures of issue 14 against the code users compare with, ratios measured in one run.

    python benchmarks/bench_measures.py [--quick] [--out FILE.json]

1. cka: all-pairs linear CKA of 50 models x 500 images x 2048 features (float32 and float64):
   `fastrsa.similarity(feats, "cka")` against a per-pair loop of the feature-space formula
   ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) on centred features in numpy (the standard way:
   Kornblith et al.'s `feature_space_linear_cka`), timed on PAIRS_TIMED pairs and extrapolated
   to all B(B-1)/2 pairs (said so in the table); thingsvision's CKA when it is installed.
2. tau-a and rho-a: 20 RDMs of n = 500 (uniform random, so without ties):
   `fastrsa.compare(rdms, method=...)` (numba) against rsatoolbox's `compare` of the same RDMs.
Targets (issue 14): CKA >= 20x the loop; tau-a >= 20x rsatoolbox. Each timing is the best of
REPEATS runs after one warm-up; results are checked equal before timing. Writes JSON (machine,
versions, timings) and a markdown table beside it (.md). Default output:
benchmarks/results/cpu-measures-<date>.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

FULL = {"cka": (50, 500, 2048), "rdms": (20, 500), "pairs_timed": 20, "repeats": 3}
QUICK = {"cka": (6, 40, 64), "rdms": (4, 30), "pairs_timed": 4, "repeats": 1}


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up (numba's compiled kernels load, BLAS threads start)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def loop_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two feature matrices (n, d), feature-space formula, centred features."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    num = np.linalg.norm(y.T @ x) ** 2
    return float(num / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def case_cka(size: dict, dtype: str) -> dict:
    import fastrsa

    b, n, d = size["cka"]
    feats = np.random.default_rng(0).standard_normal((b, n, d)).astype(dtype)
    got = np.asarray(fastrsa.similarity(feats, "cka"))
    pairs = [(i, j) for i in range(b) for j in range(i + 1, b)][: size["pairs_timed"]]
    for i, j in pairs[:3]:
        assert abs(got[i, j] - loop_cka(feats[i], feats[j])) < 1e-4, (i, j)
    ours = best_of(lambda: fastrsa.similarity(feats, "cka"), size["repeats"])
    t0 = time.perf_counter()
    for i, j in pairs:
        loop_cka(feats[i], feats[j])
    per_pair = (time.perf_counter() - t0) / len(pairs)
    loop = per_pair * b * (b - 1) / 2
    out = {"shape": [b, n, d], "dtype": dtype, "fastrsa_s": ours, "loop_s_extrapolated": loop}
    out["loop_pairs_timed"] = len(pairs)
    out["speedup_vs_loop"] = loop / ours
    import importlib.util

    if importlib.util.find_spec("thingsvision") is None:
        out["thingsvision"] = "not installed (not timed)"
    else:  # its CKA API is not wired here yet: say so rather than time something else
        out["thingsvision"] = "installed, not timed"
    return out


def case_rank_methods(size: dict, method: str) -> dict:
    from rsatoolbox.rdm import RDMs
    from rsatoolbox.rdm import compare as rsa_compare

    import fastrsa

    b, n = size["rdms"]
    m = n * (n - 1) // 2
    rdms = np.random.default_rng(1).random((b, m))
    ours_result = np.asarray(fastrsa.compare(rdms, method=method, backend="numba"))
    theirs_result = rsa_compare(RDMs(rdms), RDMs(rdms), method=method)
    diff = float(np.abs(ours_result - theirs_result).max())
    assert diff < 1e-9, f"{method}: fastrsa and rsatoolbox differ by {diff}"
    ours = best_of(lambda: fastrsa.compare(rdms, method=method, backend="numba"), size["repeats"])
    theirs = best_of(lambda: rsa_compare(RDMs(rdms), RDMs(rdms), method=method), 1)
    return {
        "method": method,
        "rdms": b,
        "n": n,
        "fastrsa_s": ours,
        "rsatoolbox_s": theirs,
        "speedup": theirs / ours,
        "max_abs_diff": diff,
    }


def machine() -> dict:
    from bench_helpers import cpu_machine

    return cpu_machine(("rsatoolbox", "thingsvision"))


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Measures benchmark ({'quick' if result['quick'] else 'full size'}), {result['created']}; "
        f"{m['cpu']} ({m['cores']} cores).",
        "",
        "| case | fastrsa (s) | other (s) | ratio | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for c in result["cka"]:
        shape = "x".join(map(str, c["shape"]))
        lines.append(
            f"| linear CKA, all pairs, {shape} {c['dtype']} vs a per-pair numpy loop "
            f"(timed on {c['loop_pairs_timed']} pairs, extrapolated) | {c['fastrsa_s']:.3g} | "
            f"{c['loop_s_extrapolated']:.3g} | {c['speedup_vs_loop']:.0f}x | >= 20x |"
        )
    for c in result["rank_methods"]:
        target = ">= 20x" if c["method"] == "tau-a" else ""
        lines.append(
            f"| {c['method']}, {c['rdms']} RDMs of n = {c['n']}, vs rsatoolbox's compare | "
            f"{c['fastrsa_s']:.3g} | {c['rsatoolbox_s']:.3g} | {c['speedup']:.0f}x | {target} |"
        )
    lines += ["", f"thingsvision: {result['cka'][0].get('thingsvision', 'installed')}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--out", help="output .json (a .md table is written beside it)")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    result = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "machine": machine(),
        "cka": [case_cka(size, dtype) for dtype in ("float32", "float64")],
        "rank_methods": [case_rank_methods(size, method) for method in ("tau-a", "rho-a")],
    }
    from bench_helpers import write_results

    write_results(result, markdown(result), args.out, "measures", args.quick)


if __name__ == "__main__":
    main()
