"""What the GUI's buttons do: one stream session, its parts started and stopped in a safe order.

Design: docs/gui.md, "The buttons".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QObject, pyqtSignal

from deeplabstream.app.gui.background_thread import BackgroundThread
from deeplabstream.app.gui.job_targets import Outcome, prepare_models_job
from deeplabstream.app.gui.jobs import ProcessJob
from deeplabstream.core.control import StopRequested
from deeplabstream.core.device_lock import DeviceBusyError, DeviceLocks
from deeplabstream.core.errors import DeepLabStreamError, SettingsError
from deeplabstream.hardware.cameras.base import CameraError
from deeplabstream.hardware.stimulation.latency import run_file
from deeplabstream.live.selftest.latency_run import (
    LatencyTestError,
    LatencyTestPlan,
    finish_latency_test,
    plan_latency_test,
    summary_lines,
    write_experiment,
)
from deeplabstream.live.session.analysis import PoseError
from deeplabstream.live.session.analysis_plan import events_file_name
from deeplabstream.live.session.device_locks import lock_session_devices
from deeplabstream.live.session.live import LiveSession, SessionEvent
from deeplabstream.live.session.preflight import check_before_start, check_plan
from deeplabstream.live.session.report.summary import USER_STOPS, headline
from deeplabstream.live.session.report.summary import summary_lines as session_summary_lines
from deeplabstream.live.session.runner import SessionRunner
from deeplabstream.live.session.video_recordings import RecordingError
from deeplabstream.pose.loading import converted_on_first_use
from deeplabstream.settings.effective import CameraPlan, resolve_cameras
from deeplabstream.settings.sections import Settings

log = logging.getLogger(__name__)


class Part(Enum):
    """What a button starts and stops."""

    STREAM = "stream"
    ANALYSIS = "analysis"
    RECORDING = "recording"
    EXPERIMENT = "experiment"


#: Each part's name on its button ("Start Analysis") and in messages ("Analysis: wait until ...").
BUTTON_LABELS = {
    Part.STREAM: "Stream",
    Part.ANALYSIS: "Analysis",
    Part.RECORDING: "Recording",
    Part.EXPERIMENT: "Experiment",
}
#: The cause of a failure that a fixed settings file (or any part starting well) ends.
SETTINGS_CAUSE = "settings"
SECOND_RIG_HINT = (
    "To run a second rig on this computer at the same time, give it its own cameras and "
    'devices (docs/gui.md, "Closing, Ctrl-C and a second instance").'
)


def with_second_rig_hint(text: str) -> str:
    """Return the lock's message whole, with how to run a second rig when it does not say."""
    if "second rig" in text.lower() or "LOCK_FILE" in text:
        return text
    return f"{text} {SECOND_RIG_HINT}"


def converted_models(plan: CameraPlan) -> list[str]:
    """Return the cameras' models that are converted to ONNX on first use (paths)."""
    found = []
    for path in sorted(str(p) for p in plan.models if p is not None):
        if converted_on_first_use(Path(path)):  # a framework's folder: the model inside it
            found.append(path)
    return found


