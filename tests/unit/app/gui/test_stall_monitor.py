"""The window's stall monitor: what of a stall is the window's own, whatever the machine's load.

Each test makes the stall on purpose on the GUI thread (a blocking sleep, a computation) and
checks how the monitor splits it; nothing is bounded by how fast the machine is, only by the
time the test itself asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from PyQt5.QtCore import QTimer

from deeplabstream.app.gui.stall_monitor import StallMonitor, queued_ns

BLOCK_S = 0.5

needs_schedstat = pytest.mark.skipif(
    queued_ns() is None, reason="this system does not say how long a thread waited to run"
)


def _stall_with(qtbot, monitor: StallMonitor, work: Callable[[], None]) -> None:
    """Start ``monitor``, run ``work`` once on the GUI thread, and let a few ticks follow."""
    monitor.start()
    done: list[bool] = []

    def run() -> None:
        work()
        done.append(True)

    QTimer.singleShot(0, run)
    qtbot.waitUntil(lambda: bool(done), timeout=30_000)
    ticks = monitor.ticks
    qtbot.waitUntil(lambda: monitor.ticks >= ticks + 3, timeout=30_000)
    monitor.stop()


@needs_schedstat
def test_a_blocking_call_on_the_gui_thread_is_the_windows_own_stall(qtbot) -> None:
    """A sleep computes nothing (``busy``) yet the window cannot answer: it is counted.

    No party the window waits for worked meanwhile (``explain`` says 0): by default that is the
    process's other threads, which in a test worker include threads earlier tests left behind.
    """
    monitor = StallMonitor(explain=lambda: 0.0)
    _stall_with(qtbot, monitor, lambda: time.sleep(BLOCK_S))
    (stall,) = [s for s in monitor.stalls if s.gap_ms >= BLOCK_S * 1000 - monitor.tick_ms]
    assert stall.busy_ms < 100.0  # it slept
    # All of the sleep is the window's, however long the thread then waited for a processor.
    assert stall.blocked_ms is not None and stall.blocked_ms >= 0.8 * BLOCK_S * 1000
    assert monitor.largest_window_ms is not None
    assert monitor.largest_window_ms >= 0.8 * BLOCK_S * 1000
    assert "blocked" in stall.describe() and "own part" in monitor.summary()


@needs_schedstat
def test_a_wait_the_other_parties_explain_is_not_the_windows(qtbot) -> None:
    """The same sleep while the parties the window waits for worked (or queued) as long."""
    monitor = StallMonitor(explain=lambda: 10 * BLOCK_S * 1000)  # they were busy all along
    _stall_with(qtbot, monitor, lambda: time.sleep(BLOCK_S))
    assert monitor.largest_gap_ms >= BLOCK_S * 1000 - monitor.tick_ms
    assert monitor.largest_window_ms is not None
    assert monitor.largest_window_ms == pytest.approx(monitor.largest_busy_ms)


@needs_schedstat
def test_work_on_the_gui_thread_is_the_windows_whatever_else_explains(qtbot) -> None:
    """Processor time of the GUI thread is never explained away."""
    monitor = StallMonitor(explain=lambda: 10 * BLOCK_S * 1000)

    def compute() -> None:
        started = time.thread_time()
        while time.thread_time() - started < BLOCK_S:  # BLOCK_S of the thread's own time
            pass

    _stall_with(qtbot, monitor, compute)
    assert monitor.largest_busy_ms >= BLOCK_S * 1000
    assert monitor.largest_window_ms is not None
    assert monitor.largest_window_ms >= BLOCK_S * 1000
