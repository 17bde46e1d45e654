"""Turn a pytest-benchmark JSON into a markdown table of times and ratios to the reference.

    python benchmarks/report.py benchmarks/results/cpu-latest.json

Per case: each provider's median, its speed-up over the naive reference (in cases where the
reference did not run: over the slowest provider, marked *) and over rsatoolbox where it ran, the
rate it reached (GFLOP/s of the Gram and correlation products, else GB/s of the fewest bytes),
and the device it ran on.
"""

import json
import sys
from collections import defaultdict


def provider_of(bench: dict) -> str:
    return bench.get("extra_info", {}).get("provider") or bench["params"].get("provider", "?")


def case_of(bench: dict) -> str:
    params = bench.get("params") or {}
    sizes = {k: v for k, v in params.items() if k not in ("provider", "shape")}
    return bench["group"] + "".join(f", {k}={v}" for k, v in sizes.items())


def rate(info: dict) -> str:
    if "gflop_per_s" in info:
        return f"{info['gflop_per_s']:.3g} GFLOP/s"
    if "gb_per_s" in info:
        return f"{info['gb_per_s']:.3g} GB/s"
    if "images_per_s" in info:
        return f"{info['images_per_s']:.3g} images/s"
    return ""


def table(data: dict) -> str:
    cases = defaultdict(dict)  # case -> provider -> bench
    for bench in data["benchmarks"]:
        cases[case_of(bench)][provider_of(bench)] = bench
    devices = sorted({b.get("extra_info", {}).get("device", "?") for b in data["benchmarks"]})
    first = next((b["extra_info"] for b in data["benchmarks"] if b.get("extra_info")), {})
    lines = [
        f"Run {data.get('datetime', '?')}, profile {first.get('profile', 'cpu')}; devices: "
        f"{'; '.join(devices)} ({first.get('cores', '?')} CPU cores). Speed-up: the naive "
        "reference's median over the provider's (* where the reference did not run: the slowest "
        "provider's).",
        "",
        "| case | provider | device | median (s) | speed-up | vs rsatoolbox | rate | rounds |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case, benches in cases.items():
        median = {p: b["stats"]["median"] for p, b in benches.items()}
        base = median.get("reference", max(median.values()))
        star = "" if "reference" in median else "*"
        rsa = median.get("rsatoolbox")
        for provider, bench in sorted(benches.items(), key=lambda kv: -median[kv[0]]):
            info = bench.get("extra_info", {})
            vs_rsa = f"{rsa / median[provider]:.3g}x" if rsa else ""
            lines.append(
                f"| {case} | {provider} | {info.get('device', '?')} | {median[provider]:.4g} | "
                f"{base / median[provider]:.3g}x{star} | {vs_rsa} | {rate(info)} | "
                f"{bench['stats']['rounds']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        with open(path) as f:
            print(table(json.load(f)))
