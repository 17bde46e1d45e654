"""The one memory budget: how much working memory a chunked path may hold at once.

`set_memory_budget(value)` / `get_memory_budget()` hold one process-wide setting; `memory=` on
`fastrsa.rdms`, `fastrsa.compare` and `fastrsa.rank_transform` overrides it for one call. The
default comes from the environment variable FASTRSA_MEMORY (same syntax), else a quarter of the
machine's physical memory (for work on a GPU, a quarter of that GPU's memory). Every chunk size
in fastrsa derives from this number (host-to-GPU streaming pieces, the kernels' batch chunks,
sort workspaces, partial sums); nothing else sizes chunks. Kernels never read it: the API layer
passes it to them as `chunk_bytes`.

Values: an int number of bytes, or a string such as "4GB", "512MiB", "1.5G", "65536" (decimal
units kB/MB/GB/TB = 1000**k, binary units KiB/MiB/GiB/TiB = 1024**k; a bare K/M/G/T is decimal,
case is ignored), or None for the default.
"""

from __future__ import annotations

import math
import os
import re
import sys
from typing import Any

ENV = "FASTRSA_MEMORY"
DEFAULT_FRACTION = 0.25  # of physical memory, when FASTRSA_MEMORY is not set

_UNITS = {"": 1, "b": 1}
for _k, _p in enumerate("kmgtp", start=1):
    _UNITS[_p] = _UNITS[_p + "b"] = 1000**_k
    _UNITS[_p + "ib"] = 1024**_k
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)

_setting: int | None = None  # set_memory_budget's value; None: the default


def parse_memory(value: Any, name: str = "memory budget") -> int:
    """Bytes from an int (or integral float) or a string like "4GB" / "512MiB"; a ValueError
    naming `name` for anything else (zero, negative, not a number, an unknown unit)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number of bytes or a string like '4GB'; got {value!r}")
    if isinstance(value, str):
        match = _PATTERN.match(value)
        unit = match and match.group(2).lower()
        if not match or unit not in _UNITS:
            raise ValueError(
                f"{name} must be a number of bytes or a string like '4GB', '512MiB'; got {value!r}"
            )
        number = float(match.group(1)) * _UNITS[unit]
    elif isinstance(value, int | float) or hasattr(value, "__index__"):
        number = float(value)
    else:
        raise ValueError(
            f"{name} must be a number of bytes or a string like '4GB'; got {type(value).__name__}"
        )
    if not math.isfinite(number) or number < 1:
        raise ValueError(f"{name} must be at least 1 byte; got {value!r}")
    return int(number)


def physical_memory() -> int:
    """Bytes of physical memory of this machine."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
        try:
            import psutil

            return int(psutil.virtual_memory().total)
        except ImportError:
            return 8 << 30  # a conservative guess


def default_memory_budget() -> int:
    """FASTRSA_MEMORY if set (ValueError naming it when malformed), else DEFAULT_FRACTION of the
    physical memory."""
    env = os.environ.get(ENV)
    if env is not None and env.strip():
        return parse_memory(env, ENV)
    return int(physical_memory() * DEFAULT_FRACTION)


def set_memory_budget(value: int | str | None) -> None:
    """Set the working-memory budget (bytes, or a string like "4GB", "512MiB") that bounds every
    chunked path of fastrsa; None restores the default (FASTRSA_MEMORY, else a quarter of the
    physical memory). ValueError for zero, negative or malformed values."""
    global _setting
    _setting = None if value is None else parse_memory(value, "memory budget")


def get_memory_budget() -> int:
    """The working-memory budget in bytes: set_memory_budget's value, else the default
    (FASTRSA_MEMORY, else a quarter of the physical memory)."""
    return default_memory_budget() if _setting is None else _setting


def budget_for(memory: int | str | None, device: Any = None) -> int:
    """The budget of one call computing on `device` (a torch.device, or None for the host):
    `memory` (the call's `memory=` argument), else the setting, else FASTRSA_MEMORY, else
    DEFAULT_FRACTION of the memory of the device doing the work (the GPU's own for CUDA)."""
    if memory is not None:
        return parse_memory(memory, "memory")
    if _setting is not None or os.environ.get(ENV, "").strip():
        return get_memory_budget()
    if device is not None and getattr(device, "type", None) == "cuda":
        total = sys.modules["torch"].cuda.get_device_properties(device).total_memory
        return int(total * DEFAULT_FRACTION)
    return default_memory_budget()
