"""Reading transfer-affinity files: {(source, target): value} from the JSON of
shared/data/taskonomy ({"affinity": {"source__target": value}}) or a CSV (source, target, value).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["check_affinity", "load_affinities"]


def check_affinity(value: Any, key: str, where: str, error: type[Exception]) -> float:
    """A finite number (bool and strings are not numbers here); `error` naming `where` and the
    key otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise error(
            f"{where}: the affinity of {key!r} is {value!r} ({type(value).__name__}); expected a "
            "number"
        )
    if isinstance(value, (complex, np.complexfloating)):
        raise error(f"{where}: the affinity of {key!r} is complex ({value!r}); expected a number")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{where}: the affinity of {key!r} is {out}; it must be finite")
    return out


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} appears twice")
        seen[key] = value
    return seen


def load_affinities(path: str | os.PathLike) -> dict[tuple[str, str], float]:
    """Transfer affinities {(source, target): value} from JSON ({"affinity": {"s__t": v}} as in
    shared/data/taskonomy, or the inner mapping itself) or CSV (columns source, target, value).

    Every value must be a finite number (JSON true/false, strings, null, NaN and Infinity are
    refused); keys must be "source__target" with both names non-empty, and appear once. Errors
    (ValueError) name the file and the key or CSV line.
    """
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise ValueError(f"affinities: {path} is a folder; expected a .json or .csv file")
        raise FileNotFoundError(f"affinities: no such file: {path}")
    where = f"affinities: {path}"
    out: dict[tuple[str, str], float] = {}
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                missing = {"source", "target", "value"} - set(reader.fieldnames or ())
                if missing:
                    raise ValueError(
                        f"{where}: missing column(s) {sorted(missing)}; expected a header line "
                        "source,target,value"
                    )
                for row in reader:
                    line = reader.line_num
                    source, target, text = row["source"], row["target"], row["value"]
                    if source is None or target is None or text is None:
                        raise ValueError(f"{where}: line {line} has too few fields")
                    source, target = source.strip(), target.strip()
                    key = f"{source}__{target}"
                    if not source or not target:
                        raise ValueError(f"{where}: line {line} has an empty source or target")
                    try:
                        value = float(text)
                    except ValueError:
                        raise ValueError(
                            f"{where}: line {line}: the affinity of {key!r} is {text!r}; "
                            "expected a number"
                        ) from None
                    if (source, target) in out:
                        raise ValueError(f"{where}: line {line}: {key!r} appears twice")
                    out[(source, target)] = check_affinity(
                        value, key, f"{where}: line {line}", ValueError
                    )
        else:
            try:
                data = json.loads(
                    path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates
                )
            except ValueError as err:
                raise ValueError(f"{where} is not valid JSON ({err})") from None
            table = data.get("affinity", data) if isinstance(data, dict) else data
            if not isinstance(table, dict):
                raise ValueError(
                    f"{where}: expected an object of 'source__target': value; got "
                    f"{type(table).__name__}"
                )
            for key, value in table.items():
                source, sep, target = key.partition("__")
                if not sep or not source or not target or "__" in target:
                    raise ValueError(
                        f"{where}: key {key!r} is not 'source__target' (two non-empty names "
                        "joined by one double underscore)"
                    )
                out[(source, target)] = check_affinity(value, key, where, ValueError)
    except UnicodeDecodeError as err:
        raise ValueError(f"{where} is not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise ValueError(f"{where}: cannot read it ({err.strerror or err})") from None
    if not out:
        raise ValueError(f"{where} holds no affinities")
    return out
