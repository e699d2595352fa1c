"""What a session says about itself: ``session.json``, its processes and each camera's figures.

:class:`SessionJson` fills ``session.json``'s typed record (:mod:`outputs.session_record`, the
one owner of its shape) from the session (read through
:class:`ReportedSession`) and writes it: at each change of state, and every
``SESSION_JSON_PERIOD_S`` while the session runs, so that a session killed hard still says how
far it got. :func:`camera_figures` and :func:`process_ids` are the live figures the window and
the summary read.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from deeplabstream.core.liveness import process_start_time
from deeplabstream.core.machine import machine_description
from deeplabstream.core.priority import PriorityPlan, observed_priorities
from deeplabstream.live.session.analysis import Analysis
from deeplabstream.live.session.cameras import CameraBranch, branch_stats, camera_entry
from deeplabstream.live.session.health import SessionHealth
from deeplabstream.live.session.plugins_used import plugins_named
from deeplabstream.live.session.record import SESSION_JSON_PERIOD_S, run_label, session_metadata
from deeplabstream.outputs.folder import SESSION_JSON, package_versions
from deeplabstream.outputs.session_record import (
    Cleanup,
    Clock,
    ExperimentRun,
    PoseRun,
    Priority,
    SessionRecord,
    SettingsReload,
    parse_or_keep,
    write_record,
)
from deeplabstream.settings.loader import settings_as_dict
from deeplabstream.settings.sections import Settings
from deeplabstream.transport.channel import Doorbell

log = logging.getLogger(__name__)


class ReportedSession(Protocol):
    """What ``session.json`` reads of the session (live.session.live.LiveSession)."""

    settings: Settings
    session_dir: Path | None
    stop_reason: str
    errors: list[str]
    warnings: list[str]
    started_at: datetime  # wall-clock time at the start
    started_host_s: float  # the host clock (time.perf_counter) at the same moment
    analysis: Analysis | None
    analyses: list[Analysis]
    health: SessionHealth
    priority_plan: PriorityPlan
    doorbell: Doorbell | None
    cleanup: Cleanup
    settings_reloads: list[SettingsReload]

    @property
    def branches(self) -> list[CameraBranch]: ...  # noqa: D102 (a protocol's member)

    @property
    def stopped(self) -> bool: ...  # noqa: D102


def camera_figures(
    branches: list[CameraBranch], analysis: Analysis | None, health: SessionHealth
) -> dict[str, dict[str, Any]]:
    """Return live per-camera figures read from the ring headers (cheap; call it often)."""
    stats = {branch.name: branch_stats(branch) for branch in branches}
    if analysis is not None:
        experiment = bool(analysis.experiment_running or analysis.experiment_summaries)
        for name, figures in stats.items():
            figures["latency_ms"] = analysis.recent_latency_ms(name)
            figures["loop_latency_ms"] = (
                analysis.recent_latency_ms(name, end_to_end=True) if experiment else None
            )
            live = analysis.live_deadline.get(name)
            figures["late"] = live.misses if live is not None else 0
            figures["stalled_s"] = health.stalled_s(name)
    return stats


def process_ids(branches: list[CameraBranch], analyses: list[Analysis]) -> dict[str, int | None]:
    """Return the process id of every process of the session, by process name."""
    processes: dict[str, int | None] = {"main": os.getpid()}
    for branch in branches:
        processes[branch.process.name] = branch.process.pid
        processes.update(branch.recorder_pids)
    for run, analysis in enumerate(analyses, start=1):
        processes[f"pose{run_label(run)}"] = analysis.process.pid
    return processes


def experiment_summaries(analyses: list[Analysis]) -> list[dict[str, Any]]:
    """Return the summary of every experiment of the session's analyses, in order."""
    return [summary for analysis in analyses for summary in analysis.experiment_summaries]


def last_experiment_summary(analyses: list[Analysis]) -> dict[str, Any] | None:
    """Return the summary of the session's last experiment; None when none ran."""
    for analysis in reversed(analyses):
        summary = analysis.experiment_summary()
        if summary is not None:
            return summary
    return None


