"""Pressing the window's buttons from the command line (``app.py --start ... --duration S``)."""

from __future__ import annotations

import sys

from PyQt5.QtCore import QObject, QTimer

from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.session import Part

CHECK_INTERVAL_MS = 100


class Autopilot(QObject):
    """Starts the given parts in order, then closes the window after ``duration_s``."""

    def __init__(
        self,
        window: MainWindow,
        parts: tuple[str, ...],
        duration_s: float | None,
        *,
        print_status: bool = False,
    ) -> None:
        super().__init__()
        self.window = window
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self._pending = [Part(name) for name in _in_order(parts)]
        self._pressed: set[Part] = set()
        self._duration_s = duration_s
        self._print_status = print_status
        self._printed: list[str] | None = None  # the figures printed last (each refresh once)
        self._step_timer = QTimer(self)
        self._step_timer.setInterval(CHECK_INTERVAL_MS)
        self._step_timer.timeout.connect(self._step)
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(1000)
        self._status_timer.timeout.connect(self._status)
        window.controller.failed.connect(self._failed)
        window.controller.warning.connect(self._warned)

    def begin(self) -> None:
        """Start pressing buttons (call once the event loop is about to run)."""
        if self._pending:
            self._step_timer.start()
        elif self._duration_s is not None:
            QTimer.singleShot(round(self._duration_s * 1000), self._close_window)
        if self._print_status:
            self._status_timer.start()

    @property
    def starting(self) -> bool:
        """Whether some of the parts to start have not started yet."""
        return bool(self._pending)

    def _close_window(self) -> None:
        """Close the window (its ``close`` returns a bool, which a timer's callback may not)."""
        self.window.close()

    def _step(self) -> None:
        controller = self.window.controller
        if controller.working:
            return
        if not self._pending:
            self._step_timer.stop()
            if self._duration_s is not None:
                QTimer.singleShot(round(self._duration_s * 1000), self._close_window)
            return
        part = self._pending[0]
        if controller.running(part):
            self._pending.pop(0)
        elif part in self._pressed or not controller.allowed(part):
            # It was pressed and did not start (its error is shown), or a part it needs failed:
            # stop pressing. Each button is pressed once; --duration still closes the window.
            self._pending.clear()
        else:
            self._pressed.add(part)
            self.window.toggle(part)  # as its button does
            if not controller.working:  # it could not even begin (settings, lock): give up
                self._pending.clear()

    def _status(self) -> None:
        """Print the figures of each refresh once (none come while the stream stops)."""
        runner = self.window.controller.runner
        if runner is None or not runner.last_status or runner.last_status is self._printed:
            return
        self._printed = runner.last_status
        print("  |  ".join(runner.last_status), flush=True)

    def _failed(self, text: str, _cause: str = "") -> None:
        self.errors.append(text)
        if self._print_status:
            print(f"Error: {text}", file=sys.stderr, flush=True)

    def _warned(self, text: str) -> None:
        """Say a warning of the session as one, never as an error."""
        self.warnings.append(text)
        if self._print_status:
            print(f"Warning: {text}", file=sys.stderr, flush=True)

    def report(self) -> None:
        """After the window closed: where the files are, and the errors and warnings shown."""
        folder = self.window.controller.session_dir
        if folder is not None:
            print(f"Session folder: {folder}")
        for error in self.errors:
            print(f"  error: {error}")
        for warning in self.warnings:
            print(f"  warning: {warning}")


def _in_order(parts: tuple[str, ...]) -> list[str]:
    """Return the parts in the order they can start (stream first, experiment after analysis)."""
    wanted = set(parts)
    if wanted - {"stream"}:
        wanted.add("stream")
    if "experiment" in wanted:
        wanted.add("analysis")
    return [name for name in ("stream", "analysis", "recording", "experiment") if name in wanted]
