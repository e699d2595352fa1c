"""Time: the one host clock, the precision of this process's timers, and timings' statistics.

:func:`host_now_ns` stamps frames, poses and device records in every process;
:func:`percentiles` and :class:`DurationHistogram` give timings as reports and session.json
show them.
"""

from __future__ import annotations

import atexit
import ctypes
import math
import os
import time
from collections.abc import Iterable
from typing import Any

import numpy as np


def host_now_ns() -> int:
    """Return the host clock: system-wide monotonic nanoseconds, comparable across processes."""
    # System-wide on Linux (CLOCK_MONOTONIC), macOS and Windows (QPC): processes can subtract.
    return time.perf_counter_ns()


#: ``prctl`` option that sets the calling thread's timer slack (linux/prctl.h).
_PR_SET_TIMERSLACK = 29
#: The timer resolution a process of the loop asks Windows for (``timeBeginPeriod``), in ms.
WINDOWS_TIMER_MS = 1


def precise_timers() -> dict[str, Any]:
    """Let this process's sleeps end when asked, not a timer tick later; say what applied.

    Returns ``method``, ``asked``, ``applied``, ``reason`` for ``session.json``. docs/platforms.md.
    """
    windll = getattr(ctypes, "WinDLL", None)
    if windll is not None:
        return _windows_timer_resolution(windll)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError, TypeError):  # no libc with prctl (macOS, Windows)
        return {"method": "none", "asked": None, "applied": False, "reason": _NOTHING_TO_SET}
    applied = bool(prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0) == 0)
    reason = "" if applied else os.strerror(ctypes.get_errno())
    return {"method": "timer slack", "asked": "1 us", "applied": applied, "reason": reason}


_NOTHING_TO_SET = "this platform's timers need no setting (no timer slack or resolution to set)"


def _windows_timer_resolution(windll: Any) -> dict[str, Any]:
    """``timeBeginPeriod(WINDOWS_TIMER_MS)`` now, ``timeEndPeriod`` at this process's exit."""
    asked = f"{WINDOWS_TIMER_MS} ms"
    try:
        winmm = windll("winmm")
        if winmm.timeBeginPeriod(WINDOWS_TIMER_MS) != 0:  # TIMERR_NOERROR
            return {
                "method": "timeBeginPeriod",
                "asked": asked,
                "applied": False,
                "reason": "timeBeginPeriod refused the resolution",
            }
    except (OSError, AttributeError) as error:
        return {"method": "timeBeginPeriod", "asked": asked, "applied": False, "reason": str(error)}
    atexit.register(winmm.timeEndPeriod, WINDOWS_TIMER_MS)
    return {"method": "timeBeginPeriod", "asked": asked, "applied": True, "reason": ""}


def percentiles(
    values: Iterable[float | None], *, digits: int = 3, with_count: bool = False
) -> dict[str, float] | None:
    """Return p50 / p95 / p99 / max (and ``count`` with ``with_count``) of the finite ``values``.

    None and NaN are left out; None when nothing is left.
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    p50, p95, p99 = np.percentile(np.asarray(finite), [50, 95, 99])
    figures: dict[str, float] = {
        "p50": round(float(p50), digits),
        "p95": round(float(p95), digits),
        "p99": round(float(p99), digits),
        "max": round(max(finite), digits),
    }
    if with_count:
        figures["count"] = len(finite)
    return figures


class DurationHistogram:
    """Durations counted in fixed log-spaced bins: percentiles in constant memory.

    From 1 us to 1000 s; percentiles within 0.6 % (half a bin), ``max`` exact.
    """

    BINS_PER_DECADE = 200
    SMALLEST_NS = 1_000  # 1 us: anything shorter counts in the first bin
    DECADES = 9  # 1 us .. 1000 s

    def __init__(self) -> None:
        self.counts = [0] * (self.BINS_PER_DECADE * self.DECADES + 1)
        self.count = 0
        self.max_ns = 0
        self._scale = self.BINS_PER_DECADE / math.log(10.0)

    def add(self, duration_ns: int) -> None:
        """Count one duration (nanoseconds; negative ones count as 0)."""
        if duration_ns > self.max_ns:
            self.max_ns = duration_ns
        self.count += 1
        if duration_ns <= self.SMALLEST_NS:
            self.counts[0] += 1
            return
        index = int(math.log(duration_ns / self.SMALLEST_NS) * self._scale) + 1
        self.counts[min(index, len(self.counts) - 1)] += 1

    def merge(self, other: DurationHistogram) -> None:
        """Add ``other``'s counts to these."""
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.max_ns = max(self.max_ns, other.max_ns)

    def percentile_ms(self, q: float) -> float:
        """Return the ``q``-th percentile (0-100) in ms: the middle of its bin, at most the max."""
        if not self.count:
            return math.nan
        rank = q / 100.0 * self.count
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if count and seen >= rank:
                return min(self._middle_ns(index), self.max_ns) / 1e6
        return self.max_ns / 1e6

    def _middle_ns(self, index: int) -> float:
        if index == 0:
            return float(self.SMALLEST_NS)
        return self.SMALLEST_NS * 10.0 ** ((index - 0.5) / self.BINS_PER_DECADE)

    def figures(self, digits: int = 3) -> dict[str, float] | None:
        """Return p50 / p95 / p99 / max (ms) and the count, as :func:`percentiles` does."""
        if not self.count:
            return None
        return {
            "p50": round(self.percentile_ms(50), digits),
            "p95": round(self.percentile_ms(95), digits),
            "p99": round(self.percentile_ms(99), digits),
            "max": round(self.max_ns / 1e6, digits),
            "count": self.count,
        }
