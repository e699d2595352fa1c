"""An on-screen visual stimulus: a Qt window, in its own process, showing colours or images.

docs/visual-stimulus.md, "How it works".
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import queue
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Self

from deeplabstream.core.lifetime import (
    children_leave_stop_signals_to_parent,
    leave_stop_signals_to_parent,
)
from deeplabstream.core.logs import LogTarget, configure_process_logging, current_log_target
from deeplabstream.core.schema import setting
from deeplabstream.core.timing import host_now_ns
from deeplabstream.hardware.stimulation.base import (
    Action,
    ActionRecord,
    DeviceLostError,
    DeviceNotFoundError,
    StimulationDevice,
    StimulationError,
)
from deeplabstream.hardware.stimulation.software_timing import SoftwareTimedOutputs

log = logging.getLogger(__name__)

# How long close() lets the display process quit by itself before terminating it.
QUIT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class DisplayConfig:
    """What the display process needs to build its window (sent once, at start)."""

    colors: tuple[str, ...]
    images: tuple[str, ...]
    background: str
    screen: int
    fullscreen: bool
    window_size: tuple[int, int]


@dataclass(frozen=True)
class VisualSettings:
    """``TYPE = visual``: a colour or image per channel on a screen (docs/visual-stimulus.md)."""

    colors: tuple[str, ...] = setting(
        ("white",), doc="The colour each channel shows (names or #rrggbb), in channel order."
    )
    images: tuple[str, ...] = setting(
        (), doc="An image file per channel (may be shorter than COLORS)."
    )
    background: str = setting("black", doc="The colour shown while every channel is off.")
    screen: int = setting(0, doc="The screen to show the window on.", minimum=0)
    fullscreen: bool = setting(
        True, doc="Full screen, or a window of WINDOW_WIDTH x WINDOW_HEIGHT."
    )
    window_width: int = setting(800, doc="Window width when not full screen.", minimum=1)
    window_height: int = setting(600, doc="Window height when not full screen.", minimum=1)

    def __post_init__(self) -> None:
        """Check that every image has its channel's colour: COLORS sets the channel count."""
        if len(self.images) > len(self.colors):
            raise ValueError(
                f"{len(self.images)} IMAGES for {len(self.colors)} COLORS: COLORS gives one "
                "colour per channel, IMAGES at most one image per channel"
            )


