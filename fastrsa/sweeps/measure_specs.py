"""The measures a sweep computes: "rsa" (its RDM tiles, by `method`) and the measures of
fastrsa.similarity that a store can compute from per-unit states (fastrsa.measures.from_grams),
each with its options, as `MeasureSpec`s.

A measure is written "name" or "name:option=value,option=value" (the command line's --measure;
"name,option=value,..." too, as its key is written),
a (name, {options}) pair, or a MeasureSpec. Its `key` names its tiles and similarity array in
the store: the measure's name when every option has its default, else the name followed by the
options that differ ("procrustes,alpha=0.5,score=euclidean"), so two sweeps asking for the same
measure share its tiles and different options never mix.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..measures.catalog import CATALOG
from ..measures.from_grams import SWEEP_MEASURES, grams, make_state, state_kind, tile
from ..similarity import MEASURES, OPTIONS, similarity

__all__ = [
    "FEATURE_MEASURES",
    "STORE_MEASURES",
    "MeasureSpec",
    "kind_of",
    "measure_key",
    "parse_measures",
]

# computed from each unit's features kept in the store (sweep keeps them), a piece of units at
# a time by fastrsa.similarity itself: their per-pair work needs more than a Gram
FEATURE_MEASURES = ("pwcca", "ridge", "dds")
STORE_MEASURES = ("rsa", *SWEEP_MEASURES, *FEATURE_MEASURES)
NOT_AT_SWEEP = {"attribution": "it compares attribution maps, not a layer's features"}


def kind_of(measure: str, options: dict[str, Any]) -> str:
    """The per-unit state a measure's tiles read: "features" (the unit's kept features:
    FEATURE_MEASURES, and cka with the laplacian kernel or minibatch, which need more than a
    Gram), else fastrsa.measures.from_grams.state_kind ("gram", "eig", "knn{k}")."""
    if measure in FEATURE_MEASURES:
        return "features"
    if measure == "cka" and (options.get("kernel") == "laplacian" or options.get("minibatch")):
        return "features"
    return state_kind(measure, options)


@dataclass(frozen=True)
class MeasureSpec:
    """One measure of a sweep: its name, its options (every option, defaults filled in), and
    the key of its tiles in the store ("rsa": the RDM method, e.g. "spearman")."""

    measure: str
    options: dict[str, Any] = field(default_factory=dict)
    key: str = ""

    @property
    def is_rsa(self) -> bool:
        return self.measure == "rsa"

    @property
    def distance(self) -> bool:
        """True for a distance (0: identical): procrustes with score angular or euclidean."""
        entry = CATALOG.get(self.measure)
        return bool(entry and entry.distance and self.options.get("score") != "nbs")

    @property
    def clusterable(self) -> str | None:
        """Why a taxonomy cannot cluster this measure's matrix (None: it can): asymmetric
        measures, and distances not bounded by 1 (Procrustes euclidean)."""
        if self.measure in ("cknna", "pwcca", "ridge"):
            return f"{self.key} is not symmetric (row and column models play different roles)"
        if self.distance and self.options.get("score") == "euclidean":
            return f"{self.key} is a distance in the features' units, not bounded by 1"
        return None

    def as_similarity(self, matrix: np.ndarray) -> np.ndarray:
        """The matrix as a similarity (larger: more similar): 1 - d for a distance, so that a
        clustering on 1 - similarity clusters on d itself, and rankings order by -d."""
        return 1.0 - matrix if self.distance else matrix


def _value(text: str) -> Any:
    """An option's value from the command line: a number, true/false/none, or the text."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text.strip()


def _parse_text(text: str) -> tuple[str, dict[str, Any]]:
    cut = min((i for i in (text.find(":"), text.find(",")) if i >= 0), default=len(text))
    name, rest = text[:cut], text[cut + 1 :]
    opts: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ValueError(
                f"measure {text!r}: options are written name:option=value,option=value; "
                f"got {part!r}"
            )
        opts[key.strip()] = _value(value)
    return name.strip(), opts


