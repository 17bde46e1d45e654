"""The measures of issue 24 against the per-pair loops users run today, ratios measured in one run.

    python benchmarks/bench_measures_peers.py [--quick] [--models B --images N --features D]
                                              [--ridge-pairs P] [--out FILE.json]

All pairs of B models x N images x D features (float64 standard normal, one seed), three cases:

1. procrustes: `fastrsa.similarity(feats, "procrustes")` (alpha = 1, angular distance) against
   netrep's `pairwise_distances(LinearMetric(alpha=1), feats, enable_caching=True)` written
   plainly here (netrep is not on PyPI; github ahwillia/netrep `netrep/metrics/linear.py`,
   `netrep/utils.py` whiten / angular_distance, `netrep/multiset.py`): per model once its
   `partial_fit` (centre the columns; whiten, which at alpha = 1 returns Z = I); per pair i < j
   `finalize_fit` (full SVD of Xwᵀ Yw, Wx = Zx U, Wy = Zy V) and `score` (centre, transform,
   arccos of the normalised Frobenius inner product).
2. mutual-knn (k = 10): `fastrsa.similarity(feats, "mutual-knn", k=10)` against the
   platonic-rep loop (github minyoungg/platonic-rep `metrics.py` `mutual_knn` /
   `compute_nearest_neighbors`) in torch on the CPU: per pair i < j both models' rows
   L2-normalised (`F.normalize`), Gram with its diagonal set to -1e8, `topk` k per row (the
   same neighbours as their argsort when there are no ties; topk is the faster of the two), 0/1
   masks of both and the mean of |intersection| / k.
3. ridge (5 folds, 9 alphas 1e-3..1e5): `fastrsa.similarity(feats, "ridge")` (all B x B ordered
   pairs, the diagonal included) against a scikit-learn loop: per ordered pair (source, target),
   per outer `KFold(5)` fold `RidgeCV(alphas).fit(train).predict(test)`, then Pearson r per
   target unit of the concatenated held-out predictions and their median. This loop is slow: it
   is timed on `--ridge-pairs` ordered pairs and its time per pair extrapolated to B x B pairs
   (said so in the table).

Results of one untimed call of each side are checked equal (max |diff| in the table). Timing:
each case's two sides then run back to back, REPEATS times, and the median of each side is
reported, as time per pair (all pairs / pairs) and the ratio (the issue's target: >= 20x each).
The load average (1 min) is recorded before and after. Writes JSON (machine, versions, sizes,
every timing) and a markdown table beside it (.md). Default output:
benchmarks/results/cpu-measures-peers-<date>.json (--quick: /tmp/bench-measures-peers-quick.json).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

FULL = {"models": 10, "images": 500, "features": 512, "ridge_pairs": 10, "repeats": 3}
QUICK = {"models": 5, "images": 40, "features": 24, "ridge_pairs": 3, "repeats": 1}
K = 10
FOLDS = 5
TARGET = 20.0


# --- netrep, LinearMetric(alpha=1, center_columns=True, score_method="angular") -----------------


def netrep_partial_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """netrep LinearMetric.partial_fit at alpha = 1: column means, Xw = X - mean, Z = I (its
    `whiten` returns early for alpha > 1 - 1e-7)."""
    mx = np.mean(x, axis=0)
    return mx, x - mx[None, :], np.eye(x.shape[1])


def netrep_pair(cache_x: tuple, cache_y: tuple, x: np.ndarray, y: np.ndarray) -> float:
    """netrep finalize_fit + score: rotation from the SVD of Xwᵀ Yw, both transformed, angle."""
    mx, xw, zx = cache_x
    my, yw, zy = cache_y
    u, _, vt = np.linalg.svd(xw.T @ yw)
    wx, wy = zx @ u, zy @ vt.T
    tx, ty = (x - mx[None, :]) @ wx, (y - my[None, :]) @ wy
    corr = np.dot(tx.ravel(), ty.ravel()) / (
        np.linalg.norm(tx.ravel()) * np.linalg.norm(ty.ravel())
    )
    return float(np.arccos(np.clip(corr, -1.0, 1.0)))


def netrep_pairwise(feats: np.ndarray) -> np.ndarray:
    """netrep multiset.pairwise_distances(metric, feats, enable_caching=True), no progress bar."""
    b = len(feats)
    dist = np.zeros((b, b))
    caches = [netrep_partial_fit(x) for x in feats]
    for i in range(b):
        for j in range(i + 1, b):
            dist[i, j] = dist[j, i] = netrep_pair(caches[i], caches[j], feats[i], feats[j])
    return dist


# --- platonic-rep mutual_knn -----------------------------------------------------------------


def platonic_knn(feats, k: int):
    """platonic-rep compute_nearest_neighbors on normalised features (topk instead of argsort)."""
    import torch

    return torch.topk((feats @ feats.T).fill_diagonal_(-1e8), k, dim=1).indices


def platonic_mutual_knn(feats_a, feats_b, k: int) -> float:
    """platonic-rep AlignmentMetrics.mutual_knn(F.normalize(a), F.normalize(b), k)."""
    import torch
    import torch.nn.functional as F

    knn_a = platonic_knn(F.normalize(feats_a, dim=-1), k)
    knn_b = platonic_knn(F.normalize(feats_b, dim=-1), k)
    n = knn_a.shape[0]
    rows = torch.arange(n).unsqueeze(1)
    mask_a = torch.zeros(n, n, dtype=feats_a.dtype)
    mask_b = torch.zeros(n, n, dtype=feats_a.dtype)
    mask_a[rows, knn_a] = 1.0
    mask_b[rows, knn_b] = 1.0
    return ((mask_a * mask_b).sum(dim=1) / k).mean().item()


def platonic_pairwise(feats) -> np.ndarray:
    b = len(feats)
    sim = np.eye(b)
    for i in range(b):
        for j in range(i + 1, b):
            sim[i, j] = sim[j, i] = platonic_mutual_knn(feats[i], feats[j], K)
    return sim


# --- scikit-learn RidgeCV encoding loop --------------------------------------------------------


def sklearn_ridge(x: np.ndarray, y: np.ndarray, alphas) -> float:
    """Median over target units of Pearson r between KFold(5) held-out RidgeCV predictions and y."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold

    pred = np.empty_like(y)
    for train, test in KFold(FOLDS).split(x):
        pred[test] = RidgeCV(alphas=alphas).fit(x[train], y[train]).predict(x[test])
    pc, yc = pred - pred.mean(0), y - y.mean(0)
    r = (pc * yc).sum(0) / np.sqrt((pc * pc).sum(0) * (yc * yc).sum(0))
    return float(np.median(r))


