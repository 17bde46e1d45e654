"""GPU benchmark: the Triton kernels against torch/cuBLAS, the pipeline against the CPU baselines.

    python benchmarks/gpu_bench.py --out benchmarks/results/<gpu>-<date>.json [--reference-b100]

Times are medians of CUDA-event timings (triton.testing.do_bench) after warm-up, on random data.
Every section is written to the JSON as soon as it is done, with the device and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch
import triton
from triton.testing import do_bench

sys.path.insert(0, os.path.dirname(__file__))
from fastrsa.kernels.triton import corr as corr_module  # noqa: E402
from fastrsa.kernels.triton import corr_triton, rank_triton, rdm_triton  # noqa: E402
from fastrsa.kernels.triton import rank as rank_module  # noqa: E402
from fastrsa.kernels.triton import rdm as rdm_module  # noqa: E402

import fastrsa  # noqa: E402
from fastrsa import _arrays  # noqa: E402
from fastrsa.reference import compare_ref, rdm_ref  # noqa: E402


def ms(fn, rep=200) -> float:
    return do_bench(fn, warmup=25, rep=rep, return_mode="median")


def ceilings() -> dict:
    """Measured copy bandwidth (bytes read + written) and cuBLAS fp32 / tf32 matmul rates."""
    src = torch.randn(2**28, device="cuda")  # 1 GiB
    dst = torch.empty_like(src)
    t = ms(lambda: dst.copy_(src))
    a = torch.randn(8192, 8192, device="cuda")
    b = torch.randn(8192, 8192, device="cuda")
    out = {"copy_GBps": 2 * src.numel() * 4 / t / 1e6}
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        t = ms(lambda: a @ b)
        out[f"cublas_{'tf32' if tf32 else 'fp32'}_TFLOPs"] = 2 * 8192**3 / t / 1e9
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


SWEEP = {
    "ieee": [
        (64, 32, 4, 3),
        (128, 32, 8, 3),
        (128, 16, 8, 2),
        (128, 8, 8, 4),
        (128, 16, 4, 3),
        (128, 64, 8, 2),
        (64, 64, 4, 2),
    ],
    "tf32x3": [(128, 32, 8, 3), (128, 64, 8, 3), (128, 32, 4, 4), (64, 32, 4, 4), (128, 16, 8, 3)],
    "tf32": [
        (128, 32, 8, 3),
        (128, 64, 8, 3),
        (64, 32, 4, 4),
        (128, 32, 4, 4),
        (64, 64, 4, 3),
        (128, 16, 8, 4),
    ],
}
RANK_SWEEP = [(512, 4), (1024, 4), (1024, 8), (2048, 4), (2048, 8), (4096, 8)]


CORR_SWEEP = [
    (64, 32, 4, 3),
    (128, 32, 8, 3),
    (64, 64, 4, 3),
    (32, 32, 4, 3),
    (64, 16, 4, 4),
    (128, 16, 8, 3),
]


def config_section(shapes) -> dict:
    """Times each launch config of the RDM kernel; the best (summed over shapes) becomes the
    default for the rest of this run."""
    times = {p: {str(c): 0.0 for c in cs} for p, cs in SWEEP.items()}
    for b, n, d in shapes:
        x = torch.randn(b, n, d, device="cuda")
        for precision, configs in SWEEP.items():
            for cfg in configs:
                try:
                    t = ms(lambda: rdm_triton(x, precision=precision, config=cfg), rep=100)
                except Exception as err:  # e.g. out of shared memory
                    print("config failed", precision, cfg, type(err).__name__, flush=True)
                    t = float("inf")
                times[precision][str(cfg)] += t
                print(precision, (b, n, d), cfg, f"{t:.3f} ms", flush=True)
        del x
    best = {}
    for precision, configs in SWEEP.items():
        best[precision] = min(configs, key=lambda c: times[precision][str(c)])
        rdm_module.CONFIGS[precision] = best[precision]
    corr_times = {str(c): 0.0 for c in CORR_SWEEP}
    for b, m in [(100, 124750), (1000, 124750)]:
        r = torch.randn(b, m, device="cuda")
        for cfg in CORR_SWEEP:
            try:
                t = ms(lambda: corr_triton(r, centre=False, config=cfg), rep=100)
            except Exception as err:
                print("corr config failed", cfg, type(err).__name__, flush=True)
                t = float("inf")
            corr_times[str(cfg)] += t
            print("corr", (b, m), cfg, f"{t:.3f} ms", flush=True)
    best["corr"] = min(CORR_SWEEP, key=lambda c: corr_times[str(c)])
    corr_module.CONFIG = best["corr"]
    rank_times = {str(c): 0.0 for c in RANK_SWEEP}
    rank_ref = {}
    for rows, m in [(100, 124750), (20, 1999000)]:
        x = torch.rand(rows, m, device="cuda")
        vals, idx = torch.sort(x, dim=-1)
        out = torch.empty(rows, m, device="cuda")
        rank_ref[f"{rows}x{m}"] = {
            "torch_sort_ms": ms(lambda: torch.sort(x, dim=-1)),
            "torch_scatter_same_size_ms": ms(lambda: out.scatter_(1, idx, vals)),
        }
        for cfg in RANK_SWEEP:
            t = ms(lambda: rank_module.rank_sorted_triton(vals, idx, out, True, *cfg))
            rank_times[str(cfg)] += t
            print("rank kernel alone", (rows, m), cfg, f"{t:.3f} ms", flush=True)
    best["rank"] = min(RANK_SWEEP, key=lambda c: rank_times[str(c)])
    rank_module.CONFIG = best["rank"]
    return {
        "summed_ms": times,
        "corr_summed_ms": corr_times,
        "rank_kernel_summed_ms": rank_times,
        "rank_baselines": rank_ref,
        "chosen": best,
    }


def breakdown_section(b=100, n=500, d=2048) -> dict:
    """Stages of the triton pipeline (features -> Spearman similarity) timed one by one."""
    x = torch.randn(b, n, d, device="cuda")
    r = rdm_triton(x)
    ranks = rank_triton(r, centred=True, out_dtype=torch.float32)
    out = {
        "validate_features_ms": ms(lambda: _arrays.check_values(x, "features", "constant")),
        "prepare_rows_ms": ms(lambda: rdm_module.prepare_rows_triton(x, 1)),
        "rdm_ms": ms(lambda: rdm_triton(x)),
        "validate_rdms_ms": ms(lambda: _arrays.check_values(r, "a", "constant")),
        "rank_centred_ms": ms(lambda: rank_triton(r, centred=True, out_dtype=torch.float32)),
        "corr_ms": ms(lambda: corr_triton(ranks, centre=False)),
        "api_pipeline_ms": ms(
            lambda: fastrsa.compare(fastrsa.rdms(x, backend="triton"), backend="triton")
        ),
        "api_pipeline_tf32x3_ms": ms(
            lambda: fastrsa.compare(
                fastrsa.rdms(x, backend="triton", precision="tf32x3"), backend="triton"
            )
        ),
        "api_pipeline_tf32_ms": ms(
            lambda: fastrsa.compare(
                fastrsa.rdms(x, backend="triton", precision="tf32"), backend="triton"
            )
        ),
    }
    print(out, flush=True)
    return out


def rdm_section(shapes) -> list:
    """RDM kernel against torch's full batched Gram (baddbmm) at equal precision."""
    rows = []
    for b, n, d in shapes:
        x = torch.randn(b, n, d, device="cuda")
        gram = torch.empty(b, n, n, device="cuda")
        ref = None
        ref = rdm_torch_f64(x)
        for precision in ("ieee", "tf32x3", "tf32"):
            torch.backends.cuda.matmul.allow_tf32 = precision != "ieee"  # baddbmm: tf32
            t_gram = ms(lambda: torch.baddbmm(gram, x, x.transpose(1, 2), beta=0.0))
            t_rdm = ms(lambda: rdm_triton(x, precision=precision))
            t_torch = ms(lambda: fastrsa.rdms(x, backend="torch"))
            err = None
            if ref is not None:
                err = float((rdm_triton(x, precision=precision).double() - ref).abs().max())
            n_tiles = triton.cdiv(n, 64)
            rows.append(
                {
                    "B": b,
                    "n": n,
                    "d": d,
                    "precision": precision,
                    "triton_rdm_ms": t_rdm,
                    "torch_baddbmm_ms": t_gram,
                    "torch_backend_rdms_ms": t_torch,
                    "ratio_rdm_to_baddbmm": t_rdm / t_gram,
                    "flop_full_gram": 2 * b * n * n * d,
                    "flop_upper_tiles": 2 * b * d * 64 * 64 * n_tiles * (n_tiles + 1) // 2,
                    "bytes_min": b * n * d * 4 + b * n * (n - 1) // 2 * 4,
                    "max_abs_err_vs_f64": err,
                }
            )
            print(rows[-1], flush=True)
        torch.backends.cuda.matmul.allow_tf32 = False
        del x, gram
    return rows


