"""The sweep's measured targets (issue 13), each case in a fresh child process so that its peak
resident memory (ru_maxrss) is its own.

    python benchmarks/bench_sweep.py [--quick] [--out FILE.json] [--cases CASE ...] [--tmp DIR]

Cases (full size; `--quick` runs them all at tiny sizes in about a minute, as a smoke test):
1. out_of_core: a synthetic store of 10,000 RDMs of n = 500 (uniform random, written straight
   into the store's arrays with their ranks and done-markers, untimed, in a child of its own),
   then the Spearman tile stage (backend numba, memory "2GB"), timed; against in-memory
   `fastrsa.compare(R, backend="numba")` of 1,000 such RDMs. Time per pair-entry = seconds /
   B^2 for both (the tile stage computes the B(B+1)/2 upper-triangle entries and fills B^2).
2. streaming: 4 Taskonomy ResNet-50 encoders (random weights, exported to ONNX with all five
   layers) x 200 random 256 x 256 PNG images: `fastrsa.sweep(..., memory="1GB")` against today's
   `features.extract` + `rdms` + `compare` per layer; peak RSS of each, same similarities.
3. resume: the tile stage of 5,000 RDMs (55 tiles) run uninterrupted, then again from scratch
   but SIGKILLed at half the uninterrupted run's wall time and restarted; wall times from this
   process (interpreter start and imports included in each run).
4. ray: the tile stage of 3,000 RDMs (21 tiles of 500 rows) with executor="ray" on a local
   cluster of 2 CPUs against executor="local" pinned to 1 CPU (sched_setaffinity), with
   NUMBA/OMP/OPENBLAS/MKL_NUM_THREADS=1 in both (the Ray workers get them through runtime_env).
   Cluster start and worker warm-up are not timed.
5. read: every rank row of a 2,000-RDM store in blocks of 500, through the tile stage's reader
   (cold page cache when the process may drop it, then warm) and through zarr's own (warm).

Writes JSON (machine, versions, every case's seconds and peak RSS, the targets) and a markdown
table beside it (same stem, .md); prints the table. Full size: about 15 minutes on 2 cores,
about 11 GB of temporary disk (deleted at the end) and up to about 9 GB of memory (the
`extract` path of case 2). Default output: benchmarks/results/cpu-sweep-<date>.json (full) or
<tmp>/bench-sweep-quick.json (--quick).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {
    "full": {
        "n": 500,
        "ooc_B": 10_000,
        "ooc_memory": "2GB",
        "inmem_B": 1_000,
        "stream_models": 4,
        "stream_images": 200,
        "stream_size": 256,
        "stream_memory": "1GB",
        "batch_size": 64,
        "resume_B": 5_000,
        "resume_tile_rows": 500,
        "ray_B": 3_000,
        "ray_tile_rows": 500,
        "read_B": 2_000,
        "read_rows": 500,
    },
    "quick": {
        "n": 40,
        "ooc_B": 60,
        "ooc_memory": "200kB",
        "inmem_B": 30,
        "stream_models": 2,
        "stream_images": 10,
        "stream_size": 64,
        "stream_memory": "1MB",
        "batch_size": 4,
        "resume_B": 60,
        "resume_tile_rows": 8,
        "ray_B": 40,
        "read_B": 60,
        "read_rows": 16,
        "ray_tile_rows": 10,
    },
}
CASES = ("out_of_core", "streaming", "resume", "ray", "read")
ONE_CORE = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
LAYER = "default"  # the synthetic stores' one layer
GB = 1e9


# ----------------------------------------------------------------------------- children


def peak_rss() -> int:
    """Peak resident memory of this process so far, bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def make_store(path: str, b: int, n: int, seed: int = 0, chunk: int = 256) -> dict:
    """A store of `b` uniform random condensed RDMs of `n` images with their ranks and markers,
    written straight into its arrays (as the RDM stage would leave it), `chunk` rows at a time."""
    import numpy as np

    import fastrsa
    from fastrsa.sweeps.store import create_or_open
    from fastrsa.sweeps.store_index import content_key, rank_dtype

    store = create_or_open(path, n, "correlation", None)
    info = store.ensure_layer(LAYER, "float32")
    for i in range(b):
        label = f"s{i:05d}"
        store.index["labels"].append(label)
        info["rows"].append(label)
        info["keys"][label] = content_key(label)
    store.allocate(LAYER)
    store.save_index()
    rdms, ranks = store.array("rdms", LAYER), store.array("ranks", LAYER)
    rng = np.random.default_rng(seed)
    for s in range(0, b, chunk):
        block = rng.random((min(chunk, b - s), store.m), dtype=np.float32)
        rdms[s : s + len(block)] = block
        ranks[s : s + len(block)] = np.asarray(
            fastrsa.rank_transform(block, backend="numba"), dtype=rank_dtype(store.m)
        )
    for label in info["rows"]:
        store.mark(f"done/rdm/{info['id']}/{info['keys'][label]}")
    return {"gigabytes": 2 * b * store.m * 4 / GB}


