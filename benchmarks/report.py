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
        groups[bench["group"]][provider_of(bench)] = bench["stats"]
    machine = next((b["extra_info"] for b in data["benchmarks"] if b.get("extra_info")), {})
    lines = [
        f"Machine: {machine.get('device', '?')}, {machine.get('cores', '?')} cores; "
        f"run {data.get('datetime', '?')}",
        "",
        "| case | provider | median (s) | reference / provider | rounds |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for group, stats in groups.items():
        ref = stats.get("reference", {}).get("median")
        for provider, s in sorted(stats.items(), key=lambda kv: -kv[1]["median"]):
            ratio = f"{ref / s['median']:.1f}x" if ref else "-"
            lines.append(f"| {group} | {provider} | {s['median']:.4f} | {ratio} | {s['rounds']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        with open(path) as f:
            print(table(json.load(f)))
