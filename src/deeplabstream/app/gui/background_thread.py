"""Background threads of the window that live until their work returns, whoever lets go of them.

Qt ends the whole process (abort) when a ``QThread`` is destroyed while its thread runs, and
Python destroys it as soon as nothing refers to it: a window closed during a check, a superseded
start, a garbage collection much later. Every thread the window starts is therefore held here
from :meth:`BackgroundThread.start` until its thread has returned.
"""

from __future__ import annotations

from PyQt5.QtCore import QThread

_RUNNING: set[QThread] = set()


class BackgroundThread(QThread):
    """A ``QThread`` held alive from :meth:`start` until its thread has returned."""

    def start(self, priority: QThread.Priority = QThread.InheritPriority) -> None:
        """Start the thread; it is held until it has returned (see the module)."""
        _RUNNING.add(self)
        self.finished.connect(self._release)
        super().start(priority)

    def _release(self) -> None:
        # ``finished`` is emitted just before the thread returns: wait for that, then let go.
        self.wait()
        _RUNNING.discard(self)


def running_threads() -> int:
    """Return how many background threads are held (still running, or not yet released)."""
    return len(_RUNNING)
