"""How long the window goes without answering: a timer that measures the event loop's stalls.

The figures and what each includes: docs/architecture.md, "The desktop app".
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PyQt5.QtCore import QObject, Qt, QTimer

log = logging.getLogger(__name__)

TICK_MS = 15  # often enough to see a 100 ms stall as such, rare enough to cost nothing
REPORT_MS = 100.0  # the window should answer within this; longer gaps are kept and logged
KEPT_STALLS = 50
LOG_EVERY_S = 10.0  # at most one log line per this many seconds (a stall storm is one line)
SCHEDSTAT = Path("/proc/thread-self/schedstat")  # Linux: "on-cpu run-delay slices" in ns


def queued_ns() -> int | None:
    """Return how long this thread has waited, ready, for a processor (ns); None if unknown."""
    try:
        return int(SCHEDSTAT.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None


@dataclass(frozen=True)
class Stall:
    """One gap between ticks longer than :data:`REPORT_MS` (times in ms; docs/architecture.md).

    ``at_s``: when it ended (``time.monotonic()``); ``queued_ms`` None where the system does
    not say.
    """

    at_s: float
    gap_ms: float
    busy_ms: float
    other_threads_ms: float
    queued_ms: float | None = None
    explained_ms: float = 0.0

    @property
    def own_ms(self) -> float:
        """Return the gap less the wait for a processor (work, blocking calls, GIL, X server)."""
        return max(0.0, self.gap_ms - (self.queued_ms or 0.0))

    @property
    def blocked_ms(self) -> float | None:
        """Return the time the GUI thread slept on its own account; None when unknown."""
        if self.queued_ms is None:
            return None
        rest = self.gap_ms - self.busy_ms - self.queued_ms - self.explained_ms
        return max(0.0, rest)

    @property
    def window_ms(self) -> float | None:
        """Return the window's own part of the stall: its work and its blocking calls."""
        blocked = self.blocked_ms
        return None if blocked is None else self.busy_ms + blocked

    def describe(self) -> str:
        """Say what the stall was, in one line."""
        queued = (
            "" if self.queued_ms is None else f", waited {self.queued_ms:.0f} ms for a processor"
        )
        blocked = self.blocked_ms
        own = "" if blocked is None else f", blocked {blocked:.0f} ms on its own account"
        return (
            f"the window did not answer for {self.gap_ms:.0f} ms (its GUI thread computed "
            f"{self.busy_ms:.0f} ms{queued}{own}; its other threads computed "
            f"{self.other_threads_ms:.0f} ms)"
        )


class StallMonitor(QObject):
    """Measure the event loop's stalls on the GUI thread; those over ``report_ms`` are kept.

    ``explain`` returns the ms the parties the GUI thread may wait for spent since its last call
    (None: the process's other threads' processor time).
    """

    def __init__(
        self,
        tick_ms: int = TICK_MS,
        report_ms: float = REPORT_MS,
        parent: QObject | None = None,
        explain: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(parent)
        self.tick_ms = tick_ms
        self.report_ms = report_ms
        self.explain = explain
        self.stalls: deque[Stall] = deque(maxlen=KEPT_STALLS)
        self.largest_gap_ms = 0.0
        self.largest_busy_ms = 0.0
        self.largest_own_ms = 0.0  # gap less the wait for a processor (see Stall.own_ms)
        self.largest_window_ms: float | None = 0.0  # work + blocking calls (Stall.window_ms)
        self.ticks = 0
        self._last_wall = self._last_thread = self._last_process = 0.0
        self._last_queued: int | None = None
        self._next_log = 0.0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.PreciseTimer)
        self._timer.setInterval(tick_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        """Start measuring from now."""
        self.reset()
        self._timer.start()

    def stop(self) -> None:
        """Stop measuring (the figures stay)."""
        self._timer.stop()

    def reset(self) -> None:
        """Forget the figures so far; the next tick measures from now."""
        self.stalls.clear()
        self.largest_gap_ms = self.largest_busy_ms = self.largest_own_ms = 0.0
        self.largest_window_ms = 0.0
        self.ticks = 0
        self._mark()

    def summary(self) -> str:
        """Say the largest figures, in one line (for the log and for tests)."""
        window = self.largest_window_ms
        own = "" if window is None else f", largest own part (work and blocking) {window:.0f} ms"
        return (
            f"window responsiveness: largest stall {self.largest_gap_ms:.0f} ms (less the waits "
            f"for a processor: {self.largest_own_ms:.0f} ms), largest "
            f"GUI-thread work between two answers {self.largest_busy_ms:.0f} ms{own}, "
            f"{len(self.stalls)} stall(s) over {self.report_ms:.0f} ms kept, {self.ticks} ticks"
        )

    def _mark(self) -> None:
        self._last_wall = time.perf_counter()
        self._last_thread = time.thread_time()
        self._last_process = time.process_time()
        self._last_queued = queued_ns()
        if self.explain is not None:
            self.explain()  # from now on

    def _tick(self) -> None:
        wall, thread, process = time.perf_counter(), time.thread_time(), time.process_time()
        queued, last_queued = queued_ns(), self._last_queued
        gap_ms = max(0.0, (wall - self._last_wall) * 1000 - self.tick_ms)
        busy_ms = (thread - self._last_thread) * 1000
        others_ms = max(0.0, (process - self._last_process) * 1000 - busy_ms)
        explained_ms = others_ms if self.explain is None else self.explain()
        self._last_wall, self._last_thread, self._last_process = wall, thread, process
        self._last_queued = queued
        waited = None if queued is None or last_queued is None else (queued - last_queued) / 1e6
        stall = Stall(time.monotonic(), gap_ms, busy_ms, others_ms, waited, explained_ms)
        self.ticks += 1
        self._count(stall)
        if gap_ms <= self.report_ms:
            return
        self.stalls.append(stall)
        if stall.at_s >= self._next_log:
            self._next_log = stall.at_s + LOG_EVERY_S
            log.info("%s", stall.describe())

    def _count(self, stall: Stall) -> None:
        """Keep the largest figures so far."""
        self.largest_gap_ms = max(self.largest_gap_ms, stall.gap_ms)
        self.largest_busy_ms = max(self.largest_busy_ms, stall.busy_ms)
        self.largest_own_ms = max(self.largest_own_ms, stall.own_ms)
        window = stall.window_ms
        if window is None or self.largest_window_ms is None:
            self.largest_window_ms = None  # unknown on this system
        else:
            self.largest_window_ms = max(self.largest_window_ms, window)
