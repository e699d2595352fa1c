"""The one host clock every process stamps frames, poses and device records with."""

from __future__ import annotations

import time


def host_now_ns() -> int:
    """Return the host clock: system-wide monotonic nanoseconds.

    ``perf_counter_ns`` is system-wide on Linux (CLOCK_MONOTONIC), macOS and Windows (QPC), so
    timestamps taken in different processes can be subtracted.
    """
    return time.perf_counter_ns()