def rdm_torch_f64(x):
    return fastrsa.rdms(x.double(), backend="torch")


def rank_section(shapes) -> list:
    rows = []
    for r, m in shapes:
        x = torch.rand(r, m, device="cuda")
        t_sort = ms(lambda: torch.sort(x, dim=-1))
        t_rank = ms(lambda: rank_triton(x))
        t_centred = ms(lambda: rank_triton(x, centred=True, out_dtype=torch.float32))
        t_torch = ms(lambda: fastrsa.rank_transform(x, backend="torch"))
        rows.append(
            {
                "rows": r,
                "M": m,
                "torch_sort_ms": t_sort,
                "triton_rank_ms": t_rank,
                "triton_rank_centred_f32_ms": t_centred,
                "torch_backend_rank_ms": t_torch,
                "ratio_rank_to_sort": t_rank / t_sort,
                "ratio_centred_rank_to_sort": t_centred / t_sort,
            }
        )
        print(rows[-1], flush=True)
    return rows


def corr_section(shapes) -> list:
    rows = []
    for b, m in shapes:
        a = torch.randn(b, m, device="cuda")
        t_corr = ms(lambda: corr_triton(a))
        torch.backends.cuda.matmul.allow_tf32 = False
        t_mm = ms(lambda: a @ a.T)
        rows.append(
            {"B": b, "M": m, "triton_corr_ms": t_corr, "torch_mm_ms": t_mm, "flop": 2 * b * b * m}
        )
        print(rows[-1], flush=True)
    return rows


