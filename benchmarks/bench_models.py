"""Models by name (issue 23), measured: a sweep of timm models x all their blocks x an image
folder through fastrsa against thingsvision-style extraction, each run in a fresh child process
so that its peak resident memory (ru_maxrss) is its own.

    python benchmarks/bench_models.py [--quick] [--images N] [--out FILE.json] [--tmp DIR]
        [--runs RUN ...]

The job: 4 timm models with random weights ("timm:NAME@random", nothing downloaded), every
block (the "@blocks" preset: timm's feature_info modules but the stem), 500 random RGB images
of mixed sizes and aspects (200..400 px a side, JPEG and PNG alternately; written untimed).
Runs:
1. fastrsa: `fastrsa.sweep(specs, images=folder, layers=["@blocks"], memory="2GB",
   batch_size=32)` (the models' own timm preprocessing, layers flattened; Spearman of the
   correlation-distance RDMs within each layer name).
2. thingsvision-style, written plainly as thingsvision's extractor does it (thingsvision is not
   installed): per model, timm's resolved data config and transform, forward hooks on the same
   modules (their names from fastrsa.zoo.timm_models.timm_presets), every layer's features of
   all images kept in memory (flattened, float32), then per layer the RDM (1 - np.corrcoef);
   at the end the all-pairs Spearman (scipy) of the RDMs within each layer name. Its RDMs and
   similarities are checked against the sweep's (max |diff|).
3. ray: run 1 with executor="ray" on a local cluster of 2 CPUs started before the sweep (its
   start timed apart). Peak RSS there is the driver's (ru_maxrss) and, sampled every 0.2 s, the
   sum over the driver and every process under it (Ray's daemons and workers).
Throughput: images x models / wall seconds of the sweep call (run 1 and 3) or of extraction +
RDMs + similarities (run 2); torch, timm (and ray) imported before timing in each child.

Writes JSON (machine, versions, load average, every run's seconds, images/s and peak RSS, the
max |diff|) and a markdown table beside it (same stem, .md); prints the table. Full size: about
15 minutes on 2 cores, up to about 6 GB of memory (run 3: Ray's processes together), ~1 GB of
temporary disk. `--quick`: 2 models, 12 small images, a smoke test (1-2 minutes on 2 cores,
half of it Ray starting). Default output: benchmarks/results/cpu-models-<date>.json (full) or
<tmp>/bench-models-quick.json (--quick).
Needs timm and ray (the models environment: `pip install fastrsa[timm,ray]`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SIZES = {
    "full": {
        "models": ["resnet18", "mobilenetv3_small_100", "convnext_atto", "vit_tiny_patch16_224"],
        "images": 500,
        "min_px": 200,
        "max_px": 400,
        "batch_size": 32,
        "memory": "2GB",
    },
    "quick": {
        "models": ["mobilenetv3_small_100", "vit_tiny_patch16_224"],  # share blocks.0, 1, 3, 5
        "images": 12,
        "min_px": 40,
        "max_px": 80,
        "batch_size": 4,
        "memory": "100MB",
    },
}
RUNS = ("fastrsa", "thingsvision", "ray")
GB = 1e9


# ----------------------------------------------------------------------------- children


def peak_rss() -> int:
    """Peak resident memory of this process so far, bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def tree_rss(root: int) -> int:
    """Resident bytes of process `root` and every process under it, now (from /proc)."""
    parent, rss = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            parent[int(entry)] = int(fields[1])
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += [p for p, pp in parent.items() if pp == pid]
    return total


class TreeSampler:
    """Samples tree_rss(this process) every `every` seconds in a thread; `.peak` bytes."""

    def __init__(self, every: float = 0.2) -> None:
        self.peak, self.every, self._stop = 0, every, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(os.getpid()))
            self._stop.wait(self.every)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def prepare(folder: str, images: int, min_px: int, max_px: int) -> dict:
    """`images` random RGB images of random width and height in [min_px, max_px] under
    <folder>/images, JPEG (quality 90) and PNG alternately, named in order."""
    import numpy as np
    from PIL import Image

    root = Path(folder) / "images"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sizes = []
    for i in range(images):
        w, h = (int(v) for v in rng.integers(min_px, max_px + 1, 2))
        smooth = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(smooth).resize((w, h), Image.BILINEAR), dtype=np.int16)
        noise = rng.integers(-40, 41, (h, w, 3), dtype=np.int16)
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        ext = "jpg" if i % 2 == 0 else "png"
        Image.fromarray(pixels).save(root / f"img{i:04d}.{ext}", quality=90)
        sizes.append((w, h))
    ws, hs = zip(*sizes, strict=True)
    return {"width": [min(ws), max(ws)], "height": [min(hs), max(hs)]}


