"""What a streaming session does about what its watchdogs see: disk, stalls, lost cameras.

The watchdogs (live.session.watchdogs: :class:`DiskWatch`, :func:`find_stalls`; the health
watch of live.session.health) only detect; these functions act on the session (stop
recording and analysis on a full disk, apply ``[Streaming] ON_CAMERA_LOST``, report) and
return what the user should be told.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from deeplabstream.live.session.cameras import CameraBranch
from deeplabstream.live.session.health import HealthNews
from deeplabstream.live.session.watchdogs import DiskWatch, find_stalls
from deeplabstream.settings.sections import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionEvent:
    """Something the user should hear about, raised while the stream runs."""

    level: int  # logging level
    message: str
    camera: str | None = None


class WatchedSession(Protocol):
    """What the watch reads and does of the session (live.session.live.LiveSession)."""

    settings: Settings
    session_dir: Path | None
    stop_reason: str

    @property
    def branches(self) -> list[CameraBranch]: ...  # noqa: D102 (a protocol's member)

    @property
    def stopped(self) -> bool: ...  # noqa: D102

    @property
    def recording(self) -> bool: ...  # noqa: D102

    @property
    def analysing(self) -> bool: ...  # noqa: D102

    def report_error(self, text: str) -> None: ...  # noqa: D102

    def stop_recording(self) -> None: ...  # noqa: D102

    def stop_analysis(self) -> None: ...  # noqa: D102


def watch_disk(session: WatchedSession, disk_watch: DiskWatch) -> list[SessionEvent]:
    """Warn of low disk space; on a full disk stop recording and pose estimation (finalised)."""
    if session.session_dir is None:
        return []
    news = disk_watch.check(session.session_dir, session.recording or session.analysing)
    if news is None:
        return []
    limits = session.settings.recording
    if news.full:
        # Every file of the session is at risk, not only videos: recording and pose
        # estimation (with its experiment) stop while their files can still be finalised.
        parts = (("recording", session.recording), ("pose estimation", session.analysing))
        stopped = [part for part, on in parts if on]
        text = (
            f"disk almost full ({news.free_gb:.2f} GB free, [Recording] MIN_FREE_SPACE = "
            f"{limits.min_free_space:g} GB): {' and '.join(stopped)} stopped, files "
            "finalised"
        )
        session.report_error(text)
        if session.recording:
            session.stop_recording()
        if session.analysing:
            session.stop_analysis()
        return [SessionEvent(logging.ERROR, text)]
    text = (
        f"disk space low: {news.free_gb:.2f} GB free on {session.session_dir}; recording stops "
        f"by itself below {limits.min_free_space:g} GB"
    )
    log.warning("%s", text)
    return [SessionEvent(logging.WARNING, text)]


def tell_health(session: WatchedSession, news: HealthNews) -> SessionEvent:
    """Log (an error: report) what the health watch found; return it for the user."""
    if news.level >= logging.ERROR:
        session.report_error(news.text)
    else:
        log.warning("%s", news.text)
    return SessionEvent(news.level, news.text, news.camera)


def watch_stalls(session: WatchedSession) -> list[SessionEvent]:
    """Report a device camera whose frames stopped coming, and one whose frames came back."""
    events: list[SessionEvent] = []
    for news in find_stalls(session.branches, session.settings.streaming):
        if not news.lost:
            log.warning("%s", news.text)
            events.append(SessionEvent(logging.WARNING, news.text, news.branch.name))
            continue
        session.report_error(news.text)
        events.append(SessionEvent(logging.ERROR, news.text, news.branch.name))
        events += camera_lost(session, news.branch)
    return events


def camera_lost(session: WatchedSession, branch: CameraBranch) -> list[SessionEvent]:
    """Apply ``[Streaming] ON_CAMERA_LOST`` to a device camera that failed or went silent."""
    if branch.opened is None or not branch.opened.live or session.stopped:
        return []
    if branch.loss_handled:  # a stall, then the failure at its TIMEOUT: say it once
        return []
    branch.loss_handled = True
    if session.settings.streaming.on_camera_lost == "continue":
        text = (
            f"camera {branch.name!r} lost; the other cameras go on "
            "([Streaming] ON_CAMERA_LOST = continue)"
        )
        log.warning("%s", text)
        return [SessionEvent(logging.WARNING, text, branch.name)]
    text = f"camera {branch.name!r} lost ([Streaming] ON_CAMERA_LOST = stop)"
    if not session.stop_reason:
        session.stop_reason = text
        for other in session.branches:  # every camera ends; the run then stops as usual
            if other.ring is not None and other.ring.header is not None:
                other.ring.request_stop()
    log.error("%s: stopping the session", text)
    return [SessionEvent(logging.ERROR, f"{text}: stopping the session", branch.name)]
