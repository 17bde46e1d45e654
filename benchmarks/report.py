"""Turn a pytest-benchmark JSON into a markdown table of times and ratios to the reference.

python benchmarks/report.py benchmarks/results/cpu-latest.json
"""

import json
import sys
from collections import defaultdict


def provider_of(bench: dict) -> str:
    return bench.get("extra_info", {}).get("provider") or bench["params"].get("provider", "?")


def table(data: dict) -> str:
    groups = defaultdict(dict)
    for bench in data["benchmarks"]:
        sizes = {k: v for k, v in (bench.get("params") or {}).items() if k != "provider"}
        case = bench["group"] + "".join(f", {k}={v}" for k, v in sizes.items())
        groups[case][provider_of(bench)] = bench["stats"]
    machine = next((b["extra_info"] for b in data["benchmarks"] if b.get("extra_info")), {})
    lines = [
        f"Machine: {machine.get('device', '?')}, {machine.get('cores', '?')} cores; "
        f"run {data.get('datetime', '?')}. Speed-up: the naive reference's median over the "
        "provider's, or in groups without the reference, the slowest provider's.",
        "",
        "| case | provider | median (s) | speed-up | rounds |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for group, stats in groups.items():
        # against the naive reference; in groups without one, against the slowest provider
        ref = stats.get("reference", max(stats.values(), key=lambda s: s["median"]))["median"]
        for provider, s in sorted(stats.items(), key=lambda kv: -kv[1]["median"]):
            ratio = f"{ref / s['median']:.1f}x"
            lines.append(f"| {group} | {provider} | {s['median']:.4f} | {ratio} | {s['rounds']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        with open(path) as f:
            print(table(json.load(f)))