def save_results(path: Path, layers: dict) -> None:
    """{layer: (labels, similarity (k, k), rdms (k, M))} -> one .npz."""
    import numpy as np

    arrays = {"layers": np.array(list(layers))}
    for i, (labels, sim, rdms) in enumerate(layers.values()):
        arrays[f"labels{i}"] = np.array(labels)
        arrays[f"sim{i}"] = np.asarray(sim, dtype=np.float64)
        arrays[f"rdms{i}"] = np.asarray(rdms, dtype=np.float64)
    np.savez(path, **arrays)


def sweep_run(folder: str, models: list, batch_size: int, memory: str, executor: str) -> dict:
    """fastrsa.sweep of the models over the images (every block), timed; RDMs and similarities
    saved to <folder>/<executor>.npz."""
    import numpy as np
    import timm  # noqa: F401 - imported before timing, as in the other runs
    import torch  # noqa: F401

    import fastrsa

    fastrsa.compare(np.random.default_rng(0).random((3, 10)), backend="numba")  # numba cached
    out: dict = {"executor": executor}
    if executor == "ray":
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        out["cluster_start_seconds"] = time.perf_counter() - t0
    with TreeSampler() as sampler:
        t0 = time.perf_counter()
        store = fastrsa.sweep(
            {name: f"timm:{name}@random" for name in models},
            images=str(Path(folder) / "images"),
            layers=["@blocks"],
            store=str(Path(folder) / f"store-{executor}"),
            method="spearman",
            executor=executor,
            memory=memory,
            batch_size=batch_size,
            device="cpu",
            progress=False,
        )
        out["seconds"] = time.perf_counter() - t0
    out["peak_rss"] = peak_rss()
    out["peak_rss_tree_sampled"] = sampler.peak
    summary = store.summary
    out["summary"] = summary.line() if summary is not None else None
    layers = {
        layer: (store.layer_info(layer)["rows"], store.similarity(layer), store.rdms(layer)[:])
        for layer in store.layers
    }
    save_results(Path(folder) / f"{executor}.npz", layers)
    out["layers"] = {layer: rows for layer, (rows, _, _) in layers.items()}
    if executor == "ray":
        ray.shutdown()
    return out


def random_timm_model(name: str):
    """timm.create_model(name) with the random weights that "timm:NAME@random" gives (torch's
    generator seeded with 0 just before, as fastrsa.zoo.timm_models does)."""
    import timm
    import torch

    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False).eval()


def spearman_matrix(rdms):
    """All-pairs Spearman of the rows of `rdms` (k, M) with scipy, as a (k, k) matrix."""
    import numpy as np
    from scipy.stats import spearmanr

    if len(rdms) == 1:
        return np.ones((1, 1))
    rho = spearmanr(rdms, axis=1).statistic
    return np.array([[1.0, rho], [rho, 1.0]]) if len(rdms) == 2 else rho


