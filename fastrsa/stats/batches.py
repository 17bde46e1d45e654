"""Any count in bounded memory: random permutations and bootstrap resamples drawn a block of
rows at a time, and what must be held whole checked against the budget before any work.

`draw_rows` draws blocks of rows in sequence from one `np.random.default_rng(seed)`; numpy's
generators consume their stream row after row (`permuted` shuffles row by row, `integers` draws
value by value), so the blocks concatenated are exactly one whole draw of (K, n): results for a
seed do not depend on the budget or the block size. `check_held` refuses, with `OverBudget`, an
output that grows with the count (a returned null distribution, bootstrap samples held by the
result) when it does not fit the budget, naming the argument (or the command-line flag), the
count, the bytes and the budget, before anything is allocated.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .._condensed import n_from_condensed

__all__ = [
    "API_BUDGET",
    "CLI_BUDGET",
    "SETTING_BUDGET",
    "OverBudget",
    "block_rows",
    "check_held",
    "draw_rows",
    "images_of",
    "rows_shape",
    "size_text",
]

# How a caller raises the budget: the API's ways (with and without a memory= argument), the CLI's
API_BUDGET = "memory=, fastrsa.set_memory_budget or FASTRSA_MEMORY"
SETTING_BUDGET = "fastrsa.set_memory_budget or FASTRSA_MEMORY"
CLI_BUDGET = "set FASTRSA_MEMORY, e.g. FASTRSA_MEMORY=16GB"


def size_text(nbytes: int) -> str:
    """Bytes as a short decimal figure: "512 B", "3.20 MB", "8.00 TB"."""
    value = float(nbytes)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            return f"{int(value)} B" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


class OverBudget(ValueError):
    """A count whose output must be held whole and does not fit the memory budget. A ValueError
    (the `fastrsa` command prints it as one line, exit 2); `renamed(flag)` is the same refusal
    in the words of a command-line flag."""

    def __init__(
        self, argument: str, count: int, what: str, need: int, budget: int, fits: int, how: str
    ) -> None:
        self.argument, self.count, self.what = argument, count, what
        self.need, self.budget, self.fits, self.how = need, budget, fits, how
        fewer = f"ask for at most {fits}" if fits > 0 else "no count fits"
        super().__init__(
            f"{argument}: {count} {what} need {size_text(need)} held at once, over the memory "
            f"budget of {size_text(budget)}: {fewer}, or raise the budget ({how})"
        )

    def renamed(self, argument: str, how: str = CLI_BUDGET) -> OverBudget:
        """The same refusal naming `argument` (e.g. "--bootstrap") and how to raise the budget
        there."""
        return OverBudget(argument, self.count, self.what, self.need, self.budget, self.fits, how)


def check_held(
    count: int,
    per_item: int,
    budget: int,
    argument: str,
    what: str,
    fixed: int = 0,
    how: str = API_BUDGET,
) -> int:
    """The bytes `count` items of `per_item` bytes (plus `fixed`) need held at once; OverBudget
    naming `argument` when that exceeds `budget`. Python ints: no overflow for any count."""
    need = int(count) * int(per_item) + int(fixed)
    if need > budget:
        fits = max(0, (budget - fixed) // per_item) if per_item else 0
        raise OverBudget(argument, int(count), what, need, int(budget), int(fits), how)
    return need


def block_rows(count: int, per_row: int, share: int) -> int:
    """Rows per block: as many of `per_row` bytes as `share` holds, at least 1, at most
    `count`."""
    return int(max(1, min(count, share // max(1, per_row))))


def draw_rows(kind: str, count: int, n: int, seed: int | None, block: int) -> Iterator[np.ndarray]:
    """Yields (c, n) int64 blocks of at most `block` rows, `count` rows in all, drawn in sequence
    from `np.random.default_rng(seed)`: kind "permutations" (`rng.permuted` of rows of
    arange(n), each row a permutation of the n images) or "indices" (`rng.integers(0, n, (c,
    n))`, n images drawn with replacement). Concatenated, the blocks equal one draw of (count,
    n), whatever the block size."""
    rng = np.random.default_rng(seed)
    for k0 in range(0, count, block):
        c = min(block, count - k0)
        if kind == "permutations":
            yield rng.permuted(np.broadcast_to(np.arange(n, dtype=np.int64), (c, n)), axis=1)
        else:
            yield rng.integers(0, n, size=(c, n))


def rows_shape(x: Any) -> tuple[int, int] | None:
    """(B, M) of a 2-D array or tensor (known without reading it), else None."""
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 2:
        return None
    return int(shape[0]), int(shape[1])


def images_of(m: int) -> int | None:
    """n of condensed rows of length m = n(n-1)/2, or None when m is no such length (the
    input's own check then names it)."""
    try:
        return n_from_condensed(m)
    except ValueError:
        return None
