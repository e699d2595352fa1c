"""Control messages between the main process and its workers: receive with a deadline, join."""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)


def receive(connection: Connection) -> Any:
    """One message, or None when the other side has gone."""
    try:
        return connection.recv()
    except (EOFError, OSError):
        return None


def receive_within(connection: Connection, deadline: float) -> Any:
    """One message if it arrives before ``deadline`` (time.monotonic), else None."""
    try:
        if connection.poll(max(0.0, deadline - time.monotonic())):
            return connection.recv()
    except (EOFError, OSError):
        pass
    return None


#: How often a start-up wait looks whether a stop was asked for: a person cannot tell 0.1 s.
STOP_POLL_S = 0.1

#: A start-up wait's stop callback: the reason to stop (Ctrl-C, the window closed), else None.
StopCheck = Callable[[], str | None]


class StopRequested(Exception):  # noqa: N818 - a stop asked for, not an error
    """A stop was asked for while the start-up waited; not a failure (``reason`` says which)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_stop(stop_requested: StopCheck | None) -> None:
    """Raise StopRequested when ``stop_requested`` (if any) gives a reason to stop."""
    reason = stop_requested() if stop_requested is not None else None
    if reason:
        raise StopRequested(reason)


def receive_unless_stopped(
    connection: Connection, deadline: float, stop_requested: StopCheck | None
) -> Any:
    """:func:`receive_within`, looking at ``stop_requested`` every :data:`STOP_POLL_S`.

    Returns the message, or None at the deadline or when the other side has gone. Raises
    :class:`StopRequested` as soon as ``stop_requested`` gives a reason.
    """
    while True:
        check_stop(stop_requested)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        step = min(remaining, STOP_POLL_S) if stop_requested is not None else remaining
        try:
            if connection.poll(step):
                return connection.recv()
        except (EOFError, OSError):
            return None


def join_or_terminate(process: multiprocessing.process.BaseProcess, timeout: float) -> None:
    """Wait for ``process`` to end; kill it if it does not (children ignore SIGTERM)."""
    process.join(timeout)
    if process.is_alive():
        log.warning("process %s did not stop in time; ending it", process.name)
        process.kill()
        process.join(5.0)
