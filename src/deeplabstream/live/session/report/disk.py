"""The session's disk: a warning when space runs low, recording and analysis stopped when full."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from deeplabstream.live.session.report.events import SessionEvent, WatchedSession
from deeplabstream.settings.sections import RecordingSettings

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


def watch_disk(session: WatchedSession, disk_watch: DiskWatch) -> list[SessionEvent]:
    """Warn of low disk space; on a full disk stop recording and pose estimation (finalised)."""
    if session.session_dir is None:
        return []
    news = disk_watch.check(session.session_dir, session.recording or session.pose.analysing)
    if news is None:
        return []
    limits = session.settings.recording
    if news.full:
        # Every file of the session is at risk, not only videos: recording and pose
        # estimation (with its experiment) stop while their files can still be finalised.
        parts = (("recording", session.recording), ("pose estimation", session.pose.analysing))
        stopped = [part for part, on in parts if on]
        text = (
            f"disk almost full ({news.free_gb:.2f} GB free, [Recording] MIN_FREE_SPACE = "
            f"{limits.min_free_space:g} GB): {' and '.join(stopped)} stopped, files "
            "finalised"
        )
        session.report_error(text)
        if session.recording:
            session.stop_recording()
        if session.pose.analysing:
            session.pose.stop_analysis()
        return [SessionEvent(logging.ERROR, text)]
    text = (
        f"disk space low: {news.free_gb:.2f} GB free on {session.session_dir}; recording stops "
        f"by itself below {limits.min_free_space:g} GB"
    )
    log.warning("%s", text)
    return [SessionEvent(logging.WARNING, text)]
