"""Rows a child process has made but not written yet, where its parent finds them if it dies.

docs/reliability.md, "How the guarantees are kept".
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from deeplabstream.core.regular_files import regular_file

log = logging.getLogger(__name__)

#: Bytes each half of the block holds: hundreds of rows (an event row is 150-400 bytes), far
#: more than one frame's events and the rows of one turn.
HALF_BYTES = 256 * 1024

_CURRENT, _OFFSET0, _LENGTH0, _OFFSET1, _LENGTH1 = range(5)


class UnwrittenRows:
    """One child's unwritten rows, where its parent finds them; made by the parent."""

    def __init__(self, context: BaseContext, half_bytes: int = HALF_BYTES) -> None:
        self._numbers: Any = context.RawArray(ctypes.c_int64, 5)
        self._numbers[_CURRENT] = -1  # nothing published yet
        self._reached: Any = context.RawArray(ctypes.c_double, 1)
        self._reached[0] = math.nan
        self._text: Any = context.RawArray(ctypes.c_char, 2 * half_bytes)
        self._half = half_bytes
        self._frozen = False  # in this process: nothing more is published

    def __getstate__(self) -> dict[str, Any]:
        """Travel to the child (at its spawn)."""
        return {"n": self._numbers, "r": self._reached, "t": self._text, "h": self._half}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Take the shared block in the child."""
        self._numbers, self._reached = state["n"], state["r"]
        self._text, self._half = state["t"], state["h"]
        self._frozen = False

    # -- the child ---------------------------------------------------------------------------

    def publish(self, file_bytes: int, text: str) -> None:
        """Say the file, ``file_bytes`` long, lacks the rows ``text`` (past half a block: lost)."""
        if self._frozen:
            return
        data = text.encode("utf-8")
        if len(data) > self._half:
            end = data.rfind(b"\n", 0, self._half) + 1
            log.error(
                "%d bytes of rows not written yet exceed the %d kept for the session: if this "
                "process is killed now, its last %d row(s) are lost",
                len(data),
                self._half,
                data[end:].count(b"\n"),
            )
            data = data[:end]
        numbers = self._numbers
        half = 1 - int(numbers[_CURRENT]) if int(numbers[_CURRENT]) >= 0 else 0
        ctypes.memmove(ctypes.addressof(self._text) + half * self._half, data, len(data))
        numbers[_OFFSET0 + 2 * half] = file_bytes
        numbers[_LENGTH0 + 2 * half] = len(data)
        numbers[_CURRENT] = half  # the new text is whole: it is the current one from now on

    def reached(self, time_s: float | None) -> None:
        """Say the child's work has reached ``time_s`` (None: nothing yet)."""
        if not self._frozen:
            self._reached[0] = math.nan if time_s is None else time_s

    def freeze(self) -> None:
        """Publish nothing more from this process: its last act reads what is published."""
        self._frozen = True

    # -- the parent (or the child's last act) -------------------------------------------------

    @property
    def reached_s(self) -> float | None:
        """The time the child's work had reached (None: it never said)."""
        value = float(self._reached[0])
        return None if math.isnan(value) else value

    def current(self) -> tuple[int, bytes]:
        """Return the last whole text published: (the file's length then, the rows' bytes)."""
        numbers = self._numbers
        half = int(numbers[_CURRENT])
        if half < 0:
            return 0, b""
        length = int(numbers[_LENGTH0 + 2 * half])
        start = half * self._half
        return int(numbers[_OFFSET0 + 2 * half]), bytes(self._text[start : start + length])

    def append_missing(self, path: Path) -> int:
        """Append to ``path`` the published rows it lacks; return how many rows were appended.

        Call it once the child has ended (or from its last act, its writers closed).
        """
        offset, data = self.current()
        if not data:
            return 0
        try:
            with regular_file(path).open("ab") as file:
                written = file.seek(0, os.SEEK_END) - offset
                if written < 0 or written > len(data):
                    log.error(
                        "%s is %d bytes, not the %d to %d its rows not written yet follow: "
                        "they were not appended",
                        path.name,
                        written + offset,
                        offset,
                        offset + len(data),
                    )
                    return 0
                missing = data[written:]
                file.write(missing)
        except OSError as error:  # a full disk: the rows are lost, and said
            log.error("%s: its rows not written yet could not be appended: %s", path.name, error)
            return 0
        return missing.count(b"\n")

    def clear(self) -> None:
        """Say there is nothing to write (the child's file is whole)."""
        self._numbers[_CURRENT] = -1
