"""Compare two saved results (RDMs, similarity matrices, taxonomies, evaluations) for regression
runs: `fastrsa diff OLD NEW --atol 1e-6` exits 1 with a readable report when they differ.

Results are .npy / .npz files (compared array by array, by key) or .json files (compared leaf by
leaf: numbers and numeric lists with the tolerance, everything else exactly). Keys listed in
`ignore` (e.g. JSON metadata such as timings and versions) are skipped; package versions recorded
in both files (`metadata.versions`, as fastrsa._versions.package_versions writes them) that
differ are noted in the report, without making the results unequal.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import io
from ._versions import version_changes

__all__ = ["DEFAULT_IGNORE", "DiffReport", "diff_results"]

DEFAULT_IGNORE = ("metadata", "seconds", "reference_seconds", "backend")


@dataclass
class DiffReport:
    """What differs between two results; empty lists mean equal within the tolerance."""

    only_old: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # shapes, types or exact values
    out_of_tolerance: list[str] = field(default_factory=list)  # numeric, with the worst error
    compared: int = 0
    notes: list[str] = field(default_factory=list)  # e.g. package versions that changed

    @property
    def equal(self) -> bool:
        return not (self.only_old or self.only_new or self.mismatched or self.out_of_tolerance)

    def text(self) -> str:
        notes = [f"  note: {note}" for note in self.notes]
        if self.equal:
            return "\n".join([f"equal: {self.compared} entries agree within the tolerance", *notes])
        lines = [f"DIFFERENT ({self.compared} entries compared)"]
        for title, items in (
            ("only in OLD", self.only_old),
            ("only in NEW", self.only_new),
            ("mismatched", self.mismatched),
            ("beyond tolerance", self.out_of_tolerance),
        ):
            lines += [f"  {title}: {item}" for item in items]
        return "\n".join(lines + notes)


def _load(path: Path, name: str) -> dict[str, Any]:
    if path.suffix in (".npy", ".npz"):
        return io.load_arrays(path, name)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file: {path}")
    if path.suffix != ".json":
        raise ValueError(f"{name}: expected .npy, .npz or .json; got {path.name}")
    try:
        return _flatten(json.loads(path.read_text()))
    except json.JSONDecodeError as err:
        raise ValueError(f"{name}: {path} is not valid JSON ({err})") from None


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested JSON -> {"a.b[2].c": leaf}; lists of numbers (any depth) stay whole as arrays."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(obj, list):
        try:
            arr = np.asarray(obj, dtype=np.float64)
            if arr.dtype.kind == "f" and arr.size:
                return {prefix: arr}
        except (ValueError, TypeError):
            pass
        out = {}
        for i, value in enumerate(obj):
            out.update(_flatten(value, f"{prefix}[{i}]"))
        return out
    return {prefix: obj}


_VERSION_KEY = re.compile(r"(?:^|\.)versions\.([^.\[\]]+)$")


def _versions(flat: dict[str, Any]) -> dict[str, Any]:
    """{package: version} recorded in a flattened result (keys ending in versions.<package>)."""
    out = {}
    for key, value in flat.items():
        m = _VERSION_KEY.search(key)
        if m:
            out[m.group(1)] = value
    return out


def _ignored(key: str, ignore) -> bool:
    parts = key.replace("[", ".").split(".")
    return any(part in ignore for part in parts)


def diff_results(
    old: str | os.PathLike,
    new: str | os.PathLike,
    atol: float = 1e-6,
    rtol: float = 0.0,
    ignore: tuple[str, ...] = DEFAULT_IGNORE,
) -> DiffReport:
    """Compare two result files; numbers agree when |new - old| <= atol + rtol * |old|."""
    if atol < 0 or rtol < 0:
        raise ValueError(f"atol and rtol must be >= 0; got {atol}, {rtol}")
    a, b = _load(Path(old), "OLD"), _load(Path(new), "NEW")
    old_versions, new_versions = _versions(a), _versions(b)
    a = {k: v for k, v in a.items() if not _ignored(k, ignore)}
    b = {k: v for k, v in b.items() if not _ignored(k, ignore)}
    report = DiffReport(only_old=sorted(set(a) - set(b)), only_new=sorted(set(b) - set(a)))
    if old_versions and new_versions:
        changes = version_changes(old_versions, new_versions)
        if changes:
            report.notes.append("package versions differ: " + ", ".join(changes))
    for key in sorted(set(a) & set(b)):
        report.compared += 1
        x, y = a[key], b[key]
        numeric = all(
            isinstance(v, (int, float, np.ndarray)) and not isinstance(v, bool) for v in (x, y)
        )
        if not numeric:
            if x != y:
                report.mismatched.append(f"{key}: {x!r} -> {y!r}")
            continue
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            report.mismatched.append(f"{key}: shape {x.shape} -> {y.shape}")
            continue
        if x.dtype.kind not in "fiub" or y.dtype.kind not in "fiub":
            if not np.array_equal(x, y):
                report.mismatched.append(f"{key}: values differ")
            continue
        x, y = x.astype(np.float64), y.astype(np.float64)
        nan_x, nan_y = np.isnan(x), np.isnan(y)
        if not np.array_equal(nan_x, nan_y):
            report.mismatched.append(f"{key}: NaN in different places")
            continue
        err = np.where(nan_x, 0.0, np.abs(y - x))
        bound = atol + rtol * np.abs(np.where(nan_x, 0.0, x))
        bad = err > bound
        if bad.any():
            worst = np.unravel_index(np.argmax(err - bound), err.shape)
            where = f" at {tuple(int(i) for i in worst)}" if err.ndim else ""
            report.out_of_tolerance.append(
                f"{key}: {int(bad.sum())} of {err.size} values differ, max |difference| "
                f"{err.max():.3g}{where} (atol {atol:g}, rtol {rtol:g})"
            )
    return report
