"""What the session's processes tell it while it runs: which have news, and a camera's news."""

from __future__ import annotations

import logging
import time
from multiprocessing.connection import wait
from typing import Any, Literal

from deeplabstream.core.control import join_or_terminate, receive
from deeplabstream.live.processes.messages import Finished
from deeplabstream.live.session.analysis import Analysis
from deeplabstream.live.session.cameras import CameraBranch
from deeplabstream.live.session.report.camera_loss import camera_lost
from deeplabstream.live.session.report.events import SessionEvent, WatchedSession
from deeplabstream.transport.channel import EndReason

log = logging.getLogger(__name__)

NewsFrom = Literal["capture", "recorder"]


def wait_for_news(
    branches: list[CameraBranch], analysis: Analysis | None, timeout: float
) -> list[tuple[CameraBranch, NewsFrom]]:
    """Wait up to ``timeout`` s for news; return whose (the worker's is read by its handle)."""
    watched: dict[Any, tuple[CameraBranch, NewsFrom]] = {}
    for branch in branches:
        if not branch.ended:
            watched[branch.control] = (branch, "capture")
            watched[branch.process.sentinel] = (branch, "capture")
        if branch.recorder is not None and branch.recorder.running:
            watched[branch.recorder.control] = (branch, "recorder")
    analysis_objects = analysis.wait_objects() if analysis else []
    if not (watched or analysis_objects):
        time.sleep(timeout)  # nothing to wait on: the caller still gets its pace
        return []
    ready = wait([*watched, *analysis_objects], timeout=timeout)
    return [watched[item] for item in ready if item not in analysis_objects]


def capture_news(session: WatchedSession, branch: CameraBranch) -> list[SessionEvent]:
    """Take a capture process's news: its camera ended, failed, or the process died."""
    message = receive(branch.control)
    if isinstance(message, Finished):
        branch.finished = message
        if message.reason == EndReason.CAMERA_FAILED:
            session.report_error(message.message)
            event = SessionEvent(logging.ERROR, message.message, branch.name)
            return [event, *camera_lost(session, branch)]
        text = f"camera {branch.name!r}: {message.message} after {message.frames} frames"
        log.info("%s", text)
        return [SessionEvent(logging.INFO, text, branch.name)]
    if not branch.process.is_alive() or message is None:
        join_or_terminate(branch.process, 1.0)
        text = (
            f"camera {branch.name!r}: its capture process died (exit code "
            f"{branch.process.exitcode}); this camera's files end at its last frame"
        )
        branch.failure = text
        session.report_error(text)
        return [SessionEvent(logging.ERROR, text, branch.name), *camera_lost(session, branch)]
    return []