def thingsvision_run(folder: str, models: list, batch_size: int) -> dict:
    """thingsvision-style: per model, timm's transform, forward hooks on its "@blocks" modules
    (feature_info but the stem), all layers' features of all images in memory (flattened
    float32), then per layer 1 - np.corrcoef; the Spearman of the RDMs within each layer name
    at the end. Timed; saved to <folder>/thingsvision.npz."""
    import numpy as np
    import timm
    import torch
    from PIL import Image

    from fastrsa.zoo.timm_models import timm_presets

    paths = sorted((Path(folder) / "images").iterdir())
    iu = np.triu_indices(len(paths), k=1)
    rdms: dict[str, dict[str, np.ndarray]] = {}  # layer -> model -> condensed RDM
    t0 = time.perf_counter()
    for name in models:
        model = random_timm_model(name)
        config = timm.data.resolve_data_config({}, model=model)
        transform = timm.data.create_transform(**config)
        modules = dict(model.named_modules())
        layers = timm_presets(model)["@blocks"]  # the same modules as the sweep's "@blocks"
        feats: dict[str, list] = {layer: [] for layer in layers}

        def hook_for(layer: str, feats: dict = feats):
            def hook(_module, _inputs, output) -> None:
                feats[layer].append(output.detach().flatten(1).numpy().astype(np.float32))

            return hook

        handles = [modules[layer].register_forward_hook(hook_for(layer)) for layer in layers]
        with torch.no_grad():
            for s in range(0, len(paths), batch_size):
                batch = [transform(Image.open(p).convert("RGB")) for p in paths[s : s + batch_size]]
                model(torch.stack(batch))
        for h in handles:
            h.remove()
        features = {layer: np.concatenate(parts) for layer, parts in feats.items()}
        del feats
        for layer in layers:
            rdms.setdefault(layer, {})[name] = (1 - np.corrcoef(features.pop(layer)))[iu]
        del features, model
    results = {}
    for layer, by_model in rdms.items():
        stacked = np.stack(list(by_model.values()))
        results[layer] = (list(by_model), spearman_matrix(stacked), stacked)
    seconds = time.perf_counter() - t0
    peak = peak_rss()
    save_results(Path(folder) / "thingsvision.npz", results)
    return {"seconds": seconds, "peak_rss": peak}


CHILDREN = {"prepare": prepare, "sweep_run": sweep_run, "thingsvision_run": thingsvision_run}


# ----------------------------------------------------------------------------- parent


def child(name: str, **kwargs) -> dict:
    """Runs CHILDREN[name](**kwargs) in a fresh process; returns its dict (with "wall": the
    process's wall time seen from here)."""
    t0 = time.perf_counter()
    command = [sys.executable, os.path.abspath(__file__), "--child", name, json.dumps(kwargs)]
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child {name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall": wall}


def load_results(path: Path) -> dict:
    """{layer: (labels, similarity, rdms)} from a save_results file."""
    import numpy as np

    f = np.load(path)
    return {
        str(layer): ([str(x) for x in f[f"labels{i}"]], f[f"sim{i}"], f[f"rdms{i}"])
        for i, layer in enumerate(f["layers"])
    }


def max_diffs(a: dict, b: dict) -> dict:
    """Max |difference| of the similarities and of the RDMs of two runs' results (same layers,
    the rows matched by label)."""
    import numpy as np

    if sorted(a) != sorted(b):
        raise AssertionError(f"the runs' layers differ: {sorted(a)} vs {sorted(b)}")
    sim = rdm = 0.0
    for layer, (labels, s, r) in a.items():
        other, s2, r2 = b[layer]
        order = [other.index(x) for x in labels]
        sim = max(sim, float(np.abs(s - s2[np.ix_(order, order)]).max()))
        rdm = max(rdm, float(np.abs(r - r2[order]).max()))
    return {"similarity": sim, "rdms": rdm}


def machine() -> dict:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_helpers import cpu_name

    from fastrsa._versions import PACKAGES, package_versions

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "memory_GB": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB,
        "python": sys.version.split()[0],
        "versions": package_versions((*PACKAGES, "timm", "ray", "zarr", "pillow")),
    }


