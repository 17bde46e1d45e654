"""fastrsa.torch in a training step against the same computation in plain torch (issue 25).

    python benchmarks/bench_torch_training.py [--small] [--models B --images N --features D]
        [--gpu-shape] [--device cpu|cuda] [--repeats R] [--threads T] [--warm-cache]
        [--cases rsa,softrank,cka] [--reference-lengths M,...] [--out FILE.json]

Three cases, forward + backward (torch.autograd.grad of a scalar loss w.r.t. the inputs), float32,
random data from fixed seeds, on --device (default: CUDA when available, else the CPU):

1. rsa: loss = `fastrsa.torch.rsa(x, y).sum()` (correlation RDMs, Pearson) for x, y of shape
   (B models, n images, d features) (default 8 x 300 x 1024, the size that fits 2 CPU cores;
   --gpu-shape: the issue's 64 x 1000 x 4096) against `plain_rsa` below (row-centre, normalise,
   the full n x n Gram per model, its upper triangle by torch.triu_indices, Pearson of the two
   condensed vectors), both eager and both under `torch.compile` (default inductor, fullgraph
   False). Each of the four runs in a fresh subprocess with a fresh inductor cache (cold
   compile; --warm-cache and --small use the default cache): the first call (compile included)
   is timed alone, then 2 warm-up steps, then --repeats timed steps (median; time.perf_counter,
   CUDA events on a GPU). Peak memory of one steady-state step above what is held before it
   (inputs): on the CPU the peak RSS (VmHWM, reset by writing 5 to /proc/self/clear_refs just
   before the step; glibc's MALLOC_MMAP_THRESHOLD_=65536 so that every freed tensor leaves the
   RSS), on CUDA torch.cuda.max_memory_allocated after reset_peak_memory_stats; also the
   ru_maxrss delta of the first call (compile included) on the CPU. Values and gradients of
   each run are checked against plain eager torch (max |diff|).
2. softrank: `fastrsa.torch.soft_rank` (L2, regularization 1.0 on values scaled to rank units,
   m / std, as fastrsa.torch.compare's "spearman") forward + backward of one row of length 1e4,
   1e5, 1e6 and of 8 rows of 1e5, against torchsort's `soft_rank` (its C++ extension, when
   `import torchsort` works: no dependency of fastrsa; PyPI has only an sdist, built against the
   installed torch by `pip install --no-build-isolation --target DIR torchsort`, then
   PYTHONPATH=DIR) and against `reference_soft_rank` below (plain torch, the pool adjacent
   violators loop in Python; timed at 1e4 only, --reference-lengths). Values and gradients
   checked in float64 (one untimed call each).
3. cka: loss = sum over pairs i < j of `fastrsa.torch.cka_matrix(xs)` (linear, biased) for B = 16
   models x n = 500 x d = 512 against a plain per-pair loop of the feature-space formula
   ‖Ycᵀ Xc‖² / (‖Xcᵀ Xc‖ ‖Ycᵀ Yc‖) (columns centred), eager.

The load average (1 min) is recorded before and after each case. torch's threads: its default
(--threads sets them); on a shared machine, threads competing with other processes for the cores
make small parallel ops erratic: read the medians with the load and the spread. Writes JSON
(machine, versions, sizes, every timing) and a markdown table beside it (.md). Default output:
benchmarks/results/torch-training-<date>.json (--small: /tmp/bench-torch-training-quick.json).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CPU_SHAPE, GPU_SHAPE, SMALL_SHAPE = (8, 300, 1024), (64, 1000, 4096), (3, 24, 16)
FULL = {
    "lengths": [10**4, 10**5, 10**6],
    "rows": (8, 10**5),
    "reference_lengths": [10**4],
    "cka": (16, 500, 512),
    "repeats": 7,
}
QUICK = {
    "lengths": [10**3, 10**4],
    "rows": (3, 10**3),
    "reference_lengths": [10**3],
    "cka": (4, 30, 12),
    "repeats": 3,
}
RSA_RUNS = [("plain", False), ("fastrsa", False), ("plain", True), ("fastrsa", True)]


# --- plain torch references ----------------------------------------------------------------------


def plain_rsa(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson r between the correlation RDMs (1 - r of row-centred rows) of x and y, (B,)."""

    def condensed_rdm(z: torch.Tensor) -> torch.Tensor:
        zc = z - z.mean(-1, keepdim=True)
        zn = zc / zc.norm(dim=-1, keepdim=True)
        n = z.shape[-2]
        i, j = torch.triu_indices(n, n, 1, device=z.device)
        return 1 - (zn @ zn.mT)[..., i, j]

    a, b = condensed_rdm(x), condensed_rdm(y)
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


