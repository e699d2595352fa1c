"""What the GUI's buttons do: one stream session, its parts started and stopped in a safe order.

:class:`SessionController` owns the :class:`~session.live.LiveSession` of the window. Starting or
stopping a part can take seconds (opening cameras, loading a model, finalising files), so each
runs on a background thread while the window keeps painting; meanwhile the buttons are disabled
and the stream is not serviced, which is harmless: cameras, recorders and the inference worker
are separate processes that go on by themselves. Everything else happens on the GUI thread.

Order rules (what :meth:`SessionController.allowed` enforces):

* analysis and recording need a stream; an experiment needs analysis;
* stopping analysis stops its experiment; stopping the stream stops everything in order
  (recorders finish their frames, the worker writes its files) and finalises ``session.json``;
* the latency test (:meth:`SessionController.start_latency_test`) is an experiment of its own:
  it needs analysis and no other experiment, and the Experiment button waits until it ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QObject, QThread, pyqtSignal

from cameras.base import CameraError
from core.instance_lock import InstanceLock, InstanceLockError
from core.schema import SettingsError
from recording.video import RECORDED_VIDEO_SUFFIXES
from selftest.latency_run import (
    LatencyTestError,
    LatencyTestPlan,
    finish_latency_test,
    plan_latency_test,
    summary_lines,
    write_experiment,
)
from session.analysis import PoseError
from session.live import LiveSession, SessionEvent
from session.preflight import check_before_start
from session.recordings import RecordingError
from session.runner import SessionRunner
from settings.sections import Settings
from stimulation.latency import run_file

log = logging.getLogger(__name__)



class Part(Enum):
    """What a button starts and stops."""

    STREAM = "stream"
    ANALYSIS = "analysis"
    RECORDING = "recording"
    EXPERIMENT = "experiment"


def events_file_name(run: int) -> str:
    """Name the events file of a session's ``run``-th experiment (the rule of ``session.live``)."""
    return "events.csv" if run == 1 else f"events.run{run}.csv"


@dataclass
class LatencyRun:
    """The latency test in progress: its plan, its events file, when its experiment started."""

    plan: LatencyTestPlan
    events_file: str = ""
    started: float | None = None  # time.monotonic() once its experiment runs

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


#: Failures a user causes and can fix; their messages say what to do, so no traceback is printed.
EXPECTED_FAILURES: tuple[type[Exception], ...] = (
    CameraError,
    SettingsError,
    PoseError,
    RecordingError,
    InstanceLockError,
    OSError,
)