def warm_up_numba() -> None:
    """Loads numba's compiled kernels (cached on disk) so that no timing holds them."""
    import numpy as np

    import fastrsa

    x = np.random.default_rng(0).random((3, 10), dtype=np.float32)
    fastrsa.compare(x, backend="numba")
    fastrsa.compare(x, x, method="pearson", backend="numba")


def tiles(path: str, memory: int, executor: str = "local", check: int = 0) -> dict:
    """The Spearman tile stage of the store at `path` (backend numba, `memory` bytes), timed.
    executor "ray": a local cluster of 2 CPUs, its workers on one thread each (not timed:
    cluster start and a warm-up task per worker). check: rows spot-checked afterwards against
    fastrsa.compare on the store's RDMs (0: none)."""
    import numba
    import numpy as np

    from fastrsa.sweeps.executors import run_units
    from fastrsa.sweeps.store import open_store
    from fastrsa.sweeps.tiles import tile_units

    if executor == "local" and os.environ.get("NUMBA_NUM_THREADS") == "1":
        # "1 core" means one: zarr's reader threads would otherwise decode on the other core
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    warm_up_numba()
    out = {"numba_threads": numba.get_num_threads(), "cpus": len(os.sched_getaffinity(0))}
    if executor == "ray":
        import ray

        t0 = time.perf_counter()
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=100 * 2**20,
            runtime_env={"env_vars": ONE_CORE},
        )

        @ray.remote(num_cpus=1)
        def warm(_: int) -> tuple[int, int]:
            import numba

            warm_up_numba()
            time.sleep(1.0)  # both workers busy at once, so both start
            return os.getpid(), numba.get_num_threads()

        workers = ray.get([warm.remote(i) for i in range(2)])
        out["ray_workers"] = len({pid for pid, _ in workers})
        out["ray_worker_numba_threads"] = max(threads for _, threads in workers)
        out["ray_start_seconds"] = time.perf_counter() - t0
    store = open_store(path)
    t0 = time.perf_counter()
    units, reused = tile_units(store, LAYER, "spearman", "numba", memory)
    run_units(units, executor)
    seconds = time.perf_counter() - t0
    out.update(seconds=seconds, peak_rss=peak_rss(), computed=len(units), reused=reused)
    out["tile_rows"] = store.index["layers"][LAYER]["tile_rows"]
    out["tiles"] = len(store.tile_plan(LAYER, "spearman"))
    if executor == "ray":
        ray.shutdown()
    if check:  # a few rows against the in-memory path, untimed
        import fastrsa

        store = open_store(path)
        b = len(store.labels)
        rng = np.random.default_rng(1)
        rows = np.sort(rng.choice(b, min(check, b), replace=False))
        cols = np.sort(rng.choice(b, min(256, b), replace=False))
        view = store.rdms(LAYER)
        want = fastrsa.compare(view[rows], view[cols], backend="numpy")
        sim = store.array("similarity", LAYER, "spearman")
        got = np.stack([sim[int(i)][cols] for i in rows])
        out["check_max_abs_diff"] = float(np.abs(got - want).max())
    return out