def pipeline_section(shapes) -> list:
    """features (CUDA tensor) -> RDMs -> all-pairs Spearman, through the public API."""
    rows = []
    for b, n, d in shapes:
        x = torch.randn(b, n, d, device="cuda")
        row = {"B": b, "n": n, "d": d}
        for backend in ("triton", "torch"):

            def run():
                return fastrsa.compare(fastrsa.rdms(x, backend=backend), backend=backend)

            torch.cuda.reset_peak_memory_stats()
            rep = 200 if b * n <= 100 * 500 else 1000
            row[f"{backend}_ms"] = ms(run, rep=rep)
            row[f"{backend}_peak_GB"] = torch.cuda.max_memory_allocated() / 1e9
        sim_t = fastrsa.compare(fastrsa.rdms(x, backend="triton"), backend="triton")
        sim_r = fastrsa.compare(fastrsa.rdms(x, backend="torch"), backend="torch")
        row["max_abs_diff_triton_vs_torch"] = float((sim_t - sim_r).abs().max())
        rows.append(row)
        print(row, flush=True)
        del x
        torch.cuda.empty_cache()
    return rows


def cpu_section(batches, with_reference_b100: bool) -> list:
    """The same job on this machine's CPU: naive reference, rsatoolbox, numba, numpy."""
    rows = []
    for b in batches:
        feats = np.random.default_rng(0).standard_normal((b, 500, 2048)).astype(np.float32)
        row = {"B": b, "n": 500, "d": 2048}
        providers = {
            "numba": lambda: fastrsa.compare(fastrsa.rdms(feats, backend="numba"), backend="numba"),
            "numpy": lambda: fastrsa.compare(fastrsa.rdms(feats, backend="numpy"), backend="numpy"),
        }
        if has_module("rsatoolbox"):
            providers["rsatoolbox"] = lambda: rsatoolbox_pipeline(feats)
        if b <= 20 or with_reference_b100:
            providers["reference"] = lambda: compare_ref(rdm_ref(feats))
        for name, fn in providers.items():
            if name in ("numba", "numpy"):
                fn()  # warm-up / compile
            start = time.perf_counter()
            fn()
            row[f"{name}_s"] = time.perf_counter() - start
            print(name, b, row[f"{name}_s"], flush=True)
        rows.append(row)
    return rows


