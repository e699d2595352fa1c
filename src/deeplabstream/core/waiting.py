"""Wait until a pipe, a connection or a process sentinel is readable: one call on every platform."""

from __future__ import annotations

from collections.abc import Sequence
from multiprocessing.connection import wait as wait_for_objects
from typing import Any

from deeplabstream.core.timing import host_now_ns

#: Taken off a timeout in milliseconds so that a rounding-up wait never sleeps past it.
_ROUNDING_MARGIN_MS = 0.01


def wait_readable(objects: Sequence[Any], timeout_s: float, precise: bool = False) -> list[Any]:
    """Return those of ``objects`` that are readable, waiting at most ``timeout_s`` (0: only look).

    ``precise``: end at the deadline to the microsecond; otherwise up to a millisecond late.
    """
    if timeout_s <= 0:
        return list(wait_for_objects(objects, 0))
    if not precise:
        return list(wait_for_objects(objects, timeout_s))
    deadline = host_now_ns() + int(timeout_s * 1e9)
    whole_ms = int(timeout_s * 1000)
    if whole_ms >= 1:
        ready = wait_for_objects(objects, (whole_ms - _ROUNDING_MARGIN_MS) / 1000)
        if ready:
            return list(ready)
    while True:
        ready = wait_for_objects(objects, 0)
        if ready or host_now_ns() >= deadline:
            return list(ready)