# --- timing ------------------------------------------------------------------------------------


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def back_to_back(ours, theirs, repeats: int) -> tuple:
    """Both sides once untimed (their results are returned, to be checked), then `repeats`
    rounds of (ours, theirs) back to back: (our result, their result, our times, their times)."""
    got, want = ours(), theirs()
    a, b = [], []
    for _ in range(repeats):
        a.append(timed(ours))
        b.append(timed(theirs))
    return got, want, a, b


def summary(name, peer, ours_s, theirs_s, pairs_ours, pairs_theirs, diff, **extra) -> dict:
    ours_pair = statistics.median(ours_s) / pairs_ours
    theirs_pair = statistics.median(theirs_s) / pairs_theirs
    ratio = theirs_pair / ours_pair
    return {
        "case": name,
        "peer": peer,
        "fastrsa_s": ours_s,
        "peer_s": theirs_s,
        "fastrsa_pairs": pairs_ours,
        "peer_pairs_timed": pairs_theirs,
        "fastrsa_s_per_pair": ours_pair,
        "peer_s_per_pair": theirs_pair,
        "ratio": ratio,
        "target_met": ratio >= TARGET,
        "max_abs_diff": diff,
        **extra,
    }


def case_procrustes(feats: np.ndarray, repeats: int) -> dict:
    import fastrsa

    b = len(feats)
    got, want, ours, theirs = back_to_back(
        lambda: fastrsa.similarity(feats, "procrustes", alpha=1.0, score="angular"),
        lambda: netrep_pairwise(feats),
        repeats,
    )
    diff = float(np.abs(np.asarray(got) - want).max())
    assert diff < 1e-6, f"procrustes: fastrsa and netrep differ by {diff}"
    pairs = b * (b - 1) // 2
    return summary(
        "Procrustes angular (alpha = 1)",
        "netrep-style pairwise loop (cached partial_fit)",
        ours,
        theirs,
        pairs,
        pairs,
        diff,
    )


def case_mutual_knn(feats: np.ndarray, repeats: int) -> dict:
    import torch

    import fastrsa

    b = len(feats)
    tfeats = [torch.from_numpy(x) for x in feats]
    got, want, ours, theirs = back_to_back(
        lambda: fastrsa.similarity(feats, "mutual-knn", k=K),
        lambda: platonic_pairwise(tfeats),
        repeats,
    )
    diff = float(np.abs(np.asarray(got) - want).max())
    assert diff < 1e-12, f"mutual-knn: fastrsa and platonic-rep differ by {diff}"
    pairs = b * (b - 1) // 2
    return summary(
        f"mutual kNN (k = {K})",
        f"platonic-rep-style pair loop (torch CPU, {torch.get_num_threads()} threads)",
        ours,
        theirs,
        pairs,
        pairs,
        diff,
    )