def _wall_s(fn, repeats: int = 3) -> float:
    """Median wall time (s) of fn() between CUDA synchronisations (for calls of ~1 s that
    launch many kernels and copy results to the host, where one event pair would hide waits)."""
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def stats_section() -> dict:
    """Issue 15 on the GPU: permutation tests of all pairs (10,000 rounds; target < 1 s for 100
    RDMs of n = 500), 1,000 bootstrap resamples of 20 RDMs, and taxonomy support from them."""
    from fastrsa import stats

    rng = np.random.default_rng(0)
    out = {}
    for b in (20, 100):
        x = torch.from_numpy(rng.standard_normal((b, 500, 64)).astype(np.float32)).cuda()
        rdms = fastrsa.rdms(x)
        stats.permutation_test(rdms, n_perm=10, seed=0)  # warm-up
        out[f"permutation_10000_B{b}_n500_s"] = _wall_s(
            lambda r=rdms: stats.permutation_test(r, n_perm=10_000, seed=1)
        )
        print(out, flush=True)
    rdms20 = fastrsa.rdms(
        torch.from_numpy(rng.standard_normal((20, 500, 64)).astype(np.float32)).cuda()
    )
    stats.bootstrap(rdms20, n_boot=2, seed=0)
    out["bootstrap_1000_B20_n500_s"] = _wall_s(lambda: stats.bootstrap(rdms20, n_boot=1000, seed=1))
    host = rdms20.cpu().numpy()
    labels = [f"m{i}" for i in range(20)]
    out["taxonomy_support_1000_B20_n500_s"] = _wall_s(
        lambda: fastrsa.taxonomy(host, labels, n_boot=1000, seed=1, backend="torch")
    )
    print(out, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--reference-b100", action="store_true")
    parser.add_argument(
        "--sections", default="ceilings,configs,rdm,rank,corr,breakdown,pipeline,cpu,stats"
    )
    args = parser.parse_args()
    props = torch.cuda.get_device_properties(0)
    result = {
        "device": props.name,
        "sms": props.multi_processor_count,
        "memory_GB": props.total_memory / 1e9,
        "cpu": platform.processor(),
        "cpu_count": os.cpu_count(),
        "versions": versions(),
        "date": time.strftime("%Y-%m-%d"),
    }

    def save():
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)

    sections = args.sections.split(",")
    if "ceilings" in sections:
        result["ceilings"] = ceilings()
        print(result["ceilings"], flush=True)
        save()
    if "configs" in sections:
        result["rdm_configs"] = config_section([(100, 500, 2048), (20, 2000, 2048)])
        save()
    result["configs_used"] = {
        **rdm_module.CONFIGS,
        "corr": corr_module.CONFIG,
        "rank": rank_module.CONFIG,
    }
    if "rdm" in sections:
        result["rdm"] = rdm_section([(100, 500, 2048), (20, 2000, 2048)])
        save()
    if "rank" in sections:
        result["rank"] = rank_section([(100, 124750), (1000, 124750), (20, 1999000)])
        save()
    if "corr" in sections:
        result["corr"] = corr_section([(100, 124750), (1000, 124750), (100, 1999000)])
        save()
    if "breakdown" in sections:
        result["breakdown_B100_n500"] = breakdown_section()
        save()
    if "pipeline" in sections:
        shapes = [
            (20, 500, 2048),
            (100, 500, 2048),
            (1000, 500, 2048),
            (20, 2000, 2048),
            (100, 2000, 2048),
            (1000, 2000, 2048),
        ]
        result["pipeline"] = pipeline_section(shapes)
        save()
    if "cpu" in sections:
        result["cpu"] = cpu_section([20, 100], args.reference_b100)
        for row in result["cpu"]:
            gpu = next(
                (p for p in result.get("pipeline", []) if p["B"] == row["B"] and p["n"] == 500),
                None,
            )
            for name in () if gpu is None else ("reference", "rsatoolbox", "numba", "numpy"):
                if f"{name}_s" in row:
                    row[f"triton_speedup_vs_{name}"] = row[f"{name}_s"] * 1e3 / gpu["triton_ms"]
        save()
    if "stats" in sections:
        result["stats"] = stats_section()
        save()
    print(json.dumps({k: v for k, v in result.items() if k != "versions"}, indent=1))


if __name__ == "__main__":
    main()