def in_memory(b: int, n: int) -> dict:
    """fastrsa.compare of `b` random RDMs of `n` images in memory (numba), timed; peak RSS
    includes the (b, M) float32 input."""
    import numpy as np

    import fastrsa

    warm_up_numba()
    rdms = np.random.default_rng(0).random((b, n * (n - 1) // 2), dtype=np.float32)
    t0 = time.perf_counter()
    fastrsa.compare(rdms, backend="numba")
    return {"seconds": time.perf_counter() - t0, "peak_rss": peak_rss()}


def prepare_streaming(folder: str, models: int, images: int, size: int) -> dict:
    """`models` Taskonomy encoders with random weights as ONNX (all five layers) and `images`
    random PNGs of size x size under `folder`."""
    import numpy as np
    import torch
    from PIL import Image

    from fastrsa.models import LAYERS, TaskonomyEncoder, export_onnx

    root = Path(folder)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(images):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"img{i:04d}.png")
    paths = []
    for i in range(models):
        torch.manual_seed(i)
        model = TaskonomyEncoder().eval()
        paths.append(str(export_onnx(model, root / f"enc{i}.onnx", LAYERS, image_size=size)))
    return {"models": paths, "layers": list(LAYERS)}


def stream_sweep(folder: str, models: list, layers: list, memory: str, batch_size: int) -> dict:
    """fastrsa.sweep of the encoders over the images (all layers, Spearman), timed; the
    similarities saved to <folder>/sweep.npz."""
    import numpy as np
    import onnxruntime  # noqa: F401 - imported before timing, as in the other path

    import fastrsa

    warm_up_numba()
    t0 = time.perf_counter()
    store = fastrsa.sweep(
        models,
        images=str(Path(folder) / "images"),
        layers=layers,
        store=str(Path(folder) / "store"),
        method="spearman",
        memory=memory,
        backend="numba",
        batch_size=batch_size,
        device="cpu",
        progress=False,
    )
    seconds = time.perf_counter() - t0
    peak = peak_rss()
    sims = {layer: store.similarity(layer) for layer in layers}
    np.savez(Path(folder) / "sweep.npz", labels=np.array(store.labels), **sims)
    summary = store.summary
    return {"seconds": seconds, "peak_rss": peak, "summary": summary.line() if summary else None}


def stream_extract(folder: str, models: list, layers: list, batch_size: int) -> dict:
    """Today's path: features.extract of every model and layer, then rdms and compare per
    layer (numba), timed; the similarities saved to <folder>/extract.npz."""
    import numpy as np
    import onnxruntime  # noqa: F401

    import fastrsa
    from fastrsa.features import extract

    warm_up_numba()
    t0 = time.perf_counter()
    feats = extract(
        models,
        str(Path(folder) / "images"),
        layers=layers,
        batch_size=batch_size,
        device="cpu",
        progress=False,
    )
    sims = {
        layer: fastrsa.compare(fastrsa.rdms(feats.stack(layer), backend="numba"), backend="numba")
        for layer in layers
    }
    seconds = time.perf_counter() - t0
    peak = peak_rss()
    np.savez(Path(folder) / "extract.npz", labels=np.array(feats.models), **sims)
    return {"seconds": seconds, "peak_rss": peak}


def read_blocks(path: str, rows: int) -> dict:
    """GB/s of reading every rank row of a store in blocks of `rows`: the tile stage's reader
    (chunk files read straight into the rows) from a cold page cache (when this process may
    drop it: root on Linux) and warm, and zarr's own reader, warm."""
    import numpy as np
    import zarr

    from fastrsa.sweeps.store import open_store
    from fastrsa.sweeps.store_arrays import READ_CONCURRENCY

    store = open_store(path)
    count = len(store.labels)
    size = count * store.m * 4

    def seconds(read) -> float:
        t0 = time.perf_counter()
        for s in range(0, count, rows):
            read(list(range(s, min(count, s + rows))))
        return time.perf_counter() - t0

    def ours(block: list) -> None:
        store.read_rows("ranks", LAYER, block)

    arr = store.array("ranks", LAYER)

    def zarrs(block: list) -> None:
        with zarr.config.set({"async.concurrency": READ_CONCURRENCY}):
            np.asarray(arr[block[0] : block[-1] + 1])

    out: dict = {"gigabytes": size / GB, "rows_per_block": rows}
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        out["cold_GBps"] = size / GB / seconds(ours)
    except OSError:
        out["cold_GBps"] = None
    out["warm_GBps"] = size / GB / seconds(ours)
    out["zarr_warm_GBps"] = size / GB / seconds(zarrs)
    out["seconds"] = size / GB / out["warm_GBps"]
    return out


CHILDREN = {
    "make_store": make_store,
    "tiles": tiles,
    "in_memory": in_memory,
    "prepare_streaming": prepare_streaming,
    "stream_sweep": stream_sweep,
    "stream_extract": stream_extract,
    "read_blocks": read_blocks,
}


# ----------------------------------------------------------------------------- parent


def child_command(name: str, **kwargs) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), "--child", name, json.dumps(kwargs)]


