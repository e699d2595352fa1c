"""Analysis stalls: a camera's frames arrive but its analysis (or the experiment) gives no pose."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from deeplabstream.live.processes.messages import PoseRecord
from deeplabstream.live.session.cameras import CameraBranch

#: A camera's analysis has stalled when it produced no pose for the longest of: this many
#: seconds, STALL_FRAME_INTERVALS of the camera's frames, STALL_PACE_FACTOR times its own
#: recent pace (a slow model is slow, not stalled), and STALL_DEADLINES deadlines, while frames
#: kept arriving.
STALL_MIN_S = 2.0
STALL_FRAME_INTERVALS = 10
STALL_PACE_FACTOR = 4
STALL_DEADLINES = 2
RECENT_POSES_FOR_PACE = 32
#: session.json lists at most this many stalls; the count and the totals cover every one.
STALLS_LISTED = 100


@dataclass(frozen=True)
class AnalysisStall:
    """A stretch of time in which a camera's frames arrived but none was analysed."""

    camera: str
    started_ns: int  # when the loop of the last frame before it ended (host clock)
    duration_s: float  # that pose -> the next one (or the end of the analysis)
    first_frame: int  # the frames not analysed: first_frame .. last_frame (camera indices)
    last_frame: int

    @property
    def frames(self) -> int:
        """Frames not analysed in it (frame indices; a camera's own gaps are counted too)."""
        return self.last_frame - self.first_frame + 1

    def text(self) -> str:
        """Say what happened, as the log, the CLI and the GUI show it."""
        return (
            f"analysis stalled for {self.duration_s:.1f} s: frames {self.first_frame}-"
            f"{self.last_frame} of camera {self.camera!r} not analysed"
        )


@dataclass
class _Pace:
    """One camera's poses as the stall watch follows them."""

    frame_interval_s: float
    deadline_s: float
    silent_since_ns: int  # the last pose, or the last look that found no frame waiting
    last_index: int  # the last frame analysed
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_POSES_FOR_PACE))
    declared: bool = False  # the live warning was given for the silence now
    # (silent since ns, silence ns) of a silence that ended with the frame the worker held
    # through it: the frames that arrived meanwhile show as skipped with the next pose
    held: tuple[int, int] | None = None

    def limit_ns(self) -> int:
        """Return how long a silence may last before it is a stall."""
        pace_s = 0.0
        if len(self.recent) > 1:
            pace_s = (self.recent[-1] - self.recent[0]) / 1e9 / (len(self.recent) - 1)
        return round(
            1e9
            * max(
                STALL_MIN_S,
                STALL_FRAME_INTERVALS * self.frame_interval_s,
                STALL_PACE_FACTOR * pace_s,
                STALL_DEADLINES * self.deadline_s,
            )
        )


