"""Logging, configured once per process: console (stderr) and the session's log file."""

from __future__ import annotations

import logging
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)-7s [%(processName)s] %(name)s: %(message)s"
#: Lines a process holds, at most, until its session's log file exists (the newest are kept).
HELD_LINES = 2000


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
    """Also log to ``path`` (appending), held lines first; return the handler to remove later."""
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(logging.INFO)
    held = _take_held_lines()
    if held is not None:
        if held.dropped:
            handler.handle(held.note_dropped())
        for record in held.records:
            handler.handle(record)
    logging.getLogger().addHandler(handler)
    return handler


class _HeldLines(logging.Handler):
    """The process's log lines kept until its session's log file exists (newest kept)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: deque[logging.LogRecord] = deque(maxlen=HELD_LINES)
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) == self.records.maxlen:
            self.dropped += 1
        self.records.append(record)

    def note_dropped(self) -> logging.LogRecord:
        """Return a line that says how many earlier lines were not kept."""
        first = self.records[0]
        return logging.makeLogRecord(
            {
                "name": __name__,
                "levelno": logging.WARNING,
                "levelname": "WARNING",
                "msg": f"{self.dropped} earlier line(s) of this process were not kept",
                "created": first.created,
                "msecs": first.msecs,
                "processName": first.processName,
            }
        )


def hold_log_lines() -> None:
    """Hold this process's log lines (INFO and up, :data:`HELD_LINES` at most) for the log file."""
    root = logging.getLogger()
    if not any(isinstance(handler, _HeldLines) for handler in root.handlers):
        root.addHandler(_HeldLines())


def drop_held_log_lines() -> None:
    """Forget the lines held by :func:`hold_log_lines` (no session log file will come)."""
    _take_held_lines()


def _take_held_lines() -> _HeldLines | None:
    """Remove the holder of this process's lines; return it (None: none was held)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _HeldLines):
            root.removeHandler(handler)
            return handler
    return None


def current_log_target() -> LogTarget:
    """Return where this process logs now, for a child it starts to log the same way."""
    root = logging.getLogger()
    level, file = logging.INFO, None
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler):
            file = Path(handler.baseFilename)
        elif isinstance(handler, logging.StreamHandler):
            level = handler.level or logging.INFO
    return LogTarget(level, file)


def remove_log_file(handler: logging.Handler) -> None:
    """Stop logging to the file of :func:`add_log_file` and close it."""
    logging.getLogger().removeHandler(handler)
    handler.close()