class _Task(QThread):
    """Run one blocking call off the GUI thread; ``done`` carries its exception (or None)."""

    done = pyqtSignal(object)

    def __init__(self, call: Callable[[], object]) -> None:
        super().__init__()
        self._call = call

    def run(self) -> None:  # QThread calls this on the new thread
        try:
            self._call()
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
    failed = pyqtSignal(str)  # something the user must see (the window shows a banner)
    notice = pyqtSignal(str)  # worth a line in the status bar, not a banner
    shut_down = pyqtSignal()  # after request_shutdown: everything stopped, files final
    stream_closing = pyqtSignal()  # the stream is about to stop: let go of its display readers
    latency_finished = pyqtSignal(str, str)  # the latency test's summary and its JSON file

    def __init__(
        self,
        load_settings: Callable[[], Settings],
        *,
        output_dir: Path | None = None,
        lock: InstanceLock | None = None,
    ) -> None:
        super().__init__()
        self._load_settings = load_settings
        self.output_dir = output_dir
        self.stream: LiveSession | None = None
        self.runner: SessionRunner | None = None
        self.busy: str | None = None  # what the background task is doing, e.g. "starting stream"
        self.last_session: Path | None = None
        self.recording_started: float | None = None  # time.monotonic() at Start Recording
        self._lock = lock or InstanceLock()
        self._task: _Task | None = None
        self._after: Callable[[Exception | None], None] | None = None
        self.latency: LatencyRun | None = None  # the latency test in progress
        self.last_latency_json: Path | None = None
        self._latency_summary = ""
        self._experiments_started = 0  # of this stream, counted as the stream counts them
        self._closing = False  # request_shutdown was called: stop, then say shut_down

    # -- state ---------------------------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        """True while a stream is open and not stopped."""
        return self.stream is not None

    def running(self, part: Part) -> bool:
        """Whether ``part`` runs now."""
        stream = self.stream
        if stream is None:
            return False
        return {
            Part.STREAM: True,
            Part.ANALYSIS: stream.analysing,
            Part.RECORDING: stream.recording,
            Part.EXPERIMENT: stream.experimenting,
        }[part]

    def allowed(self, part: Part) -> bool:
        """Whether ``part``'s button may be pressed now (to start it, or to stop it)."""
        if self.busy is not None:
            return False
        if part is Part.EXPERIMENT and self.latency is not None:
            return False  # the latency test's experiment stops by itself
        if part is Part.STREAM or self.running(part):
            return True
        if part is Part.EXPERIMENT:
            return self.running(Part.ANALYSIS)
        return self.streaming

    def latency_test_allowed(self) -> bool:
        """Whether the latency test may start now: analysis runs, no experiment, nothing busy."""
        return (
            self.busy is None
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

    def recording_size_bytes(self) -> int:
        """Bytes of video written so far in the session folder (all cameras)."""
        folder = self.session_dir
        if folder is None or not folder.is_dir():
            return 0
        total = 0
        for path in folder.iterdir():
            if path.suffix in RECORDED_VIDEO_SUFFIXES:
                try:
                    total += path.stat().st_size
                except OSError:  # a file being renamed or removed: count it next time
                    pass
        return total

    # -- buttons -------------------------------------------------------------------------------

    def toggle(self, part: Part) -> None:
        """Start ``part`` if it is stopped, stop it if it runs (the button's click)."""
        if not self.allowed(part):
            return
        if self.running(part):
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
        if part in (Part.ANALYSIS, Part.EXPERIMENT) and not self._reload_settings(part):
            return
        if part is Part.ANALYSIS:
            self._run(f"starting {part.value}", stream.start_analysis)
        elif part is Part.RECORDING:
            self._run("starting recording", self._start_recording)
        elif part is Part.EXPERIMENT:
            self._run("starting experiment", self._start_experiment)

    def _reload_settings(self, part: Part) -> bool:
        """Read the settings file again before a start; False (and a banner) when it is bad.

        A user who fixed the model or the experiment after Start Stream gets the fix; what
        cannot change while streaming (the cameras) is said in a notice.
        """
        stream = self.stream
        assert stream is not None
        try:
            settings = self._load_settings()
        except SettingsError as error:
            self.failed.emit(f"Cannot start {part.value}: {error}")
            return False
        problems = check_before_start(
            settings, pose=True, experiment=part is Part.EXPERIMENT
        )
        if problems:
            self.failed.emit(f"Cannot start {part.value}:\n" + "\n".join(problems))
            return False
        for note in stream.reload_settings(settings):
            self.notice.emit(f"Settings re-read: {note}")
        return True

    def stop(self, part: Part) -> None:
        """Stop ``part`` on a background thread; files are finalised before it reports done."""
        stream = self.stream
        if stream is None:
            return
        if part is Part.STREAM:
            self.stream_closing.emit()
            self._run("stopping stream", lambda: self._stop_stream("stopped by the user"))
        elif part is Part.ANALYSIS:
            self._run("stopping analysis", stream.stop_analysis)
        elif part is Part.RECORDING:
            self._run("stopping recording", self._stop_recording)
        elif part is Part.EXPERIMENT:
            self._run("stopping experiment", stream.stop_experiment)

    def start_latency_test(self) -> None:
        """Run the stimulus board's latency self-test as an experiment of the running stream.

        The settings are checked here (a LatencyTestError goes to the banner); the experiment
        starts on a background thread, :meth:`service` stops it after ``[LatencyTest]
        DURATION`` and analyses it on a background thread too, then ``latency_finished`` says
        what came out (``latency_test*.json`` and ``.png`` in the session folder).
        """
        stream = self.stream
        if stream is None or not self.latency_test_allowed():
            return
        if stream.session_dir is None:
            self.failed.emit("Latency test: the stream has no session folder yet")
            return
        try:
            plan = plan_latency_test(stream.settings)
        except LatencyTestError as error:
            self.failed.emit(str(error))
            return
        run = LatencyRun(plan)
        self.latency = run
        self._run(
            "starting latency test",
            lambda: self._start_latency_experiment(run),
            after=lambda error: self._latency_started(run, error),
        )

    def request_shutdown(self) -> None:
        """Stop everything on a background thread; ``shut_down`` is emitted when all is final.

        Closing the window calls this: stopping finalises files for seconds, and the window
        keeps painting (and saying so) meanwhile instead of freezing.
        """
        self._closing = True
        if self.busy is not None:
            return  # _task_done carries on when the task in progress ends
        if self.stream is not None:
            self.stream_closing.emit()
            self._run("stopping stream", lambda: self._stop_stream("window closed"))
            return
        self.shut_down.emit()

    def shutdown(self, reason: str = "window closed") -> None:
        """Stop everything now, on this thread (closing the window); files are finalised."""
        if self._task is not None:
            self._task.wait()  # a start or stop in progress finishes first
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
            self.stream_closing.emit()
            self._run("stopping stream", lambda: self._stop_stream(reason))
            return
        self._service_latency_test()

    def _service_latency_test(self) -> None:
        """Stop and analyse the latency test once its time is up (or its experiment ended)."""
        run = self.latency
        if run is None or run.started is None or self.busy is not None:
            return
        if run.remaining() and self.running(Part.EXPERIMENT):
            return
        self._run(
            "finishing latency test",
            lambda: self._finish_latency_test(run),
            after=lambda error: self._latency_done(run, error),
        )

    # -- internals -----------------------------------------------------------------------------

    def _start_stream(self) -> None:
        try:
            settings = self._load_settings()
        except Exception as error:  # bad settings: a banner, no traceback
            self.failed.emit(str(error))
            return
        # Everything a start would find wrong is found now, before a camera opens or a session
        # folder is made: the model and the experiment the file names (with its cameras and
        # devices). A file without [Experiment] has chosen none: Start Experiment checks it.
        problems = check_before_start(settings, pose=True, experiment=settings.experiment_chosen)
        if problems:
            self.failed.emit("Cannot start the stream:\n" + "\n".join(problems))
            return
        try:
            self._lock.acquire()
        except InstanceLockError as error:  # another instance streams: a banner
            self.failed.emit(str(error))
            return
        self.stream = LiveSession(settings, output_dir=self.output_dir)
        self._experiments_started = 0
        self.latency = None
        self.runner = SessionRunner(
            self.stream,
            duration_s=settings.session.planned_duration,
            status_out=None,
            on_event=self._on_event,
        )
        self._run("starting stream", self._open_stream)

    def _open_stream(self) -> None:
        assert self.stream is not None
        self.stream.open()
        self.stream.start()

    def _start_experiment(
        self, experiment_name: str | None = None, latency_test: Any = None
    ) -> str:
        """Start an experiment; returns its events file (counted as ``LiveSession`` counts them)."""
        stream = self.stream
        assert stream is not None
        counts = stream.analysing and not stream.experimenting  # the stream names a file then
        events_file = events_file_name(self._experiments_started + 1)
        try:
            stream.start_experiment(experiment_name=experiment_name, latency_test=latency_test)
        finally:
            if counts:
                self._experiments_started += 1
        return events_file

    def _start_latency_experiment(self, run: LatencyRun) -> None:
        stream = self.stream
        assert stream is not None and stream.session_dir is not None
        path = write_experiment(stream.session_dir, run.plan)
        run.events_file = self._start_experiment(str(path), run.plan.spec)

    def _latency_started(self, run: LatencyRun, error: Exception | None) -> None:
        if error is not None:
            self.latency = None  # _task_done shows the reason
            return
        run.started = time.monotonic()

    def _finish_latency_test(self, run: LatencyRun) -> None:
        stream = self.stream
        assert stream is not None and stream.session_dir is not None
        stream.stop_experiment()
        figures = finish_latency_test(stream.session_dir, run.plan, run.events_file)
        json_name = run_file(run.events_file, "latency_test")[: -len(".csv")] + ".json"
        self.last_latency_json = stream.session_dir / json_name
        self._latency_summary = "\n".join(summary_lines(figures))

    def _latency_done(self, run: LatencyRun, error: Exception | None) -> None:
        if self.latency is run:
            self.latency = None
        if error is None and self.last_latency_json is not None:
            self.latency_finished.emit(self._latency_summary, str(self.last_latency_json))

    def _start_recording(self) -> None:
        assert self.stream is not None
        self.stream.start_recording()
        self.recording_started = time.monotonic()

    def _stop_recording(self) -> None:
        assert self.stream is not None
        self.stream.stop_recording()
        self.recording_started = None

    def _stop_stream(self, reason: str) -> None:
        stream = self.stream
        if stream is not None:
            stream.stop(reason)

    def _after_stream_stopped(self) -> None:
        stream = self.stream
        if stream is not None:
            folder = stream.session_dir
            if stream.discard_preview():
                self.notice.emit(f"Only a preview: nothing was recorded, {folder} was removed")
            self.last_session = stream.session_dir
        self.stream = None
        self.runner = None
        self.recording_started = None
        if self.latency is not None:
            self.latency = None
            self.failed.emit("Latency test cut short: the stream stopped before it ended")
        self._lock.release()
        self.changed.emit()

    def _on_event(self, event: SessionEvent) -> None:
        if event.level < logging.WARNING:
            return
        text = event.message
        if event.camera and event.camera not in text:  # say which camera, once
            text = f"camera {event.camera!r}: {text}"
        self.failed.emit(text)

    def _run(
        self,
        what: str,
        call: Callable[[], object],
        after: Callable[[Exception | None], None] | None = None,
    ) -> None:
        """Run ``call`` on a background thread; ``after`` gets its outcome on the GUI thread.

        What ``call`` returns is not used.
        """
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
        if error is not None:
            self.failed.emit(f"{what[:1].upper()}{what[1:]} failed: {error}")
            if what == "starting stream" and self.stream is not None:
                self.stream.stop(f"error: {error}")
        stream = self.stream
        if stream is not None and (what == "stopping stream" or stream.stopped):
            self._after_stream_stopped()
        else:
            self.changed.emit()
        if self._closing and self.busy is None:
            self.request_shutdown()
