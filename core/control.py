"""Control messages between the main process and its workers: receive with a deadline, join.

Control pipes carry small pickled dataclasses (never frames). A peer that has died shows up as
end-of-file, which these helpers turn into ``None`` rather than an exception.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
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


def join_or_terminate(process: multiprocessing.process.BaseProcess, timeout: float) -> None:
    """Wait for ``process`` to end; terminate it, then kill it, if it does not."""
    process.join(timeout)
    if process.is_alive():
        log.warning("process %s did not stop in time; terminating it", process.name)
        process.terminate()
        process.join(5.0)
    if process.is_alive():
        process.kill()
        process.join(5.0)
