"""``<camera>.frames.csv``: one row per frame in the video file, in the same order.

Row ``i`` describes video frame ``i``: the camera's own frame index, the camera's timestamp (empty
when the camera has none) and the host arrival time, both in seconds. Gaps in ``frame_index``
are frames the camera dropped. The file is flushed every ``flush_interval`` seconds, so a killed
process leaves a valid table up to the last flush.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

FRAMES_TABLE_SUFFIX = ".frames.csv"
FRAMES_TABLE_COLUMNS = ("frame_index", "camera_timestamp", "host_timestamp")


class FramesTable:
    """Append-only writer of a frames table."""

    def __init__(self, path: Path, flush_interval: float = 1.0) -> None:
        self.path = path
        self.rows = 0
        self._file = open(path, "x", encoding="ascii", newline="")  # noqa: SIM115 - kept open
        self._file.write(",".join(FRAMES_TABLE_COLUMNS) + "\n")
        self._flush_interval = flush_interval
        self._next_flush = time.monotonic() + flush_interval

    def append(self, frame_index: int, camera_timestamp: float, host_timestamp_ns: int) -> None:
        """Add the row of the next video frame."""
        camera = "" if math.isnan(camera_timestamp) else f"{camera_timestamp:.9f}"
        seconds, nanos = divmod(host_timestamp_ns, 1_000_000_000)
        self._file.write(f"{frame_index},{camera},{seconds}.{nanos:09d}\n")
        self.rows += 1
        now = time.monotonic()
        if now >= self._next_flush:
            self.flush()
            self._next_flush = now + self._flush_interval

    def flush(self) -> None:
        """Push buffered rows to the operating system (they survive a killed process)."""
        self._file.flush()

    def close(self) -> None:
        """Flush, sync to disk and close. Safe to call more than once."""
        if self._file.closed:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


def repair_frames_table(path: Path, frames_in_video: int) -> int:
    """Cut a frames table to the frames its video holds; returns the rows it kept.

    After a recorder was killed (or its disk filled), the table may end in a cut row, or name
    frames whose video data never reached the file: a table must never claim a frame the video
    does not hold. Rows beyond ``frames_in_video`` and any unfinished last row are removed.
    """
    text = path.read_text(encoding="ascii", errors="replace")
    lines = text.split("\n")
    header, rows = lines[0], [line for line in lines[1:-1] if line]  # [-1]: cut or empty
    kept = rows[: max(0, frames_in_video)]
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("\n".join([header, *kept]) + "\n", encoding="ascii")
    os.replace(temporary, path)
    return len(kept)


def count_table_rows(path: Path) -> int:
    """Whole rows in a frames table (a cut last row does not count); 0 if it is missing."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return 0
    return max(0, text.count("\n") - 1)