def pav_blocks_python(y: list[float]) -> list[int]:
    """Sizes of the blocks of the decreasing isotonic regression of y (sequential PAV)."""
    sums: list[float] = []
    counts: list[int] = []
    for v in y:
        sums.append(v)
        counts.append(1)
        while len(sums) > 1 and sums[-2] / counts[-2] <= sums[-1] / counts[-1]:
            s, c = sums.pop(), counts.pop()
            sums[-1] += s
            counts[-1] += c
    return counts


def reference_soft_rank(values: torch.Tensor, eps: float) -> torch.Tensor:
    """Blondel et al.'s L2 soft rank of each row (rows, m), plain torch autograd: sort, PAV in a
    Python loop, block means by index_add, the ranks put back in the rows' order."""
    out = []
    for row in values / eps:
        s, order = row.sort(descending=True, stable=True)
        y = s - torch.arange(len(s), 0, -1, dtype=s.dtype, device=s.device)
        counts = torch.tensor(pav_blocks_python(y.detach().tolist()), device=s.device)
        ids = torch.repeat_interleave(torch.arange(len(counts), device=s.device), counts)
        means = torch.zeros(len(counts), dtype=s.dtype, device=s.device).index_add(0, ids, y)
        primal = s - (means / counts)[ids]
        out.append(primal[order.argsort()])
    return torch.stack(out)


def plain_cka_pairs(xs: torch.Tensor) -> torch.Tensor:
    """Linear CKA of every pair i < j of xs (B, n, d), one pair at a time, (B(B-1)/2,)."""
    out = []
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            x, y = xs[i] - xs[i].mean(0), xs[j] - xs[j].mean(0)
            hsic = (y.T @ x).square().sum()
            out.append(hsic / (torch.linalg.norm(x.T @ x) * torch.linalg.norm(y.T @ y)))
    return torch.stack(out)


