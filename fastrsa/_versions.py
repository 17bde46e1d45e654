"""The versions of fastrsa and the packages its results depend on, recorded with results
(taxonomy metadata, benchmark runs) and compared by `fastrsa diff`."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

# Distributions whose version can change a result or a timing; only installed ones are reported.
PACKAGES = (
    "fastrsa",
    "numpy",
    "scipy",
    "numba",
    "torch",
    "triton",
    "onnxruntime",
    "onnxruntime-gpu",
    "rsatoolbox",
)


def package_versions(packages: tuple[str, ...] | list[str] = PACKAGES) -> dict[str, str]:
    """{distribution: installed version} for those of `packages` that are installed."""
    out = {}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def version_changes(old: dict, new: dict) -> list[str]:
    """Readable lines for the packages whose recorded versions differ between two results
    ("numpy 1.26.4 -> 2.0.0", "torch absent -> 2.3.1"); [] when they agree or are not dicts."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return []
    lines = []
    for pkg in sorted(set(old) | set(new)):
        a, b = old.get(pkg), new.get(pkg)
        if a != b:
            lines.append(
                f"{pkg} {a if a is not None else 'absent'} -> {b if b is not None else 'absent'}"
            )
    return lines