class SessionJson:
    """``session.json`` of one session: what it holds, and when it is written.

    The record's shape is :class:`outputs.session_record.SessionRecord`'s; this class fills it
    from the session. What child processes reported (the worker's figures, the experiments'
    summaries) is read into its typed parts (:func:`parse_or_keep`).
    """

    def __init__(self) -> None:
        self.record: SessionRecord | None = None  # as last written: the summaries read it
        self._static: dict[str, Any] | None = None  # versions, machine, settings: read once
        # The plugins the settings name, and whether the pose ones (backend, format) are in.
        self._plugins: tuple[dict[str, dict[str, str]], bool] | None = None
        self._observed_priorities: dict[str, dict[str, Any]] = {}
        self._next_write = 0.0

    def forget_settings(self) -> None:
        """Read the settings again at the next write (they were re-read while streaming)."""
        self._static = None
        self._plugins = None

    def plugins_entry(self, session: ReportedSession) -> dict[str, dict[str, str]]:
        """Return the plugins the settings name (the pose ones once an analysis started)."""
        analysed = bool(session.analyses)
        if self._plugins is None or (analysed and not self._plugins[1]):
            formats = {
                name: origin
                for analysis in session.analyses
                for name, origin in analysis.ready.model_formats.items()
            }
            self._plugins = (plugins_named(session.settings, analysed, formats), analysed)
        return self._plugins[0]

    def write(
        self,
        session: ReportedSession,
        status: str,
        stats: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Write ``session.json`` with the current state of the session."""
        assert session.session_dir is not None
        stats = stats or camera_figures(session.branches, session.analysis, session.health)
        record = self._document(session, status, stats)
        self.record = record
        try:
            # The space reserve is for the final session.json only: an update while running
            # must not free it (the pose and event files would then fill it unnoticed).
            write_record(session.session_dir, record, use_reserve=status != "running")
        except OSError as error:  # the previous complete session.json stays
            log.error("could not update %s: %s", SESSION_JSON, error)

    def write_when_due(self, session: ReportedSession) -> None:
        """Rewrite session.json every few seconds while running (a hard kill keeps the last)."""
        now = time.monotonic()
        if session.session_dir is None or session.stopped or now < self._next_write:
            return
        self._next_write = now + SESSION_JSON_PERIOD_S
        self.write(session, "running")

    def priority_entry(self, session: ReportedSession) -> dict[str, Any]:
        """Return the placement plan and what each process was last seen running with."""
        pids = process_ids(session.branches, session.analyses)
        live: dict[str, int | None] = {name: pid for name, pid in pids.items() if pid is not None}
        # Processes that ended keep the values last seen (the final session.json is written
        # after every process has stopped).
        self._observed_priorities.update(observed_priorities(live))
        return {**session.priority_plan.describe(), "processes": dict(self._observed_priorities)}

    def _document(
        self, session: ReportedSession, status: str, stats: dict[str, dict[str, Any]]
    ) -> SessionRecord:
        """Return session.json's content: the session's state now, with ``stats`` per camera."""
        started_at = session.started_at.isoformat(timespec="microseconds")
        experiments = tuple(
            parse_or_keep(ExperimentRun, summary, f"experiment_runs[{index}]")
            for index, summary in enumerate(experiment_summaries(session.analyses))
        )
        pose_runs = tuple(
            parse_or_keep(PoseRun, analysis.summary(), f"pose_runs[{index}]")
            for index, analysis in enumerate(session.analyses)
        )
        last_pose = None
        for run, analysis in zip(pose_runs, session.analyses, strict=True):
            if analysis is session.analysis:
                last_pose = run
        if last_pose is None and session.analysis is not None:
            last_pose = parse_or_keep(PoseRun, session.analysis.summary(), "pose")
        last_experiment = last_experiment_summary(session.analyses)
        static = self._static_info(session)
        return SessionRecord(
            status=status,
            stop_reason=session.stop_reason or None,
            started=started_at,
            ended=datetime.now().astimezone().isoformat(timespec="microseconds")
            if status != "running"
            else None,
            clock=Clock(
                host_clock="time.perf_counter (system-wide monotonic), seconds",
                host_time_at_start=session.started_host_s,
                wall_time_at_start=started_at,
            ),
            errors=tuple(session.errors),
            warnings=tuple(session.warnings),
            metadata=session_metadata(session.settings),
            settings=static["settings"],
            versions=static["versions"],
            machine=static["machine"],
            cleanup_at_start=session.cleanup,
            # With the main pid, its start time: a later start tells a pid reused by another
            # process (after a reboot) from this session still running (core/liveness.py).
            main_process_started=static["main_process_started"],
            cameras={b.name: camera_entry(b, stats[b.name]) for b in session.branches},
            pose=last_pose,
            pose_runs=pose_runs,
            experiment=None
            if last_experiment is None
            else parse_or_keep(ExperimentRun, last_experiment, "experiment"),
            experiment_runs=experiments,
            health=session.health.section(
                session.analyses,
                experiments,
                round(session.started_host_s * 1e9),
                errors=session.errors,
                warnings=session.warnings,
            ),
            processes=process_ids(session.branches, session.analyses),
            priority=parse_or_keep(Priority, self.priority_entry(session), "priority"),
            doorbell=session.doorbell.value if session.doorbell is not None else None,
            settings_reloads=tuple(session.settings_reloads),
            plugins=self.plugins_entry(session),
        )

    def _static_info(self, session: ReportedSession) -> dict[str, Any]:
        """Return the parts of session.json that never change during a session (read once)."""
        if self._static is None:
            self._static = {
                "settings": settings_as_dict(session.settings),
                "versions": package_versions(),
                "machine": machine_description(),
                "main_process_started": process_start_time(os.getpid()),
            }
        return self._static
