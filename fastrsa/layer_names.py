"""Layer names: glob patterns resolved against a model's layers (closest names for a miss), and the
tensor a layer's output stands for. Imports nothing of fastrsa: the model layers (fastrsa.zoo,
fastrsa.layers, the sweep's sources) all use it.

    select_layers(names, ["blocks.*", "head"])            # names and patterns, in model order
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from typing import Any

__all__ = ["closest_names", "first_tensor", "glob_pattern", "has_glob", "select_layers"]


def has_glob(names: list[str] | str) -> bool:
    """Whether `names` (a name or names) hold a glob pattern (a *, ? or [)."""
    names = [names] if isinstance(names, str) else names
    return any(c in name for name in names for c in "*?[")


def select_layers(
    available: list[str], requested: list[str] | str, name: str = "layers"
) -> list[str]:
    """The layers of `available` (the model's, in model order) that `requested` names: exact
    names, or glob patterns over dotted names: `*` matches within one part (stops at a dot:
    "blocks.*" is blocks.0, blocks.1, ..., not blocks.0.attn), `**` across parts ("blocks.**"
    is every submodule under blocks), `?` one character but a dot, `[1-4]` a character class,
    case-sensitive; a name that is a layer is taken as it is, even with glob characters in it.
    Each layer once, in model order. A name or pattern that matches nothing is refused, before
    any work, with a one-line ValueError naming it and the closest layer names (`name`: the
    argument, in the message)."""
    if isinstance(requested, str):
        requested = [requested]
    requested = list(requested)
    if not requested or not all(isinstance(x, str) for x in requested):
        raise ValueError(f"{name} must be a non-empty list of names; got {requested!r}")
    available = list(available)
    chosen: set[str] = set()
    for item in requested:
        if item in available:
            matched = [item]
        elif has_glob(item):
            pattern = glob_pattern(item)
            matched = [x for x in available if pattern.fullmatch(x)]
        else:
            matched = []
        if not matched:
            raise ValueError(
                f"{name}: {item!r} matches no layer of the model; {closest_names(item, available)}"
            )
        chosen.update(matched)
    return [x for x in available if x in chosen]


def glob_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression of a layer glob (see select_layers): `**` any characters, `*`
    any but a dot, `?` one but a dot, `[...]` as fnmatch reads it."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^.]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^.]")
            i += 1
        elif pattern[i] == "[" and (end := _class_end(pattern, i)) > 0:
            inner = fnmatch.translate(pattern[i : end + 1])  # "(?s:[...])\\Z"
            out.append(inner[len("(?s:") : -len(")\\Z")])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _class_end(pattern: str, i: int) -> int:
    """The index of the "]" closing the character class opened at pattern[i] (fnmatch's rules:
    a leading "!" negates, a "]" right after the opening is literal); -1 when none."""
    j = i + 1
    if pattern[j : j + 1] == "!":
        j += 1
    if pattern[j : j + 1] == "]":
        j += 1
    return pattern.find("]", j)


def closest_names(item: str, available: list[str]) -> str:
    """'closest: ...' (up to 5 names like `item`), else the first names of `available`."""
    close = difflib.get_close_matches(item, available, n=5, cutoff=0.5)
    if not close:  # a pattern: compare its literal part
        literal = "".join(c for c in item if c not in "*?[]")
        close = difflib.get_close_matches(literal, available, n=5, cutoff=0.5) if literal else []
    if close:
        return "closest: " + ", ".join(repr(x) for x in close)
    shown = ", ".join(repr(x) for x in available[:8])
    more = ", ..." if len(available) > 8 else ""
    return f"it has {shown}{more}" if available else "it has no layers"


def first_tensor(output: Any) -> Any:
    """The tensor a layer's output stands for (hidden state first): the output itself when it
    is a tensor; else the first tensor of a tuple or list, or of a dict's values (a Hugging Face
    ModelOutput), searched depth first; None when it holds none."""
    if hasattr(output, "shape") and hasattr(output, "dtype"):
        return output
    if isinstance(output, dict):
        items = list(output.values())
    elif isinstance(output, (tuple, list)):
        items = list(output)
    else:
        return None
    for item in items:
        found = first_tensor(item)
        if found is not None:
            return found
    return None
