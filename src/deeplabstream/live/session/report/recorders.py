"""Recorders gone silent: a recorder process that gives no sign of life while the stream runs.

docs/reliability.md (a recorder that stops answering).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from deeplabstream.live.session.cameras import CameraBranch
from deeplabstream.live.session.report.events import SessionEvent
from deeplabstream.transport.ring import Channel

log = logging.getLogger(__name__)

#: A recorder silent this long is said to be so (it beats at least once a second).
SILENT_WARN_S = 2.0


@dataclass
class _Silence:
    """A recorder's silence going on: since when (host ns)."""

    since_ns: int


def frames_waiting(branch: CameraBranch) -> int:
    """Return the frames captured since its recording began that its recorder has not taken."""
    recorder, ring = branch.recorder, branch.ring
    if recorder is None or recorder.ready is None or ring is None or ring.header is None:
        return 0
    header = ring.header
    taken = int(header["consumed"][Channel.RECORD]) + int(header["lost"][Channel.RECORD])
    return max(0, int(header["write_seq"]) - recorder.ready.first_seq - taken)


class RecorderWatch:
    """See when a camera's recorder gives no sign of life (``session_start_ns``: host clock)."""

    def __init__(self, session_start_ns: int) -> None:
        self.session_start_ns = session_start_ns
        self._silent: dict[str, _Silence] = {}

    def check(self, branches: list[CameraBranch]) -> list[tuple[SessionEvent, str | None]]:
        """Look at every running recorder; return what to say and the warning to keep (if any)."""
        news: list[tuple[SessionEvent, str | None]] = []
        now_ns = time.perf_counter_ns()
        for branch in branches:
            recorder = branch.recorder
            running = recorder is not None and recorder.running
            silent_s = recorder.silent_s() if recorder is not None and running else 0.0
            silence = self._silent.get(branch.name)
            if silence is None and silent_s >= SILENT_WARN_S:
                self._silent[branch.name] = _Silence(now_ns - round(silent_s * 1e9))
                text = (
                    f"camera {branch.name!r}: its recorder has given no sign of life for "
                    f"{silent_s:.1f} s (its process is stopped or stuck): "
                    f"{frames_waiting(branch)} frame(s) captured meanwhile wait to be recorded; "
                    "those the ring no longer holds when it answers are lost"
                )
                news.append((SessionEvent(logging.WARNING, text, branch.name), None))
            elif silence is not None and running and silent_s < SILENT_WARN_S:
                del self._silent[branch.name]
                lasted_s = (now_ns - silence.since_ns) / 1e9 - silent_s
                at_s = (silence.since_ns - self.session_start_ns) / 1e9
                text = (
                    f"camera {branch.name!r}: its recorder gave no sign of life for "
                    f"{lasted_s:.1f} s, {at_s:.1f} s into the session (its process was stopped "
                    "or stuck); the frames it could not take meanwhile are counted in "
                    "frames_lost_in_recording"
                )
                news.append((SessionEvent(logging.WARNING, text, branch.name), text))
            elif silence is not None and not running:
                del self._silent[branch.name]  # ended: its result says how (the stop's error)
        return news

    def silent_s(self, camera: str, branches: list[CameraBranch]) -> float | None:
        """Return how long the camera's recorder has been silent, once said; None otherwise."""
        if camera not in self._silent:
            return None
        branch = next((b for b in branches if b.name == camera), None)
        recorder = branch.recorder if branch is not None else None
        return recorder.silent_s() if recorder is not None else None
