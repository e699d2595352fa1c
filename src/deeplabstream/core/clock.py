"""The one host clock every process stamps frames, poses and device records with."""

from __future__ import annotations

import ctypes
import sys
import time


def host_now_ns() -> int:
    """Return the host clock: system-wide monotonic nanoseconds.

    ``perf_counter_ns`` is system-wide on Linux (CLOCK_MONOTONIC), macOS and Windows (QPC), so
    timestamps taken in different processes can be subtracted.
    """
    return time.perf_counter_ns()


#: ``prctl`` option that sets the calling thread's timer slack (linux/prctl.h).
_PR_SET_TIMERSLACK = 29


def precise_timers() -> bool:
    """Let this thread's sleeps end when asked, not up to 50 us later; True where it applied.

    Linux lets a normal thread's timers fire up to its timer slack late (50 us by default) so
    that wake-ups can be batched; a capture process sleeping until a frame is due, or a worker
    waking just before one, wants its wake-up on time. Threads started later inherit it.
    Elsewhere (macOS, Windows) nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):  # no libc with prctl: run with the default slack
        return False