def _plain(value: Any) -> Any:
    """An option value as it goes into a key (ints and integral floats alike)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, list | tuple | np.ndarray):
        return tuple(_plain(v) for v in np.asarray(value).tolist())
    return value


def _written(value: Any) -> str:
    """An option's value in a key: as JSON for a scalar, a short hash for a sequence (its
    values would not make a readable file name)."""
    if isinstance(value, tuple):
        return "sha-" + hashlib.sha256(json.dumps(value).encode()).hexdigest()[:10]
    return json.dumps(value).replace('"', "")


def measure_key(measure: str, options: dict[str, Any]) -> str:
    """The store key of `measure` with `options` (all of them, defaults included)."""
    defaults = _resolved(measure, {})
    differ = {
        k: _plain(v) for k, v in sorted(options.items()) if _plain(v) != _plain(defaults.get(k))
    }
    return ",".join([measure, *(f"{k}={_written(v)}" for k, v in differ.items())])


def _resolved(measure: str, options: dict[str, Any]) -> dict[str, Any]:
    """Options with the defaults filled in; cka's debiased=None resolved as fastrsa.similarity
    does (True with minibatch, else False), so the two spellings share one key."""
    opts = {**OPTIONS[measure], **options}
    for name, value in opts.items():  # plain Python values (numpy scalars, sequences as lists)
        if isinstance(value, tuple | list | np.ndarray | np.generic):
            opts[name] = np.asarray(value).tolist()
    if measure == "cka" and opts.get("debiased") is None:  # as fastrsa.similarity resolves it
        opts["debiased"] = opts.get("minibatch") is not None
    return opts


def _check_options(measure: str, opts: dict[str, Any]) -> None:
    """Every option checked as fastrsa.similarity and the store's tiles check it (their own
    messages), on small random features, before any work."""
    k = opts.get("k")
    extra = k if isinstance(k, int) and not isinstance(k, bool) and 0 < k < 4096 else 0
    x = np.random.default_rng(0).standard_normal((2, 16 + extra, 3))
    similarity(x, measure, **opts)
    kind = kind_of(measure, opts)
    if kind == "features":
        return
    states = [make_state(kind, *grams(m, 1 << 20, centred=True, plain=True), "check") for m in x]
    tile(measure, states, None, opts, ["a", "b"], [])


def parse_measures(measures: Any, method: str) -> list[MeasureSpec]:
    """The sweep's `measures` (None: ["rsa"]) as MeasureSpecs, in order, without repeats.
    "rsa" takes the sweep's `method` (its options metric and method are the sweep's, not its
    own). ValueError naming the measure: unknown, not computable from a store (with why),
    unknown or invalid options."""
    if measures is None:
        measures = ["rsa"]
    if isinstance(measures, str | tuple | MeasureSpec):
        measures = [measures]
    out: list[MeasureSpec] = []
    for item in measures:
        if isinstance(item, MeasureSpec):
            spec = item
        else:
            if isinstance(item, str):
                name, opts = _parse_text(item)
            elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], dict):
                name, opts = item[0], dict(item[1])
            else:
                raise TypeError(
                    f"measures: each is a name, 'name:option=value,...' or (name, options); "
                    f"got {item!r}"
                )
            if name not in MEASURES:
                raise ValueError(f"measures: unknown measure {name!r}; choose from {MEASURES}")
            if name in NOT_AT_SWEEP:
                raise ValueError(
                    f"measures: {name!r} is not computed by a sweep: {NOT_AT_SWEEP[name]}; "
                    f"use fastrsa.similarity(features, {name!r}) in memory"
                )
            if name == "rsa":
                if opts:
                    raise ValueError(
                        "measures: 'rsa' takes the sweep's method and metric "
                        f"(method={method!r}); got options {sorted(opts)}"
                    )
                spec = MeasureSpec("rsa", {"method": method}, method)
            else:
                unknown = sorted(set(opts) - set(OPTIONS[name]))
                if unknown:
                    raise ValueError(
                        f"measures: {name!r} has no option(s) {unknown}; its options are "
                        f"{', '.join(OPTIONS[name])}"
                    )
                full = _resolved(name, opts)
                try:
                    _check_options(name, full)
                except (TypeError, ValueError) as err:
                    raise ValueError(f"measures: {name!r}: {err}") from None
                spec = MeasureSpec(name, full, measure_key(name, full))
        if spec.key not in [s.key for s in out]:
            out.append(spec)
    return out
