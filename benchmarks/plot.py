"""Plot saved benchmark runs: time against n, B and d (log-log, one line per provider).

    python benchmarks/plot.py benchmarks/results/cpu-latest.json --out benchmarks/results/

Writes scaling-<sweep>.png (or <prefix>scaling-<sweep>.png with --prefix) for each sweep the run
holds (benchmarks/test_bench_scaling.py).
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {"n": "n (images)", "B": "B (models)", "d": "d (features)"}


def sweeps(data: dict) -> dict:
    """sweep -> {"points": provider -> [(x, seconds)], "fixed": str, "devices": set}"""
    out = defaultdict(lambda: {"points": defaultdict(list), "fixed": "", "devices": set()})
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if "sweep" not in info:
            continue
        sweep = out[info["sweep"]]
        sweep["points"][info["provider"]].append((info[info["sweep"]], bench["stats"]["median"]))
        sweep["fixed"] = ", ".join(f"{k} = {info[k]}" for k in "Bnd" if k != info["sweep"])
        sweep["devices"].add(f"{info.get('device', '?')} ({info.get('cores', '?')} cores)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--prefix", default="", help="file name prefix, e.g. 'h100-'")
    args = parser.parse_args()
    found = sweeps(json.loads(Path(args.json).read_text()))
    if not found:
        raise SystemExit(
            f"{args.json} holds no scaling benchmarks (benchmarks/test_bench_scaling.py)"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, sweep in sorted(found.items()):
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for provider, points in sorted(sweep["points"].items()):
            xs, ys = zip(*sorted(points), strict=True)
            ax.plot(xs, ys, marker="o", label=provider)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(LABELS[name])
        ax.set_ylabel("seconds: features -> all-pairs Spearman")
        devices = "; ".join(sorted(sweep["devices"]))
        ax.set_title(f"time against {name} ({sweep['fixed']})\n{devices}", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"{args.prefix}scaling-{name}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
