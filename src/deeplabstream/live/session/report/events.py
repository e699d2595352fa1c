"""What the user hears while the stream runs (:class:`SessionEvent`), and what a watch may do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from deeplabstream.live.session.analysis import Analysis
from deeplabstream.live.session.cameras import CameraBranch
from deeplabstream.settings.sections import Settings


@dataclass(frozen=True)
class SessionEvent:
    """Something the user should hear about, raised while the stream runs."""

    level: int  # logging level
    message: str
    camera: str | None = None


class PoseState(Protocol):
    """What the report reads of the session's analyses (live.session.analysis_plan)."""

    analysis: Analysis | None  # the current (or last) analysis
    analyses: list[Analysis]  # every analysis of the session, in order

    @property
    def analysing(self) -> bool: ...  # noqa: D102 (a protocol's member)

    def stop_analysis(self) -> None: ...  # noqa: D102


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
    def pose(self) -> PoseState: ...  # noqa: D102

    def report_error(self, text: str) -> None: ...  # noqa: D102

    def stop_recording(self) -> None: ...  # noqa: D102