class VisualStimulator(StimulationDevice):
    """Channels shown on a screen: a colour (and optionally an image) per channel when on.

    ``colors``: one Qt colour name per channel; ``images``: optional, scaled and centred;
    ``screen``: Qt's index. ``acked_ns`` is when the display process painted, not when the monitor
    showed it.
    """

    name = "visual"
    settings_class = VisualSettings
    # Host timer threads, and a screen that refreshes every ~17 ms (60 Hz): a shorter phase
    # would mostly be jitter, or never reach the screen at all.
    min_duration_s = 0.01

    @classmethod
    def lock_keys(cls, settings: VisualSettings) -> tuple[str, ...]:
        """Lock the screen when the window fills it; windows may share a screen."""
        return (f"screen:{settings.screen}",) if settings.fullscreen else ()

    def __init__(
        self,
        colors: Sequence[str] = ("white",),
        images: Sequence[str | Path] = (),
        background: str = "black",
        screen: int = 0,
        fullscreen: bool = True,
        window_size: tuple[int, int] = (800, 600),
        open_timeout_s: float = 10.0,
    ) -> None:
        super().__init__()
        if isinstance(colors, str) or not colors:
            raise ValueError("VisualStimulator needs a sequence of colours, one per channel")
        if len(images) > len(colors):
            raise ValueError(f"{len(images)} images for {len(colors)} channels (colours)")
        self.config = DisplayConfig(
            colors=tuple(colors),
            images=tuple(str(image) for image in images),
            background=background,
            screen=screen,
            fullscreen=fullscreen,
            window_size=(int(window_size[0]), int(window_size[1])),
        )
        self.open_timeout_s = open_timeout_s
        self.screen_info: dict[str, Any] = {}  # the display process's ready message
        self._process: BaseProcess | None = None
        self._commands: Connection | None = None  # to the display process
        self._events: Connection | None = None  # from it: ready, acks, errors
        self._outbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._timing: SoftwareTimedOutputs | None = None
        self._levels = [False] * len(colors)
        self._send_lock = threading.Lock()  # levels and outbox order agree
        self._deferred = threading.local()  # set while perform makes a command's edges
        self._pending: dict[int, ActionRecord] = {}
        self._pending_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closing = False
        self._error: DeviceLostError | None = None

    @classmethod
    def from_settings(cls, settings: VisualSettings) -> Self:
        """Return a device for ``settings``; WINDOW_WIDTH and WINDOW_HEIGHT make the window size."""
        return cls(
            colors=settings.colors,
            images=settings.images,
            background=settings.background,
            screen=settings.screen,
            fullscreen=settings.fullscreen,
            window_size=(settings.window_width, settings.window_height),
        )

    @property
    def channel_count(self) -> int:
        """One channel per colour."""
        return len(self.config.colors)

    @property
    def error(self) -> DeviceLostError | None:
        """Why the display process is gone mid-session; None while it runs."""
        return self._error

    @property
    def display_pid(self) -> int | None:
        """Process id of the display process (None until :meth:`open`)."""
        return self._process.pid if self._process is not None else None

    # -- open and close -----------------------------------------------------------------------

    def open(self) -> None:
        """Start the display process and wait until its window is shown.

        Raises :class:`DeviceNotFoundError`: no display, a missing screen or image, a bad colour, or
        no window in time.
        """
        if self._process is not None:
            return
        _check_display_available()
        for image in self.config.images:
            if image and not Path(image).is_file():
                raise DeviceNotFoundError(f"visual: image file {image!r} does not exist")
        context = multiprocessing.get_context("spawn")  # Qt must not inherit a forked state
        command_in, command_out = context.Pipe(duplex=False)
        event_in, event_out = context.Pipe(duplex=False)
        process = context.Process(
            target=run_display,
            args=(self.config, command_in, event_out, current_log_target()),
            name="visual stimulus display",
            daemon=True,
        )
        with children_leave_stop_signals_to_parent():
            process.start()
        # Our copies of the child's ends go, so its death shows here as EOF / broken pipe.
        command_in.close()
        event_out.close()
        self._process, self._commands, self._events = process, command_out, event_in
        try:
            self.screen_info = self._wait_ready()
        except BaseException:
            self._stop_process()
            self._close_connections()
            raise
        self._closing, self._error = False, None
        self._outbox = queue.SimpleQueue()
        self._levels = [False] * self.channel_count
        self._timing = SoftwareTimedOutputs(self.channel_count, self._set_level, "visual")
        self._threads = [
            threading.Thread(target=self._send_loop, name="visual sender", daemon=True),
            threading.Thread(target=self._read_loop, name="visual reader", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _wait_ready(self) -> dict[str, Any]:
        """Return the display process's ready message; DeviceNotFoundError says why if it is not."""
        assert self._process is not None and self._events is not None
        deadline = time.monotonic() + self.open_timeout_s
        while time.monotonic() < deadline:
            try:
                if self._events.poll(0.05):
                    message = self._events.recv()
                    if message[0] == "ready":
                        return message[1]
                    raise DeviceNotFoundError(f"visual: {message[1]}")
            except (EOFError, OSError):
                break  # died without a word; reported below
            if not self._process.is_alive() and not self._events.poll(0):
                break
        self._process.join(0.5)
        code = self._process.exitcode
        if code is None:
            raise DeviceNotFoundError(
                f"visual: the display process showed no window within {self.open_timeout_s:g} s"
            )
        raise DeviceNotFoundError(
            f"visual: the display process ended (exit code {code}) before showing its window; "
            "see its messages above"
        )

    def close(self) -> None:
        """Every channel off, then the display process asked to quit (terminated if it won't)."""
        if self._process is None:
            return
        if self._timing is not None:
            self._timing.stop()  # ends the timer threads; their states are sent before "quit"
        self._closing = True
        self._outbox.put(("quit",))
        self._outbox.put(None)  # ends the sender thread
        self._stop_process()
        for thread in self._threads:
            thread.join(2.0)
        self._threads = []
        self._fail_pending("the visual device was closed before the frame was shown")
        self._close_connections()
        self._timing = None

    def _stop_process(self) -> None:
        """Join the display process; kill one that does not quit in time."""
        # Killed, not terminated: it leaves SIGTERM to this process (core.lifetime).
        process = self._process
        assert process is not None
        process.join(QUIT_TIMEOUT_S)
        if process.is_alive():
            log.warning("visual: the display process did not quit; ending it")
            process.kill()
            process.join(2.0)

    def _close_connections(self) -> None:
        """Once the threads using them are done: the pipes closed, the process forgotten."""
        for connection in (self._commands, self._events):
            if connection is not None:
                connection.close()
        self._process = self._commands = self._events = None

    # -- actions ----------------------------------------------------------------------------

    def perform(self, action: Action) -> ActionRecord:
        """Show ``action``'s state; its record is acknowledged when the display has drawn it."""
        self._check_usable()
        assert self._timing is not None
        command_id = next(self._ids)
        record = ActionRecord(action.describe(), host_now_ns(), command_id)
        self._register(record)  # before sending: the ack may come at once
        self._deferred.active = True  # the edges made here go out in one message, below
        try:
            self._timing.start(action, record)
        except StimulationError as error:
            self._forget(command_id)
            record.fail(str(error))
            raise
        finally:
            self._deferred.active = False
        self._send_state(command_id)
        return record

    def screenshot(self, path: str | Path, timeout_s: float = 5.0) -> Path:
        """Save the window after every earlier action to ``path`` (by its suffix); for tests."""
        self._check_usable()
        path = Path(path)
        command_id = next(self._ids)
        record = ActionRecord(f"SCREENSHOT {path}", host_now_ns(), command_id)
        self._register(record)
        self._outbox.put(("grab", command_id, str(path)))
        if not record.wait(timeout_s):
            self._forget(command_id)
            raise StimulationError(f"visual: no screenshot within {timeout_s:g} s")
        if record.error is not None:
            raise StimulationError(f"visual: screenshot failed: {record.error}")
        return path

    def _check_usable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._process is None or self._timing is None:
            raise StimulationError("the visual device is not open: call open() first")
        if not self._process.is_alive():  # a death the reader has not seen yet
            self._lose(f"the display process ended (exit code {self._process.exitcode})")
            assert self._error is not None
            raise self._error

    def _set_level(self, channel: int, high: bool) -> None:
        """Switch the channel; the timing machinery calls this with the channel's lock held."""
        if self._error is not None:
            raise self._error  # a timer thread's edge after the display died: fail its record
        with self._send_lock:
            self._levels[channel] = high
            if not getattr(self._deferred, "active", False):
                # A timer thread's edge: no record waits for it, so no id.
                self._outbox.put(("show", 0, tuple(self._levels)))

    def _send_state(self, command_id: int) -> None:
        with self._send_lock:
            self._outbox.put(("show", command_id, tuple(self._levels)))

    # -- the threads -----------------------------------------------------------------------

    def _send_loop(self) -> None:
        """Sender thread: hands queued messages to the display process, in order."""
        assert self._commands is not None
        while (message := self._outbox.get()) is not None:
            try:
                self._commands.send(message)
            except (OSError, ValueError) as error:
                if not self._closing:
                    self._lose(f"cannot send to the display process: {error}")
                return

    def _read_loop(self) -> None:
        """Reader thread: acknowledgements (and errors) from the display process."""
        assert self._events is not None and self._process is not None
        while True:
            try:
                message = self._events.recv()
            except (EOFError, OSError):
                if not self._closing:
                    self._process.join(0.5)  # for its exit code
                    self._lose(f"the display process ended (exit code {self._process.exitcode})")
                return
            if message[0] == "ack":
                _, command_ids, host_ns = message
                for command_id in command_ids:
                    record = self._forget(command_id)
                    if record is not None:
                        record.acknowledge(host_ns)
            elif message[0] == "failed":
                record = self._forget(message[1])
                if record is not None:
                    record.fail(message[2])
            elif message[0] == "error":
                self._lose(f"the display process failed: {message[1]}")

    def _register(self, record: ActionRecord) -> None:
        """Wait for ``record``'s ack; raise at once if the display is already gone."""
        with self._pending_lock:
            # Under the lock that _lose takes: a record is either failed by it or refused here.
            if self._error is not None:
                raise self._error
            assert record.command_id is not None
            self._pending[record.command_id] = record

    def _forget(self, command_id: int) -> ActionRecord | None:
        with self._pending_lock:
            return self._pending.pop(command_id, None)

    def _lose(self, reason: str) -> None:
        """Enter the error state: later actions raise, waiting records fail (first call wins)."""
        with self._pending_lock:  # the reader, the sender and an action may all see it
            if self._error is not None:
                return
            self._error = DeviceLostError(f"visual: {reason}; close and open the device again")
        log.error("%s", self._error)
        self._fail_pending(str(self._error))

    def _fail_pending(self, reason: str) -> None:
        with self._pending_lock:
            records, self._pending = list(self._pending.values()), {}
        for record in records:
            record.fail(reason)


def _check_display_available() -> None:
    """DeviceNotFoundError when Qt has nowhere to show a window (Linux without X or Wayland)."""
    if not sys.platform.startswith("linux"):
        return  # Windows and macOS always have a display
    if any(os.environ.get(key) for key in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        return
    raise DeviceNotFoundError(
        "visual: no display (neither DISPLAY nor WAYLAND_DISPLAY nor QT_QPA_PLATFORM is set). "
        "Run on a desktop session, under `xvfb-run`, or set QT_QPA_PLATFORM=offscreen for a "
        "run without a screen."
    )


# -- the display process ------------------------------------------------------------------------


def run_display(
    config: DisplayConfig,
    commands: Connection,
    events: Connection,
    log_target: LogTarget | None = None,
) -> None:
    """Entry point of the display process: the window, until told to quit or the host goes."""
    leave_stop_signals_to_parent()  # the session closes the window in order
    if log_target is not None:
        configure_process_logging(log_target, "visual stimulus display")
    try:
        _run_window(config, commands, events)
    except _StartError as error:  # a message for the user, no traceback needed
        events.send(("error", str(error)))
    except Exception as error:  # the host must hear why, not wait for a timeout
        events.send(("error", f"{type(error).__name__}: {error}"))
        raise


class _StartError(Exception):
    """The window cannot be made as configured (screen, colour, image); the text says why."""


def _run_window(config: DisplayConfig, commands: Connection, events: Connection) -> None:
    # Imported here: the device module loads, and the host runs, without Qt.
    from PyQt5.QtCore import QObject, QTimer, pyqtSignal
    from PyQt5.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["visual stimulus"])
    screen = _pick_screen(app, config.screen)
    window = _make_window(config, screen)

    class Bridge(QObject):
        """Carries batches of messages from the reader thread to the GUI thread."""

        received = pyqtSignal(list)

    bridge = Bridge()
    display = _Display(window, events, app)
    bridge.received.connect(display.handle)  # queued: emitted from another thread
    threading.Thread(
        target=_read_commands, args=(commands, bridge.received.emit), daemon=True
    ).start()
    QTimer.singleShot(0, lambda: display.ready(screen))
    app.exec_()


def _read_commands(commands: Connection, emit: Any) -> None:
    """Pass the pipe's waiting messages to the GUI thread in one batch: a burst costs one paint."""
    while True:
        try:
            batch = [commands.recv()]
            while commands.poll():
                batch.append(commands.recv())
        except (EOFError, OSError):
            batch = [("quit",)]  # the host is gone: nobody to show stimuli for
        emit(batch)
        if batch[-1][0] == "quit":
            return


def _pick_screen(app: Any, index: int) -> Any:
    screens = app.screens()
    if not 0 <= index < len(screens):
        listing = "; ".join(
            f"{number}: {s.name()} {s.geometry().width()}x{s.geometry().height()} "
            f"at ({s.geometry().x()}, {s.geometry().y()})"
            for number, s in enumerate(screens)
        )
        raise _StartError(
            f"screen {index} does not exist; the screens are {listing or 'none'} "
            f"(platform {app.platformName()})"
        )
    return screens[index]


def _make_window(config: DisplayConfig, screen: Any) -> Any:
    """Return the stimulus window, shown on ``screen``; _StartError for bad colours or images."""
    from PyQt5.QtCore import QRect, Qt
    from PyQt5.QtGui import QColor, QImage, QPainter, QPixmap
    from PyQt5.QtWidgets import QWidget

    def colour(name: str) -> QColor:
        value = QColor(name)
        if not value.isValid():
            raise _StartError(f"{name!r} is not a colour Qt knows (try 'white' or '#00ff00')")
        return value

    colours = [colour(name) for name in config.colors]
    background = colour(config.background)
    images: list[QImage | None] = []
    for path in config.images:
        image = QImage(path) if path else None
        if image is not None and image.isNull():
            raise _StartError(f"cannot read image {path!r}")
        images.append(image)
    images += [None] * (len(colours) - len(images))

    class StimulusWindow(QWidget):
        """Paints the channels that are on, in channel order, over the background."""

        def __init__(self) -> None:
            super().__init__()
            self.levels: tuple[bool, ...] = (False,) * len(colours)
            self._scaled: dict[int, QPixmap] = {}  # images scaled to the window, per channel
            # We paint every pixel: Qt need not clear the window first.
            self.setAttribute(Qt.WA_OpaquePaintEvent)
            self.setCursor(Qt.BlankCursor)
            self.setWindowTitle("visual stimulus")

        def resizeEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
            # Scaling is slow; done once per size, not once per frame.
            self._scaled = {
                channel: QPixmap.fromImage(image).scaled(
                    self.size(), Qt.KeepAspectRatio, Qt.SmoothTransformation
                )
                for channel, image in enumerate(images)
                if image is not None
            }
            super().resizeEvent(event)

        def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
            painter = QPainter(self)
            painter.fillRect(self.rect(), background)
            for channel, on in enumerate(self.levels):
                if not on:
                    continue
                painter.fillRect(self.rect(), colours[channel])
                pixmap = self._scaled.get(channel)
                if pixmap is not None:
                    target = QRect(0, 0, pixmap.width(), pixmap.height())
                    target.moveCenter(self.rect().center())
                    painter.drawPixmap(target, pixmap)
            painter.end()

    window = StimulusWindow()
    geometry = screen.geometry()
    if config.fullscreen:
        window.setWindowFlags(Qt.FramelessWindowHint)
        window.setGeometry(geometry)
        _native_window(window).setScreen(screen)
        window.showFullScreen()
    else:
        width, height = config.window_size
        window.setGeometry(geometry.x() + 50, geometry.y() + 50, width, height)
        _native_window(window).setScreen(screen)
        window.show()
    return window


class _Display:
    """The display process's GUI-thread side: applies states, paints, acknowledges."""

    def __init__(self, window: Any, events: Connection, app: Any) -> None:
        self.window = window
        self.events = events
        self.app = app
        self.painted: tuple[bool, ...] | None = None  # the levels of the last frame

    def ready(self, screen: Any) -> None:
        """Tell the host the window is up, with what it was given."""
        self.window.repaint()
        self.painted = self.window.levels
        size = self.window.size()
        self.events.send(
            (
                "ready",
                {
                    "screen": screen.name(),
                    "platform": self.app.platformName(),
                    "size": (size.width(), size.height()),
                    "refresh_hz": screen.refreshRate(),
                    "pid": os.getpid(),
                },
            )
        )

    def handle(self, batch: list[tuple[Any, ...]]) -> None:
        """Apply a batch in order; one paint for every run of states, then their acks."""
        waiting: list[int] = []
        for message in batch:
            if message[0] == "show":
                self.window.levels = message[2]
                if message[1]:
                    waiting.append(message[1])
                continue
            self._paint(waiting)  # a screenshot or quit must follow the states before it
            waiting = []
            if message[0] == "grab":
                self._grab(message[1], message[2])
            elif message[0] == "quit":
                self.window.close()
                self.app.quit()
                return
        self._paint(waiting)

    def _paint(self, command_ids: list[int]) -> None:
        if not command_ids and self.window.levels == self.painted:
            return  # a timer edge that changes nothing (or an empty run): no frame needed
        self.window.repaint()  # paints and flushes now, unlike update()
        self.app.sync()  # the window system has the frame (an X round trip)
        self.painted = self.window.levels
        if command_ids:
            self.events.send(("ack", command_ids, time.perf_counter_ns()))

    def _grab(self, command_id: int, path: str) -> None:
        if self.window.grab().save(path):
            self.events.send(("ack", [command_id], time.perf_counter_ns()))
        else:
            self.events.send(("failed", command_id, f"cannot save {path!r}"))


def _native_window(window: Any) -> Any:
    """Return the window's native window (made now), so that it can be given its screen."""
    window.winId()  # makes the native window
    handle = window.windowHandle()
    if handle is None:
        raise StimulationError("visual: Qt made no native window for the stimulus window")
    return handle
