"""The clock of ``session.nwb``: the host clock of a live session, a replayed video's own times.

docs/outputs.md, "NWB (session.nwb)".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TimeBase:
    """Turns the session's times into the NWB file's seconds.

    ``host_time_at_start``: host seconds at the session's start; ``video``: a replay (the
    video's own times); ``host_to_video``: a replay's (host arrival, video time) pairs.
    """

    host_time_at_start: float
    video: bool = False
    host_to_video: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def column(self) -> str:
        """The column of the frames and times tables that times frames in this base."""
        return "camera_timestamp" if self.video else "host_timestamp"

    @property
    def words(self) -> str:
        """What a time in the file means, for the descriptions of its series and tables."""
        if self.video:
            return "the replayed video's own time of the frame (its presentation time, s)"
        return "the frame's host arrival, s from the session start"

    def frame_times(self, times: Any) -> np.ndarray:
        """Return frame times (the :attr:`column` values, array-like) in the file's seconds."""
        values = np.asarray(times, dtype=float)
        return values.copy() if self.video else values - self.host_time_at_start

    def moments(self, host: Any) -> np.ndarray:
        """Return host-clock moments (s) in the file's seconds (replay: interpolated)."""
        values = np.asarray(host, dtype=float)
        if not self.video:
            return values - self.host_time_at_start
        if self.host_to_video is None or len(self.host_to_video[0]) == 0:
            return np.full(values.shape, np.nan)
        arrived, video = self.host_to_video
        placed = np.interp(values, arrived, video)
        before, after = values < arrived[0], values > arrived[-1]
        placed[before] = video[0] + (values[before] - arrived[0])
        placed[after] = video[-1] + (values[after] - arrived[-1])
        return placed


def video_frame_times(table: Any, fps: float | None) -> np.ndarray:
    """Return each row's video time: ``camera_timestamp``, else ``frame_index`` / ``fps``."""
    index = np.asarray(table["frame_index"], dtype=float)
    times = (  # a copy: pandas' arrays may be read-only
        np.array(table["camera_timestamp"], dtype=float)
        if "camera_timestamp" in table
        else np.full(index.shape, np.nan)
    )
    missing = np.isnan(times)
    if missing.any() and fps:
        times[missing] = index[missing] / fps
    return times
