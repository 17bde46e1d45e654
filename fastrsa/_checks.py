"""Argument checks shared by the whole package, each written once.

Every check raises TypeError (wrong kind) or ValueError (wrong value) with a message that names
the argument (or the command-line flag, given as `name`), what was expected and what came.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "LINKAGES",
    "check_choice",
    "check_count",
    "check_level",
    "check_linkage",
    "check_n_boot",
    "check_seed",
    "draw_seed",
    "one_line",
]

# scipy.cluster.hierarchy.linkage's methods that take a condensed distance vector
LINKAGES = ("average", "single", "complete", "weighted", "ward")


def check_choice(value: Any, choices: Iterable[Any], name: str, extra: str = "") -> Any:
    """`value` when it is one of `choices`; ValueError "NAME must be one of 'a', 'b'; got X"
    otherwise (`extra`, e.g. " or None", is added after the list)."""
    options = tuple(choices)
    try:
        found = value in options
    except (TypeError, ValueError):  # an incomparable value (e.g. an array)
        found = False
    if not found or (isinstance(value, (bool, np.bool_)) and not any(o is value for o in options)):
        listed = ", ".join(map(repr, options))
        raise ValueError(f"{name} must be one of {listed}{extra}; got {value!r}")
    return value


def _is_int(value: Any) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer))


def check_count(value: Any, name: str, minimum: int = 1, meaning: str = "") -> int:
    """`value` as an int >= `minimum`; `meaning` (e.g. " (0: no bootstrap)") follows the bound
    in the message. bool is not a count."""
    if not _is_int(value):
        raise TypeError(
            f"{name} must be an int >= {minimum}{meaning}; got {value!r} ({type(value).__name__})"
        )
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}{meaning}; got {value}")
    return int(value)


def check_n_boot(n_boot: Any, name: str = "n_boot") -> int:
    """`n_boot` as an int >= 0 (0: no bootstrap)."""
    return check_count(n_boot, name, 0, " (0: no bootstrap)")


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """`seed` as None or an int >= 0."""
    if seed is None:
        return None
    if not _is_int(seed):
        raise TypeError(f"{name} must be an int >= 0 or None; got {seed!r} ({type(seed).__name__})")
    if seed < 0:
        raise ValueError(f"{name} must be an int >= 0 or None; got {seed}")
    return int(seed)


def draw_seed() -> int:
    """A fresh seed (from the OS's entropy) to record with a run that was given none."""
    return int(np.random.SeedSequence().generate_state(1)[0])


def check_level(level: Any, name: str = "level") -> float:
    """`level` as a float in (0, 1); TypeError for a non-number (bool included), ValueError
    outside (0, 1) (NaN and complex included)."""
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, (int, float, np.number)):
        raise TypeError(
            f"{name} must be a number in (0, 1); got {level!r} ({type(level).__name__})"
        )
    if isinstance(level, (complex, np.complexfloating)) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"{name} must lie in (0, 1); got {level!r}")
    return float(level)


def check_linkage(linkage: Any, name: str = "linkage") -> str:
    """`linkage` as one of LINKAGES (scipy.cluster.hierarchy.linkage's methods)."""
    return check_choice(linkage, LINKAGES, name)


def one_line(err: BaseException) -> str:
    """An error's message on one line (an OSError as "reason: file"); its type's name when it
    has no message."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        text = f"{err.strerror}: {err.filename}"
    else:
        text = str(err)
    return " ".join(text.split()) or type(err).__name__
