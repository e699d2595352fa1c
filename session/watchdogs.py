"""Watchdogs of a running session: the disk filling up, and device cameras that go silent.

They only look and say what they saw; the session decides what to stop (``LiveSession.service``).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from session.cameras import CameraBranch
from settings.sections import RecordingSettings, StreamingSettings

log = logging.getLogger(__name__)

DISK_CHECK_INTERVAL_S = 2.0
_GB = 1e9


@dataclass(frozen=True)
class DiskNews:
    """What the disk watch saw: ``full`` (stop writing now) or a first low-space warning."""

    full: bool
    free_gb: float


class DiskWatch:
    """Check the session's disk every few seconds while files are written."""

    def __init__(self, limits: RecordingSettings) -> None:
        self.limits = limits
        self._next_check = 0.0
        self._warned = False

    def check(self, folder: Path, writing: bool) -> DiskNews | None:
        """Return news when the disk is below MIN_FREE_SPACE, or first below WARN_FREE_SPACE."""
        now = time.monotonic()
        if not writing or now < self._next_check:
            return None
        self._next_check = now + DISK_CHECK_INTERVAL_S
        free = shutil.disk_usage(folder).free / _GB
        if free < self.limits.min_free_space:
            return DiskNews(full=True, free_gb=free)
        if free < self.limits.warn_free_space and not self._warned:
            self._warned = True
            return DiskNews(full=False, free_gb=free)
        return None


@dataclass(frozen=True)
class StallNews:
    """A device camera that went silent (``lost``) or whose frames came back."""

    branch: CameraBranch
    lost: bool
    text: str


def find_stalls(branches: list[CameraBranch], streaming: StreamingSettings) -> list[StallNews]:
    """Return the device cameras whose frames stopped coming, and those whose frames came back.

    Silence is measured from the host time of the camera's last frame (ring header), so a
    camera blocked inside its driver is seen as well as one that reports nothing. A camera
    that has not delivered its first frame yet (waiting for a trigger) is not watched. Each
    branch remembers when it was reported lost (``lost_after_ns``), so each change is told once.
    """
    news: list[StallNews] = []
    now_ns = time.perf_counter_ns()
    for branch in branches:
        ring, opened = branch.ring, branch.opened
        if branch.ended or ring is None or ring.header is None or opened is None:
            continue
        if not opened.live or ring.stop_requested or int(ring.header["captured"]) == 0:
            continue
        last_ns = int(ring.header["last_host_ns"])
        if branch.lost_after_ns is not None and last_ns > branch.lost_after_ns:
            silent_s = (last_ns - branch.lost_after_ns) / 1e9
            text = f"camera {branch.name!r} delivers frames again after {silent_s:.1f} s"
            news.append(StallNews(branch, lost=False, text=text))
            branch.lost_after_ns = None
        interval_s = 1.0 / (opened.nominal_fps or 30.0)
        limit_s = max(streaming.camera_lost_after, 3 * interval_s)
        silent_s = (now_ns - last_ns) / 1e9
        if branch.lost_after_ns is None and silent_s >= limit_s:
            branch.lost_after_ns = last_ns
            text = (
                f"camera {branch.name!r} stopped delivering: no frame for {silent_s:.2f} s "
                f"after frame {int(ring.header['last_frame_index'])} (one every "
                f"{interval_s * 1000:.0f} ms expected). Check its cable and power."
            )
            news.append(StallNews(branch, lost=True, text=text))
    return news
