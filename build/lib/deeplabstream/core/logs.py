"""Logging, configured once per process: console (stderr) and the session's log file.

Child processes are spawned fresh, so each configures itself from a small picklable
:class:`LogTarget`; every line names the process it came from.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)-7s [%(processName)s] %(name)s: %(message)s"


@dataclass(frozen=True)
class LogTarget:
    """Where a process logs: a console level and, once a session exists, its log file."""

    level: int = logging.INFO
    file: Path | None = None


def configure_process_logging(target: LogTarget, process_name: str) -> None:
    """Set up the root logger of this process (replaces any earlier handlers)."""
    import multiprocessing

    multiprocessing.current_process().name = process_name
    # A log line that cannot be written (the session's disk is full) must not print a traceback
    # over the real message; the disk error itself is reported where the data is written.
    logging.raiseExceptions = False
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
    console.setLevel(target.level)
    root.addHandler(console)
    if target.file is not None:
        add_log_file(target.file)
    root.setLevel(min(target.level, logging.INFO))


def add_log_file(path: Path) -> logging.Handler:
    """Also log to ``path`` (appending: every process of a session shares one file).

    Returns the handler, for :func:`remove_log_file` when the session ends in a process that
    lives on (the window starts one session after another).
    """
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    return handler


def remove_log_file(handler: logging.Handler) -> None:
    """Stop logging to the file of :func:`add_log_file` and close it."""
    logging.getLogger().removeHandler(handler)
    handler.close()
