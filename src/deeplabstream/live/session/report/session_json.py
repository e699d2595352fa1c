"""``session.json`` as the session fills it: when it is written, and what goes in.

Written at each change of state and every :data:`SESSION_JSON_PERIOD_S`.
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
from deeplabstream.core.plugins import plugin_files_entry
from deeplabstream.core.priority import PriorityPlan, observed_priorities
from deeplabstream.live.session.cameras import camera_entry
from deeplabstream.live.session.plugins_used import plugins_named
from deeplabstream.live.session.report.events import WatchedSession
from deeplabstream.live.session.report.figures import (
    camera_figures,
    experiment_summaries,
    last_experiment_summary,
    process_ids,
)
from deeplabstream.live.session.report.health import SessionHealth
from deeplabstream.outputs.folder import SESSION_JSON, package_versions
from deeplabstream.outputs.session_record import (
    Cleanup,
    Clock,
    ExperimentRun,
    FileDigest,
    Metadata,
    PluginFile,
    PoseRun,
    Priority,
    SessionRecord,
    SettingsReload,
    Subject,
    file_digest_record,
    parse_or_keep,
    write_record,
)
from deeplabstream.outputs.session_repair import recover_interrupted_sessions
from deeplabstream.outputs.signature import seal, signing_key
from deeplabstream.settings.loader import settings_as_dict
from deeplabstream.settings.sections import Settings
from deeplabstream.transport.channel import Doorbell
from deeplabstream.transport.ring import remove_stale_rings

log = logging.getLogger(__name__)

#: session.json is rewritten (atomically) this often while the session runs, so that a session
#: killed hard still says how far it got.
SESSION_JSON_PERIOD_S = 2.0


class ReportedSession(WatchedSession, Protocol):
    """What ``session.json`` reads of the session, as well as a watch's (LiveSession)."""

    errors: list[str]
    warnings: list[str]
    started_at: datetime  # wall-clock time at the start
    started_host_s: float  # the host clock (time.perf_counter) at the same moment
    priority_plan: PriorityPlan
    doorbell: Doorbell | None


class ReportParts(Protocol):
    """What ``session.json`` reads of the report (report.session_report.SessionReport)."""

    health: SessionHealth
    cleanup: Cleanup
    settings_reloads: list[SettingsReload]