class AnalysisStallWatch:
    """See when a camera's analysis (or the experiment in its loop) stalls while frames arrive.

    Follows the poses drained (:meth:`on_pose`) and the ring headers (:meth:`check`); a stall
    is said at once and counted when poses come back.
    """

    def __init__(self) -> None:
        self._paces: dict[str, _Pace] = {}
        self._news: list[AnalysisStall] = []
        self.stalls: list[AnalysisStall] = []  # the first STALLS_LISTED
        self.count = 0
        self.frames_not_analysed = 0
        self.longest_s = 0.0

    def watch(
        self, camera: str, nominal_fps: float | None, deadline_ns: int | None, last_index: int
    ) -> None:
        """Follow ``camera`` from now (a new analysis): its frames after ``last_index`` are due."""
        self._paces[camera] = _Pace(
            1.0 / (nominal_fps or 30.0),
            (deadline_ns or 0) / 1e9,
            time.perf_counter_ns(),
            last_index,
        )

    @staticmethod
    def first_index(branch: CameraBranch) -> int:
        """Return the index before the camera's next frame: where a new analysis starts."""
        ring = branch.ring
        if ring is None or ring.header is None or int(ring.header["captured"]) == 0:
            return -1
        return int(ring.header["last_frame_index"])

    def forget(self) -> None:
        """Stop following every camera (the analysis ended); counted stalls stay."""
        self._paces.clear()

    def on_pose(self, camera: str, record: PoseRecord) -> None:
        """Take one pose (a pose listener: quick, never blocks)."""
        pace = self._paces.get(camera)
        if pace is None:
            return
        # The pose is sent after the experiment's update: silence is measured from its end.
        gap_ns = record.end_ns - pace.silent_since_ns
        missing = record.frame_index - pace.last_index - 1
        limit_ns = pace.limit_ns()
        silence = (pace.silent_since_ns, gap_ns) if gap_ns > limit_ns else pace.held
        pace.held = None
        if missing > 0 and silence is not None:
            stall = AnalysisStall(
                camera, silence[0], silence[1] / 1e9, pace.last_index + 1, record.frame_index - 1
            )
            self._count(stall)
            self._news.append(stall)
        elif (
            silence is not None
            and gap_ns > limit_ns
            and record.end_ns - record.picked_up_ns > limit_ns
        ):
            # The worker (or the experiment) held this frame through the silence: the frames
            # that arrived meanwhile are skipped after it, and show with the next pose.
            pace.held = silence
        pace.recent.append(record.end_ns)
        pace.silent_since_ns = record.end_ns
        pace.last_index = record.frame_index
        pace.declared = False

    def check(self, branches: list[CameraBranch]) -> tuple[list[str], list[AnalysisStall]]:
        """Return the stalls that began now (their texts) and those that ended since last time."""
        began = []
        now_ns = time.perf_counter_ns()
        for branch in branches:
            pace = self._paces.get(branch.name)
            arrived = _last_frame_index(branch)
            if pace is None or pace.declared or arrived is None:
                continue
            if arrived <= pace.last_index:  # nothing waits: a silence is no stall (yet)
                pace.silent_since_ns = now_ns
                continue
            silent_ns = now_ns - pace.silent_since_ns
            if silent_ns > pace.limit_ns():
                pace.declared = True
                began.append(
                    f"analysis stalled: no pose of camera {branch.name!r} for "
                    f"{silent_ns / 1e9:.1f} s while frames {pace.last_index + 1}-{arrived} arrived"
                )
        ended, self._news = self._news, []
        return began, ended

    def stalled_s(self, camera: str) -> float | None:
        """Return how long the camera's analysis has been stalled; None when it is not."""
        pace = self._paces.get(camera)
        if pace is None or not pace.declared:
            return None
        return (time.perf_counter_ns() - pace.silent_since_ns) / 1e9

    def close(self, branches: list[CameraBranch]) -> list[AnalysisStall]:
        """End the analysis's watch; return the stalls that ended since the last look (to now)."""
        ended, self._news = self._news, []  # those that ended with the last poses
        now_ns = time.perf_counter_ns()
        for branch in branches:
            pace = self._paces.get(branch.name)
            arrived = _last_frame_index(branch, ended_too=True)
            if pace is None or arrived is None or arrived <= pace.last_index:
                continue
            silent_ns = now_ns - pace.silent_since_ns
            if pace.held is not None:  # it ended with a held frame; no pose came after it
                since_ns, held_ns = pace.held
                stall = AnalysisStall(
                    branch.name, since_ns, held_ns / 1e9, pace.last_index + 1, arrived
                )
                self._count(stall)
                ended.append(stall)
            elif pace.declared:  # said live and not over (a stall just begun is not counted)
                stall = AnalysisStall(
                    branch.name, pace.silent_since_ns, silent_ns / 1e9, pace.last_index + 1, arrived
                )
                self._count(stall)
                ended.append(stall)
        self.forget()
        return ended

    def _count(self, stall: AnalysisStall) -> None:
        self.count += 1
        self.frames_not_analysed += stall.frames
        self.longest_s = max(self.longest_s, stall.duration_s)
        if len(self.stalls) < STALLS_LISTED:
            self.stalls.append(stall)

    def figures(self, session_start_ns: int) -> dict[str, Any]:
        """Return ``session.json``'s ``health`` -> ``stalls``."""
        return {
            "count": self.count,
            "longest_s": round(self.longest_s, 3),
            "frames_not_analysed": self.frames_not_analysed,
            "list": [
                {
                    "camera": stall.camera,
                    "at_s": round((stall.started_ns - session_start_ns) / 1e9, 3),
                    "duration_s": round(stall.duration_s, 3),
                    "first_frame": stall.first_frame,
                    "last_frame": stall.last_frame,
                    "frames": stall.frames,
                }
                for stall in self.stalls
            ],
        }


def _last_frame_index(branch: CameraBranch, ended_too: bool = False) -> int | None:
    """Return the camera's newest frame index (ring header); None before the first or once ended."""
    ring = branch.ring
    if ring is None or ring.header is None or int(ring.header["captured"]) == 0:
        return None
    if branch.ended and not ended_too:
        return None
    return int(ring.header["last_frame_index"])