@dataclass(eq=False)
class LatencyRun:
    """The latency test in progress, as an experiment of the controller's stream.

    :meth:`service` stops it after ``[LatencyTest] DURATION`` and analyses it in the background;
    the controller's ``latency_finished`` says what came out.
    """

    controller: SessionController
    plan: LatencyTestPlan
    events_file: str = ""
    started: float | None = None  # time.monotonic() once its experiment runs
    json_file: Path | None = None  # its figures, once analysed
    summary: str = ""

    @property
    def duration(self) -> float:
        """How long the board flashes, in seconds (``[LatencyTest] DURATION``)."""
        return float(self.plan.settings.latency_test.duration)

    def remaining(self, now: float | None = None) -> float | None:
        """Seconds left until the test stops (None until its experiment has started)."""
        if self.started is None:
            return None
        now = time.monotonic() if now is None else now
        return max(0.0, self.started + self.duration - now)

    def start(self) -> None:
        """Write the test's experiment into the session folder and start it (in the background)."""
        self.controller._run("starting latency test", self._start_experiment, after=self._started)

    def service(self) -> None:
        """Stop and analyse the test once its time is up (or its experiment ended)."""
        controller = self.controller
        if self.started is None or controller.busy is not None:
            return
        if self.remaining() and controller.running(Part.EXPERIMENT):
            return
        controller._run("finishing latency test", self._finish, after=self._done)

    def _start_experiment(self) -> None:
        stream = self.controller.stream
        assert stream is not None and stream.session_dir is not None
        path = write_experiment(stream.session_dir, self.plan)
        self.events_file = self.controller._start_experiment(str(path), self.plan.spec)

    def _started(self, error: Exception | None) -> None:
        if error is not None:
            self.controller.latency = None  # the controller shows the reason
            return
        self.started = time.monotonic()

    def _finish(self) -> None:
        stream = self.controller.stream
        assert stream is not None and stream.session_dir is not None
        stream.pose.stop_experiment()
        figures = finish_latency_test(stream.session_dir, self.plan, self.events_file)
        json_name = run_file(self.events_file, "latency_test")[: -len(".csv")] + ".json"
        self.json_file = stream.session_dir / json_name
        self.summary = "\n".join(summary_lines(figures))

    def _done(self, error: Exception | None) -> None:
        if self.controller.latency is self:
            self.controller.latency = None
        if error is None and self.json_file is not None:
            self.controller.latency_finished.emit(self.summary, str(self.json_file))


@dataclass(eq=False)
class AnalysisLoad:
    """Start Analysis in progress: the settings checked, the model converted, then the worker.

    Every step runs off the GUI thread; once it is no longer its controller's
    :attr:`SessionController.loading`, what its steps report is dropped.
    """

    controller: SessionController
    started: float = field(default_factory=time.monotonic)  # when the button was pressed
    stage: str = "checking the settings"  # what happens now, for the progress line
    job: ProcessJob | None = None  # the conversion's helper process while it runs
    task: _Task | None = None  # the thread checking the settings, then the worker's start
    cancelled: bool = False  # Cancel Analysis: stop the worker as soon as it is up
    stop_after: str | None = None  # Stop Stream during the worker's start: its reason, once up

    def progress_text(self) -> str:
        """Return ``starting analysis: STAGE (N s)``."""
        stage = self.job.stage if self.job is not None and self.job.running else self.stage
        return f"starting analysis: {stage} ({time.monotonic() - self.started:.0f} s)"

    def begin(self) -> None:
        """Check the settings again on a background thread; the steps after follow from there."""
        self.task = _Task(lambda: self.controller._reload_settings(Part.ANALYSIS))
        self.task.done.connect(lambda error: self._settings_checked(error))
        self.task.start()
        self.controller.changed.emit()

    def cancel(self) -> None:
        """Cancel Start Analysis: at once while converting, as soon as the worker is up after."""
        controller = self.controller
        if self.job is not None:
            controller.loading = None  # first: the job's "cancelled" outcome is then not a failure
            self.job.cancel()
            controller.notice.emit("Start Analysis cancelled")
        else:
            self.cancelled = True
            self.stage = "cancelling: ending the pose worker's start"
        controller.changed.emit()

    def _settings_checked(self, error: Exception | None) -> None:
        """Go on once the settings are checked (or say why not)."""
        controller = self.controller
        if self.task is not None:
            self.task.wait()
            self.task = None
        if self is not controller.loading:
            return
        if error is None and not self.cancelled and self.stop_after is None:
            self._convert_then_start()
            return
        controller.loading = None
        if isinstance(error, StartRefusedError):
            controller._fail(error.text, error.cause)
        elif error is not None:
            self._failed(error)
        elif self.cancelled:
            controller.notice.emit("Start Analysis cancelled")
        if self.stop_after is not None:
            controller.busy = None  # it only waited for the check: now the stream stops
            controller._stop_stream_soon(self.stop_after)
        else:
            controller.changed.emit()

    def _convert_then_start(self) -> None:
        """Convert the models that need it (helper process), then start the pose worker."""
        stream = self.controller.stream
        assert stream is not None
        converted = converted_models(stream.camera_plan)
        if converted:
            precision = stream.settings.pose.precision
            job = ProcessJob(
                "converting the model", prepare_models_job, (converted, precision),
                parent=self.controller,
            )  # fmt: skip
            job.finished.connect(lambda outcome: self._converted(outcome))
            self.job = job
            job.start()
        else:
            self._start_pose_worker()
        self.controller.changed.emit()

    def _converted(self, outcome: Outcome) -> None:
        if self is not self.controller.loading:
            return  # cancelled: the stream or the load has gone on without it
        self.job = None
        if outcome.error:
            self.controller.loading = None
            self._failed(outcome.error)
            self.controller.changed.emit()
            return
        self._start_pose_worker()

    def _start_pose_worker(self) -> None:
        stream = self.controller.stream
        assert stream is not None
        self.stage = "starting the pose worker (loading the model, warming it up)"
        self.task = _Task(lambda: stream.pose.start_analysis(stop_requested=self._stop_reason))
        self.task.done.connect(lambda error: self._pose_worker_started(error))
        self.task.start()

    def _stop_reason(self) -> str | None:
        """Say why the pose worker's start should end now (any thread); None: it goes on."""
        if self.controller._closing:
            return self.controller._stop_requested()
        if self.stop_after is not None:
            return self.stop_after
        return "Start Analysis was cancelled" if self.cancelled else None

    def _pose_worker_started(self, error: Exception | None) -> None:
        controller = self.controller
        if self.task is not None:
            self.task.wait()
        if self is not controller.loading:
            return
        controller.loading = None
        ended = isinstance(error, StopRequested)  # ended as it loaded: a stop, not a failure
        if ended and controller._closing:
            controller.start_interrupted = True  # Ctrl-C during the start-up (exit code 130)
        if ended and self.cancelled and self.stop_after is None:
            controller.notice.emit("Start Analysis cancelled")
        elif error is not None and not ended:
            self._failed(error)
        elif error is None and not self.cancelled and self.stop_after is None:
            controller.resolved.emit(Part.ANALYSIS.value)
            for warning in controller.stream.warnings if controller.stream is not None else []:
                controller.warning.emit(warning)  # e.g. frames not the model's size: stays, as one
        if self.stop_after is not None:
            controller.busy = None  # it only waited for the worker: now the stream stops
            controller._stop_stream_soon(self.stop_after)
        elif self.cancelled and controller.stream is not None and error is None:
            controller._run("stopping analysis", controller.stream.pose.stop_analysis)
        else:
            controller.changed.emit()

    def _failed(self, error: object) -> None:
        self.controller._fail(f"Starting analysis failed: {error}", Part.ANALYSIS.value)


