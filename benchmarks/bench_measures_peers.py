"""The measures of issue 24 against the per-pair loops users run today, ratios measured in one run.

    python benchmarks/bench_measures_peers.py [--small] [--models B --images N --features D]
                                              [--peer-seconds S] [--repeats R] [--out FILE.json]

All pairs of B models x N images x D features (float64 standard normal, one seed; default the
issue's size B = 50, N = 500, D = 2048; --small: 5 x 40 x 24, a smoke run), three cases:

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
   target unit of the concatenated held-out predictions and their median.

Timing: fastrsa always computes all pairs, `--repeats` times (median; the first run's result is
the one checked). Each peer loop runs its pairs one by one in a random order (seed 7) until all
are done or `--peer-seconds` have passed (at least 2 pairs): when it stops early, its time per
pair is extrapolated to all pairs, and the table says from how many. The peer's results on the
pairs it computed are checked equal to fastrsa's (max |diff| in the table). Ratio = peer time
per pair / fastrsa time per pair (the issue's target: >= 20x each). The load average (1 min) is
recorded before and after each case. Writes JSON (machine, versions, sizes, every timing) and a
markdown table beside it (.md). Default output: benchmarks/results/cpu-measures-peers-<date>.json
(--small: /tmp/bench-measures-peers-quick.json).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

FULL = {"models": 50, "images": 500, "features": 2048, "peer_seconds": 240.0, "repeats": 1}
QUICK = {"models": 5, "images": 40, "features": 24, "peer_seconds": 5.0, "repeats": 1}
SEED_PAIRS = 7
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


def timed(fn) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def ours_all_pairs(fn, repeats: int) -> tuple[np.ndarray, list[float]]:
    """fastrsa on all pairs, `repeats` timed runs: (the first run's matrix, every run's s)."""
    runs = [timed(fn) for _ in range(repeats)]
    return np.asarray(runs[0][0]), [t for _, t in runs]


def peer_pairs(pair_fn, pairs: list, budget_s: float) -> tuple[list, float]:
    """The peer on `pairs` in a random order, one by one, until all are done or `budget_s` have
    passed (at least 2): ([(pair, value)], seconds spent on them)."""
    order = np.random.default_rng(SEED_PAIRS).permutation(len(pairs))
    done, spent = [], 0.0
    for p in order:
        value, t = timed(lambda p=p: pair_fn(*pairs[p]))
        done.append((pairs[p], value))
        spent += t
        if spent >= budget_s and len(done) >= 2:
            break
    return done, spent


def case(name, peer, ours_fn, pair_fn, pairs, size, tol, **extra) -> dict:
    """One case: fastrsa on all pairs (ours_fn(warm): warm=True on 3 small models, untimed),
    then the peer loop; values checked, times per pair."""
    ours_fn(True)  # untimed warm-up on 3 small models (imports, first calls)
    load0 = os.getloadavg()[0]
    got, ours_s = ours_all_pairs(lambda: ours_fn(False), size["repeats"])
    done, peer_s = peer_pairs(pair_fn, pairs, size["peer_seconds"])
    diff = float(max(abs(got[i, j] - v) for (i, j), v in done))
    assert diff < tol, f"{name}: fastrsa and the peer differ by {diff}"
    ours_pair = statistics.median(ours_s) / len(pairs)
    peer_pair = peer_s / len(done)
    return {
        "case": name,
        "peer": peer,
        "fastrsa_s": ours_s,
        "fastrsa_pairs": len(pairs),
        "fastrsa_s_per_pair": ours_pair,
        "peer_s": peer_s,
        "peer_pairs_timed": len(done),
        "peer_extrapolated": len(done) < len(pairs),
        "peer_s_per_pair": peer_pair,
        "peer_s_all_pairs": peer_pair * len(pairs),
        "ratio": peer_pair / ours_pair,
        "target_met": peer_pair / ours_pair >= TARGET,
        "max_abs_diff": diff,
        "load_before": load0,
        "load_after": os.getloadavg()[0],
        **extra,
    }


def case_procrustes(feats: np.ndarray, size: dict) -> dict:
    import fastrsa

    caches: dict[int, tuple] = {}  # netrep's enable_caching: partial_fit once per model

    def pair(i: int, j: int) -> float:
        for m in (i, j):
            if m not in caches:
                caches[m] = netrep_partial_fit(feats[m])
        return netrep_pair(caches[i], caches[j], feats[i], feats[j])

    b = len(feats)
    return case(
        "Procrustes angular (alpha = 1)",
        "netrep-style pairwise loop (cached partial_fit)",
        lambda warm: fastrsa.similarity(
            feats[:3, :12, :6] if warm else feats, "procrustes", alpha=1.0, score="angular"
        ),
        pair,
        [(i, j) for i in range(b) for j in range(i + 1, b)],
        size,
        1e-6,
    )


def case_mutual_knn(feats: np.ndarray, size: dict) -> dict:
    import torch

    import fastrsa

    b = len(feats)
    tfeats = [torch.from_numpy(x) for x in feats]
    return case(
        f"mutual kNN (k = {K})",
        f"platonic-rep-style pair loop (torch CPU, {torch.get_num_threads()} threads)",
        lambda warm: fastrsa.similarity(feats[:3, :12, :6] if warm else feats, "mutual-knn", k=K),
        lambda i, j: platonic_mutual_knn(tfeats[i], tfeats[j], K),
        [(i, j) for i in range(b) for j in range(i + 1, b)],
        size,
        1e-12,
    )


def case_ridge(feats: np.ndarray, size: dict) -> dict:
    import fastrsa
    from fastrsa.measures.ridge import DEFAULT_ALPHAS

    b = len(feats)
    alphas = list(DEFAULT_ALPHAS)
    return case(
        f"ridge predictivity ({FOLDS} folds, {len(alphas)} alphas)",
        "scikit-learn RidgeCV loop (ordered pairs, the diagonal included)",
        lambda warm: fastrsa.similarity(
            feats[:3, :12, :6] if warm else feats, "ridge", folds=FOLDS
        ),
        lambda i, j: sklearn_ridge(feats[i], feats[j], alphas),
        [(i, j) for i in range(b) for j in range(b)],
        size,
        1e-6,
    )


def markdown(result: dict) -> str:
    m, s, load = result["machine"], result["size"], result["load_average"]
    lines = [
        f"Measures against their peers ({'small' if result['quick'] else 'full size'}), "
        f"{result['created']}; {m['cpu']} ({m['cores']} cores, shared); load average "
        f"{load['before']:.1f} before, {load['after']:.1f} after (1 min).",
        "",
        f"All pairs of {s['models']} models x {s['images']} images x {s['features']} features "
        f"(float64). fastrsa: all pairs, median of {s['repeats']} run(s). Peer: its pairs one by "
        f"one in a random order until all are done or {s['peer_seconds']:g} s have passed; time "
        "per pair = seconds / pairs computed (extrapolated to all pairs where it stopped early). "
        "Target (issue 24): >= 20x each.",
        "",
        "| case | peer | fastrsa (s, all pairs) | fastrsa per pair (ms) | peer pairs timed "
        "| peer per pair (ms) | peer all pairs (s) | ratio | max abs diff | target met | load |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for c in result["cases"]:
        timed_pairs = f"{c['peer_pairs_timed']} of {c['fastrsa_pairs']}"
        peer_all = f"{c['peer_s_all_pairs']:.4g}" + (
            " (extrapolated)" if c["peer_extrapolated"] else ""
        )
        lines.append(
            f"| {c['case']} | {c['peer']} | {statistics.median(c['fastrsa_s']):.3g} | "
            f"{1e3 * c['fastrsa_s_per_pair']:.3g} | {timed_pairs} | "
            f"{1e3 * c['peer_s_per_pair']:.3g} | {peer_all} | {c['ratio']:.0f}x | "
            f"{c['max_abs_diff']:.1e} | {'yes' if c['target_met'] else 'NO'} | "
            f"{c['load_before']:.1f} -> {c['load_after']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", "--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--models", type=int, help="B (default 50; small 5)")
    parser.add_argument("--images", type=int, help="n (default 500; small 40)")
    parser.add_argument("--features", type=int, help="d (default 2048; small 24)")
    parser.add_argument("--peer-seconds", type=float, help="time budget of each peer loop")
    parser.add_argument("--repeats", type=int, help="fastrsa runs per case (median)")
    parser.add_argument("--cases", default="procrustes,mutual-knn,ridge")
    parser.add_argument("--out", help="output .json (a .md table is written beside it)")
    args = parser.parse_args()
    size = dict(QUICK if args.small else FULL)
    for key in ("models", "images", "features", "peer_seconds", "repeats"):
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    from bench_helpers import cpu_machine, write_results

    result = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.small,
        "machine": cpu_machine(("scikit-learn", "torch")),
        "size": size,
        "load_average": {"before": os.getloadavg()[0]},
    }
    shape = (size["models"], size["images"], size["features"])
    feats = np.random.default_rng(0).standard_normal(shape)
    runners = {"procrustes": case_procrustes, "mutual-knn": case_mutual_knn, "ridge": case_ridge}
    result["cases"] = []
    started = time.perf_counter()
    for name in args.cases.split(","):
        if name not in runners:
            raise SystemExit(f"unknown case {name!r}")
        t0 = time.perf_counter()
        c = runners[name](feats, size)
        c["case_wall_s"] = time.perf_counter() - t0
        print(
            f"{name}: {c['ratio']:.1f}x ({c['case_wall_s']:.0f} s; peer {c['peer_pairs_timed']} "
            f"of {c['fastrsa_pairs']} pairs; load {c['load_before']:.1f} -> {c['load_after']:.1f})",
            flush=True,
        )
        result["cases"].append(c)
    result["wall_s"] = time.perf_counter() - started
    result["load_average"]["after"] = os.getloadavg()[0]
    write_results(result, markdown(result), args.out, "measures-peers", args.small)


if __name__ == "__main__":
    main()
