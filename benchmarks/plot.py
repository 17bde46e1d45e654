"""Plot saved benchmark runs: time against n and against B (log-log, one line per provider).

python benchmarks/plot.py benchmarks/results/cpu-latest.json --out benchmarks/results/
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    data = json.loads(Path(args.json).read_text())
    lines = defaultdict(lambda: defaultdict(list))  # sweep -> provider -> [(x, seconds)]
    machine = ""
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if "sweep" not in info:
            continue
        machine = f"{info.get('device', '?')}, {info.get('cores', '?')} cores"
        x = info["n"] if info["sweep"] == "n" else info["B"]
        lines[info["sweep"]][info["provider"]].append((x, bench["stats"]["median"]))
    if not lines:
        raise SystemExit(
            f"{args.json} holds no scaling benchmarks (benchmarks/test_bench_scaling.py)"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for sweep, providers in lines.items():
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for provider, points in sorted(providers.items()):
            xs, ys = zip(*sorted(points), strict=True)
            ax.plot(xs, ys, marker="o", label=provider)
        ax.set_xscale("log")
        ax.set_yscale("log")
        fixed = "B = 10" if sweep == "n" else "n = 200"
        ax.set_xlabel("n (images)" if sweep == "n" else "B (models)")
        ax.set_ylabel("seconds: features -> all-pairs Spearman")
        ax.set_title(f"time against {sweep} ({fixed}, d = 256)\n{machine}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out / f"scaling-{sweep}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
