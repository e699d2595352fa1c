"""The main process's side of a stream: start the camera and recorder processes, watch, stop.

Order of a run (``docs/architecture.md`` draws it)::

    stream = LiveSession(settings); stream.open()     capture processes open their cameras;
                                                  rings and the session folder are made
    stream.start_recording()                      (optional) recorders subscribe first
    stream.start()                                cameras begin publishing frames
    while ...: stream.service(timeout)            handles endings, failures, disk space
    stream.stop()                                 stop flag -> end-of-stream records ->
                                                  recorders finalise -> join -> unlink rings

``stop`` is safe to call at any point and more than once; it always leaves closed files, joined
processes and no shared memory behind (a process that does not stop in time is terminated).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import shutil
import time
from datetime import datetime
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from deeplabstream.core.control import (
    StopCheck,
    StopRequested,
    check_stop,
    join_or_terminate,
    receive,
    receive_within,
)
from deeplabstream.core.logs import LogTarget, add_log_file, remove_log_file
from deeplabstream.core.machine import machine_description
from deeplabstream.core.priority import (
    MainPlacement,
    inference_thread_count,
    main_process_priority,
    observed_priorities,
    plan_priorities,
)
from deeplabstream.experiments.registry import resolved_name
from deeplabstream.hardware.cameras.base import CameraControl, CameraError
from deeplabstream.hardware.stimulation.latency import LatencyTestSpec
from deeplabstream.live.processes.depth import depth_source
from deeplabstream.live.processes.dispatch import EVENTS_FILE
from deeplabstream.live.processes.messages import (
    Abort,
    ExperimentSpec,
    Finished,
    Start,
)
from deeplabstream.live.processes.pose_job import WorkerCamera
from deeplabstream.live.session.analysis import Analysis, PoseError
from deeplabstream.live.session.camera_access import (
    camera_controls,
    display_reader,
    likelihood_threshold,
    set_camera_control,
)
from deeplabstream.live.session.cameras import (
    OPEN_TIMEOUT_S,
    CameraBranch,
    await_opened,
    branch_stats,
    camera_entry,
    close_connections,
    ring_spec,
    spawn_capture,
)
from deeplabstream.live.session.exports import write_exports
from deeplabstream.live.session.health import SessionHealth
from deeplabstream.live.session.record import (
    SESSION_JSON_PERIOD_S,
    clean_up_after_killed_sessions,
    is_live,
    run_label,
    session_metadata,
)
from deeplabstream.live.session.recordings import (
    RECORDER_STOP_TIMEOUT_S,
    RecordingError,
    account_recording,
    check_free_space,
    recording_losses,
    spawn_recorder,
)
from deeplabstream.live.session.watchdogs import DiskWatch
from deeplabstream.live.session.watching import (
    SessionEvent,
    camera_lost,
    tell_health,
    watch_disk,
    watch_stalls,
)
from deeplabstream.outputs.folder import (
    RESERVE_FILE,
    SESSION_JSON,
    SESSION_LOG,
    create_session_folder,
    package_versions,
    release_reserve,
    remove_preview_folder,
    reserve_space,
    write_session_json,
)
from deeplabstream.pose.runtime.cropping import crop_settings
from deeplabstream.settings.loader import settings_as_dict
from deeplabstream.settings.sections import Settings
from deeplabstream.transport.channel import Doorbell, EndReason, export_doorbell
from deeplabstream.transport.readers import NewestFrameReader
from deeplabstream.transport.ring import (
    Channel,
    FrameRing,
)

log = logging.getLogger(__name__)

CAPTURE_STOP_TIMEOUT_S = 10.0


class LiveSession:
    """All cameras of one settings file, streaming into one session folder."""

    def __init__(
        self,
        settings: Settings,
        *,
        output_dir: Path | None = None,
        max_frames: int | None = None,
        log_level: int = logging.INFO,
    ) -> None:
        self.settings = settings
        self.output_dir = output_dir or settings.output.directory
        self.max_frames = max_frames
        self.session_dir: Path | None = None
        self.stop_reason = ""
        self.errors: list[str] = []
        self.warnings: list[str] = []  # worth knowing, not a failure: session.json "warnings"
        self._log_level = log_level
        self._context = multiprocessing.get_context("spawn")
        self._branches: list[CameraBranch] = []
        self._started_at = datetime.now().astimezone()
        self._started_host_s = time.perf_counter()
        self._started = self._stopped = False
        self._disk_watch = DiskWatch(settings.recording)
        self.analysis: Analysis | None = None  # the current (or last) analysis
        self.analyses: list[Analysis] = []  # every analysis of this session, in order
        self._experiments_started = 0
        self.priority_plan = plan_priorities(
            settings.streaming.cpu_affinity,
            inference_thread_count(settings.pose.threads),
            side_niceness=settings.streaming.side_niceness if is_live(settings) else 0,
        )
        self._observed_priorities: dict[str, dict[str, Any]] = {}
        self._main_priority: MainPlacement | None = None
        self._next_session_json = 0.0
        self._static_info: dict[str, Any] | None = None  # versions, machine: read once
        self.cleanup: dict[str, Any] = {}  # what the start found left by killed sessions
        self.doorbell: Doorbell | None = None  # chosen when the session opens
        self._log_file: logging.Handler | None = None  # session.log, closed at the stop
        self.settings_reloads: list[dict[str, Any]] = []  # Start Analysis re-read the file
        # The deadline, stalls and the verdict at the end (live/session/health.py).
        self.health = SessionHealth(settings.experiment, is_live(settings))
        self.record: dict[str, Any] | None = None  # session.json as last written: summaries

    # -- start -------------------------------------------------------------------------------

    def open(self, stop_requested: StopCheck | None = None) -> Path:
        """Open every camera in its own process; make the session folder and the rings.

        Raises CameraError (with every camera's problem) when any camera cannot be opened, and
        StopRequested when ``stop_requested`` gives a reason to stop while they open (Ctrl-C);
        then nothing is left running and no session folder is made.
        """
        check_stop(stop_requested)  # asked before anything starts: nothing is started
        # Every process's channel ends must agree: the choice travels in the environment.
        self.doorbell = export_doorbell(self.settings.streaming.doorbell)
        # The main process (and a GUI's drawing) keeps off the inference worker's cores while
        # the stream runs; :meth:`stop` gives it its cores back.
        self._main_priority = main_process_priority(self.priority_plan)
        for camera_id, camera in enumerate(self.settings.cameras):
            self._branches.append(
                spawn_capture(
                    self._context,
                    camera_id,
                    camera,
                    self.max_frames,
                    self._log_level,
                    self.priority_plan,
                )
            )
        try:
            problems = await_opened(self._branches, stop_requested)
        except StopRequested:
            self._abort_all()
            if self._main_priority is not None:
                self._main_priority.restore()
            raise
        if problems:
            self._abort_all()
            if self._main_priority is not None:
                self._main_priority.restore()
            raise CameraError("\n".join(problems))
        self.cleanup = clean_up_after_killed_sessions(self.output_dir)
        try:
            self._make_session_folder()
        except OSError:
            self._abort_all()
            if self._main_priority is not None:
                self._main_priority.restore()
            raise
        for branch in self._branches:
            branch.ring = FrameRing.create(ring_spec(branch, self.settings))
        self.write_session_json("running")
        log.info("session folder: %s", self.session_dir)
        assert self.session_dir is not None  # made above, or an OSError was raised
        return self.session_dir

    def _make_session_folder(self) -> None:
        """Make the session folder, its log and its space reserve; a clear error on a full disk."""
        self.session_dir = create_session_folder(
            self.output_dir, self._started_at, self.settings.session.animal
        )
        try:
            reserve_space(self.session_dir)
        except OSError as error:
            free = shutil.disk_usage(self.session_dir).free
            (self.session_dir / RESERVE_FILE).unlink(missing_ok=True)
            try:
                self.session_dir.rmdir()  # empty: nothing of this session was written
            except OSError:
                pass
            self.session_dir = None
            raise OSError(
                f"cannot start a session in {self.output_dir}: {error.strerror or error} "
                f"({free / 2**20:.1f} MiB free; a session needs at least 1 MiB to start). "
                "Free some space or choose another [Output] DIRECTORY / --output-dir."
            ) from None
        self._log_file = add_log_file(self.session_dir / SESSION_LOG)

    def start(self) -> None:
        """Let every camera begin publishing frames."""
        assert self.session_dir is not None, "open() first"
        for branch in self._branches:
            assert branch.ring is not None
            branch.control.send(Start(branch.ring.spec, self.session_dir))
        self._started = True
        self.write_session_json("running")  # now with the recorders' process ids

    def _abort_all(self) -> None:
        # A camera still opening reads its Abort once open, and ends without streaming.
        for branch in self._branches:
            if branch.process.is_alive():
                try:
                    branch.control.send(Abort())
                except OSError:
                    pass
        self._join_captures()
        for branch in self._branches:
            close_connections(branch)
        self._stopped = True

    # -- recording ---------------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        """True while any camera's recorder runs."""
        return any(b.recorder is not None and b.recorder.running for b in self._branches)

    def start_recording(self) -> None:
        """Start a recorder per streaming camera; returns once all of them are subscribed."""
        if self.session_dir is None or self._stopped:
            raise RecordingError("the stream is not running: start the stream first")
        check_free_space(self.session_dir, self.settings.recording)
        branches = [
            b
            for b in self._branches
            if not b.ended and b.recorder is None and b.settings.common.record
        ]
        if not branches and not self.recording:
            raise RecordingError(
                "no camera to record: every camera has RECORD = false (the Session form's "
                "Record boxes) or has ended"
            )
        for branch in branches:
            branch.recorder = spawn_recorder(
                self._context,
                branch,
                self.session_dir,
                self.settings.recording,
                self._log_level,
                self.priority_plan.for_role("recorder"),
            )
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        for branch in branches:
            assert branch.recorder is not None
            if not branch.recorder.await_ready(deadline):
                self._take_recorder_result(branch)
                raise RecordingError(f"camera {branch.name!r}: the recorder did not start")
        self.priority_entry()  # each recorder set its priority before it said it was ready
        log.info("recording to %s", self.session_dir)

    def stop_recording(self) -> None:
        """Finish every recording: frames announced so far are written, files are closed."""
        for branch in self._branches:
            if branch.recorder is not None:
                branch.recorder.request_stop()
        self._collect_recorders()

    def _collect_recorders(self) -> None:
        deadline = time.monotonic() + RECORDER_STOP_TIMEOUT_S
        for branch in self._branches:
            recorder = branch.recorder
            if recorder is None:
                continue
            recorder.collect(deadline)
            if branch.recorder_entry is None:
                self._take_recorder_result(branch)
            account_recording(branch, recorder, self.session_dir)
            branch.recorder, branch.recorder_entry = None, None

    def _report_recording_losses(self) -> None:
        for error in recording_losses(self._branches):
            self.report_error(error)

    def _take_recorder_result(self, branch: CameraBranch) -> None:
        """Add the finished recorder's result to the camera's recordings; report its losses."""
        assert branch.recorder is not None and branch.recorder.finished is not None
        message = branch.recorder.finished
        branch.recorder_entry = len(branch.recordings)
        branch.recordings.append(message)
        if message.error:
            self.report_error(f"camera {branch.name!r}: {message.error}")
        if message.frames_lost:
            log.warning(
                "camera %r: %d frame(s) could not be recorded (recorder fell behind)",
                branch.name,
                message.frames_lost,
            )

    # -- pose estimation ---------------------------------------------------------------------

    @property
    def analysing(self) -> bool:
        """True while the inference worker runs."""
        return self.analysis is not None and self.analysis.finished is None

    def start_analysis(
        self,
        experiment: bool = False,
        experiment_name: str | None = None,
        latency_test: LatencyTestSpec | None = None,
        stop_requested: StopCheck | None = None,
    ) -> None:
        """Start the inference worker for every streaming camera; returns once it is warmed up.

        With ``experiment``, the worker also runs ``[Experiment] NAME`` (or ``experiment_name``)
        on the poses, with the devices of the settings' ``[Device NAME]`` sections opened first;
        with ``latency_test`` too, its board runs the latency self-test meanwhile. Raises
        PoseError (model missing, provider not installed, experiment or device not available),
        and StopRequested when ``stop_requested`` gives a reason to stop while the model loads
        (the worker is ended; nothing of it is kept).
        """
        if self.session_dir is None or self._stopped:
            raise PoseError("the stream is not running: start the stream first")
        if self.analysing:
            return
        check_stop(stop_requested)  # asked before the worker starts: it is not started
        if self.analysis is not None:  # a worker that died: its frames are counted to now
            self.stop_analysis()
        cameras = [
            WorkerCamera(
                branch.camera_id,
                branch.name,
                branch.ring.spec,
                branch.channel_ends[Channel.ANALYSE],
                branch.settings.common.flip,
                branch.settings.common.model_path,
                # A RealSense's aligned depth image: experiments read it (Observation.depth_m).
                depth_source(
                    branch.name,
                    branch.opened.description if branch.opened else {},
                    (branch.ring.spec.geometry.height, branch.ring.spec.geometry.width),
                ),
                # [Pose] DYNAMIC_CROP* with this camera's own overrides
                dynamic_crop=crop_settings(self.settings.pose, branch.settings.common),
                pixels_per_mm=branch.settings.common.pixels_per_mm,
                deadline_ns=self.health.deadline_ns(
                    branch.opened.nominal_fps if branch.opened else None
                ),
            )
            for branch in self._branches
            if not branch.ended and branch.ring is not None
        ]
        if not cameras:
            raise PoseError("no camera is streaming any more: start a new stream")
        spec = self._experiment_spec(experiment_name, latency_test) if experiment else None
        run = len(self.analyses) + 1
        self.analysis = Analysis.start(
            self._context,
            cameras,
            self.settings.pose,
            self.session_dir,
            LogTarget(self._log_level),
            spec,
            file_label=run_label(run),
            events_file=self._next_events_file() if experiment else EVENTS_FILE,
            ibl_naming=self.settings.output.naming == "ibl",
            priority=self.priority_plan.for_role("inference"),
            lsl=self.settings.output.lsl == "on",
            lsl_wait_s=self.settings.output.lsl_wait,
            triangulation=self.settings.triangulation.spec(
                [camera.name for camera in self.settings.cameras], str(self.settings.source_file)
            ),
            stop_requested=stop_requested,
        )
        self.analyses.append(self.analysis)
        for warning in self.analysis.ready.warnings:  # e.g. frames not the model's size
            self.report_warning(warning)
        names = {camera.name for camera in cameras}
        self.analysis.rings = {b.name: b.ring for b in self._branches if b.name in names and b.ring}
        self.analysis.deadlines = {camera.name: camera.deadline_ns for camera in cameras}
        self.health.watch(self.analysis, self._branches)
        self.priority_entry()  # the worker set its priority before it said it was ready

    def stop_analysis(self) -> None:
        """Stop the inference worker; its pose files (and a running experiment's) are finalised."""
        if self.analysis is not None and self.analysis.process.pid is not None:
            error = self.analysis.stop()
            if error:
                self.report_error(error)
            for news in self.health.end_analysis(self._branches):
                tell_health(self, news)
            cameras = (self.analysis.summary() or {}).get("cameras", {})
            for name, figures in cameras.items():
                for file_error in figures.get("file_errors") or []:
                    self.report_error(f"camera {name!r}: {file_error}")
            for experiment in self.analysis.experiment_summaries:
                for file_error in (experiment or {}).get("file_errors") or []:
                    self.report_error(f"experiment: {file_error}")

    # -- experiment --------------------------------------------------------------------------

    @property
    def experimenting(self) -> bool:
        """True while an experiment runs on the poses."""
        return self.analysing and self.analysis is not None and self.analysis.experiment_running

    def start_experiment(
        self, experiment_name: str | None = None, latency_test: LatencyTestSpec | None = None
    ) -> None:
        """Start ``[Experiment] NAME`` (or ``experiment_name``) on the running analysis.

        With ``latency_test``, its board runs the latency self-test meanwhile. PoseError says
        why it cannot start.
        """
        if not self.analysing or self.analysis is None:
            raise PoseError("pose estimation is not running: start analysis first")
        if self.experimenting:
            return
        self.analysis.start_experiment(
            self._experiment_spec(experiment_name, latency_test), self._next_events_file()
        )

    def stop_experiment(self) -> None:
        """Stop the running experiment; analysis, streaming and recording go on."""
        if self.analysis is not None:
            self.analysis.stop_experiment()

    def _experiment_spec(
        self, name: str | None, latency_test: LatencyTestSpec | None
    ) -> ExperimentSpec:
        # The experiment process has no settings folder: a lab's config or module goes as its path.
        chosen = resolved_name(
            name or self.settings.experiment.name, self.settings.source_file.parent
        )
        return ExperimentSpec(chosen, dict(self.settings.devices), latency_test)

    def _next_events_file(self) -> str:
        """``events.csv`` for the session's first experiment, ``events.run2.csv`` and on after."""
        self._experiments_started += 1
        return f"events{run_label(self._experiments_started)}.csv"

    # -- while running -----------------------------------------------------------------------

    def service(self, timeout: float) -> list[SessionEvent]:
        """Wait up to ``timeout`` s for news from the processes and handle it; never blocks longer.

        Returns what the user should be told (camera ended or failed, disk filling up).
        """
        events: list[SessionEvent] = []
        watched: dict[Any, tuple[CameraBranch, str]] = {}
        for branch in self._branches:
            if not branch.ended:
                watched[branch.control] = (branch, "capture")
                watched[branch.process.sentinel] = (branch, "capture")
            if branch.recorder is not None and branch.recorder.running:
                watched[branch.recorder.control] = (branch, "recorder")
        analysis_objects = self.analysis.wait_objects() if self.analysis else []
        if watched or analysis_objects:
            for ready in wait([*watched, *analysis_objects], timeout=timeout):
                if ready in analysis_objects:
                    continue
                branch, kind = watched[ready]
                if kind == "capture" and not branch.ended:
                    events += self._capture_news(branch)
                elif kind == "recorder" and branch.recorder and branch.recorder.running:
                    branch.recorder.take(receive(branch.recorder.control))
                    if not branch.recorder.running:
                        self._take_recorder_result(branch)
        else:
            time.sleep(timeout)
        events += self._analysis_news()
        events += watch_disk(self, self._disk_watch)
        events += watch_stalls(self)
        if self.analysing:
            events += [tell_health(self, news) for news in self.health.check(self._branches)]
        self._keep_session_json_current()
        return events

    def _keep_session_json_current(self) -> None:
        """Rewrite session.json every few seconds while running (a hard kill keeps the last)."""
        now = time.monotonic()
        if self.session_dir is None or self._stopped or now < self._next_session_json:
            return
        self._next_session_json = now + SESSION_JSON_PERIOD_S
        self.write_session_json("running")

    def _analysis_news(self) -> list[SessionEvent]:
        if self.analysis is None or self.analysis.finished is not None:
            return []
        self.analysis.drain()
        error = self.analysis.check_finished()
        if error:
            self.report_error(error)
            return [SessionEvent(logging.ERROR, error)]
        return []

    def _capture_news(self, branch: CameraBranch) -> list[SessionEvent]:
        message = receive(branch.control)
        if isinstance(message, Finished):
            branch.finished = message
            if message.reason == EndReason.CAMERA_FAILED:
                self.report_error(message.message)
                event = SessionEvent(logging.ERROR, message.message, branch.name)
                return [event, *camera_lost(self, branch)]
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
            self.report_error(text)
            return [SessionEvent(logging.ERROR, text, branch.name), *camera_lost(self, branch)]
        return []

    def _judge_health(self) -> None:
        """At the end: report each camera above the deadline's tolerance (see session/health)."""
        for news in self.health.judge(self.analyses, self._experiment_summaries()):
            tell_health(self, news)

    def _experiment_summaries(self) -> list[dict[str, Any]]:
        return [s for analysis in self.analyses for s in analysis.experiment_summaries]

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` has run (or opening failed): nothing streams any more."""
        return self._stopped

    @property
    def all_ended(self) -> bool:
        """True when no camera is streaming any more."""
        return bool(self._branches) and all(b.ended for b in self._branches)

    @property
    def branches(self) -> list[CameraBranch]:
        """The cameras' branches (process, ring, recorder), in settings order."""
        return self._branches

    def likelihood_threshold(self, camera_name: str) -> float:
        """Return the camera's own LIKELIHOOD_THRESHOLD, else ``[Pose] LIKELIHOOD_THRESHOLD``."""
        return likelihood_threshold(self._branches, self.settings, camera_name)

    def display_reader(self, camera_name: str) -> NewestFrameReader:
        """Return a newest-frame reader on a camera's DISPLAY channel, for a window here."""
        return display_reader(self._branches, camera_name)

    @property
    def camera_names(self) -> list[str]:
        """Names of the cameras, in settings order."""
        return [b.name for b in self._branches]

    def camera_controls(self, name: str) -> tuple[CameraControl, ...]:
        """Return a camera's controls with its limits, as it last reported them (after open).

        Raises KeyError for a camera this session does not have.
        """
        return camera_controls(self._branches, name)

    def set_camera_control(
        self, camera: str, control: str, value: float, timeout_s: float = 2.0
    ) -> float:
        """Set a live control of a streaming camera; return the value the camera really took.

        Raises
        ------
        CameraError
            No such camera, the stream is not running, the camera refused the value (the message
            gives its limits), or it did not answer within ``timeout_s``.
        """
        streaming = self._started and not self._stopped
        return set_camera_control(self._branches, streaming, camera, control, value, timeout_s)

    def camera_stats(self) -> dict[str, dict[str, Any]]:
        """Live per-camera figures read from the ring headers (cheap; call it often)."""
        stats = {branch.name: branch_stats(branch) for branch in self._branches}
        if self.analysis is not None:
            analysis = self.analysis
            experiment = bool(analysis.experiment_running or analysis.experiment_summaries)
            for name, figures in stats.items():
                figures["latency_ms"] = analysis.recent_latency_ms(name)
                figures["loop_latency_ms"] = (
                    analysis.recent_latency_ms(name, end_to_end=True) if experiment else None
                )
                live = analysis.live_deadline.get(name)
                figures["late"] = live.misses if live is not None else 0
                figures["stalled_s"] = self.health.stalled_s(name)
        return stats

    # -- stop --------------------------------------------------------------------------------

    def stop(self, reason: str = "stop requested") -> None:
        """Stop everything in order and finalise the session. Safe to call more than once."""
        if self._stopped:
            return
        self._stopped = True
        self.stop_reason = self.stop_reason or reason
        for branch in self._branches:
            if branch.ring is not None:
                branch.ring.request_stop()
        self._collect_finished_captures()
        if not self._started:  # stopped during start-up: no frame, so no end-of-stream, comes
            for branch in self._branches:
                if branch.recorder is not None:
                    branch.recorder.request_stop()
        self._collect_recorders()  # recorders end on the end-of-stream record
        self._report_recording_losses()
        self.stop_analysis()  # so does the inference worker
        self._judge_health()
        self._join_captures()
        for branch in self._branches:  # side files of the cameras that stopped early
            description = branch.finished.description if branch.finished else {}
            for file_error in description.get("file_errors") or []:
                self.report_error(f"camera {branch.name!r}: {file_error}")
        if self._main_priority is not None:
            self._main_priority.restore()
        final_stats = self.camera_stats()
        for branch in self._branches:
            if branch.ring is not None:
                branch.ring.close()
                branch.ring.unlink()
            close_connections(branch)
        if self.session_dir is not None:
            self.write_session_json("finished", final_stats)
            write_exports(
                self.session_dir,
                nwb=self.settings.output.nwb == "on" and not self.was_preview,
                slp=self.settings.output.slp == "on" and bool(self.analyses),
                on_failure=lambda text: self._export_failed(text, final_stats),
            )
            release_reserve(self.session_dir)
        log.info("stream stopped: %s", self.stop_reason)
        if self._log_file is not None:
            remove_log_file(self._log_file)
            self._log_file = None

    def _export_failed(self, text: str, final_stats: dict[str, dict[str, Any]]) -> None:
        """Report an export that failed (live.session.exports); session.json then says so."""
        self.report_error(text)
        self.write_session_json("finished", final_stats)  # now with that error

    @property
    def was_preview(self) -> bool:
        """True when the session only streamed: nothing recorded, analysed or gone wrong."""
        recorded = any(b.recordings or b.recorder is not None for b in self._branches)
        return not (recorded or self.analyses or self.errors)

    def discard_preview(self) -> bool:
        """Remove the folder of a stopped preview (:attr:`was_preview`); True when removed.

        Only the session's own files are removed (its bookkeeping and the cameras' side files);
        a folder holding anything else (a file the user put there) is kept whole.
        """
        folder = self.session_dir
        if folder is None or not self._stopped or not self.was_preview:
            return False
        if not remove_preview_folder(folder, self.camera_names):
            return False
        log.info("preview only: removed its session folder %s", folder)
        self.session_dir = None
        return True

    def reload_settings(self, settings: Settings) -> list[str]:
        """Take the parts of ``settings`` that may change while streaming; say what was not taken.

        The model, the experiment, the devices, the latency test and the recording settings
        apply from the next Start Analysis, Start Experiment or Start Recording. Cameras,
        streaming, output and session keys were fixed when the stream started: they are listed
        in the returned notes and apply at the next Start Stream.
        """
        old = self.settings
        if settings == old:
            return []
        fixed = ("cameras", "streaming", "output", "session")
        notes = [
            f"{name} changes apply at the next Start Stream"
            for name in fixed
            if getattr(settings, name) != getattr(old, name)
        ]
        taken = ("pose", "experiment", "devices", "latency_test", "recording")
        changed = [name for name in taken if getattr(settings, name) != getattr(old, name)]
        self.settings = dataclasses.replace(
            old, **{name: getattr(settings, name) for name in taken}
        )
        self._disk_watch = DiskWatch(self.settings.recording)
        self.health.settings = self.settings.experiment  # deadlines: from the next analysis
        if changed:
            self.settings_reloads.append(
                {
                    "at": datetime.now().astimezone().isoformat(timespec="seconds"),
                    "changed": changed,
                }
            )
            self._static_info = None  # session.json shows the settings now in effect
            log.info(
                "settings re-read from %s: %s changed", settings.source_file, ", ".join(changed)
            )
        return notes

    def _collect_finished_captures(self) -> None:
        deadline = time.monotonic() + CAPTURE_STOP_TIMEOUT_S
        for branch in self._branches:
            if branch.ended or not self._started:
                continue
            message = receive_within(branch.control, deadline)
            if isinstance(message, Finished):
                branch.finished = message
                if message.reason == EndReason.CAMERA_FAILED:
                    self.report_error(message.message)
            else:
                branch.failure = f"camera {branch.name!r}: capture process did not stop cleanly"
                self.report_error(branch.failure)

    def _join_captures(self) -> None:
        if not self._started:
            for branch in self._branches:
                if branch.process.is_alive() and branch.opened is not None:
                    try:
                        branch.control.send(Abort())
                    except OSError:
                        pass
        for branch in self._branches:
            join_or_terminate(branch.process, CAPTURE_STOP_TIMEOUT_S)

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

    def __enter__(self) -> LiveSession:
        """Return the session, to be stopped when the block ends."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the session, saying whether an error ended the block."""
        self.stop("stopped after an error" if exc[0] is not None else "stop requested")

    # -- session.json ------------------------------------------------------------------------

    def write_session_json(
        self, status: str, stats: dict[str, dict[str, Any]] | None = None
    ) -> None:
        """Write ``session.json`` with the current state of the session."""
        assert self.session_dir is not None
        stats = stats or self.camera_stats()
        data = {
            "format": "deeplabstream-session/1",
            "status": status,
            "stop_reason": self.stop_reason or None,
            "started": self._started_at.isoformat(timespec="microseconds"),
            "ended": datetime.now().astimezone().isoformat(timespec="microseconds")
            if status != "running"
            else None,
            "clock": {
                "host_clock": "time.perf_counter (system-wide monotonic), seconds",
                "host_time_at_start": self._started_host_s,
                "wall_time_at_start": self._started_at.isoformat(timespec="microseconds"),
            },
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "metadata": session_metadata(self.settings),
            **self._static_session_info(),
            "cameras": {b.name: camera_entry(b, stats[b.name]) for b in self._branches},
            "pose": self.analysis.summary() if self.analysis else None,
            "pose_runs": [analysis.summary() for analysis in self.analyses],
            "experiment": self._last_experiment_summary(),
            "experiment_runs": self._experiment_summaries(),
            "health": self.health.section(
                self.analyses, self._experiment_summaries(), round(self._started_host_s * 1e9)
            ),
            "processes": self.process_ids(),
            "priority": self.priority_entry(),
            "doorbell": self.doorbell.value if self.doorbell is not None else None,
            "settings_reloads": list(self.settings_reloads),
        }
        self.record = data
        try:
            # The space reserve is for the final session.json only: an update while running
            # must not free it (the pose and event files would then fill it unnoticed).
            write_session_json(self.session_dir, data, use_reserve=status != "running")
        except OSError as error:  # the previous complete session.json stays
            log.error("could not update %s: %s", SESSION_JSON, error)

    def _static_session_info(self) -> dict[str, Any]:
        """Return the parts of session.json that never change during a session (read once)."""
        if self._static_info is None:
            self._static_info = {
                "settings": settings_as_dict(self.settings),
                "versions": package_versions(),
                "machine": machine_description(),
                "cleanup_at_start": self.cleanup,
            }
        return self._static_info

    def priority_entry(self) -> dict[str, Any]:
        """Return the placement plan and what each process was last seen running with."""
        live: dict[str, int | None] = {
            name: pid for name, pid in self.process_ids().items() if pid is not None
        }
        # Processes that ended keep the values last seen (the final session.json is written
        # after every process has stopped).
        self._observed_priorities.update(observed_priorities(live))
        return {**self.priority_plan.describe(), "processes": dict(self._observed_priorities)}

    def _last_experiment_summary(self) -> dict[str, Any] | None:
        for analysis in reversed(self.analyses):
            summary = analysis.experiment_summary()
            if summary is not None:
                return summary
        return None

    def process_ids(self) -> dict[str, int | None]:
        """Return the process id of every process of the session, by process name."""
        processes: dict[str, int | None] = {"main": os.getpid()}
        for branch in self._branches:
            processes[branch.process.name] = branch.process.pid
            processes.update(branch.recorder_pids)
        for run, analysis in enumerate(self.analyses, start=1):
            processes[f"pose{run_label(run)}"] = analysis.process.pid
        return processes

    def end_summary(self) -> str:
        """Why the cameras ended, in a few words (e.g. "frame limit reached")."""
        reasons = [b.finished.message if b.finished else b.failure or "" for b in self._branches]
        return ", ".join(dict.fromkeys(r for r in reasons if r))