class SessionJson:
    """``session.json`` of one session, filled from the session into its typed record."""

    def __init__(self) -> None:
        self.record: SessionRecord | None = None  # as last written: the summaries read it
        self._static: dict[str, Any] | None = None  # versions, machine, settings: read once
        # The plugins the settings name, and whether the pose ones (backend, format) are in.
        self._plugins: tuple[dict[str, dict[str, str]], bool] | None = None
        self._observed_priorities: dict[str, dict[str, Any]] = {}
        self._next_write = 0.0
        self.files: dict[str, FileDigest] | None = None  # taken at the close (prove_files)

    def forget_settings(self) -> None:
        """Read the settings again at the next write (they were re-read while streaming)."""
        self._static = None
        self._plugins = None

    def plugins_entry(self, session: ReportedSession) -> dict[str, dict[str, str]]:
        """Return the plugins the settings name (the pose ones once an analysis started)."""
        analysed = bool(session.pose.analyses)
        if self._plugins is None or (analysed and not self._plugins[1]):
            formats = {
                name: origin
                for analysis in session.pose.analyses
                for name, origin in analysis.ready.model_formats.items()
            }
            self._plugins = (plugins_named(session.settings, analysed, formats), analysed)
        return self._plugins[0]

    def plugin_files_entry(self, session: ReportedSession) -> list[dict[str, str | None]]:
        """Return the lab's files among the plugins, with the SHA-256 of what ran."""
        reported = {
            file: digest
            for analysis in session.pose.analyses
            for file, digest in analysis.ready.lab_files.items()
        }
        return plugin_files_entry(self.plugins_entry(session), reported)

    def write(
        self,
        session: ReportedSession,
        parts: ReportParts,
        status: str,
        stats: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Write ``session.json`` with the current state of the session."""
        assert session.session_dir is not None
        stats = stats or camera_figures(session.branches, session.pose.analysis, parts.health)
        record = self._document(session, parts, status, stats)
        self.record = record
        try:
            # The space reserve is for the final session.json only: an update while running
            # must not free it (the pose and event files would then fill it unnoticed).
            write_record(session.session_dir, record, use_reserve=status != "running")
        except OSError as error:  # the previous complete session.json stays
            log.error("could not update %s: %s", SESSION_JSON, error)
            said = f"{SESSION_JSON} could not be written at the close: {error}"
            if status != "running" and said not in session.errors:
                session.errors.append(said)  # in the summary: the record on disk is older

    def prove_files(
        self, session: ReportedSession, parts: ReportParts, stats: dict[str, dict[str, Any]]
    ) -> None:
        """Take the digest of every file the finished session wrote; write session.json again."""
        assert session.session_dir is not None
        try:
            self.files = file_digest_record(session.session_dir)
        except OSError as error:  # a file that vanished or cannot be read: said, not hidden
            session.errors.append(f"the session's files could not all be digested: {error}")
        key = signing_key(session.warnings)
        self.write(session, parts, "finished", stats)
        if key is not None and self.files is not None:
            seal(session.session_dir, key)

    def write_when_due(self, session: ReportedSession, parts: ReportParts) -> None:
        """Rewrite session.json every few seconds while running (a hard kill keeps the last)."""
        now = time.monotonic()
        if session.session_dir is None or session.stopped or now < self._next_write:
            return
        self._next_write = now + SESSION_JSON_PERIOD_S
        self.write(session, parts, "running")

    def priority_entry(self, session: ReportedSession) -> dict[str, Any]:
        """Return the placement plan and what each process was last seen running with."""
        pids = process_ids(session.branches, session.pose.analyses)
        live: dict[str, int | None] = {name: pid for name, pid in pids.items() if pid is not None}
        # Processes that ended keep the values last seen (the final session.json is written
        # after every process has stopped).
        self._observed_priorities.update(observed_priorities(live))
        return {**session.priority_plan.describe(), "processes": dict(self._observed_priorities)}

    def _document(
        self,
        session: ReportedSession,
        parts: ReportParts,
        status: str,
        stats: dict[str, dict[str, Any]],
    ) -> SessionRecord:
        """Return session.json's content: the session's state now, with ``stats`` per camera."""
        started_at = session.started_at.isoformat(timespec="microseconds")
        experiments = tuple(
            parse_or_keep(ExperimentRun, summary, f"experiment_runs[{index}]")
            for index, summary in enumerate(experiment_summaries(session.pose.analyses))
        )
        pose_runs = tuple(
            parse_or_keep(PoseRun, analysis.summary(), f"pose_runs[{index}]")
            for index, analysis in enumerate(session.pose.analyses)
        )
        last_pose = None
        for run, analysis in zip(pose_runs, session.pose.analyses, strict=True):
            if analysis is session.pose.analysis:
                last_pose = run
        if last_pose is None and session.pose.analysis is not None:
            last_pose = parse_or_keep(PoseRun, session.pose.analysis.summary(), "pose")
        last_experiment = last_experiment_summary(session.pose.analyses)
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
            cleanup_at_start=parts.cleanup,
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
            health=parts.health.section(
                session.pose.analyses,
                experiments,
                round(session.started_host_s * 1e9),
                errors=session.errors,
                warnings=session.warnings,
            ),
            processes=process_ids(session.branches, session.pose.analyses),
            priority=parse_or_keep(Priority, self.priority_entry(session), "priority"),
            doorbell=session.doorbell.value if session.doorbell is not None else None,
            settings_reloads=tuple(parts.settings_reloads),
            plugins=self.plugins_entry(session),
            files=self.files,
            plugin_files=tuple(
                parse_or_keep(PluginFile, entry, "plugin_files")
                for entry in self.plugin_files_entry(session)
            ),
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


def session_metadata(settings: Settings) -> Metadata:
    """Return ``session.json``'s ``metadata``: the ``[Session]`` keys the user filled in."""
    session = settings.session
    return Metadata(
        animal=session.animal,
        experimenter=session.experimenter,
        notes=session.notes,
        planned_duration_s=session.planned_duration,
        recorded_cameras=tuple(c.name for c in settings.cameras if c.common.record),
        # the subject and the lab, for session.nwb: NWB's forms, checked in settings
        subject=Subject(
            species=session.species,
            age=session.age,
            date_of_birth=session.date_of_birth,
            sex=session.sex,
            strain=session.strain,
        ),
        institution=session.institution,
        lab=session.lab,
        experiment_description=session.experiment_description,
    )


def clean_up_after_killed_sessions(output_dir: Path) -> Cleanup:
    """Remove the shared memory of dead sessions; mark their session folders ``interrupted``.

    Its ``warnings`` are the new session's to report.
    """
    rings = remove_stale_rings()
    if rings:
        megabytes = sum(ring.nbytes for ring in rings) / 2**20
        owners = sorted({ring.owner_pid for ring in rings})
        log.warning(
            "removed %d shared-memory ring(s) (%.0f MB) left in /dev/shm by killed session(s) "
            "(process ids %s)",
            len(rings),
            megabytes,
            ", ".join(map(str, owners)),
        )
    recovery = recover_interrupted_sessions(output_dir)
    for folder in recovery.interrupted:
        log.warning("session %s was interrupted (killed); marked so in its session.json", folder)
    return Cleanup(
        stale_rings_removed=tuple(ring.name for ring in rings),
        stale_ring_bytes=sum(ring.nbytes for ring in rings),
        interrupted_sessions_marked=tuple(str(folder) for folder in recovery.interrupted),
        # session.json files that were not a session's record: renamed, never deleted
        damaged_session_files_moved=tuple(str(path) for path in recovery.damaged),
        warnings=tuple(recovery.warnings),
    )