def child(name: str, env: dict | None = None, **kwargs) -> dict:
    """Runs CHILDREN[name](**kwargs) in a fresh process; returns its dict (with "wall": the
    process's wall time seen from here)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        child_command(name, **kwargs),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child {name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall": wall}


def memory_for_rows(rows: int, b: int, m: int) -> int:
    """The smallest memory budget whose tile plan has `rows` rows per block (tiles.tile_rows)."""
    from fastrsa.sweeps.tiles import tile_rows

    lo, hi = 1, 1 << 44
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if tile_rows(mid, m, 4, b) < rows else (lo, mid)
    if tile_rows(lo, m, 4, b) != rows:
        raise ValueError(f"no budget gives {rows} rows per tile for B={b}, M={m}")
    return lo


def reset_tiles(path: str) -> None:
    """Forget a store's similarity tiles (their array and done-markers), keeping the RDMs."""
    for sub in ("similarity", "done/tile"):
        shutil.rmtree(Path(path) / sub, ignore_errors=True)


def similarity(path: str):
    from fastrsa.sweeps.store import open_store

    return open_store(path).similarity(LAYER)


def case_out_of_core(size: dict, tmp: Path) -> dict:
    from fastrsa._memory import parse_memory

    n, b, b_mem = size["n"], size["ooc_B"], size["inmem_B"]
    path = str(tmp / "ooc-store")
    made = child("make_store", path=path, b=b, n=n)
    budget = parse_memory(size["ooc_memory"])
    tiled = child("tiles", path=path, memory=budget, check=4)
    shutil.rmtree(path, ignore_errors=True)
    mem = child("in_memory", b=b_mem, n=n)
    per_tile = tiled["seconds"] / b**2
    per_mem = mem["seconds"] / b_mem**2
    return {
        "n": n,
        "tile_stage": {"B": b, "memory": size["ooc_memory"], "store_GB": made["gigabytes"]} | tiled,
        "in_memory": {"B": b_mem} | mem,
        "seconds_per_pair_entry": {"tile_stage": per_tile, "in_memory": per_mem},
        "ratio": per_tile / per_mem,
    }


def case_streaming(size: dict, tmp: Path) -> dict:
    import numpy as np

    folder = str(tmp / "streaming")
    prep = child(
        "prepare_streaming",
        folder=folder,
        models=size["stream_models"],
        images=size["stream_images"],
        size=size["stream_size"],
    )
    common = {"folder": folder, "models": prep["models"], "layers": prep["layers"]}
    swept = child(
        "stream_sweep", memory=size["stream_memory"], batch_size=size["batch_size"], **common
    )
    today = child("stream_extract", batch_size=size["batch_size"], **common)
    a, b = np.load(Path(folder) / "sweep.npz"), np.load(Path(folder) / "extract.npz")
    assert list(a["labels"]) == list(b["labels"]), (a["labels"], b["labels"])
    diff = max(float(np.abs(a[layer] - b[layer]).max()) for layer in prep["layers"])
    assert diff < 1e-3, f"sweep and extract similarities differ by {diff}"
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "models": size["stream_models"],
        "images": size["stream_images"],
        "image_size": size["stream_size"],
        "layers": prep["layers"],
        "batch_size": size["batch_size"],
        "sweep": {"memory": size["stream_memory"]} | swept,
        "extract": today,
        "max_abs_diff": diff,
        "peak_ratio": swept["peak_rss"] / today["peak_rss"],
        "time_ratio": swept["seconds"] / today["seconds"],
    }


