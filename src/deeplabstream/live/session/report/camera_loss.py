"""A lost camera: a device camera whose frames stopped, and ``[Streaming] ON_CAMERA_LOST``."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from deeplabstream.live.session.cameras import CameraBranch
from deeplabstream.live.session.report.events import SessionEvent, WatchedSession
from deeplabstream.settings.sections import StreamingSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StallNews:
    """A device camera that went silent (``lost``) or whose frames came back."""

    branch: CameraBranch
    lost: bool
    text: str


def find_stalls(branches: list[CameraBranch], streaming: StreamingSettings) -> list[StallNews]:
    """Return the device cameras whose frames stopped coming, and those whose frames came back.

    Measured from the ring header's host time; a camera before its first frame is not watched.
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