class StartRefusedError(DeepLabStreamError):
    """A start its checks refused before anything started: what to show, and what fixes it."""

    def __init__(self, text: str, cause: str) -> None:
        super().__init__(text)
        self.text = text
        self.cause = cause


#: Failures a user causes and can fix; their messages say what to do, so no traceback is printed.
EXPECTED_FAILURES: tuple[type[Exception], ...] = (
    StartRefusedError,
    CameraError,
    SettingsError,
    PoseError,
    RecordingError,
    DeviceBusyError,
    OSError,
)


class _Task(BackgroundThread):
    """Run one blocking call off the GUI thread; ``done`` carries its exception (or None)."""

    done = pyqtSignal(object)

    def __init__(self, call: Callable[[], object]) -> None:
        super().__init__()
        self._call = call

    def run(self) -> None:  # QThread calls this on the new thread
        try:
            self._call()
        except StopRequested as stop:  # the window closed while cameras opened: not a failure
            log.info("start-up stopped: %s", stop.reason)
            self.done.emit(stop)
            return
        except EXPECTED_FAILURES as error:  # a camera not found, a bad file: the message says it
            log.error("%s", error)
            self.done.emit(error)
            return
        except Exception as error:  # a bug: the traceback to the log, the message to the window
            log.exception("GUI task failed")
            self.done.emit(error)
            return
        self.done.emit(None)


