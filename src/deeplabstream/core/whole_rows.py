"""Text tables appended in whole rows: a killed process or a full disk never leaves a cut row.

docs/reliability.md, "How the guarantees are kept".
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from pathlib import Path

from deeplabstream.core.regular_files import regular_file

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0
"""Rows reach the file at least this often (seconds)."""


class WholeRowsFile:
    """A text file appended to by one process, in whole rows, flushed at least once a second.

    A failed write is undone to the last whole row and the file closed; :attr:`error` says why.
    """

    def __init__(self, path: Path, header: str) -> None:
        self.path = path
        self.error: str | None = None
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._pending: list[str] = [header]
        self._good_bytes = 0  # the file's length after the last complete flush
        self._next_flush = time.monotonic() + FLUSH_INTERVAL_S
        self.rows = 0  # rows handed over
        self.rows_written = 0  # rows in the file
        self._pending_rows = 0
        # Uncontended but for flush_open_files (another thread, the loop stuck): ~0.1 us a row.
        self._lock = threading.Lock()
        self._flush()
        _OPEN.add(self)

    def write_row(self, text: str) -> None:
        """Append one whole row (ending in a newline); written by the next flush."""
        with self._lock:
            if self._fd is None:
                return  # an earlier disk error closed it
            self._pending.append(text)
            self.rows += 1
            self._pending_rows += 1
            if time.monotonic() >= self._next_flush:
                self._flush()

    def flush_if_due(self) -> None:
        """Write the rows kept so far if a second has passed since the last write."""
        with self._lock:
            if time.monotonic() >= self._next_flush:
                self._flush()

    def flush(self) -> None:
        """Write the rows kept so far now (any thread)."""
        with self._lock:
            self._flush()

    def unwritten(self) -> tuple[int, str]:
        """Return the file's length in bytes and the text of the rows kept, not written yet."""
        with self._lock:
            return self._good_bytes, "".join(self._pending)

    def _flush(self) -> None:
        # The next write by time a second from now: a file flushed at the end of every turn of
        # a loop is never written by write_row, in the middle of a turn's decisions.
        self._next_flush = time.monotonic() + FLUSH_INTERVAL_S
        if self._fd is None or not self._pending:
            return
        data = "".join(self._pending).encode("utf-8")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as failure:
            self._fail(failure)
            return
        self._good_bytes += len(data)
        self.rows_written += self._pending_rows
        self._pending.clear()
        self._pending_rows = 0

    def _fail(self, failure: OSError) -> None:
        """Undo the part of a failed write that reached the file; close; remember why."""
        fd, self._fd = self._fd, None
        assert fd is not None
        try:
            os.ftruncate(fd, self._good_bytes)
        except OSError:
            pass
        try:
            os.close(fd)
        except OSError:
            pass
        self._pending.clear()
        self.error = (
            f"{self.path.name} stopped at {failure.strerror or failure} after "
            f"{self.rows_written} rows: the file ends at its last whole row"
        )
        log.error("%s", self.error)

    def close(self, sync: bool = True) -> None:
        """Write what is pending, sync (unless told not to) and close (safe to call twice)."""
        with self._lock:
            self._flush()
            fd, self._fd = self._fd, None
        _OPEN.discard(self)
        if fd is None:
            return
        try:
            if sync:
                os.fsync(fd)
        except OSError as failure:
            self.error = self.error or f"{self.path.name} could not be finalised: {failure}"
            log.error("%s", self.error)
        os.close(fd)


_OPEN: weakref.WeakSet[WholeRowsFile] = weakref.WeakSet()
"""The files of this process not closed yet."""


def flush_open_files() -> None:
    """Write every open file's kept rows now (the end of a turn; a process about to be ended)."""
    for file in list(_OPEN):
        file.flush()


def close_open_files() -> None:
    """Write every open file's kept rows and close it: nothing written later reaches it."""
    for file in list(_OPEN):
        file.close(sync=False)  # in the system's hands: they outlive the process


def cut_to_whole_rows(path: Path) -> int:
    """Drop a cut last row of a text table; returns the lines it keeps (0 if missing)."""
    try:
        with regular_file(path).open("rb+") as file:
            data = file.read()
            end = data.rfind(b"\n") + 1
            if end != len(data):
                file.truncate(end)
            return data[:end].count(b"\n")
    except FileNotFoundError:
        return 0
