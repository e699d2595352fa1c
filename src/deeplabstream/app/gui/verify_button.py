"""The Verify button beside Open folder: the session just ended, checked against its recording.

Design: docs/gui.md and docs/verify.md.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from PyQt5.QtCore import Qt, QTimer, QUrl, pyqtSignal
from PyQt5.QtGui import QDesktopServices
from PyQt5.QtWidgets import QApplication, QMessageBox, QPushButton, QWidget

from deeplabstream.app.gui.button_row import as_wide_as_widest
from deeplabstream.app.gui.verify_run import (
    PROGRESS_PREFIX,
    VerifyOutcome,
    VerifyProcess,
    why_not_verifiable,
)

VERIFY_LABEL = "Verify"
OPEN_REPORT_LABEL = "Open report"
STREAMING_REASON = (
    "stop the stream first: verify re-analyses the finished session's recording offline"
)
ELAPSED_INTERVAL_MS = 1000
MOST_REASONS_SHOWN = 20  # more are in the report and summary.json


class VerifyButton(QPushButton):
    """The button, its run and its result window.

    Signals: ``progress`` (a line), ``reported`` (the verdict), ``failed`` (why it could not
    verify), ``started`` (a new run).
    """

    progress = pyqtSignal(str)
    reported = pyqtSignal(str)
    failed = pyqtSignal(str)
    started = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(VERIFY_LABEL, parent)
        self.setObjectName("verify_session")
        self.run = VerifyProcess(self)
        self.run.progress.connect(self._say_progress)
        self.run.finished.connect(self._show_outcome)
        self.result_box: QMessageBox | None = None
        self.session_dir: Path | None = None
        #: Asked once per finished session: ``[Session] VERIFY = after`` (verify it at once).
        self.after_each_session: Callable[[], bool] = lambda: False
        #: The window's settings file: its folder's ``allowed_signers`` are the lab's signers.
        self.lab_settings: Callable[[], Path | None] = lambda: None
        self._asked_for: Path | None = None
        self._stage = ""  # the stage verify said last (its progress line)
        self._elapsed = QTimer(self)
        self._elapsed.setInterval(ELAPSED_INTERVAL_MS)
        self._elapsed.timeout.connect(self._show_running)
        self.clicked.connect(self._clicked)
        # As wide as its widest text: "Stop verify (43 s)" widened it and moved Open folder
        # beside it 40 px every second.
        as_wide_as_widest(self, (VERIFY_LABEL, running_label(9999)))
        self.follow(None, busy=False)

    def follow(self, session_dir: Path | None, busy: bool) -> None:
        """Follow the window's state; a verify running while ``busy`` is stopped."""
        if busy and self.run.running:
            self.stop()
            self.reported.emit("Verify stopped: a stream started. Verify again after it.")
        self.session_dir = session_dir
        if self.run.running:
            return
        reason = STREAMING_REASON if busy else why_not_verifiable(session_dir)
        self.setText(VERIFY_LABEL)
        self.setEnabled(reason is None)
        offer = f"Check {session_dir} against its own recording and files"
        self.setToolTip(reason or offer)
        if reason is None and session_dir != self._asked_for:
            self._asked_for = session_dir  # once per session, whatever comes of it
            if self.after_each_session():
                self._clicked()

    def stop(self) -> None:
        """Stop a running verify (the window closes, a stream starts); nothing when none runs."""
        self.run.stop()

    def due_after_close(self, session_dir: Path | None) -> Path | None:
        """Return the session ``[Session] VERIFY = after`` asks to verify and nothing finished."""
        if session_dir is None or why_not_verifiable(session_dir) is not None:
            return None
        outcome = self.run.outcome
        done = outcome is not None and outcome.session_dir == session_dir and not outcome.stopped
        if done or not self.after_each_session():
            return None
        return session_dir

    # -- reactions -------------------------------------------------------------------------

    def _clicked(self) -> None:
        if self.run.running:
            self.stop()
            return
        folder = self.session_dir
        if folder is None or why_not_verifiable(folder) is not None:
            return
        self.started.emit()
        self._stage = ""
        self.run.start(folder, _existing(self.lab_settings()))
        self._show_running()
        self._elapsed.start()
        self.setToolTip(f"Verifying {folder}; click to stop")
        self.progress.emit(f"Verify: checking {folder} against an offline analysis...")

    def _show_running(self) -> None:
        """Each second: the button's seconds, and the progress line's the same."""
        seconds = self.run.elapsed_s()
        self.setText(running_label(seconds))
        if self._stage:
            self.progress.emit(progress_line(seconds, self._stage))

    def _say_progress(self, line: str) -> None:
        self._stage = line.removeprefix(PROGRESS_PREFIX).strip()
        self._show_running()

    def _show_outcome(self, outcome: VerifyOutcome) -> None:
        self._elapsed.stop()
        self.follow(self.session_dir, busy=False)
        if outcome.stopped:
            self.progress.emit(outcome.headline())
            return
        if outcome.verdict is None:
            self.failed.emit(outcome.headline())
            return
        reasons = "".join(f"\n  {reason}" for reason in outcome.reasons[:MOST_REASONS_SHOWN])
        self.reported.emit(outcome.headline() + reasons)
        self._show_result_box(outcome)

    def _show_result_box(self, outcome: VerifyOutcome) -> None:
        """Show the verdict, the reasons and Open report in a window of its own (not modal)."""
        if self.result_box is not None:
            self.result_box.close()
        box = QMessageBox(self.window())
        box.setObjectName("verify_result")
        box.setWindowTitle("Verify")
        box.setIcon(QMessageBox.Information if outcome.agrees else QMessageBox.Warning)
        box.setTextFormat(Qt.PlainText)
        verdict = outcome.headline().removeprefix("Verify: ")
        box.setText(verdict[:1].upper() + verdict[1:])
        box.setInformativeText(_details(outcome))
        box.setTextInteractionFlags(Qt.TextSelectableByMouse)
        if outcome.report is not None:
            report = outcome.report
            button = box.addButton(OPEN_REPORT_LABEL, QMessageBox.ActionRole)
            assert button is not None  # Qt returns the button it made
            button.setObjectName("open_verify_report")
            button.setToolTip(str(report))
            button.clicked.connect(lambda _checked=False: self._open_report(report))
        box.addButton(QMessageBox.Close)
        box.setModal(False)
        box.show()
        self.result_box = box

    def _open_report(self, report: Path) -> None:
        if not open_or_copy(report):
            self.failed.emit(
                f"No browser could open {report}. Its path is copied to the clipboard: open it "
                "in your browser."
            )