class SessionController(QObject):
    """The stream of the window and the state of its four parts."""

    changed = pyqtSignal()  # a part started or stopped, or a task began or ended
    # Something the user must see (the window shows a banner); the banner goes once what
    # caused it starts well (:attr:`failure_cause`).
    # :attr:`failure_cause` is the part it concerns ("stream", "analysis"... "" when unknown),
    # valid while the signal is delivered.
    failed = pyqtSignal(str)
    resolved = pyqtSignal(str)  # a part started well: its earlier failures are history
    notice = pyqtSignal(str)  # news for the message area (it goes by itself), not a banner
    warning = pyqtSignal(str)  # the session warns (disk filling, a camera below its rate)
    warned = pyqtSignal(str)  # a user's stop whose session had losses: its summary
    summarised = pyqtSignal(str)  # a session that ended without errors: its summary
    ended = pyqtSignal(str)  # the stream stopped by itself (sources ended, planned duration)
    shut_down = pyqtSignal()  # after request_shutdown: everything stopped, files final
    stream_closing = pyqtSignal()  # the stream is about to stop: let go of its display readers
    latency_finished = pyqtSignal(str, str)  # the latency test's summary and its JSON file

    def __init__(
        self,
        load_settings: Callable[[], Settings],
        *,
        output_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self._load_settings = load_settings
        self.output_dir = output_dir
        self.stream: LiveSession | None = None
        self.runner: SessionRunner | None = None
        self.busy: str | None = None  # what the background task is doing, e.g. "starting stream"
        self.last_session: Path | None = None
        #: Each camera's frames recorded and lost by the whole session, as its session.json
        #: says them at the stop (the camera table's "recorded" cell then).
        self.final_recorded: dict[str, tuple[int, int]] = {}
        # the last session's summary (live/session/report/summary.py)
        self.last_summary: list[str] = []
        self.recording_started: float | None = None  # time.monotonic() at Start Recording
        self._locks: DeviceLocks | None = None  # the rig's cameras and devices, while streaming
        self._task: _Task | None = None
        self.loading: AnalysisLoad | None = None  # Start Analysis in progress
        self.failure_cause = ""  # while ``failed`` is delivered: the part it concerns
        self._after: Callable[[Exception | None], None] | None = None
        self.latency: LatencyRun | None = None  # the latency test in progress
        self._experiments_started = 0  # of this stream, counted as the stream counts them
        self._closing = False  # request_shutdown was called: stop, then say shut_down
        self._closing_reason = "window closed"  # the stop reason it gave (Ctrl-C received)
        self.start_interrupted = False  # the window closed (Ctrl-C) while the stream opened

    # -- state ---------------------------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        """True while a stream is open and not stopped."""
        return self.stream is not None

    def running(self, part: Part) -> bool:
        """Whether ``part`` runs now (analysis: once its start is over, not while it loads)."""
        stream = self.stream
        if stream is None:
            return False
        return {
            Part.STREAM: True,
            Part.ANALYSIS: stream.pose.analysing and self.loading is None,
            Part.RECORDING: stream.recording,
            Part.EXPERIMENT: stream.pose.experimenting,
        }[part]

    def allowed(self, part: Part) -> bool:
        """Whether ``part``'s button may be pressed now (to start it, or to stop it)."""
        return self.why_not(part) is None

    def why_not(
        self, part: Part, *, waiting: bool = False, will_run: frozenset[Part] = frozenset()
    ) -> str | None:
        """Say why ``part``'s button cannot be pressed now; None when it can.

        With ``waiting``: why not once the start or stop in progress is done, ``will_run`` having
        started meanwhile.
        """
        if self.busy is not None and not waiting:
            return f"wait: {self.busy}"
        loading = self.loading
        if part is Part.ANALYSIS and loading is not None:
            return "wait: the load is being cancelled" if loading.cancelled else None
        if part is Part.EXPERIMENT and self.latency is not None:
            return "the latency test's experiment stops by itself when the test ends"
        if part is Part.STREAM or self.running(part):
            return None
        opening = waiting and self.busy == "starting stream"
        if not self.streaming and not opening:
            return "press Start Stream first"
        analysing = self.running(Part.ANALYSIS) or Part.ANALYSIS in will_run
        if part is Part.EXPERIMENT and loading is not None:
            return None if waiting else "wait until analysis runs: the pose model is still loading"
        if part is Part.EXPERIMENT and not analysing:
            return "press Start Analysis first: the experiment runs on the poses"
        return None

    def waits_for(self, part: Part) -> str | None:
        """Say what a click on ``part``'s button must wait for now; None when it need not."""
        if self.busy is not None:
            return self.busy
        if part is Part.EXPERIMENT and self.loading is not None and not self.running(part):
            return "starting analysis"
        return None

    @property
    def working(self) -> bool:
        """Whether a part is starting or stopping (a task, or Start Analysis's load)."""
        return self.busy is not None or self.loading is not None

    def latency_test_allowed(self) -> bool:
        """Whether the latency test may start now: analysis runs, no experiment, nothing busy."""
        return (
            self.busy is None
            and self.loading is None
            and self.latency is None
            and self.running(Part.ANALYSIS)
            and not self.running(Part.EXPERIMENT)
        )

    @property
    def session_dir(self) -> Path | None:
        """The folder of the running session, or of the last one."""
        if self.stream is not None and self.stream.session_dir is not None:
            return self.stream.session_dir
        return self.last_session

    # -- buttons -------------------------------------------------------------------------------

    def toggle(self, part: Part) -> None:
        """Start ``part`` if stopped, stop it if it runs; a refused click gets a notice why."""
        reason = self.why_not(part)
        if reason is not None:
            self.notice.emit(f"{BUTTON_LABELS[part]}: {reason}")
            return
        if part is Part.ANALYSIS and self.loading is not None:
            self.loading.cancel()
        elif self.running(part):
            self.stop(part)
        else:
            self.start(part)

    def start(self, part: Part) -> None:
        """Start ``part`` on a background thread (the stream itself is opened there too)."""
        if part is Part.STREAM:
            self._start_stream()
            return
        stream = self.stream
        if stream is None:
            return
        if part is Part.ANALYSIS:
            self.loading = AnalysisLoad(self)
            self.loading.begin()
        elif part is Part.RECORDING:
            self._run("starting recording", self._start_recording)
        elif part is Part.EXPERIMENT:
            self._run("starting experiment", self._checked_start_experiment)

    def _reload_settings(self, part: Part) -> None:
        """Read the settings again before a start (background thread); StartRefusedError if bad."""
        # Not on the GUI thread: checking a model took the window 0.2-1.5 s at each start.
        stream = self.stream
        assert stream is not None
        try:
            settings = self._load_settings()
        except SettingsError as error:
            raise StartRefusedError(f"Cannot start {part.value}: {error}", SETTINGS_CAUSE) from None
        problems = check_before_start(settings, pose=True, experiment=part is Part.EXPERIMENT)
        if problems:
            text = f"Cannot start {part.value}:\n" + "\n".join(problems)
            raise StartRefusedError(text, SETTINGS_CAUSE)
        for note in stream.reload_settings(settings):  # a change not applied: said until seen
            self.warning.emit(f"Settings re-read: {note}")

    def stop(self, part: Part) -> None:
        """Stop ``part`` on a background thread; files are finalised before it reports done."""
        stream = self.stream
        if stream is None:
            return
        if part is Part.STREAM:
            self._stop_stream_soon("stopped by the user")
        elif part is Part.ANALYSIS:
            self._run("stopping analysis", stream.pose.stop_analysis)
        elif part is Part.RECORDING:
            self._run("stopping recording", self._stop_recording)
        elif part is Part.EXPERIMENT:
            self._run("stopping experiment", stream.pose.stop_experiment)

    def start_latency_test(self) -> None:
        """Run the board's latency self-test (:class:`LatencyRun`); bad settings: the banner."""
        stream = self.stream
        if stream is None or not self.latency_test_allowed():
            return
        if stream.session_dir is None:
            self._fail("Latency test: the stream has no session folder yet", "latency")
            return
        try:
            plan = plan_latency_test(stream.settings)
        except LatencyTestError as error:
            self._fail(str(error), "latency")
            return
        self.latency = LatencyRun(self, plan)
        self.latency.start()

    def request_shutdown(self, reason: str | None = None) -> None:
        """Stop everything on a background thread; ``shut_down`` is emitted when all is final.

        ``reason``: the session's stop reason ("window closed" unless said).
        """
        self._closing = True
        if reason is not None:
            self._closing_reason = reason
        if self.busy is not None:
            return  # _task_done carries on when the task in progress ends
        if self.stream is not None:
            self._stop_stream_soon(self._closing_reason)
            return
        self.shut_down.emit()

    def shutdown(self, reason: str = "window closed") -> None:
        """Stop everything now, on this thread (closing the window); files are finalised."""
        if self._task is not None:
            self._task.wait()  # a start or stop in progress finishes first
        loading, self.loading = self.loading, None
        if loading is not None and loading.job is not None:
            loading.job.cancel()
        if loading is not None and loading.task is not None:
            loading.task.wait()
        if self.stream is not None:
            self.stream_closing.emit()
            self._stop_stream(reason)
            self._after_stream_stopped()

    # -- while running -------------------------------------------------------------------------

    def service(self) -> None:
        """Call often (the window's timer): handles the processes' news; never blocks."""
        if self.busy is not None or self.runner is None:
            return
        if not self.runner.tick(0.0) and self.stream is not None:
            reason = self.runner.stop_reason or "stopped"
            if not reason.endswith("by the user") and not self._closing:
                self.ended.emit(reason)
            self._stop_stream_soon(reason)
            return
        if self.latency is not None:
            self.latency.service()

    def _stop_stream_soon(self, reason: str) -> None:
        """Stop the stream: at once, or once the pose worker that is starting is up."""
        load = self.loading
        if load is not None and load.task is not None:
            load.stop_after = reason
            self.busy = "stopping stream: ending the pose worker's start"
            self.stream_closing.emit()
            self.changed.emit()
            return
        if load is not None:  # converting: stop the conversion now
            self.loading = None
            if load.job is not None:
                load.job.cancel()
        self.stream_closing.emit()
        self._run("stopping stream", lambda: self._stop_stream(reason))

    # -- internals -----------------------------------------------------------------------------

    def _start_stream(self) -> None:
        self._experiments_started = 0
        self.latency = None
        self._run("starting stream", self._open_stream)

    def _open_stream(self) -> None:
        """Check the settings, lock the rig, make the run's plan, open and start the stream."""
        # Everything a start would find wrong is found before a camera opens or a folder is made;
        # a file without [Experiment] chose none (Start Experiment checks it).
        try:
            settings = self._load_settings()
        except Exception as error:  # bad settings: a banner, no traceback
            raise StartRefusedError(str(error), SETTINGS_CAUSE) from None
        plan = resolve_cameras(settings)
        problems = check_plan(plan, pose=True, experiment=settings.experiment_chosen)
        if problems:
            text = "Cannot start the stream:\n" + "\n".join(problems)
            raise StartRefusedError(text, SETTINGS_CAUSE)
        try:  # the window may start an experiment at any time: the rig's devices are its own
            self._locks = lock_session_devices(settings, devices=True)
        except DeviceBusyError as error:  # another session uses a camera or device: a banner
            raise StartRefusedError(with_second_rig_hint(str(error)), Part.STREAM.value) from None
        try:
            stream = LiveSession(settings, output_dir=self.output_dir, plan=plan)
            self.runner = SessionRunner(
                stream,
                duration_s=settings.session.planned_duration,
                status_out=None,
                on_event=self._on_event,
            )
        except BaseException:
            self._release_locks()
            raise
        self.stream = stream
        stream.open(stop_requested=self._stop_requested)
        stream.start()

    def _stop_requested(self) -> str | None:
        """Why a start-up wait should end (the window is closing), else None: any thread."""
        if not self._closing:
            return None
        closed = self._closing_reason == "window closed"
        return "the window was closed" if closed else self._closing_reason

    def _start_experiment(
        self, experiment_name: str | None = None, latency_test: Any = None
    ) -> str:
        """Start an experiment; returns its events file (counted as ``LiveSession`` counts them)."""
        stream = self.stream
        assert stream is not None
        counts = stream.pose.analysing and not stream.pose.experimenting  # the stream names a file
        events_file = events_file_name(self._experiments_started + 1)
        try:
            stream.pose.start_experiment(experiment_name=experiment_name, latency_test=latency_test)
        finally:
            if counts:
                self._experiments_started += 1
        return events_file

    def _checked_start_experiment(self) -> None:
        """Check the settings again, then start the experiment (a background thread)."""
        self._reload_settings(Part.EXPERIMENT)
        self._start_experiment()

    def _start_recording(self) -> None:
        assert self.stream is not None
        self.stream.start_recording()
        self.recording_started = time.monotonic()

    def _stop_recording(self) -> None:
        assert self.stream is not None
        self.stream.stop_recording()
        self.recording_started = None

    def _stop_stream(self, reason: str) -> None:
        """Stop the stream; a running experiment first, so its outputs are switched off now."""
        # The stream's stop waits for recorders and the worker's files (once 16.4 s) before the
        # worker would stop the experiment.
        stream = self.stream
        if stream is None:
            return
        if stream.pose.experimenting:
            stream.pose.stop_experiment()
        stream.stop(reason)

    def _say_summary(self, stream: LiveSession) -> None:
        """Show the session's summary, rendered from its session.json (as the CLI prints it)."""
        # A session that ended by itself with errors gets the red banner; a user's own stop is
        # never an error: its losses are warned of. The first line says what was lost (headline):
        # the window shows a message's first lines.
        record = stream.record
        if record is None:
            return
        self.last_summary = session_summary_lines(record, stream.session_dir)
        text = "\n".join([headline(record), *self.last_summary[1:]])
        if record.errors and (record.stop_reason or "") in USER_STOPS:
            self.warned.emit(text)
        elif record.errors:
            self.failed.emit(f"The session ended with errors. {text}")
        else:
            self.summarised.emit(text)

    def _after_stream_stopped(self) -> None:
        stream = self.stream
        if stream is not None:
            folder = stream.session_dir
            if stream.discard_preview():
                self.notice.emit(f"Only a preview: nothing was recorded, {folder} was removed")
            else:
                self._say_summary(stream)
            self.last_session = stream.session_dir
            record = stream.record
            self.final_recorded = {
                name: (camera.frames_recorded, camera.frames_lost_in_recording)
                for name, camera in (record.cameras if record is not None else {}).items()
            }
        self.stream = None
        self.runner = None
        self.recording_started = None
        if self.latency is not None:
            self.latency = None
            self._fail("Latency test cut short: the stream stopped before it ended", "latency")
        self._release_locks()
        self.changed.emit()

    def _release_locks(self) -> None:
        if self._locks is not None:
            self._locks.release()
            self._locks = None

    def _on_event(self, event: SessionEvent) -> None:
        """Pass the session's errors on as failures and its warnings as warnings."""
        if event.level < logging.WARNING:
            return
        text = event.message
        if event.camera and event.camera not in text:  # say which camera, once
            text = f"camera {event.camera!r}: {text}"
        if event.level < logging.ERROR:
            self.warning.emit(text)
        else:
            self._fail(text, Part.STREAM.value)

    def _fail(self, text: str, cause: str) -> None:
        """Emit ``failed`` with :attr:`failure_cause` set to ``cause`` while it is delivered."""
        self.failure_cause = cause
        try:
            self.failed.emit(text)
        finally:
            self.failure_cause = ""

    def _run(
        self,
        what: str,
        call: Callable[[], object],
        after: Callable[[Exception | None], None] | None = None,
    ) -> None:
        """Run ``call`` on a background thread; ``after`` gets its outcome on the GUI thread."""
        if self.busy is not None:
            if after is not None:
                after(RuntimeError(f"busy {self.busy}"))
            return
        self.busy = what
        self._after = after
        self._task = _Task(call)
        self._task.done.connect(self._task_done)
        self._task.start()
        self.changed.emit()

    def _task_done(self, error: Exception | None) -> None:
        what, self.busy = self.busy or "", None
        if self._task is not None:
            self._task.wait()
            self._task = None
        after, self._after = self._after, None
        if after is not None:
            after(error)
        part = next((p for p in Part if what == f"starting {p.value}"), None)
        if isinstance(error, StopRequested):  # closed while starting: a stop, not a failure
            self.start_interrupted = True
            if what == "starting stream" and self.stream is not None:
                self.stream.stop(f"{error.reason} during start-up")
        elif isinstance(error, StartRefusedError):  # its checks said no: nothing was started
            self._fail(error.text, error.cause)
            if what == "starting stream" and self.stream is None:
                self.runner = None
        elif error is not None:
            cause = part.value if part is not None else what.split(" ")[-1]
            self._fail(f"{what[:1].upper()}{what[1:]} failed: {error}", cause)
            if what == "starting stream" and self.stream is not None:
                self.stream.stop(f"error: {error}")
        elif part is not None:
            self.resolved.emit(part.value)
        stream = self.stream
        if stream is not None and (what == "stopping stream" or stream.stopped):
            self._after_stream_stopped()
        else:
            self.changed.emit()
        if self._closing and self.busy is None:
            self.request_shutdown()