def case_ridge(feats: np.ndarray, repeats: int, n_pairs: int) -> dict:
    import fastrsa
    from fastrsa.measures.ridge import DEFAULT_ALPHAS

    b = len(feats)
    alphas = list(DEFAULT_ALPHAS)
    rng = np.random.default_rng(7)
    ordered = [(i, j) for i in range(b) for j in range(b)]
    subset = [
        ordered[p] for p in rng.choice(len(ordered), size=min(n_pairs, len(ordered)), replace=False)
    ]

    def loop() -> list[float]:
        return [sklearn_ridge(feats[i], feats[j], alphas) for i, j in subset]

    got, want, ours, theirs = back_to_back(
        lambda: fastrsa.similarity(feats, "ridge", folds=FOLDS), loop, repeats
    )
    got = np.asarray(got)
    diff = float(max(abs(got[i, j] - r) for (i, j), r in zip(subset, want, strict=True)))
    assert diff < 1e-6, f"ridge: fastrsa and scikit-learn differ by {diff}"
    out = summary(
        f"ridge predictivity ({FOLDS} folds, {len(alphas)} alphas)",
        f"scikit-learn RidgeCV loop, timed on {len(subset)} ordered pairs, extrapolated",
        ours,
        theirs,
        b * b,
        len(subset),
        diff,
        pairs_compared=[list(map(int, p)) for p in subset],
    )
    out["peer_s_all_pairs_extrapolated"] = out["peer_s_per_pair"] * b * b
    return out


def markdown(result: dict) -> str:
    m, s, load = result["machine"], result["size"], result["load_average"]
    lines = [
        f"Measures against their peers ({'quick' if result['quick'] else 'full size'}), "
        f"{result['created']}; {m['cpu']} ({m['cores']} cores); load average {load['before']:.1f} "
        f"before, {load['after']:.1f} after (1 min).",
        "",
        f"All pairs of {s['models']} models x {s['images']} images x {s['features']} features "
        f"(float64); each side's median of {s['repeats']} back-to-back runs; time per pair = "
        "the run's seconds / the pairs it computed. Target (issue 24): >= 20x each.",
        "",
        "| case | peer | fastrsa (s, all pairs) | fastrsa per pair (ms) | peer per pair (ms) "
        "| ratio | max abs diff | target met |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in result["cases"]:
        lines.append(
            f"| {c['case']} | {c['peer']} | {statistics.median(c['fastrsa_s']):.3g} "
            f"({c['fastrsa_pairs']} pairs) | {1e3 * c['fastrsa_s_per_pair']:.3g} | "
            f"{1e3 * c['peer_s_per_pair']:.3g} | {c['ratio']:.0f}x | {c['max_abs_diff']:.1e} | "
            f"{'yes' if c['target_met'] else 'NO'} |"
        )
    for c in result["cases"]:
        if "peer_s_all_pairs_extrapolated" in c:
            lines += [
                "",
                f"{c['case']}: the scikit-learn loop took {statistics.median(c['peer_s']):.3g} s "
                f"for {c['peer_pairs_timed']} ordered pairs; extrapolated to all "
                f"{c['fastrsa_pairs']}: {c['peer_s_all_pairs_extrapolated']:.3g} s.",
            ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--models", type=int, help="B (default 10; quick 5)")
    parser.add_argument("--images", type=int, help="n (default 500; quick 40)")
    parser.add_argument("--features", type=int, help="d (default 512; quick 24)")
    parser.add_argument("--ridge-pairs", type=int, help="ordered pairs the sklearn loop times")
    parser.add_argument("--cases", default="procrustes,mutual-knn,ridge")
    parser.add_argument("--out", help="output .json (a .md table is written beside it)")
    args = parser.parse_args()
    size = dict(QUICK if args.quick else FULL)
    for key in ("models", "images", "features", "ridge_pairs"):
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    from bench_helpers import cpu_machine, write_results

    result = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "machine": cpu_machine(("scikit-learn", "torch")),
        "size": size,
        "load_average": {"before": os.getloadavg()[0]},
    }
    shape = (size["models"], size["images"], size["features"])
    feats = np.random.default_rng(0).standard_normal(shape)
    cases = args.cases.split(",")
    result["cases"] = []
    started = time.perf_counter()
    for name in cases:
        t0 = time.perf_counter()
        if name == "procrustes":
            c = case_procrustes(feats, size["repeats"])
        elif name == "mutual-knn":
            c = case_mutual_knn(feats, size["repeats"])
        elif name == "ridge":
            c = case_ridge(feats, size["repeats"], size["ridge_pairs"])
        else:
            raise SystemExit(f"unknown case {name!r}")
        c["case_wall_s"] = time.perf_counter() - t0
        print(f"{name}: {c['ratio']:.1f}x ({c['case_wall_s']:.0f} s)", flush=True)
        result["cases"].append(c)
    result["wall_s"] = time.perf_counter() - started
    result["load_average"]["after"] = os.getloadavg()[0]
    write_results(result, markdown(result), args.out, "measures-peers", args.quick)


if __name__ == "__main__":
    main()
