"""The Rig tab's check: the whole edited text, checked off the GUI thread, the newest one shown."""

from __future__ import annotations

from pathlib import Path

from PyQt5.QtCore import QObject, QTimer, pyqtSignal

from deeplabstream.app.gui.background_thread import BackgroundThread
from deeplabstream.app.gui.rig_check import check_text
from deeplabstream.settings.sections import Settings

CHECK_DELAY_MS = 300  # typing pauses this long before the whole file is checked again


class _Check(BackgroundThread):
    """Check a settings text off the GUI thread (loading an experiment imports Python)."""

    done = pyqtSignal(int, object, object)  # generation, settings or None, problems

    def __init__(self, generation: int, text: str, file: Path, allowed: frozenset[str]) -> None:
        super().__init__()
        self._generation, self._text, self._file = generation, text, file
        self._allowed = allowed

    def run(self) -> None:  # QThread calls this on the new thread
        settings, problems = check_text(self._text, self._file, self._allowed)
        self.done.emit(self._generation, settings, problems)


class RigChecker(QObject):
    """Runs the checks of the edited text; :attr:`done` gives the newest text's result."""

    due = pyqtSignal()  # typing paused after an edit: time to check again
    done = pyqtSignal(object, object)  # settings or None, problems: of the newest text

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self._generation = 0
        self.running: list[_Check] = []  # checks in flight (an older text's result is dropped)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(CHECK_DELAY_MS)
        self._timer.timeout.connect(self.due)

    def schedule(self) -> None:
        """Check again once typing pauses (:attr:`due` says when)."""
        self._timer.start()

    def pending(self) -> bool:
        """Whether an edit waits for its check (typing has not paused yet)."""
        return self._timer.isActive()

    def start(self, text: str, file: Path, allowed: frozenset[str]) -> None:
        """Check ``text`` (of the settings ``file``) now; its result supersedes older ones."""
        self._timer.stop()
        self._generation += 1
        check = _Check(self._generation, text, file, allowed)
        check.done.connect(self._finished)
        check.finished.connect(lambda c=check: self.running.remove(c))
        self.running.append(check)
        check.start()

    def wait(self) -> None:
        """Block until every check in flight is done (their results then wait in the queue)."""
        for check in list(self.running):
            check.wait()

    def _finished(self, generation: int, settings: Settings | None, problems: list[str]) -> None:
        if generation == self._generation:  # else an older text's result
            self.done.emit(settings, problems)
