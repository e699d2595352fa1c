"""The main process's side of a stream: start the camera and recorder processes, watch, stop.

Order of a run (``docs/architecture.md`` draws it)::

    stream = Stream(settings); stream.open()     capture processes open their cameras;
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
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from cameras.base import CameraError
from core.control import join_or_terminate, receive, receive_within
from core.logs import LogTarget, add_log_file
from core.machine import machine_description
from core.priority import (
    MainPlacement,
    inference_thread_count,
    main_process_priority,
    observed_priorities,
    plan_priorities,
)
from pose.cropping import crop_settings
from processes.capture import Abort, CaptureJob, Failed, Finished, Opened, Start, capture_main
from processes.dispatch import EVENTS_FILE
from processes.inference import ExperimentSpec, WorkerCamera, depth_source
from processes.recorder import (
    RecorderFinished,
    RecorderJob,
    RecorderReady,
    StopRecording,
    recorder_main,
)
from recording.folder import (
    RESERVE_FILE,
    SESSION_JSON,
    SESSION_LOG,
    create_session_folder,
    package_versions,
    recover_interrupted_sessions,
    release_reserve,
    reserve_space,
    write_session_json,
)
from recording.frames_table import count_table_rows, repair_frames_table
from recording.video import count_decodable_frames
from session.analysis import Analysis, PoseError
from settings.loader import settings_as_dict
from settings.sections import CameraSettings, Settings
from stimulation.latency import LatencyTestSpec
from transport.channel import ChannelReader, EndReason
from transport.readers import NewestFrameReader
from transport.ring import (
    N_CHANNELS,
    Channel,
    FrameRing,
    RingSpec,
    new_ring_name,
    remove_stale_rings,
    ring_slots,
)

log = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 60.0  # spawning a process and opening a camera; generous for slow machines
CAPTURE_STOP_TIMEOUT_S = 10.0
RECORDER_STOP_TIMEOUT_S = 120.0  # a recorder may have a ring's worth of frames to encode
DISK_CHECK_INTERVAL_S = 2.0
#: session.json is rewritten (atomically) this often while the session runs, so that a session
#: killed hard still says how far it got.
SESSION_JSON_PERIOD_S = 2.0
_GB = 1e9


class RecordingError(RuntimeError):
    """Recording cannot start (not enough disk space, stream not running)."""


@dataclass(frozen=True)
class StreamEvent:
    """Something the user should hear about, raised while the stream runs."""

    level: int  # logging level
    message: str
    camera: str | None = None


@dataclass
class _Recorder:
    process: multiprocessing.process.BaseProcess
    control: Connection
    finished: RecorderFinished | None = None
    ready: RecorderReady | None = None  # its first frame and file names
    entry: int | None = None  # its place in the branch's recordings


@dataclass
class _Branch:
    """One camera: its capture process, pipes, ring and recorder."""

    camera_id: int
    settings: CameraSettings
    process: multiprocessing.process.BaseProcess
    control: Connection
    channel_ends: tuple[Connection, ...]  # read ends, kept to hand to readers
    opened: Opened | None = None
    ring: FrameRing | None = None
    finished: Finished | None = None
    failure: str | None = None
    recorder: _Recorder | None = None
    recordings: list[RecorderFinished] = field(default_factory=list)
    last_stats: dict[str, Any] = field(default_factory=dict)
    recorder_pids: dict[str, int | None] = field(default_factory=dict)  # every recorder it had
    lost_after_ns: int | None = None  # reported lost: host time of its last frame then
    loss_handled: bool = False  # [Streaming] ON_CAMERA_LOST applied (once per camera)

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def ended(self) -> bool:
        return self.finished is not None or self.failure is not None


class Stream:
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
        self._log_level = log_level
        self._context = multiprocessing.get_context("spawn")
        self._branches: list[_Branch] = []
        self._started_at = datetime.now().astimezone()
        self._started_host_s = time.perf_counter()
        self._started = self._stopped = False
        self._next_disk_check = 0.0
        self._disk_warned = False
        self.analysis: Analysis | None = None  # the current (or last) analysis
        self.analyses: list[Analysis] = []  # every analysis of this session, in order
        self._experiments_started = 0
        self.priority_plan = plan_priorities(
            settings.streaming.cpu_affinity,
            inference_thread_count(settings.pose.threads),
            side_niceness=settings.streaming.side_niceness if _is_live(settings) else 0,
        )
        self._observed_priorities: dict[str, dict[str, Any]] = {}
        self._main_priority: MainPlacement | None = None
        self._next_session_json = 0.0
        self._static_info: dict[str, Any] | None = None  # versions, machine: read once
        self.cleanup: dict[str, Any] = {}  # what the start found left by killed sessions

    # -- start -------------------------------------------------------------------------------

    def open(self) -> Path:
        """Open every camera in its own process; make the session folder and the rings.

        Raises CameraError (with every camera's problem) when any camera cannot be opened; then
        nothing is left running and no session folder is made.
        """
        # The main process (and a GUI's drawing) keeps off the inference worker's cores while
        # the stream runs; :meth:`stop` gives it its cores back.
        self._main_priority = main_process_priority(self.priority_plan)
        for camera_id, camera in enumerate(self.settings.cameras):
            self._branches.append(self._spawn_capture(camera_id, camera))
        problems = self._await_opened()
        if problems:
            self._abort_all()
            if self._main_priority is not None:
                self._main_priority.restore()
            raise CameraError("\n".join(problems))
        self.cleanup = _clean_up_after_killed_sessions(self.output_dir)
        try:
            self._make_session_folder()
        except OSError:
            self._abort_all()
            if self._main_priority is not None:
                self._main_priority.restore()
            raise
        for branch in self._branches:
            branch.ring = FrameRing.create(self._ring_spec(branch))
        self.write_session_json("running")
        log.info("session folder: %s", self.session_dir)
        return self.session_dir

    def _make_session_folder(self) -> None:
        """The session folder, its log and its space reserve; a clear error on a full disk."""
        self.session_dir = create_session_folder(self.output_dir, self._started_at)
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
        add_log_file(self.session_dir / SESSION_LOG)

    def start(self) -> None:
        """Let every camera begin publishing frames."""
        assert self.session_dir is not None, "open() first"
        for branch in self._branches:
            assert branch.ring is not None
            branch.control.send(Start(branch.ring.spec, self.session_dir))
        self._started = True
        self.write_session_json("running")  # now with the recorders' process ids

    def _spawn_capture(self, camera_id: int, camera: CameraSettings) -> _Branch:
        control, child_control = self._context.Pipe(duplex=True)
        pipes = [self._context.Pipe(duplex=False) for _ in range(N_CHANNELS)]
        job = CaptureJob(
            camera_id=camera_id,
            camera=camera,
            control=child_control,
            channels=tuple(write_end for _, write_end in pipes),
            max_frames=self.max_frames,
            log_target=LogTarget(self._log_level),
            priority=self.priority_plan.for_role("capture"),
            recorder_niceness=self.priority_plan.side_niceness,
        )
        process = self._context.Process(
            target=capture_main, args=(job,), name=f"capture:{camera.name}"
        )
        process.start()
        # Close our copies of the child's ends, so a dead child shows as end-of-file.
        child_control.close()
        for _, write_end in pipes:
            write_end.close()
        return _Branch(camera_id, camera, process, control, tuple(r for r, _ in pipes))

    def _await_opened(self) -> list[str]:
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        pending = {branch.control: branch for branch in self._branches}
        problems: list[str] = []
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for branch in pending.values():
                    problems.append(
                        f"camera {branch.name!r}: did not open within {OPEN_TIMEOUT_S:.0f} s"
                    )
                break
            sentinels = {b.process.sentinel: b for b in pending.values()}
            for ready in wait([*pending, *sentinels], timeout=remaining):
                branch = pending.get(ready) or sentinels[ready]  # type: ignore[index]
                if branch.control not in pending:
                    continue
                message = receive(branch.control)
                del pending[branch.control]
                if isinstance(message, Opened):
                    branch.opened = message
                    log.info(
                        "camera %r opened: %dx%d, %d channel(s), %s fps",
                        branch.name,
                        message.geometry.width,
                        message.geometry.height,
                        message.geometry.channels,
                        message.nominal_fps,
                    )
                elif isinstance(message, Failed):
                    problems.append(message.message)
                else:
                    code = branch.process.exitcode
                    problems.append(
                        f"camera {branch.name!r}: its capture process ended before opening "
                        f"(exit code {code})"
                    )
        return problems

    def _ring_spec(self, branch: _Branch) -> RingSpec:
        assert branch.opened is not None
        slots = ring_slots(branch.opened.nominal_fps, self.settings.streaming.buffer_seconds)
        return RingSpec(new_ring_name(branch.name), branch.opened.geometry, slots)

    def _abort_all(self) -> None:
        for branch in self._branches:
            if branch.opened is not None and branch.process.is_alive():
                try:
                    branch.control.send(Abort())
                except OSError:
                    pass
        self._join_captures()
        for branch in self._branches:
            _close_connections(branch)
        self._stopped = True

    # -- recording ---------------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        """True while any camera's recorder runs."""
        return any(b.recorder is not None and b.recorder.finished is None for b in self._branches)

    def start_recording(self) -> None:
        """Start a recorder per streaming camera; returns once all of them are subscribed."""
        if self.session_dir is None or self._stopped:
            raise RecordingError("the stream is not running: start the stream first")
        self._check_free_space_before_recording()
        branches = [b for b in self._branches if not b.ended and b.recorder is None]
        for branch in branches:
            branch.recorder = self._spawn_recorder(branch)
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        for branch in branches:
            assert branch.recorder is not None
            message = receive_within(branch.recorder.control, deadline)
            if not isinstance(message, RecorderReady):
                self._recorder_finished(branch, message)
                raise RecordingError(f"camera {branch.name!r}: the recorder did not start")
            branch.recorder.ready = message
        self.priority_entry()  # each recorder set its priority before it said it was ready
        log.info("recording to %s", self.session_dir)

    def _spawn_recorder(self, branch: _Branch) -> _Recorder:
        assert branch.ring is not None and branch.opened is not None
        assert self.session_dir is not None
        control, child_control = self._context.Pipe(duplex=True)
        job = RecorderJob(
            camera_id=branch.camera_id,
            camera_name=branch.name,
            ring=branch.ring.spec,
            channel=branch.channel_ends[Channel.RECORD],
            control=child_control,
            session_dir=self.session_dir,
            settings=self.settings.recording,
            nominal_fps=branch.opened.nominal_fps,
            log_target=LogTarget(self._log_level),
            priority=self.priority_plan.for_role("recorder"),
        )
        process = self._context.Process(
            target=recorder_main, args=(job,), name=f"recorder:{branch.name}"
        )
        process.start()
        child_control.close()
        branch.recorder_pids[process.name] = process.pid
        return _Recorder(process, control)

    def stop_recording(self) -> None:
        """Finish every recording: frames announced so far are written, files are closed."""
        for branch in self._branches:
            recorder = branch.recorder
            if recorder is not None and recorder.finished is None:
                try:
                    recorder.control.send(StopRecording())
                except OSError:
                    pass
        self._collect_recorders()

    def _collect_recorders(self) -> None:
        deadline = time.monotonic() + RECORDER_STOP_TIMEOUT_S
        for branch in self._branches:
            recorder = branch.recorder
            if recorder is None:
                continue
            if recorder.finished is None:
                self._recorder_finished(branch, receive_within(recorder.control, deadline))
            join_or_terminate(recorder.process, max(0.1, deadline - time.monotonic()))
            recorder.control.close()
            self._account_recording(branch, recorder)
            branch.recorder = None

    def _report_recording_losses(self) -> None:
        """Frames captured while recording but not in the files are an error of the session."""
        for branch in self._branches:
            lost = sum(r.frames_lost for r in branch.recordings)
            if lost:
                recorded = sum(r.frames_recorded for r in branch.recordings)
                self.report_error(
                    f"camera {branch.name!r}: {lost} of {lost + recorded} frames captured while "
                    "recording are not in the recording (see frames_lost_in_recording)"
                )

    def _account_recording(self, branch: _Branch, recorder: _Recorder) -> None:
        """Make the recording's figures hold: recorded + lost = captured while it was on.

        A recording that failed (its recorder died, its disk filled) stops recording but the
        camera goes on: every frame captured after the failure, until recording was stopped,
        is lost and counted so. Its files are checked: the frames that decode are the frames
        recorded, and the frames table is cut to them.
        """
        message = recorder.finished
        if message is None or recorder.entry is None or message.first_seq < 0:
            return
        failed = message.error is not None
        end_seq = message.last_seq
        if failed and branch.ring is not None and branch.ring.header is not None:
            end_seq = int(branch.ring.header["write_seq"]) - 1
        recorded = message.frames_recorded
        if failed and self.session_dir is not None and message.video_file:
            recorded = _verify_recording(self.session_dir, message)
        expected = end_seq - message.first_seq + 1
        lost = max(message.frames_lost, expected - recorded)
        if (recorded, lost) != (message.frames_recorded, message.frames_lost):
            log.warning(
                "camera %r: the recording holds %d frame(s); %d captured while it was on are "
                "counted lost",
                branch.name,
                recorded,
                lost,
            )
        branch.recordings[recorder.entry] = dataclasses.replace(
            message, frames_recorded=recorded, frames_lost=lost, last_seq=end_seq
        )

    def _recorder_finished(self, branch: _Branch, message: Any) -> None:
        recorder = branch.recorder
        assert recorder is not None
        if not isinstance(message, RecorderFinished):
            join_or_terminate(recorder.process, 1.0)
            message = _died_recorder(recorder, self.session_dir)
        recorder.finished = message
        recorder.entry = len(branch.recordings)
        branch.recordings.append(message)
        if message.error:
            self.report_error(f"camera {branch.name!r}: {message.error}")
        if message.frames_lost:
            log.warning(
                "camera %r: %d frame(s) could not be recorded (recorder fell behind)",
                branch.name,
                message.frames_lost,
            )

    def _check_free_space_before_recording(self) -> None:
        assert self.session_dir is not None
        free = shutil.disk_usage(self.session_dir).free / _GB
        needed = self.settings.recording.min_free_space
        if free < needed:
            raise RecordingError(
                f"only {free:.2f} GB free on the disk of {self.session_dir}; [Recording] "
                f"MIN_FREE_SPACE is {needed:g} GB. Free some space or choose another "
                "[Output] DIRECTORY / --output-dir."
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
    ) -> None:
        """Start the inference worker for every streaming camera; returns once it is warmed up.

        With ``experiment``, the worker also runs ``[Experiment] NAME`` (or ``experiment_name``)
        on the poses, with the devices of the settings' ``[Device NAME]`` sections opened first;
        with ``latency_test`` too, its board runs the latency self-test meanwhile. Raises
        PoseError (model missing, provider not installed, experiment or device not available).
        """
        if self.session_dir is None or self._stopped:
            raise PoseError("the stream is not running: start the stream first")
        if self.analysing:
            return
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
            file_label=_run_label(run),
            events_file=self._next_events_file() if experiment else EVENTS_FILE,
            ibl_naming=self.settings.output.naming == "ibl",
            priority=self.priority_plan.for_role("inference"),
        )
        self.analyses.append(self.analysis)
        self.priority_entry()  # the worker set its priority before it said it was ready

    def stop_analysis(self) -> None:
        """Stop the inference worker; its pose files (and a running experiment's) are finalised."""
        if self.analysis is not None and self.analysis.process.pid is not None:
            error = self.analysis.stop()
            if error:
                self.report_error(error)
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
        return ExperimentSpec(
            name or self.settings.experiment.name, dict(self.settings.devices), latency_test
        )

    def _next_events_file(self) -> str:
        """``events.csv`` for the session's first experiment, ``events.run2.csv`` and on after."""
        self._experiments_started += 1
        return f"events{_run_label(self._experiments_started)}.csv"

    # -- while running -----------------------------------------------------------------------

    def service(self, timeout: float) -> list[StreamEvent]:
        """Wait up to ``timeout`` s for news from the processes and handle it; never blocks longer.

        Returns what the user should be told (camera ended or failed, disk filling up).
        """
        events: list[StreamEvent] = []
        watched: dict[Any, tuple[_Branch, str]] = {}
        for branch in self._branches:
            if not branch.ended:
                watched[branch.control] = (branch, "capture")
                watched[branch.process.sentinel] = (branch, "capture")
            if branch.recorder is not None and branch.recorder.finished is None:
                watched[branch.recorder.control] = (branch, "recorder")
        analysis_objects = self.analysis.wait_objects() if self.analysis else []
        if watched or analysis_objects:
            for ready in wait([*watched, *analysis_objects], timeout=timeout):
                if ready in analysis_objects:
                    continue
                branch, kind = watched[ready]
                if kind == "capture" and not branch.ended:
                    events += self._capture_news(branch)
                elif kind == "recorder" and branch.recorder and branch.recorder.finished is None:
                    self._recorder_finished(branch, receive(branch.recorder.control))
        else:
            time.sleep(timeout)
        events += self._analysis_news()
        events += self._watch_disk()
        events += self._watch_stalls()
        self._keep_session_json_current()
        return events

    def _keep_session_json_current(self) -> None:
        """Rewrite session.json every few seconds while running (a hard kill keeps the last)."""
        now = time.monotonic()
        if self.session_dir is None or self._stopped or now < self._next_session_json:
            return
        self._next_session_json = now + SESSION_JSON_PERIOD_S
        self.write_session_json("running")

    def _analysis_news(self) -> list[StreamEvent]:
        if self.analysis is None or self.analysis.finished is not None:
            return []
        self.analysis.drain()
        error = self.analysis.check_finished()
        if error:
            self.report_error(error)
            return [StreamEvent(logging.ERROR, error)]
        return []

    def _capture_news(self, branch: _Branch) -> list[StreamEvent]:
        message = receive(branch.control)
        if isinstance(message, Finished):
            branch.finished = message
            if message.reason == EndReason.CAMERA_FAILED:
                self.report_error(message.message)
                event = StreamEvent(logging.ERROR, message.message, branch.name)
                return [event, *self._camera_lost(branch)]
            text = f"camera {branch.name!r}: {message.message} after {message.frames} frames"
            log.info("%s", text)
            return [StreamEvent(logging.INFO, text, branch.name)]
        if not branch.process.is_alive() or message is None:
            join_or_terminate(branch.process, 1.0)
            text = (
                f"camera {branch.name!r}: its capture process died (exit code "
                f"{branch.process.exitcode}); this camera's files end at its last frame"
            )
            branch.failure = text
            self.report_error(text)
            return [StreamEvent(logging.ERROR, text, branch.name), *self._camera_lost(branch)]
        return []

    def _watch_disk(self) -> list[StreamEvent]:
        now = time.monotonic()
        writing = self.recording or self.analysing
        if not writing or now < self._next_disk_check or self.session_dir is None:
            return []
        self._next_disk_check = now + DISK_CHECK_INTERVAL_S
        free = shutil.disk_usage(self.session_dir).free / _GB
        limits = self.settings.recording
        if free < limits.min_free_space:
            # Every file of the session is at risk, not only videos: recording and pose
            # estimation (with its experiment) stop while their files can still be finalised.
            parts = (("recording", self.recording), ("pose estimation", self.analysing))
            stopped = [part for part, on in parts if on]
            text = (
                f"disk almost full ({free:.2f} GB free, [Recording] MIN_FREE_SPACE = "
                f"{limits.min_free_space:g} GB): {' and '.join(stopped)} stopped, files "
                "finalised"
            )
            self.report_error(text)
            if self.recording:
                self.stop_recording()
            if self.analysing:
                self.stop_analysis()
            return [StreamEvent(logging.ERROR, text)]
        if free < limits.warn_free_space and not self._disk_warned:
            self._disk_warned = True
            text = (
                f"disk space low: {free:.2f} GB free on {self.session_dir}; recording stops by "
                f"itself below {limits.min_free_space:g} GB"
            )
            log.warning("%s", text)
            return [StreamEvent(logging.WARNING, text)]
        return []

    def _watch_stalls(self) -> list[StreamEvent]:
        """Report a device camera whose frames stopped coming, and one whose frames came back.

        Silence is measured from the host time of the camera's last frame (ring header), so a
        camera blocked inside its driver is seen as well as one that reports nothing. A camera
        that has not delivered its first frame yet (waiting for a trigger) is not watched.
        """
        events: list[StreamEvent] = []
        streaming = self.settings.streaming
        now_ns = time.perf_counter_ns()
        for branch in self._branches:
            ring, opened = branch.ring, branch.opened
            if branch.ended or ring is None or ring.header is None or opened is None:
                continue
            if not opened.live or ring.stop_requested or int(ring.header["captured"]) == 0:
                continue
            last_ns = int(ring.header["last_host_ns"])
            if branch.lost_after_ns is not None and last_ns > branch.lost_after_ns:
                silent_s = (last_ns - branch.lost_after_ns) / 1e9
                text = f"camera {branch.name!r} delivers frames again after {silent_s:.1f} s"
                log.warning("%s", text)
                events.append(StreamEvent(logging.WARNING, text, branch.name))
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
                self.report_error(text)
                events.append(StreamEvent(logging.ERROR, text, branch.name))
                events += self._camera_lost(branch)
        return events

    def _camera_lost(self, branch: _Branch) -> list[StreamEvent]:
        """Apply ``[Streaming] ON_CAMERA_LOST`` to a device camera that failed or went silent."""
        if branch.opened is None or not branch.opened.live or self._stopped:
            return []
        if branch.loss_handled:  # a stall, then the failure at its TIMEOUT: say it once
            return []
        branch.loss_handled = True
        if self.settings.streaming.on_camera_lost == "continue":
            text = (
                f"camera {branch.name!r} lost; the other cameras go on "
                "([Streaming] ON_CAMERA_LOST = continue)"
            )
            log.warning("%s", text)
            return [StreamEvent(logging.WARNING, text, branch.name)]
        text = f"camera {branch.name!r} lost ([Streaming] ON_CAMERA_LOST = stop)"
        if not self.stop_reason:
            self.stop_reason = text
            for other in self._branches:  # every camera ends; the run then stops as usual
                if other.ring is not None and other.ring.header is not None:
                    other.ring.request_stop()
        log.error("%s: stopping the session", text)
        return [StreamEvent(logging.ERROR, f"{text}: stopping the session", branch.name)]

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` has run (or opening failed): nothing streams any more."""
        return self._stopped

    @property
    def all_ended(self) -> bool:
        """True when no camera is streaming any more."""
        return bool(self._branches) and all(b.ended for b in self._branches)

    def likelihood_threshold(self, camera_name: str) -> float:
        """The camera's own ``LIKELIHOOD_THRESHOLD``, else ``[Pose] LIKELIHOOD_THRESHOLD``."""
        for branch in self._branches:
            own = branch.settings.common.likelihood_threshold
            if branch.name == camera_name and own is not None:
                return own
        return self.settings.pose.likelihood_threshold

    def display_reader(self, camera_name: str) -> NewestFrameReader:
        """A newest-frame reader on a camera's DISPLAY channel, for a window in this process."""
        for branch in self._branches:
            if branch.name == camera_name and branch.ring is not None:
                reader = ChannelReader(branch.channel_ends[Channel.DISPLAY], branch.camera_id)
                return NewestFrameReader(branch.ring, reader, Channel.DISPLAY)
        raise KeyError(camera_name)

    @property
    def camera_names(self) -> list[str]:
        """Names of the cameras, in settings order."""
        return [b.name for b in self._branches]

    def camera_stats(self) -> dict[str, dict[str, Any]]:
        """Live per-camera figures read from the ring headers (cheap; call it often)."""
        stats = {branch.name: _branch_stats(branch) for branch in self._branches}
        if self.analysis is not None:
            for name, figures in stats.items():
                figures["latency_ms"] = self.analysis.recent_latency_ms(name)
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
        self._collect_recorders()  # recorders end on the end-of-stream record
        self._report_recording_losses()
        self.stop_analysis()  # so does the inference worker
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
            _close_connections(branch)
        if self.session_dir is not None:
            self.write_session_json("finished", final_stats)
            release_reserve(self.session_dir)
        log.info("stream stopped: %s", self.stop_reason)

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

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
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
            **self._static_session_info(),
            "cameras": {b.name: _camera_entry(b, stats[b.name]) for b in self._branches},
            "pose": self.analysis.summary() if self.analysis else None,
            "pose_runs": [analysis.summary() for analysis in self.analyses],
            "experiment": self._last_experiment_summary(),
            "experiment_runs": [
                summary for analysis in self.analyses for summary in analysis.experiment_summaries
            ],
            "processes": self.process_ids(),
            "priority": self.priority_entry(),
        }
        try:
            # The space reserve is for the final session.json only: an update while running
            # must not free it (the pose and event files would then fill it unnoticed).
            write_session_json(self.session_dir, data, use_reserve=status != "running")
        except OSError as error:  # the previous complete session.json stays
            log.error("could not update %s: %s", SESSION_JSON, error)

    def _static_session_info(self) -> dict[str, Any]:
        """The parts of session.json that never change during a session (read once)."""
        if self._static_info is None:
            self._static_info = {
                "settings": settings_as_dict(self.settings),
                "versions": package_versions(),
                "machine": machine_description(),
                "cleanup_at_start": self.cleanup,
            }
        return self._static_info

    def priority_entry(self) -> dict[str, Any]:
        """The placement plan and what each process was last seen running with."""
        live = {name: pid for name, pid in self.process_ids().items() if pid is not None}
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
        processes: dict[str, int | None] = {"main": os.getpid()}
        for branch in self._branches:
            processes[branch.process.name] = branch.process.pid
            processes.update(branch.recorder_pids)
        for run, analysis in enumerate(self.analyses, start=1):
            processes[f"pose{_run_label(run)}"] = analysis.process.pid
        return processes

    def end_summary(self) -> str:
        """Why the cameras ended, in a few words (e.g. "frame limit reached")."""
        reasons = [b.finished.message if b.finished else b.failure or "" for b in self._branches]
        return ", ".join(dict.fromkeys(r for r in reasons if r))


def _died_recorder(recorder: _Recorder, session_dir: Path | None) -> RecorderFinished:
    """What is known of a recording whose process ended without a word (killed, crashed)."""
    code = recorder.process.exitcode
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    error = f"the recorder process ended unexpectedly ({how}); the recording stopped there"
    ready = recorder.ready
    if ready is None:
        return RecorderFinished("", "", 0, 0, error)
    rows = count_table_rows(session_dir / ready.frames_table) if session_dir else 0
    return RecorderFinished(
        ready.video_file, ready.frames_table, rows, 0, error, ready.first_seq, -1
    )


def _verify_recording(session_dir: Path, message: RecorderFinished) -> int:
    """Frames of a failed recording that decode; its frames table is cut to them."""
    decodable = count_decodable_frames(session_dir / message.video_file)
    table = session_dir / message.frames_table
    if not table.exists():
        return decodable
    kept = repair_frames_table(table, decodable)
    if kept < decodable:  # the table lost rows the video holds: those frames have no times
        log.warning(
            "%s: %d frame(s) have no row; counted lost", message.video_file, decodable - kept
        )
    return kept


def _clean_up_after_killed_sessions(output_dir: Path) -> dict[str, Any]:
    """Remove shared memory of dead sessions; mark their session folders ``interrupted``."""
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
    sessions = recover_interrupted_sessions(output_dir)
    for folder in sessions:
        log.warning("session %s was interrupted (killed); marked so in its session.json", folder)
    return {
        "stale_rings_removed": [ring.name for ring in rings],
        "stale_ring_bytes": sum(ring.nbytes for ring in rings),
        "interrupted_sessions_marked": [str(folder) for folder in sessions],
    }


def _is_live(settings: Settings) -> bool:
    """False when a camera delivers frames as fast as they are taken (a replayed video)."""
    return not any(
        getattr(camera.options, "pacing", "realtime") in ("free", "lockstep")
        for camera in settings.cameras
    )


def _run_label(run: int) -> str:
    """What goes into the file names of a session's ``run``-th analysis or experiment."""
    return "" if run == 1 else f".run{run}"


def _camera_entry(branch: _Branch, stats: dict[str, Any]) -> dict[str, Any]:
    geometry = branch.opened.geometry if branch.opened else None
    recorded = sum(r.frames_recorded for r in branch.recordings)
    lost = sum(r.frames_lost for r in branch.recordings)
    if branch.recorder is not None and branch.recorder.finished is None:  # recording now
        recorded += stats.get("recorded", 0)
        lost += stats.get("record_lost", 0)
    status = "streaming"
    if branch.failure or (branch.finished and branch.finished.reason == EndReason.CAMERA_FAILED):
        status = "failed"
    elif branch.finished:
        status = "ended"
    return {
        "camera_id": branch.camera_id,
        "source": branch.settings.source,
        "status": status,
        "end": branch.finished.message if branch.finished else branch.failure,
        "width": geometry.width if geometry else None,
        "height": geometry.height if geometry else None,
        "channels": geometry.channels if geometry else None,
        "nominal_fps": branch.opened.nominal_fps if branch.opened else None,
        "measured_fps": stats["measured_fps"],
        "frames_captured": stats["captured"],
        "frames_dropped_by_camera": stats["camera_gaps"],
        "frames_recorded": recorded,
        "frames_lost_in_recording": lost,
        "frames_dropped": stats["camera_gaps"] + lost,
        "recordings": [
            {
                "video": r.video_file,
                "frames_table": r.frames_table,
                "frames": r.frames_recorded,
                "lost": r.frames_lost,
                "error": r.error,
            }
            for r in branch.recordings
        ]
        + _running_recording(branch, stats),
        "device": {
            **(branch.opened.description if branch.opened else {}),
            **(branch.finished.description if branch.finished else {}),  # final figures, clock
        },
    }


def _running_recording(branch: _Branch, stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The recording in progress, as far as it got (so a killed session names its files)."""
    recorder = branch.recorder
    if recorder is None or recorder.finished is not None or recorder.ready is None:
        return []
    return [
        {
            "video": recorder.ready.video_file,
            "frames_table": recorder.ready.frames_table,
            "frames": stats.get("recorded", 0),
            "lost": stats.get("record_lost", 0),
            "error": None,
            "running": True,
        }
    ]


def _branch_stats(branch: _Branch) -> dict[str, Any]:
    ring = branch.ring
    if ring is None or ring.header is None:  # not opened yet, or already closed
        return branch.last_stats or {"captured": 0, "camera_gaps": 0, "measured_fps": None}
    header = ring.header
    captured = int(header["captured"])
    span_s = (int(header["last_host_ns"]) - int(header["first_host_ns"])) / 1e9
    stats = {
        "captured": captured,
        "camera_gaps": int(header["camera_gaps"]),
        "measured_fps": round((captured - 1) / span_s, 3) if captured > 1 and span_s > 0 else None,
        "recorded": int(header["consumed"][Channel.RECORD]),
        "record_lost": int(header["lost"][Channel.RECORD]),
        "analysed": int(header["consumed"][Channel.ANALYSE]),
        "analysis_skipped": int(header["skipped"][Channel.ANALYSE]),
        "last_frame_index": int(header["last_frame_index"]),
    }
    branch.last_stats = stats
    return stats


def _close_connections(branch: _Branch) -> None:
    branch.control.close()
    for end in branch.channel_ends:
        end.close()
