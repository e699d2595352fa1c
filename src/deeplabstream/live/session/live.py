"""The main process's side of a stream: start the camera and recorder processes, watch, stop.

Order of a run: docs/architecture.md, "Start and stop sequence".
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from deeplabstream.core.control import (
    StopCheck,
    StopRequested,
    check_stop,
    receive,
)
from deeplabstream.core.fault_hooks import hold_here
from deeplabstream.core.logs import (
    add_log_file,
    drop_held_log_lines,
    hold_log_lines,
    remove_log_file,
)
from deeplabstream.core.plugins import plugin_notices
from deeplabstream.core.priority import (
    MainPlacement,
    inference_thread_count,
    main_process_priority,
    plan_priorities,
)
from deeplabstream.hardware.cameras.base import CameraControl, CameraError
from deeplabstream.live.processes.messages import Start
from deeplabstream.live.session.analysis_plan import PoseEstimation, events_file_name
from deeplabstream.live.session.camera_access import (
    camera_controls,
    display_reader,
    set_camera_control,
)
from deeplabstream.live.session.cameras import (
    CameraBranch,
    abort_captures,
    await_opened,
    close_connections,
    collect_finished_captures,
    file_errors,
    is_live,
    join_captures,
    ring_spec,
    spawn_capture,
)
from deeplabstream.live.session.exports import write_exports
from deeplabstream.live.session.preflight import start_warnings
from deeplabstream.live.session.reloading import reload
from deeplabstream.live.session.report.camera_loss import camera_lost
from deeplabstream.live.session.report.events import SessionEvent
from deeplabstream.live.session.report.figures import process_ids
from deeplabstream.live.session.report.news import capture_news, wait_for_news
from deeplabstream.live.session.report.session_report import SessionReport
from deeplabstream.live.session.video_recordings import (
    RecordingError,
    collect_recorders,
    is_recording,
    recording_losses,
    request_stops,
    start_recordings,
    take_recorder_result,
)
from deeplabstream.outputs.folder import (
    SESSION_LOG,
    release_reserve,
    remove_preview_folder,
    start_session_folder,
)
from deeplabstream.outputs.pose.recovery import how_it_ended
from deeplabstream.outputs.session_record import SessionRecord
from deeplabstream.settings.effective import CameraPlan, resolve_cameras
from deeplabstream.settings.outputs import chosen_outputs
from deeplabstream.settings.sections import Settings
from deeplabstream.transport.channel import Doorbell, doorbell_kind
from deeplabstream.transport.readers import NewestFrameReader
from deeplabstream.transport.ring import FrameRing

log = logging.getLogger(__name__)


class LiveSession:
    """All cameras of one settings file, streaming into one session folder."""

    def __init__(
        self,
        settings: Settings,
        *,
        output_dir: Path | None = None,
        max_frames: int | None = None,
        log_level: int = logging.INFO,
        plan: CameraPlan | None = None,
    ) -> None:
        self.settings = settings
        # The run's plan (settings/effective.py), made where the command line met the file;
        # None: resolved from ``settings`` at first use (camera_plan).
        self._plan = plan
        self.output_dir = output_dir or settings.output.directory
        self.max_frames = max_frames
        self.session_dir: Path | None = None
        self.stop_reason = ""
        self.errors: list[str] = []
        self.warnings: list[str] = []  # worth knowing, not a failure: session.json "warnings"
        self._start_warnings: list[str] | None = None  # found before the start, once
        self._log_level = log_level
        self._context = multiprocessing.get_context("spawn")
        self.branches: list[CameraBranch] = []  # each camera's process, ring, recorder, in order
        self.started_at = datetime.now().astimezone()  # session.json's clock, with:
        self.started_host_s = time.perf_counter()
        self._started = self._stopped = False
        self._hurry = False  # the stop was asked for again: wait for no process that finishes
        self.priority_plan = plan_priorities(
            settings.streaming.cpu_affinity,
            inference_thread_count(settings.pose.threads),
            side_niceness=settings.streaming.side_niceness if is_live(settings) else 0,
        )
        self._main_priority: MainPlacement | None = None
        self.doorbell: Doorbell | None = None  # chosen when the session opens
        self._log_file: logging.Handler | None = None  # session.log, closed at the stop
        # The one owner of watching this session and saying what it saw (live/session/report/).
        self.report = SessionReport(settings, self.started_host_s)
        # Start/Stop Analysis and Experiment: the inference worker and every analysis of it.
        self.pose = PoseEstimation(self, self._context, log_level, self._hurried)

    # -- start -------------------------------------------------------------------------------

    def open(self, stop_requested: StopCheck | None = None) -> Path:
        """Open every camera in its own process; make the session folder and the rings.

        Raises CameraError (every camera's problem) when one cannot be opened, StopRequested when
        ``stop_requested`` gives a reason while they open; then nothing runs and no folder is made.
        """
        check_stop(stop_requested)  # asked before anything starts: nothing is started
        hold_log_lines()  # the cameras open before session.log exists: its first lines
        # Every process's channel ends must agree: the choice travels in each process's job.
        self.doorbell = doorbell_kind(self.settings.streaming.doorbell)
        # The main process (and a GUI's drawing) keeps off the inference worker's cores while
        # the stream runs; :meth:`stop` gives it its cores back.
        self._main_priority = main_process_priority(self.priority_plan)
        for camera_id, camera in enumerate(self.settings.cameras):
            self.branches.append(
                spawn_capture(
                    self._context,
                    camera_id,
                    camera,
                    self.max_frames,
                    self._log_level,
                    self.priority_plan,
                    self.doorbell,
                )
            )
        try:
            problems = await_opened(self.branches, stop_requested)
        except StopRequested:
            self._abandon_start()
            raise
        if problems:
            self._abandon_start()
            raise CameraError("\n".join(problems))
        self.report.clean_up_at_start(self, self.output_dir)  # a damaged session.json: warned
        for warning in self.start_warnings():  # an exposure that lowers the rate, rings
            self.report_warning(warning)
        try:  # the session folder, its log and its space reserve; a clear error on a full disk
            self.session_dir = start_session_folder(
                self.output_dir, self.started_at, self.settings.session.animal
            )
            self._log_file = add_log_file(self.session_dir / SESSION_LOG)
        except OSError:
            self._abandon_start()
            raise
        for branch in self.branches:
            branch.ring = FrameRing.create(ring_spec(branch, self.settings))
        self.report.write(self, "running")
        log.info("session folder: %s", self.session_dir)
        assert self.session_dir is not None  # made above, or an OSError was raised
        return self.session_dir

    def start_warnings(self) -> list[str]:
        """Return the warnings found before the start (preflight.start_warnings), found once."""
        if self._start_warnings is None:
            # and what the plugins imported so far gave the lab to read (core/plugins/)
            self._start_warnings = start_warnings(self.settings) + plugin_notices()
        return list(self._start_warnings)

    def start(self) -> None:
        """Let every camera publish frames; one whose process has ended is marked failed."""
        assert self.session_dir is not None, "open() first"
        gone = []
        for branch in self.branches:
            assert branch.ring is not None
            try:
                branch.control.send(Start(branch.ring.spec, self.session_dir))
            except OSError:  # its end of the pipe is closed: the process has ended
                gone.append(branch)
        self._started = True
        for branch in gone:
            self._capture_gone_before_start(branch)
        self.report.write(self, "running")  # now with the recorders' process ids

    def _capture_gone_before_start(self, branch: CameraBranch) -> None:
        """Report a capture process that ended after its camera opened, before the stream."""
        branch.process.join(1.0)
        branch.failure = (
            f"camera {branch.name!r}: its capture process ended before the stream started "
            f"({how_it_ended(branch.process.exitcode)}), after its camera had opened: nothing of "
            "this camera was streamed or recorded"
        )
        self.report_error(branch.failure)
        camera_lost(self, branch)  # [Streaming] ON_CAMERA_LOST: the others go on, or all stop

    def _abandon_start(self) -> None:
        """End every capture process of a start that cannot go on; give back the cores."""
        abort_captures(self.branches)
        drop_held_log_lines()  # no session.log comes
        self._stopped = True
        if self._main_priority is not None:
            self._main_priority.restore()

    # -- recording ---------------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        """True while any camera's recorder runs."""
        return is_recording(self.branches)

    def start_recording(self) -> None:
        """Start a recorder per streaming camera; returns once all of them are subscribed."""
        if self.session_dir is None or self._stopped:
            raise RecordingError("the stream is not running: start the stream first")
        start_recordings(
            self._context,
            self.branches,
            self.session_dir,
            self.settings.recording,
            self._log_level,
            self.priority_plan.for_role("recorder"),
            self.report_error,
        )
        self.report.priority_entry(self)  # each recorder set its priority before it was ready
        log.info("recording to %s", self.session_dir)

    def stop_recording(self) -> None:
        """Finish every recording: frames announced so far are written, files are closed."""
        request_stops(self.branches)
        collect_recorders(self.branches, self.session_dir, self.report_error, self._hurried)

    # -- while running -----------------------------------------------------------------------

    def service(self, timeout: float) -> list[SessionEvent]:
        """Wait up to ``timeout`` s for news from the processes and handle it; never blocks longer.

        Returns what the user should be told (camera ended or failed, disk filling up).
        """
        events: list[SessionEvent] = []
        for branch, source in wait_for_news(self.branches, self.pose.analysis, timeout):
            if source == "capture" and not branch.ended:
                events += capture_news(self, branch)
            elif source == "recorder" and branch.recorder and branch.recorder.running:
                branch.recorder.take(receive(branch.recorder.control))
                if not branch.recorder.running:
                    take_recorder_result(branch, self.report_error)
        events += self.pose.news()
        events += self.report.look(self)  # disk, lost cameras, delivery, health, session.json
        return events

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` has run (or opening failed): nothing streams any more."""
        return self._stopped

    @property
    def all_ended(self) -> bool:
        """True when no camera is streaming any more."""
        return bool(self.branches) and all(b.ended for b in self.branches)

    @property
    def camera_plan(self) -> CameraPlan:
        """Each camera's effective settings (settings/effective.py), resolved once per settings."""
        if self._plan is None or self._plan.settings is not self.settings:
            self._plan = resolve_cameras(self.settings)
        return self._plan

    def likelihood_threshold(self, camera_name: str) -> float:
        """Return the camera's own LIKELIHOOD_THRESHOLD, else ``[Pose] LIKELIHOOD_THRESHOLD``."""
        return self.camera_plan.threshold(camera_name)

    def display_reader(self, camera_name: str) -> NewestFrameReader:
        """Return a newest-frame reader on a camera's DISPLAY channel, for a window here."""
        return display_reader(self.branches, camera_name)

    @property
    def camera_names(self) -> list[str]:
        """Names of the cameras, in settings order."""
        return [b.name for b in self.branches]

    def camera_controls(self, name: str) -> tuple[CameraControl, ...]:
        """Return a camera's controls and limits as last reported (KeyError: no such camera)."""
        return camera_controls(self.branches, name)

    def set_camera_control(
        self, camera: str, control: str, value: float, timeout_s: float = 2.0
    ) -> float:
        """Set a live control of a streaming camera; return the value the camera really took.

        Raises CameraError: no such camera, not streaming, the value refused (its limits given), or
        no answer within ``timeout_s``.
        """
        streaming = self._started and not self._stopped
        return set_camera_control(self.branches, streaming, camera, control, value, timeout_s)

    def camera_stats(self) -> dict[str, dict[str, Any]]:
        """Live per-camera figures read from the ring headers (cheap; call it often)."""
        return self.report.camera_stats(self)

    # -- stop --------------------------------------------------------------------------------

    def stop(self, reason: str = "stop requested") -> None:
        """Stop everything in order and finalise the session. Safe to call more than once."""
        if self._stopped:
            return
        self._stopped = True
        self.stop_reason = self.stop_reason or reason
        hold_here("stream-stop")  # a fault test's chosen moment (core/fault_hooks.py)
        for branch in self.branches:
            if branch.ring is not None:
                branch.ring.request_stop()
        if self._started:  # before the start no camera streamed: none has an end to say
            collect_finished_captures(self.branches, self.report_error, self._hurried)
        self.report.cameras_ended(self, self.branches)  # delivery's last word, cut videos
        if not self._started:  # stopped during start-up: no frame, so no end-of-stream, comes
            request_stops(self.branches)
        else:  # a camera whose capture process died sends no end-of-stream to its recorder
            request_stops([branch for branch in self.branches if branch.failure is not None])
        # recorders end on the end-of-stream record
        collect_recorders(self.branches, self.session_dir, self.report_error, self._hurried)
        for error in recording_losses(self.branches):
            self.report_error(error)
        self.pose.stop_analysis()  # so does the inference worker
        self.report.judge(self)
        join_captures(self.branches, self._started)
        for branch in self.branches:  # side files of the cameras that stopped early
            for file_error in file_errors(branch):
                self.report_error(file_error)
        if self._main_priority is not None:
            self._main_priority.restore()
        final_stats = self.camera_stats()
        for branch in self.branches:
            if branch.ring is not None:
                branch.ring.close()
                branch.ring.unlink()
            close_connections(branch)
        if self.session_dir is not None:
            self.report.write(self, "finished", final_stats)
            write_exports(
                self.session_dir,
                chosen_outputs(self.settings),
                analysed=bool(self.pose.analyses),
                preview=self.was_preview,
                on_failure=lambda text: self._export_failed(text, final_stats),
            )
            release_reserve(self.session_dir)
        log.info("stream stopped: %s", self.stop_reason)
        if self._log_file is not None:
            remove_log_file(self._log_file)
            self._log_file = None
        if self.session_dir is not None and self.session_dir.is_dir():
            # Last, once nothing writes any more: every file's digest (deeplabstream-verify).
            self.report.prove_files(self, final_stats)

    def hurry_stop(self) -> None:
        """Stop waiting for processes that still finish (the stop was asked for again).

        Callable from a signal handler; what still runs is ended within a second or two.
        """
        self._hurry = True

    def _hurried(self) -> bool:
        return self._hurry

    def _export_failed(self, text: str, final_stats: dict[str, dict[str, Any]]) -> None:
        """Report an export that failed (live.session.exports); session.json then says so."""
        self.report_error(text)
        self.report.write(self, "finished", final_stats)  # now with that error

    @property
    def recorded_anything(self) -> bool:
        """True when a camera of the session was recorded."""
        return any(b.recordings or b.recorder is not None for b in self.branches)

    @property
    def was_preview(self) -> bool:
        """True when the session only streamed: nothing recorded, analysed or gone wrong."""
        return not (self.recorded_anything or self.pose.analyses or self.errors)

    def discard_preview(self) -> bool:
        """Remove the folder of a stopped preview (:attr:`was_preview`); True when removed.

        A folder holding anything but the session's own files is kept whole.
        """
        folder = self.session_dir
        if folder is None or not self._stopped or not self.was_preview:
            return False
        # An experiment stopped before its first pose left an events file: the session's too.
        started = [events_file_name(n) for n in range(1, self.pose.experiments_started + 1)]
        if not remove_preview_folder(folder, self.camera_names, started):
            return False
        log.info("preview only: removed its session folder %s", folder)
        self.session_dir = None
        return True

    def reload_settings(self, settings: Settings) -> list[str]:
        """Take the parts of ``settings`` that may change while streaming; say what was not taken.

        Model, experiment, devices, latency test and recording apply from the next start of each;
        cameras, streaming, output and session keys wait for the next Start Stream (the notes).
        """
        if settings == self.settings:
            return []
        taken = reload(self.settings, settings)
        self.settings = taken.settings
        self.report.settings_reloaded(self.settings, tuple(taken.changed))
        if taken.changed:
            log.info(
                "settings re-read from %s: %s changed",
                settings.source_file,
                ", ".join(taken.changed),
            )
        return list(taken.notes)

    def report_error(self, text: str) -> None:
        """Record an error for the summary and session.json, and log it."""
        if text not in self.errors:
            self.errors.append(text)
            log.error("%s", text)

    def report_warning(self, text: str) -> None:
        """Record a warning for session.json (``warnings``) and the window, and log it."""
        if text not in self.warnings:
            self.warnings.append(text)
            log.warning("%s", text)

    def replace_warning(self, old: str | None, text: str) -> None:
        """Put ``text`` in place of the warning ``old`` (a figure that grew); else add it."""
        if old is not None and old in self.warnings and text not in self.warnings:
            self.warnings[self.warnings.index(old)] = text
            log.warning("%s", text)
        else:
            self.report_warning(text)

    def __enter__(self) -> LiveSession:
        """Return the session, to be stopped when the block ends."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the session, saying whether an error ended the block."""
        self.stop("stopped after an error" if exc[0] is not None else "stop requested")

    # -- session.json ------------------------------------------------------------------------

    @property
    def record(self) -> SessionRecord | None:
        """``session.json`` as last written (the summaries read it); None before the first."""
        return self.report.record

    def process_ids(self) -> dict[str, int | None]:
        """Return the process id of every process of the session, by process name."""
        return process_ids(self.branches, self.pose.analyses)
