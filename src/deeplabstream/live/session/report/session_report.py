"""The session's report: the one owner of watching a running session and saying what it saw."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from deeplabstream.live.session.analysis import Analysis
from deeplabstream.live.session.cameras import CameraBranch, is_live
from deeplabstream.live.session.report.camera_loss import watch_stalls
from deeplabstream.live.session.report.delivery import DeliveryNews, DeliveryWatch
from deeplabstream.live.session.report.disk import DiskWatch, watch_disk
from deeplabstream.live.session.report.events import SessionEvent
from deeplabstream.live.session.report.figures import camera_figures, experiment_summaries
from deeplabstream.live.session.report.health import (
    SessionHealth,
    no_animal_warnings,
    tell_health,
)
from deeplabstream.live.session.report.recorders import RecorderWatch, frames_waiting
from deeplabstream.live.session.report.session_json import (
    ReportedSession,
    SessionJson,
    clean_up_after_killed_sessions,
)
from deeplabstream.live.session.report.truncation import truncated_videos
from deeplabstream.outputs.session_record import Cleanup, SessionRecord, SettingsReload
from deeplabstream.settings.sections import Settings

log = logging.getLogger(__name__)


class ReportingSession(ReportedSession, Protocol):
    """What the report reads of the session and may do to it (live.session.live.LiveSession)."""

    def replace_warning(self, old: str | None, text: str) -> None: ...  # noqa: D102

    def report_warning(self, text: str) -> None: ...  # noqa: D102


class SessionReport:
    """Everything that watches one session and says what it saw.

    ``started_host_s``: the start on ``time.perf_counter``, from which warnings say when.
    """

    def __init__(self, settings: Settings, started_host_s: float) -> None:
        # The deadline, stalls and the verdict at the end (report/health.py).
        self.health = SessionHealth(settings.experiment, is_live(settings))
        # Each paced camera's delivered rate against its FRAMERATE, and stalls (delivery.py).
        self.delivery = DeliveryWatch(round(started_host_s * 1e9))
        self.recorders = RecorderWatch(round(started_host_s * 1e9))  # a recorder gone silent
        self.disk = DiskWatch(settings.recording)
        self.cleanup = Cleanup()  # what the start found left by killed sessions
        self.settings_reloads: list[SettingsReload] = []  # Start Analysis re-read the file
        self._json = SessionJson()  # what session.json holds, and when it is written

    # -- the start ---------------------------------------------------------------------------

    def clean_up_at_start(self, session: ReportingSession, output_dir: Path) -> None:
        """Clean up after killed sessions; report the damaged ``session.json`` moved aside."""
        self.cleanup = clean_up_after_killed_sessions(output_dir)
        for warning in self.cleanup.warnings:
            session.report_warning(warning)

    # -- while running -----------------------------------------------------------------------

    def look(self, session: ReportingSession) -> list[SessionEvent]:
        """Run every watch once; return what the user should be told (one service turn)."""
        events = watch_disk(session, self.disk)
        events += watch_stalls(session)
        events += self.tell_delivery(session, self.delivery.check(session.branches))
        for event, warning in self.recorders.check(session.branches):
            if warning is not None:
                session.report_warning(warning)
            else:
                log.warning("%s", event.message)
            events.append(event)
        if session.pose.analysing:
            events += [tell_health(session, news) for news in self.health.check(session.branches)]
        self._json.write_when_due(session, self)  # a session killed hard still says how far
        return events

    def tell_delivery(
        self, session: ReportingSession, news: list[DeliveryNews]
    ) -> list[SessionEvent]:
        """Keep what the delivery watch found in ``warnings``; return it for the user."""
        events = []
        for item in news:
            if item.warning is not None:
                session.replace_warning(item.replaces, item.warning)
            if item.live != item.warning:  # (a kept warning was logged as it was kept)
                log.log(item.level, "%s", item.live)
            events.append(SessionEvent(item.level, item.live, item.camera))
        return events

    def camera_stats(self, session: ReportedSession) -> dict[str, dict[str, Any]]:
        """Live per-camera figures read from the ring headers (cheap; call it often)."""
        stats = camera_figures(session.branches, session.pose.analysis, self.health)
        for name, figures in stats.items():  # what the delivery watch says now
            figures["below_framerate"] = self.delivery.below_rate(name)
            figures["no_frame_s"] = self.delivery.silent_s(name)
            to_stop = self.delivery.delivered_to_stop.get(name)
            if to_stop is not None:  # silent to the stop: the rate over the whole, not its frames
                figures["measured_fps"] = to_stop
        for branch in session.branches:  # a recorder gone silent, and the frames it leaves
            silent_s = self.recorders.silent_s(branch.name, session.branches)
            stats[branch.name]["recorder_silent_s"] = silent_s
            stats[branch.name]["record_waiting"] = frames_waiting(branch) if silent_s else 0
        return stats

    def settings_reloaded(self, settings: Settings, changed: tuple[str, ...]) -> None:
        """Take a settings file re-read while streaming: the limits now, the entry when changed."""
        self.disk = DiskWatch(settings.recording)
        self.health.settings = settings.experiment  # deadlines: from the next analysis
        if changed:
            self.settings_reloads.append(
                SettingsReload(
                    at=datetime.now().astimezone().isoformat(timespec="seconds"), changed=changed
                )
            )
            self._json.forget_settings()  # session.json shows the settings now in effect

    def analysis_ended(self, session: ReportingSession, analysis: Analysis) -> None:
        """Report what a stopped analysis left: a stall going on, its files' errors, no animal."""
        for news in self.health.end_analysis(session.branches):
            tell_health(session, news)
        for file_error in analysis.file_errors():
            session.report_error(file_error)
        for warning in analysis.finished.warnings if analysis.finished is not None else ():
            session.report_warning(warning)  # e.g. an LSL stream nobody heard
        for warning in no_animal_warnings(analysis.summary()["cameras"]):
            session.report_warning(warning)

    # -- the stop ----------------------------------------------------------------------------

    def cameras_ended(self, session: ReportingSession, branches: list[CameraBranch]) -> None:
        """End the delivery watch; report each video camera whose file was cut short."""
        self.tell_delivery(session, self.delivery.close(branches))
        for text in truncated_videos(branches):
            session.report_error(text)

    def judge(self, session: ReportingSession) -> None:
        """At the end: report each camera above the deadline's tolerance (see report/health)."""
        analyses = session.pose.analyses
        for news in self.health.judge(analyses, experiment_summaries(analyses)):
            tell_health(session, news)

    # -- session.json ------------------------------------------------------------------------

    @property
    def record(self) -> SessionRecord | None:
        """``session.json`` as last written (the summaries read it); None before the first."""
        return self._json.record

    def write(
        self,
        session: ReportedSession,
        status: str,
        stats: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Write ``session.json`` with the current state of the session."""
        self._json.write(session, self, status, stats)

    def prove_files(self, session: ReportedSession, stats: dict[str, dict[str, Any]]) -> None:
        """At the very end: record every file's digest in ``session.json`` (written again)."""
        self._json.prove_files(session, self, stats)

    def priority_entry(self, session: ReportedSession) -> dict[str, Any]:
        """Return the placement plan and what each process was last seen running with."""
        return self._json.priority_entry(session)
