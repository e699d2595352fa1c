"""The one host clock every process stamps frames, poses and device records with."""

from __future__ import annotations

import atexit
import ctypes
import os
import time
from typing import Any


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