def case_resume(size: dict, tmp: Path) -> dict:
    import numpy as np

    from fastrsa.sweeps.store import open_store

    n, b = size["n"], size["resume_B"]
    path = str(tmp / "resume-store")
    child("make_store", path=path, b=b, n=n)
    budget = memory_for_rows(size["resume_tile_rows"], b, n * (n - 1) // 2)
    full = child("tiles", path=path, memory=budget)
    want = similarity(path)
    reset_tiles(path)
    half = full["wall"] / 2
    t0 = time.perf_counter()
    proc = subprocess.Popen(child_command("tiles", path=path, memory=budget))
    try:
        proc.wait(timeout=half)
        raise RuntimeError("the run to be killed finished before half time")
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_wall = time.perf_counter() - t0
    done_at_kill = open_store(path).status()[LAYER]["tiles"].get("spearman", (0, 0))[0]
    rest = child("tiles", path=path, memory=budget)
    diff = float(np.abs(similarity(path) - want).max())
    assert diff < 1e-9, f"the resumed similarity differs from the uninterrupted one by {diff}"
    shutil.rmtree(path, ignore_errors=True)
    return {
        "n": n,
        "B": b,
        "tile_rows": full["tile_rows"],
        "tiles": full["tiles"],
        "uninterrupted": full,
        "killed_after_seconds": killed_wall,
        "tiles_done_at_kill": done_at_kill,
        "restart": rest,
        "max_abs_diff": diff,
        "ratio": (killed_wall + rest["wall"]) / full["wall"],
    }


def case_ray(size: dict, tmp: Path) -> dict:
    import numpy as np

    n, b = size["n"], size["ray_B"]
    path = str(tmp / "ray-store")
    child("make_store", path=path, b=b, n=n)
    budget = memory_for_rows(size["ray_tile_rows"], b, n * (n - 1) // 2)
    local = child("tiles", env=ONE_CORE, path=path, memory=budget)
    want = similarity(path)
    reset_tiles(path)
    on_ray = child("tiles", env=ONE_CORE, path=path, memory=budget, executor="ray")
    diff = float(np.abs(similarity(path) - want).max())
    assert diff < 1e-9, f"Ray's similarity differs from the local one by {diff}"
    shutil.rmtree(path, ignore_errors=True)
    return {
        "n": n,
        "B": b,
        "tile_rows": local["tile_rows"],
        "tiles": local["tiles"],
        "local_1_core": local,
        "ray_2_workers": on_ray,
        "max_abs_diff": diff,
        "efficiency": local["seconds"] / (2 * on_ray["seconds"]),
    }


def case_read(size: dict, tmp: Path) -> dict:
    n, b = size["n"], size["read_B"]
    path = str(tmp / "read-store")
    child("make_store", path=path, b=b, n=n)
    out = child("read_blocks", path=path, rows=size["read_rows"])
    shutil.rmtree(path, ignore_errors=True)
    return {"n": n, "B": b, **out}


RUN = {
    "out_of_core": case_out_of_core,
    "streaming": case_streaming,
    "resume": case_resume,
    "ray": case_ray,
    "read": case_read,
}


def machine() -> dict:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_helpers import cpu_name

    from fastrsa._versions import PACKAGES, package_versions

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "memory_GB": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB,
        "python": sys.version.split()[0],
        "versions": package_versions((*PACKAGES, "zarr", "ray", "psutil")),
    }


def targets(cases: dict) -> list[dict]:
    """(measure, value, target, met) of every case that ran."""
    out = []

    def add(name: str, value: float, op: str = "", limit: float | None = None) -> None:
        if limit is None:  # reported, no target
            out.append({"measure": name, "value": value, "target": None, "met": None})
            return
        met = value <= limit if op == "<=" else value >= limit
        out.append({"measure": name, "value": value, "target": f"{op} {limit:g}", "met": met})

    if "out_of_core" in cases:
        c = cases["out_of_core"]
        add("out of core: tile stage / in-memory, time per pair-entry", c["ratio"], "<=", 1.5)
        add("out of core: tile stage peak RSS (GB)", c["tile_stage"]["peak_rss"] / GB, "<=", 3)
    if "streaming" in cases:
        add("streaming: sweep / extract peak RSS", cases["streaming"]["peak_ratio"], "<=", 0.25)
        add("streaming: sweep / extract time", cases["streaming"]["time_ratio"])
    if "resume" in cases:
        add("resume: (killed + restart) / uninterrupted", cases["resume"]["ratio"], "<=", 1.1)
    if "ray" in cases:
        add("ray: parallel efficiency, 2 workers", cases["ray"]["efficiency"], ">=", 0.8)
    if "read" in cases:
        c = cases["read"]
        if c["cold_GBps"] is not None:
            add("read: rank rows from the store, cold page cache (GB/s)", c["cold_GBps"])
        add("read: rank rows from the store, warm (GB/s)", c["warm_GBps"])
        add("read: the same through zarr's reader, warm (GB/s)", c["zarr_warm_GBps"])
    return out


def markdown(result: dict) -> str:
    m, c = result["machine"], result["cases"]
    lines = [
        f"Sweep benchmarks ({'quick' if result['quick'] else 'full size'}), "
        f"{result['created']}; {m['cpu']} ({m['cores']} cores, {m['memory_GB']:.0f} GB).",
        "",
        "| case | run | size | seconds | peak RSS (GB) |",
        "| --- | --- | --- | ---: | ---: |",
    ]

    def row(case: str, run: str, what: str, r: dict) -> None:
        peak = f"{r['peak_rss'] / GB:.2f}" if "peak_rss" in r else ""
        lines.append(f"| {case} | {run} | {what} | {r['seconds']:.3g} | {peak} |")

    if "out_of_core" in c:
        x = c["out_of_core"]
        t, i = x["tile_stage"], x["in_memory"]
        row(
            "out of core",
            f"tile stage, memory {t['memory']}",
            f"{t['B']} RDMs, n={x['n']}, {t['tiles']} tiles of {t['tile_rows']}",
            t,
        )
        row("out of core", "in-memory compare", f"{i['B']} RDMs, n={x['n']}", i)
    if "streaming" in c:
        x = c["streaming"]
        what = f"{x['models']} encoders x {x['images']} images x {len(x['layers'])} layers"
        row("streaming", f"sweep, memory {x['sweep']['memory']}", what, x["sweep"])
        row("streaming", "extract + rdms + compare", what, x["extract"])
    if "resume" in c:
        x = c["resume"]
        what = f"{x['B']} RDMs, {x['tiles']} tiles"
        lines.append(
            f"| resume | uninterrupted (wall) | {what} | {x['uninterrupted']['wall']:.3g} | |"
        )
        lines.append(
            f"| resume | killed at half time (wall) | {x['tiles_done_at_kill']} tiles done | "
            f"{x['killed_after_seconds']:.3g} | |"
        )
        lines.append(
            f"| resume | restart (wall) | {x['restart']['computed']} tiles left | "
            f"{x['restart']['wall']:.3g} | |"
        )
    if "ray" in c:
        x = c["ray"]
        what = f"{x['B']} RDMs, {x['tiles']} tiles"
        row("ray", "local executor, 1 core", what, x["local_1_core"])
        row("ray", "ray, 2 workers of 1 core", what, x["ray_2_workers"])
    if "read" in c:
        x = c["read"]
        what = f"{x['B']} RDMs' ranks ({x['gigabytes']:.2f} GB), blocks of {x['rows_per_block']}"
        lines.append(f"| read | store reader, warm | {what} | {x['seconds']:.3g} | |")
    lines += ["", "| measure | value | target | met |", "| --- | ---: | --- | --- |"]
    for t in result["targets"]:
        met = "" if t["met"] is None else "yes" if t["met"] else "NO"
        lines.append(f"| {t['measure']} | {t['value']:.3g} | {t['target'] or ''} | {met} |")
    if result["quick"]:
        lines += ["", "Quick sizes: start-up costs dominate; the targets are for the full size."]
    for case, error in result["errors"].items():
        lines += ["", f"{case} FAILED: {error.splitlines()[0]}"]
    if "out_of_core" in c:
        p = c["out_of_core"]["seconds_per_pair_entry"]
        lines += [
            "",
            "Time per pair-entry: seconds / B^2 for both (the tile stage computes the B(B+1)/2 "
            f"upper-triangle entries and fills all B^2): tile stage {p['tile_stage'] * 1e9:.3g} "
            f"ns, in-memory {p['in_memory'] * 1e9:.3g} ns. Resume: wall times seen by the parent, "
            "interpreter start and imports included in each run. Ray: cluster start and one "
            "warm-up task per worker not timed.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--out", help="the JSON file (the markdown goes beside it, .md)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--tmp", help="folder for the temporary stores (default: the system's)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        result = CHILDREN[args.child](**json.loads(rest[0]))
        print(json.dumps(result))
        return
    size = SIZES["quick" if args.quick else "full"]
    tmp = Path(tempfile.mkdtemp(prefix="fastrsa-bench-sweep-", dir=args.tmp))
    today = datetime.date.today().isoformat()
    default = (
        tmp.parent / "bench-sweep-quick.json"
        if args.quick
        else Path(__file__).parent / "results" / f"cpu-sweep-{today}.json"
    )
    out = Path(args.out) if args.out else default
    result = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "sizes": size,
        "machine": machine(),
        "cases": {},
        "errors": {},
    }
    try:
        for case in args.cases:  # a failed case is reported; the others still run
            t0 = time.perf_counter()
            print(f"{case} ...", file=sys.stderr, flush=True)
            try:
                result["cases"][case] = RUN[case](size, tmp)
            except Exception as err:  # noqa: BLE001 - reported below, exit status 1
                result["errors"][case] = f"{type(err).__name__}: {err}"
                print(f"{case} FAILED: {result['errors'][case]}", file=sys.stderr, flush=True)
            print(f"{case}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["targets"] = targets(result["cases"])
    table = markdown(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {out} and {out.with_suffix('.md')}", file=sys.stderr)
    if result["errors"]:
        sys.exit(f"failed: {', '.join(result['errors'])}")


if __name__ == "__main__":
    main()