# --- timing and memory ------------------------------------------------------------------------


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str) -> tuple[object, float]:
    """fn() and its seconds (CUDA events on a GPU, else time.perf_counter)."""
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = fn()
        end.record()
        torch.cuda.synchronize()
        return out, start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def repeat(fn, device: str, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    sync(device)
    return [timed(fn, device)[1] for _ in range(repeats)]


def rss_kib() -> dict[str, int]:
    with open("/proc/self/status") as f:
        return {
            k: int(v.split()[0])
            for k, v in (line.split(":", 1) for line in f)
            if k in ("VmRSS", "VmHWM")
        }


def step_peak_bytes(fn, device: str) -> int:
    """Peak memory of one call of fn above what was held before it (module docstring)."""
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = rss_kib()["VmRSS"]
    fn()
    return 1024 * (rss_kib()["VmHWM"] - base)


# --- case 1: rsa, one (side, compiled) run per subprocess ----------------------------------------


def rsa_inputs(shape, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    y = 0.5 * x + torch.randn(shape, generator=g)
    return x.to(device).requires_grad_(), y.to(device).requires_grad_()


def rsa_worker(spec: dict) -> dict:
    import fastrsa.torch as ft

    device = spec["device"]
    x, y = rsa_inputs(tuple(spec["shape"]), device)
    fn = ft.rsa if spec["side"] == "fastrsa" else plain_rsa

    def loss(a, b):
        return fn(a, b).sum()

    loss_fn = torch.compile(loss) if spec["compiled"] else loss

    def step():
        value = loss_fn(x, y)
        return (value.detach(), *torch.autograd.grad(value, (x, y)))

    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out, first_s = timed(step, device)
    first_rss = 1024 * (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss0)
    torch.save([t.cpu() for t in out], spec["save"])
    del out
    times = repeat(step, device, spec["repeats"], warmup=2)
    peak = max(step_peak_bytes(step, device) for _ in range(2))
    return {
        "first_call_s": first_s,
        "step_s": times,
        "peak_bytes": peak,
        "first_call_maxrss_delta_bytes": None if device == "cuda" else first_rss,
    }


def case_rsa(shape, device: str, repeats: int, cold: bool) -> dict:
    load0 = os.getloadavg()[0]
    runs, saved = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for side, compiled in RSA_RUNS:
            name = f"{side}{' compiled' if compiled else ' eager'}"
            spec = {
                "side": side,
                "compiled": compiled,
                "shape": shape,
                "device": device,
                "repeats": repeats,
                "save": os.path.join(tmp, f"{side}{compiled}.pt"),
            }
            env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
            if cold:
                env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(
                    tmp, f"inductor-{side}-{int(compiled)}"
                )
                env["TRITON_CACHE_DIR"] = os.path.join(tmp, f"triton-{side}-{int(compiled)}")
            t0 = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--threads",
                    str(torch.get_num_threads()),
                    "--worker",
                    json.dumps(spec),
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            if proc.returncode:
                raise SystemExit(f"rsa worker {name} failed:\n{proc.stderr[-4000:]}")
            run = {"run": name, **json.loads(proc.stdout.strip().splitlines()[-1])}
            run["subprocess_wall_s"] = time.perf_counter() - t0
            run["median_step_s"] = statistics.median(run["step_s"])
            run["compile_s_estimate"] = (
                run["first_call_s"] - run["median_step_s"] if compiled else None
            )
            saved[name] = torch.load(spec["save"], weights_only=True)  # tensors only: no pickle
            print(
                f"  rsa {name}: {1e3 * run['median_step_s']:.1f} ms/step, first call "
                f"{run['first_call_s']:.1f} s, peak {run['peak_bytes'] / 2**20:.1f} MiB",
                flush=True,
            )
            runs.append(run)
    ref = saved["plain eager"]
    for run in runs:
        got = saved[run["run"]]
        run["max_abs_diff_vs_plain_eager"] = {
            k: float((a.double() - b.double()).abs().max())
            for k, a, b in zip(("value", "grad_x", "grad_y"), got, ref, strict=True)
        }
    by = {r["run"]: r for r in runs}

    def ratio(key, a, b):
        return by[a][key] / by[b][key] if by[b][key] > 0 else None

    ratios = {
        f"{a} / {b}": {
            "time": ratio("median_step_s", a, b),
            "peak_memory": ratio("peak_bytes", a, b),
        }
        for a, b in [
            ("plain eager", "fastrsa eager"),
            ("plain compiled", "fastrsa compiled"),
            ("plain compiled", "fastrsa eager"),
            ("fastrsa eager", "fastrsa compiled"),
        ]
    }
    return {
        "case": "rsa",
        "shape": list(shape),
        "runs": runs,
        "ratios": ratios,
        "inductor_cache": "cold (fresh per run)"
        if cold
        else "the default (warm after a first run)",
        "load_before": load0,
        "load_after": os.getloadavg()[0],
    }


# --- case 2: soft ranks -------------------------------------------------------------------------


def torchsort_module():
    try:
        import torchsort

        return torchsort, None
    except ImportError as err:
        return None, f"torchsort not importable: {err}"


def case_softrank(size: dict, device: str, repeats: int) -> dict:
    import fastrsa.torch as ft
    from fastrsa._versions import package_versions

    load0 = os.getloadavg()[0]
    torchsort, why = torchsort_module()
    sides = {"fastrsa": lambda v: ft.soft_rank(v, 1.0)}
    if torchsort is not None:
        sides["torchsort"] = lambda v: torchsort.soft_rank(v, regularization_strength=1.0)
    sides["plain torch (Python PAV)"] = lambda v: reference_soft_rank(v, 1.0)
    shapes = [(1, m) for m in size["lengths"]] + [tuple(size["rows"])]
    rows = []
    for shape in shapes:
        g = torch.Generator().manual_seed(shape[1])
        raw = torch.randn(shape, generator=g, dtype=torch.float64)
        raw = raw * (shape[1] / raw.std(-1, keepdim=True))  # rank units, as compare's spearman
        weights = torch.randn(shape, generator=g, dtype=torch.float64).to(device)
        row = {
            "rows": shape[0],
            "m": shape[1],
            "median_s": {},
            "step_s": {},
            "max_abs_diff_vs_fastrsa": {},
        }
        results = {}
        for name, fn in sides.items():
            if name.startswith("plain") and (
                shape[0] > 1 or shape[1] not in size["reference_lengths"]
            ):
                continue
            for dtype in (torch.float64, torch.float32):
                v = raw.to(device, dtype).requires_grad_()

                w = weights.to(dtype)

                def step(fn=fn, v=v, w=w):
                    r = fn(v)
                    return r.detach(), torch.autograd.grad((r * w).sum(), v)[0]

                if dtype == torch.float64:  # untimed check
                    try:
                        results[name] = step()
                    except (ImportError, RuntimeError) as err:  # torchsort without CUDA
                        if name == "fastrsa":
                            raise
                        row.setdefault("errors", {})[name] = f"{type(err).__name__}: {err}"
                        break
                else:
                    reps = max(3, repeats // 2) if shape[1] * shape[0] >= 10**6 else repeats
                    row["step_s"][name] = repeat(step, device, reps)
                    row["median_s"][name] = statistics.median(row["step_s"][name])
        for name, (r, gr) in results.items():
            r0, g0 = results["fastrsa"]
            row["max_abs_diff_vs_fastrsa"][name] = {
                "ranks": float((r - r0).abs().max()),
                "grad": float((gr - g0).abs().max()),
            }
        t = row["median_s"]
        row["ratios"] = {k: t[k] / t["fastrsa"] for k in t if k != "fastrsa"}
        print(
            f"  soft_rank {shape}: " + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in t.items()),
            flush=True,
        )
        rows.append(row)
    growth = {}
    single = [r for r in rows if r["rows"] == 1]
    for a, b in zip(single, single[1:], strict=False):
        growth[f"{a['m']} -> {b['m']}"] = {
            k: b["median_s"][k] / a["median_s"][k] for k in b["median_s"] if k in a["median_s"]
        }
    return {
        "case": "softrank",
        "regularization": 1.0,
        "rows": rows,
        "growth": growth,
        "torchsort": None
        if torchsort is None
        else {
            "version": package_versions(("torchsort",)).get("torchsort"),
            "path": torchsort.__file__,
        },
        "torchsort_missing": why,
        "load_before": load0,
        "load_after": os.getloadavg()[0],
    }


# --- case 3: CKA ------------------------------------------------------------------------------


def case_cka(shape, device: str, repeats: int) -> dict:
    import fastrsa.torch as ft

    load0 = os.getloadavg()[0]
    b = shape[0]
    xs = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(device)
    xs.requires_grad_()
    iu = torch.triu_indices(b, b, 1, device=device)
    sides = {
        "fastrsa cka_matrix": lambda: ft.cka_matrix(xs)[iu[0], iu[1]],
        "plain per-pair loop": lambda: plain_cka_pairs(xs),
    }
    out, times = {}, {}
    for name, fn in sides.items():

        def step(fn=fn):
            v = fn()
            return v.detach(), torch.autograd.grad(v.sum(), xs)[0]

        out[name] = step()
        times[name] = repeat(step, device, repeats if name.startswith("fastrsa") else 3, 0)
        print(f"  cka {name}: {1e3 * statistics.median(times[name]):.1f} ms", flush=True)
    (v0, g0), (v1, g1) = out.values()
    med = {k: statistics.median(t) for k, t in times.items()}
    return {
        "case": "cka",
        "shape": list(shape),
        "pairs": b * (b - 1) // 2,
        "step_s": times,
        "median_s": med,
        "ratio": med["plain per-pair loop"] / med["fastrsa cka_matrix"],
        "max_abs_diff": {
            "value": float((v0 - v1).abs().max()),
            "grad": float((g0 - g1).abs().max()),
        },
        "load_before": load0,
        "load_after": os.getloadavg()[0],
    }


# --- output -------------------------------------------------------------------------------------


def fmt(value: float | None, spec: str) -> str:
    """value in format `spec` ("-" for None); a trailing " x" in spec appends "x"."""
    if value is None:
        return "-"
    return format(value, spec.removesuffix(" x")) + ("x" if spec.endswith(" x") else "")


def markdown(res: dict) -> str:
    m, dev = res["machine"], res["device"]
    scale = "small" if res["quick"] else "full size"
    lines = [
        f"fastrsa.torch training steps against plain torch ({scale}), "
        f"{res['created']}; {m['device_name']} ({m['cores']} cores, shared); "
        f"torch {m['versions'].get('torch')}, {res['threads']} threads; load average "
        f"{res['load_average']['before']:.1f} before, {res['load_average']['after']:.1f} "
        "after (1 min).",
        "",
        f"Command: `{res['command']}`",
        "",
    ]
    mem = (
        "torch.cuda.max_memory_allocated above the allocation before the step"
        if dev == "cuda"
        else "peak RSS (VmHWM after clear_refs) above the RSS before the step, "
        "MALLOC_MMAP_THRESHOLD_=65536"
    )
    for c in res["cases"]:
        if c["case"] == "rsa":
            lines += [
                f"### rsa forward + backward, B = {c['shape'][0]} models x n = "
                f"{c['shape'][1]} x d = {c['shape'][2]}, float32, {dev} (load "
                f"{c['load_before']:.1f} -> {c['load_after']:.1f})",
                "",
                f"Median of {len(c['runs'][0]['step_s'])} steps after 2 warm-ups; each run "
                f"a fresh subprocess, inductor cache {c['inductor_cache']}. "
                f"Peak memory of one step: {mem}.",
                "",
                "| run | median step (ms) | first call (s) | compile est. (s) | peak "
                "step memory (MiB) | first-call ru_maxrss delta (MiB) | max abs diff vs "
                "plain eager (value / grad x / grad y) |",
                "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
            ]
            for r in c["runs"]:
                d = r["max_abs_diff_vs_plain_eager"]
                first = r["first_call_maxrss_delta_bytes"]
                lines.append(
                    f"| {r['run']} | {1e3 * r['median_step_s']:.1f} | {r['first_call_s']:.2f} | "
                    f"{fmt(r['compile_s_estimate'], '.2f')} | {r['peak_bytes'] / 2**20:.1f} | "
                    f"{'-' if first is None else f'{first / 2**20:.1f}'} | {d['value']:.1e} / "
                    f"{d['grad_x']:.1e} / {d['grad_y']:.1e} |"
                )
            lines += ["", "| ratio | time | peak memory |", "| --- | ---: | ---: |"]
            lines += [
                f"| {k} | {v['time']:.2f}x | {fmt(v['peak_memory'], '.2f x')} |"
                for k, v in c["ratios"].items()
            ]
            lines.append("")
        elif c["case"] == "softrank":
            ts = c["torchsort"]
            lines += [
                f"### soft_rank forward + backward, regularization 1.0 in rank units, "
                f"float32, {dev} (load {c['load_before']:.1f} -> {c['load_after']:.1f})",
                "",
                f"torchsort: {ts['version'] if ts else c['torchsort_missing']}. Plain torch "
                "(Python PAV loop) timed at "
                f"{', '.join(str(m) for m in res['size']['reference_lengths'])} only. Max abs "
                "diff vs fastrsa in float64 (ranks / grad).",
                "",
                "| rows x m | side | median (ms) | min - max (ms) | time / fastrsa's "
                "| max abs diff |",
                "| --- | --- | ---: | ---: | ---: | --- |",
            ]
            for r in c["rows"]:
                for k, t in r["median_s"].items():
                    d = r["max_abs_diff_vs_fastrsa"].get(k, {"ranks": 0.0, "grad": 0.0})
                    ratio = "1" if k == "fastrsa" else f"{r['ratios'][k]:.2f}x"
                    lines.append(
                        f"| {r['rows']} x {r['m']:.0e} | {k} | {1e3 * t:.3g} | "
                        f"{1e3 * min(r['step_s'][k]):.3g} - {1e3 * max(r['step_s'][k]):.3g} | "
                        f"{ratio} | "
                        f"{d['ranks']:.1e} / {d['grad']:.1e} |"
                    )
            lines += [
                f"| {r['rows']} x {r['m']:.0e} | {k} | failed: {e} | | | |"
                for r in c["rows"]
                for k, e in r.get("errors", {}).items()
            ]
            lines += [
                "",
                "Cost growth (time ratio per 10x length, one row): "
                + "; ".join(
                    f"{k}: " + ", ".join(f"{s} {v:.1f}x" for s, v in g.items())
                    for k, g in c["growth"].items()
                ),
                "",
            ]
        else:
            lines += [
                f"### CKA loss forward + backward (linear), B = {c['shape'][0]} x n = "
                f"{c['shape'][1]} x d = {c['shape'][2]} ({c['pairs']} pairs), float32, "
                f"{dev} (load {c['load_before']:.1f} -> {c['load_after']:.1f})",
                "",
                "| side | median (ms) |",
                "| --- | ---: |",
            ]
            lines += [f"| {k} | {1e3 * v:.1f} |" for k, v in c["median_s"].items()]
            lines += [
                "",
                f"Ratio (loop / fastrsa): {c['ratio']:.1f}x; max abs diff value "
                f"{c['max_abs_diff']['value']:.1e}, grad {c['max_abs_diff']['grad']:.1e}.",
                "",
            ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", "--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--models", type=int, help="rsa: B (default 8)")
    parser.add_argument("--images", type=int, help="rsa: n (default 300)")
    parser.add_argument("--features", type=int, help="rsa: d (default 1024)")
    parser.add_argument("--gpu-shape", action="store_true", help="rsa at 64 x 1000 x 4096")
    parser.add_argument("--device", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, help="timed steps per run (median)")
    parser.add_argument("--reference-lengths", help="m at which the Python PAV is timed")
    parser.add_argument(
        "--warm-cache", action="store_true", help="the default inductor cache (--small: always)"
    )
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--cases", default="rsa,softrank,cka")
    parser.add_argument("--out", help="output .json (a .md table is written beside it)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(rsa_worker(json.loads(args.worker))))
        return
    size = dict(QUICK if args.small else FULL)
    shape = list(GPU_SHAPE if args.gpu_shape else SMALL_SHAPE if args.small else CPU_SHAPE)
    for i, key in enumerate(("models", "images", "features")):
        if getattr(args, key) is not None:
            shape[i] = getattr(args, key)
    size["rsa"] = shape
    if args.repeats:
        size["repeats"] = args.repeats
    if args.reference_lengths:
        size["reference_lengths"] = [int(float(m)) for m in args.reference_lengths.split(",")]
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    from bench_helpers import cpu_machine, write_results

    machine = cpu_machine(("torchsort",))
    machine["device_name"] = torch.cuda.get_device_name() if device == "cuda" else machine["cpu"]
    res = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.small,
        "command": "python " + " ".join(a for a in sys.argv if a),
        "device": device,
        "threads": torch.get_num_threads(),
        "machine": machine,
        "size": size,
        "load_average": {"before": os.getloadavg()[0]},
        "cases": [],
    }
    started = time.perf_counter()
    for name in args.cases.split(","):
        t0 = time.perf_counter()
        print(f"{name} ...", flush=True)
        if name == "rsa":
            c = case_rsa(
                tuple(shape), device, size["repeats"], cold=not (args.warm_cache or args.small)
            )
        elif name == "softrank":
            c = case_softrank(size, device, size["repeats"])
        elif name == "cka":
            c = case_cka(tuple(size["cka"]), device, size["repeats"])
        else:
            raise SystemExit(f"unknown case {name!r}")
        c["case_wall_s"] = time.perf_counter() - t0
        res["cases"].append(c)
    res["wall_s"] = time.perf_counter() - started
    res["load_average"]["after"] = os.getloadavg()[0]
    out = args.out or (
        None
        if args.small
        else f"benchmarks/results/torch-training-{time.strftime('%Y-%m-%d')}.json"
    )
    write_results(
        res,
        markdown(res),
        out or "/tmp/bench-torch-training-quick.json",
        "torch-training",
        args.small,
    )


if __name__ == "__main__":
    main()
