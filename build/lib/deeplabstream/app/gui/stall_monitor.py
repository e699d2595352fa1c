"""How long the window goes without answering: a timer that measures the event loop's stalls.

A :class:`StallMonitor` ticks every :data:`TICK_MS` on the GUI thread. Between two ticks the
event loop ran everything else the window had to do (painting, the display and service timers,
clicks). Each tick records two figures of the time since the previous one:

- ``gap``: the wall-clock time beyond the tick's own interval: how long a click waited at most
  before the window could take it. It includes everything that kept the GUI thread from
  running: its own work, a blocking call, another thread of the process holding Python's GIL,
  and the operating system giving the processor to other programs (a loaded machine).
- ``busy``: the processor time the GUI thread itself used meanwhile (``time.thread_time``): the
  window's own work. Unlike the gap, it does not grow when other programs load the machine, so
  it is the figure a test can bound; the gap is the figure a user feels.

Each tick also notes the processor time the process's other threads used (a background thread
that holds the GIL for long stretches stalls the window without the GUI thread computing) and,
where Linux says it (``/proc/thread-self/schedstat``), how long the GUI thread was ready to run
but waited for a processor (``queued``: other programs had the processors). The gap less that
wait is the window's ``own`` stall: its work, a blocking call, a wait for the GIL or the X
server; it does not grow with the machine's load the way the gap does. Stalls over
:data:`REPORT_MS` are kept (the newest :data:`KEPT_STALLS`) and logged.
"""

from __future__ import annotations

import logging
import time
from collections import deque
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
    """One gap between ticks longer than :data:`REPORT_MS`.

    Attributes
    ----------
    at_s
        When it ended (``time.monotonic()``).
    gap_ms
        Wall-clock time the event loop did not answer (beyond the tick interval).
    busy_ms
        Processor time the GUI thread used meanwhile.
    other_threads_ms
        Processor time the process's other threads used meanwhile.
    queued_ms
        Time the GUI thread was ready to run but waited for a processor (other programs had
        them); None where the system does not say.
    """

    at_s: float
    gap_ms: float
    busy_ms: float
    other_threads_ms: float
    queued_ms: float | None = None

    @property
    def own_ms(self) -> float:
        """Return the gap less the wait for a processor: the window's own part of the stall."""
        return max(0.0, self.gap_ms - (self.queued_ms or 0.0))

    def describe(self) -> str:
        """Say what the stall was, in one line."""
        queued = (
            "" if self.queued_ms is None else f", waited {self.queued_ms:.0f} ms for a processor"
        )
        return (
            f"the window did not answer for {self.gap_ms:.0f} ms (its GUI thread computed "
            f"{self.busy_ms:.0f} ms{queued}; its other threads computed "
            f"{self.other_threads_ms:.0f} ms)"
        )


class StallMonitor(QObject):
    """Measure the event loop's stalls on the GUI thread (see the module's description).

    Parameters
    ----------
    tick_ms
        How often the monitor's timer fires.
    report_ms
        Gaps longer than this are kept in :attr:`stalls` and logged.
    parent
        The Qt parent (the window), which ends the timer with it.
    """

    def __init__(
        self,
        tick_ms: int = TICK_MS,
        report_ms: float = REPORT_MS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.tick_ms = tick_ms
        self.report_ms = report_ms
        self.stalls: deque[Stall] = deque(maxlen=KEPT_STALLS)
        self.largest_gap_ms = 0.0
        self.largest_busy_ms = 0.0
        self.largest_own_ms = 0.0  # gap less the wait for a processor (see Stall.own_ms)
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
        self.ticks = 0
        self._mark()

    def summary(self) -> str:
        """Say the largest figures, in one line (for the log and for tests)."""
        return (
            f"window responsiveness: largest stall {self.largest_gap_ms:.0f} ms (less the waits "
            f"for a processor: {self.largest_own_ms:.0f} ms), largest "
            f"GUI-thread work between two answers {self.largest_busy_ms:.0f} ms, "
            f"{len(self.stalls)} stall(s) over {self.report_ms:.0f} ms kept, {self.ticks} ticks"
        )

    def _mark(self) -> None:
        self._last_wall = time.perf_counter()
        self._last_thread = time.thread_time()
        self._last_process = time.process_time()
        self._last_queued = queued_ns()

    def _tick(self) -> None:
        wall, thread, process = time.perf_counter(), time.thread_time(), time.process_time()
        queued, last_queued = queued_ns(), self._last_queued
        gap_ms = max(0.0, (wall - self._last_wall) * 1000 - self.tick_ms)
        busy_ms = (thread - self._last_thread) * 1000
        others_ms = max(0.0, (process - self._last_process) * 1000 - busy_ms)
        self._last_wall, self._last_thread, self._last_process = wall, thread, process
        self._last_queued = queued
        waited = None if queued is None or last_queued is None else (queued - last_queued) / 1e6
        stall = Stall(time.monotonic(), gap_ms, busy_ms, others_ms, waited)
        self.ticks += 1
        self.largest_gap_ms = max(self.largest_gap_ms, gap_ms)
        self.largest_busy_ms = max(self.largest_busy_ms, busy_ms)
        self.largest_own_ms = max(self.largest_own_ms, stall.own_ms)
        if gap_ms <= self.report_ms:
            return
        self.stalls.append(stall)
        if stall.at_s >= self._next_log:
            self._next_log = stall.at_s + LOG_EVERY_S
            log.info("%s", stall.describe())
