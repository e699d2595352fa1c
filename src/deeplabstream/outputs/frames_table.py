"""``<camera>.frames.csv``: one row per frame in the video file, in the same order.

Each row is written through at once; ``repair_frames_table`` cuts a killed recorder's table
to its video. docs/outputs.md, "<camera>.frames.csv".
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from deeplabstream.core.regular_files import open_regular

FRAMES_TABLE_SUFFIX = ".frames.csv"
FRAMES_TABLE_COLUMNS = ("frame_index", "camera_timestamp", "host_timestamp")


class FramesTable:
    """Append-only writer of a frames table."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._file = open(path, "x", encoding="ascii", newline="")  # noqa: SIM115 - kept open
        self._file.write(",".join(FRAMES_TABLE_COLUMNS) + "\n")
        self._file.flush()

    def append(self, frame_index: int, camera_timestamp: float, host_timestamp_ns: int) -> None:
        """Add the row of the next video frame."""
        camera = "" if math.isnan(camera_timestamp) else f"{camera_timestamp:.9f}"
        seconds, nanos = divmod(host_timestamp_ns, 1_000_000_000)
        self._file.write(f"{frame_index},{camera},{seconds}.{nanos:09d}\n")
        self.rows += 1
        self._file.flush()  # to the OS now: the row must never trail the video's frame

    def close(self) -> None:
        """Flush, sync to disk and close. Safe to call more than once."""
        if self._file.closed:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


def recorded_frames(video: Path) -> int | None:
    """Return the frames of a recording of this program, counted by its frames table beside it.

    None for a video without a table (not a recording of ours).
    """
    table = video.with_name(f"{video.stem}{FRAMES_TABLE_SUFFIX}")
    try:
        with open_regular(table, "rb") as file:
            rows = sum(1 for _ in file) - 1  # less the header
    except OSError:
        return None
    return rows if rows > 0 else None


def repair_frames_table(path: Path, frames_in_video: int) -> int:
    """Cut a frames table to the frames its video holds; returns the rows it kept.

    Rows beyond ``frames_in_video`` and an unfinished last row are removed.
    """
    with open_regular(path, "rb") as file:
        text = file.read().decode("ascii", errors="replace")
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
        with open_regular(path, "rb") as file:
            text = file.read().decode("ascii", errors="replace")
    except FileNotFoundError:
        return 0
    return max(0, text.count("\n") - 1)
