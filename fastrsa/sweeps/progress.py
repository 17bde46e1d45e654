"""Progress of a sweep's stages on stderr (items done / total, rate, ETA) and its closing summary
(computed, reused, time, peak memory). No dependency: a `\\r` redraw on a terminal, a line about
every 10% when enabled explicitly with stderr not a terminal (logs, CI)."""

from __future__ import annotations

import math
import sys
import time
from types import TracebackType

__all__ = ["Progress", "format_bytes", "format_seconds", "peak_rss", "summary_line"]

_REDRAW_EVERY = 0.1  # seconds between terminal redraws (the last item always redraws)


class Progress:
    """A progress bar of one stage, e.g. `Progress(40, "rdms")` -> `rdms: 12/40 (30%) 2.1/s ETA
    13 s` on stderr.

    enabled: None draws only when stderr is a terminal; True draws anyway (a line per ~10% when
    it is not); False counts silently. Use it as a context manager or call `close()`, which
    prints the final line (`... in 19 s`). Holds a few numbers.
    """

    def __init__(self, total: int, desc: str, enabled: bool | None = None) -> None:
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ValueError(f"total: expected an int >= 0, got {total!r}")
        self.total = total
        self.desc = str(desc)
        self.done = 0
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self._tty = self.enabled and sys.stderr.isatty()
        self._start = time.perf_counter()
        self._drawn = -math.inf  # when the terminal line was last redrawn
        self._width = 0  # length of the terminal line now shown (to blank a longer old one)
        self._step = 0  # tenths of total already reported (not a terminal)
        self._closed = False

    def update(self, k: int = 1) -> None:
        """Count `k` more items done and redraw when due."""
        self.done += k
        if not self.enabled or self._closed:
            return
        if self._tty:
            now = time.perf_counter()
            if now - self._drawn >= _REDRAW_EVERY or self.done >= self.total:
                self._drawn = now
                self._draw(self.line())
        elif self.total and self.done < self.total:  # the last line is close()'s
            step = min(10, self.done * 10 // self.total)
            if step > self._step:
                self._step = step
                self._write(self.line() + "\n")

    def line(self, final: bool = False) -> str:
        """The text shown now: `desc: done/total (pct%) rate ETA ...` (`in <elapsed>` if final)."""
        elapsed = time.perf_counter() - self._start
        parts = [f"{self.desc}: {self.done}/{self.total}"]
        if self.total:
            parts.append(f"({100 * self.done // self.total}%)")
        rate = self.done / elapsed if elapsed > 0 and self.done else 0.0
        if rate:
            parts.append(f"{rate:.1f}/s" if rate >= 1 else f"{1 / rate:.1f} s/item")
        if final:
            parts.append(f"in {format_seconds(elapsed)}")
        elif self.done < self.total:
            left = self.total - self.done
            parts.append(f"ETA {format_seconds(left / rate)}" if rate else "ETA ?")
        return " ".join(parts)

    def close(self) -> None:
        """Print the final line (once)."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        if self._tty:
            self._draw(self.line(final=True))
            self._write("\n")
        else:
            self._write(self.line(final=True) + "\n")

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _draw(self, text: str) -> None:
        pad = " " * max(0, self._width - len(text))
        self._width = len(text)
        self._write("\r" + text + pad)

    @staticmethod
    def _write(text: str) -> None:
        stream = sys.stderr  # looked up each time: tests and the CLI may replace it
        stream.write(text)
        stream.flush()


def peak_rss() -> int:
    """Peak resident memory of this process so far, in bytes (children, e.g. Ray workers, not
    included); 0 where the platform does not say."""
    try:
        import resource
    except ImportError:  # Windows
        try:
            import psutil

            return int(getattr(psutil.Process().memory_info(), "peak_wset", 0))
        except ImportError:
            return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # Linux: KiB


def format_seconds(seconds: float) -> str:
    """`4.2 s`, `1m 04s`, `2h 03m`."""
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def format_bytes(n: int) -> str:
    """`512 B`, `3.0 KiB`, `1.9 GiB` (binary units)."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def summary_line(computed: int, reused: int, seconds: float, peak: int) -> str:
    """The sweep's closing line, e.g. `computed 12, reused 30 in 1m 04s; peak memory 1.9 GiB`;
    `peak` in bytes (peak_rss())."""
    return (
        f"computed {computed}, reused {reused} in {format_seconds(seconds)}; "
        f"peak memory {format_bytes(peak)}"
    )
