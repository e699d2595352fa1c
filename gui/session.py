"""What the GUI's buttons do: one stream session, its parts started and stopped in a safe order.

:class:`SessionController` owns the :class:`~stream.supervisor.Stream` of the window. Starting or
stopping a part can take seconds (opening cameras, loading a model, finalising files), so each
runs on a background thread while the window keeps painting; meanwhile the buttons are disabled
and the stream is not serviced, which is harmless: cameras, recorders and the inference worker
are separate processes that go on by themselves. Everything else happens on the GUI thread.

Order rules (what :meth:`SessionController.allowed` enforces):

* analysis and recording need a stream; an experiment needs analysis;
* stopping analysis stops its experiment; stopping the stream stops everything in order
  (recorders finish their frames, the worker writes its files) and finalises ``session.json``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from PyQt5.QtCore import QObject, QThread, pyqtSignal

from settings.sections import Settings
from stream.instance_lock import InstanceLock
from stream.runner import StreamRunner
from stream.supervisor import Stream, StreamEvent

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv")


class Part(Enum):
    """What a button starts and stops."""

    STREAM = "stream"
    ANALYSIS = "analysis"
    RECORDING = "recording"
    EXPERIMENT = "experiment"


class _Task(QThread):
    """Run one blocking call off the GUI thread; ``done`` carries its exception (or None)."""

    done = pyqtSignal(object)

    def __init__(self, call: Callable[[], None]) -> None:
        super().__init__()
        self._call = call

    def run(self) -> None:  # QThread calls this on the new thread
        try:
            self._call()
        except Exception as error:  # every failure must reach the window as a message
            log.exception("GUI task failed")
            self.done.emit(error)
            return
        self.done.emit(None)


class SessionController(QObject):
    """The stream of the window and the state of its four parts."""

    changed = pyqtSignal()  # a part started or stopped, or a task began or ended
    failed = pyqtSignal(str)  # something the user must see (the window shows a banner)
    stream_closing = pyqtSignal()  # the stream is about to stop: let go of its display readers

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
        self.stream: Stream | None = None
        self.runner: StreamRunner | None = None
        self.busy: str | None = None  # what the background task is doing, e.g. "starting stream"
        self.last_session: Path | None = None
        self.recording_started: float | None = None  # time.monotonic() at Start Recording
        self._lock = lock or InstanceLock()
        self._task: _Task | None = None

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
        if part is Part.STREAM or self.running(part):
            return True
        if part is Part.EXPERIMENT:
            return self.running(Part.ANALYSIS)
        return self.streaming

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
            if path.suffix in VIDEO_SUFFIXES:
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
        if part is Part.ANALYSIS:
            self._run(f"starting {part.value}", stream.start_analysis)
        elif part is Part.RECORDING:
            self._run("starting recording", self._start_recording)
        elif part is Part.EXPERIMENT:
            self._run("starting experiment", stream.start_experiment)

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

    # -- internals -----------------------------------------------------------------------------

    def _start_stream(self) -> None:
        try:
            settings = self._load_settings()
            self._lock.acquire()
        except Exception as error:  # bad settings or another instance: a banner, no traceback
            self.failed.emit(str(error))
            return
        self.stream = Stream(settings, output_dir=self.output_dir)
        self.runner = StreamRunner(self.stream, status_out=None, on_event=self._on_event)
        self._run("starting stream", self._open_stream)

    def _open_stream(self) -> None:
        assert self.stream is not None
        self.stream.open()
        self.stream.start()

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
            self.last_session = stream.session_dir
        self.stream = None
        self.runner = None
        self.recording_started = None
        self._lock.release()
        self.changed.emit()

    def _on_event(self, event: StreamEvent) -> None:
        if event.level < logging.WARNING:
            return
        text = event.message
        if event.camera and event.camera not in text:  # say which camera, once
            text = f"camera {event.camera!r}: {text}"
        self.failed.emit(text)

    def _run(self, what: str, call: Callable[[], None]) -> None:
        if self.busy is not None:
            return
        self.busy = what
        self._task = _Task(call)
        self._task.done.connect(self._task_done)
        self._task.start()
        self.changed.emit()

    def _task_done(self, error: Exception | None) -> None:
        what, self.busy = self.busy or "", None
        if self._task is not None:
            self._task.wait()
            self._task = None
        if error is not None:
            self.failed.emit(f"{what[:1].upper()}{what[1:]} failed: {error}")
            if what == "starting stream" and self.stream is not None:
                self.stream.stop(f"error: {error}")
        stream = self.stream
        if stream is not None and (what == "stopping stream" or stream.stopped):
            self._after_stream_stopped()
            return
        self.changed.emit()