def markdown(result: dict) -> str:
    m, s, runs = result["machine"], result["sizes"], result["runs"]
    full = SIZES["full"]["images"]
    size_name = (
        "quick"
        if result["quick"]
        else "full size"
        if s["images"] == full
        else f"{s['images']} images, not the full {full}"
    )
    lines = [
        f"Models by name ({size_name}), {result['created']}; "
        f"{m['cpu']} ({m['cores']} cores, {m['memory_GB']:.0f} GB); load average "
        f"{result['load_average']['before']:.1f} before, {result['load_average']['after']:.1f} "
        "after (1 min).",
        "",
        f"{len(s['models'])} timm models with random weights ({', '.join(s['models'])}) x every "
        f"block (@blocks: {result['layer_count']} model layers) x {s['images']} images "
        f"({s['min_px']}..{s['max_px']} px a side, JPEG/PNG), batch size {s['batch_size']}.",
        "",
        "| run | seconds | images x models / s | peak RSS (GB) | note |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    notes = {
        "fastrsa": f"fastrsa.sweep, memory {s['memory']}",
        "thingsvision": "thingsvision-style: all features in memory, then RDMs",
        "ray": "fastrsa.sweep, executor ray (2 CPUs), memory {}; cluster start {:.1f} s apart; "
        "driver + Ray processes (sampled): {:.2f} GB",
    }
    for run in RUNS:
        if run not in runs:
            continue
        r = runs[run]
        note = notes[run]
        if run == "ray":
            note = note.format(s["memory"], r["cluster_start_seconds"], r["tree_peak_GB"])
        lines.append(
            f"| {run} | {r['seconds']:.3g} | {r['images_per_s']:.3g} | {r['peak_rss_GB']:.2f} | "
            f"{note} |"
        )
    lines.append("")
    for name, d in result["checks"].items():
        lines.append(
            f"- {name}: max |diff| of the similarities {d['similarity']:.2g}, "
            f"of the RDMs {d['rdms']:.2g}"
        )
    if "fastrsa" in runs and "thingsvision" in runs:
        f, t = runs["fastrsa"], runs["thingsvision"]
        lines.append(
            f"- fastrsa / thingsvision-style: time {f['seconds'] / t['seconds']:.2f}, "
            f"peak RSS {f['peak_rss_GB'] / t['peak_rss_GB']:.2f}"
        )
    if result["quick"]:
        lines += ["", "Quick sizes: start-up costs dominate; a smoke test only."]
    for run, error in result["errors"].items():
        lines += ["", f"{run} FAILED: {error.splitlines()[0]}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--images", type=int, help="the number of images (default 500)")
    parser.add_argument("--out", help="the JSON file (the markdown goes beside it, .md)")
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--tmp", help="folder for the images and stores (default: the system's)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](**json.loads(rest[0]))))
        return
    size = dict(SIZES["quick" if args.quick else "full"])
    if args.images:
        size["images"] = args.images
    tmp = Path(tempfile.mkdtemp(prefix="fastrsa-bench-models-", dir=args.tmp))
    today = datetime.date.today().isoformat()
    default = (
        tmp.parent / "bench-models-quick.json"
        if args.quick
        else Path(__file__).parent / "results" / f"cpu-models-{today}.json"
    )
    out = Path(args.out) if args.out else default
    result: dict = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "sizes": size,
        "machine": machine(),
        "load_average": {"before": os.getloadavg()[0]},
        "runs": {},
        "checks": {},
        "errors": {},
    }
    folder = str(tmp)
    common = {"folder": folder, "models": size["models"], "batch_size": size["batch_size"]}
    try:
        keep = ("min_px", "max_px", "images")
        result["images"] = child("prepare", folder=folder, **{k: size[k] for k in keep})
        for run in args.runs:  # a failed run is reported; the others still run
            t0 = time.perf_counter()
            print(f"{run} ...", file=sys.stderr, flush=True)
            try:
                if run == "thingsvision":
                    r = child("thingsvision_run", **common)
                else:
                    executor = "ray" if run == "ray" else "local"
                    r = child("sweep_run", memory=size["memory"], executor=executor, **common)
                    result["layer_count"] = sum(len(v) for v in r.pop("layers").values())
                r["images_per_s"] = size["images"] * len(size["models"]) / r["seconds"]
                r["peak_rss_GB"] = r["peak_rss"] / GB
                if "peak_rss_tree_sampled" in r:
                    r["tree_peak_GB"] = r["peak_rss_tree_sampled"] / GB
                result["runs"][run] = r
            except Exception as err:  # noqa: BLE001 - reported below, exit status 1
                result["errors"][run] = f"{type(err).__name__}: {err}"
                print(f"{run} FAILED: {result['errors'][run]}", file=sys.stderr, flush=True)
            print(f"{run}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        names = {"fastrsa": "local.npz", "thingsvision": "thingsvision.npz", "ray": "ray.npz"}
        saved = {r: load_results(tmp / names[r]) for r in result["runs"]}
        for other in ("thingsvision", "ray"):
            if "fastrsa" in saved and other in saved:
                result["checks"][f"fastrsa vs {other}"] = max_diffs(saved["fastrsa"], saved[other])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["load_average"]["after"] = os.getloadavg()[0]
    result.setdefault("layer_count", None)
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