def running_label(elapsed_s: float) -> str:
    """Return the button's text while verify runs: what a click does, the seconds so far."""
    return f"Stop verify ({elapsed_s:.0f} s)"


def progress_line(elapsed_s: float, stage: str) -> str:
    """Return the line beside the buttons while verify runs: its seconds (the button's), stage."""
    return f"Verify ({elapsed_s:.0f} s): {stage}"


def open_or_copy(path: Path) -> bool:
    """Open ``path`` with the desktop's program for it; where none can, copy it to the clipboard."""
    if QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
        return True
    clipboard = QApplication.clipboard()
    if clipboard is not None:
        clipboard.setText(str(path))
    return False


def _details(outcome: VerifyOutcome) -> str:
    """Return the first :data:`MOST_REASONS_SHOWN` reasons and the report's path as HTML."""
    # Always HTML: Qt would guess plain or rich text from a reason's own words.
    lines = list(outcome.reasons[:MOST_REASONS_SHOWN])
    if len(outcome.reasons) > MOST_REASONS_SHOWN:
        lines.append(f"... and {len(outcome.reasons) - MOST_REASONS_SHOWN} more in the report")
    if outcome.report is not None:
        lines.append(f"Report: {outcome.report}")
    else:
        lines.append(f"No report was written in {outcome.session_dir / 'verify'}")
    return "<p>" + "<br>".join(html.escape(line) for line in lines) + "</p>"


def _existing(path: Path | None) -> Path | None:
    """``path`` when it is a file (a settings file not written yet names no lab list)."""
    return path if path is not None and path.is_file() else None
