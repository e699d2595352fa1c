"""Slow work off the window: a job in a helper process, its stage and time shown as it goes."""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import QObject, QTimer, pyqtSignal

from deeplabstream.app.gui.job_targets import LogLine, Outcome, Stage, child_main

log = logging.getLogger(__name__)

POLL_MS = 50
END_GRACE_S = 5.0  # after its outcome, how long the process may take to exit before it is killed


class ProcessJob(QObject):
    """Run ``job(say, *args)`` in a helper process; ``finished`` carries its :class:`Outcome`.

    ``job``: a function of :mod:`app.gui.job_targets`; ``args`` picklable; ``timeout_s`` None.
    """

    progress = pyqtSignal(str)  # the progress line changed (stage or whole seconds)
    finished = pyqtSignal(object)  # Outcome; also after cancel (error "cancelled")

    def __init__(
        self,
        what: str,
        job: Callable[..., Any],
        args: tuple[Any, ...] = (),
        *,
        timeout_s: float | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.what = what
        self.stage = "starting its helper process"
        self.outcome: Outcome | None = None
        self.job, self.args = job, args
        self._timeout_s = timeout_s
        self._started = self._ended_at = 0.0
        self._shown = ""
        self._process: Any = None
        self._connection: Any = None
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    # -- control ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the helper process (returns at once)."""
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        self._process = context.Process(
            target=child_main, args=(sender, self.job, self.args), name=self.what, daemon=True
        )
        self._started = time.monotonic()
        self._process.start()
        sender.close()  # the child holds its end: EOF here once it exits
        self._connection = receiver
        self._timer.start()
        self._show()

    def cancel(self) -> None:
        """End the job now (its process is killed); ``finished`` says "cancelled"."""
        if self.outcome is None and self._process is not None:
            self._end(Outcome(error="cancelled"))

    @property
    def running(self) -> bool:
        """Whether the job has started and not finished."""
        return self._started > 0 and self.outcome is None

    @property
    def pid(self) -> int | None:
        """The helper process's id (tests pause it with SIGSTOP); None once it has ended."""
        return self._process.pid if self._process is not None and self.running else None

    def elapsed_s(self) -> float:
        """Seconds since the job started."""
        return time.monotonic() - self._started if self._started else 0.0

    def progress_text(self) -> str:
        """Return ``what: stage (N s)``."""
        return f"{self.what}: {self.stage} ({self.elapsed_s():.0f} s)"

    # -- on the event loop -----------------------------------------------------------------

    def _poll(self) -> None:
        """Take the job's news without waiting; notice its end, its death or its timeout."""
        connection = self._connection
        try:
            while self.outcome is None and connection.poll():
                self._take(connection.recv())
        except (EOFError, OSError):  # the process ended without an outcome
            code = self._process.exitcode if self._process is not None else None
            self._end(Outcome(error=f"its helper process ended without an answer (exit code "
                                    f"{code})", expected=False))  # fmt: skip
            return
        if self.outcome is not None:
            return
        if self._timeout_s is not None and self.elapsed_s() > self._timeout_s:
            self._end(Outcome(error=f"no answer within {self._timeout_s:.0f} s: stopped"))
            return
        self._show()

    def _take(self, message: Any) -> None:
        if isinstance(message, Stage):
            self.stage = message.text
            self._show()
        elif isinstance(message, LogLine):
            logging.getLogger(message.name).log(message.level, "%s", message.message)
        elif isinstance(message, Outcome):
            self._end(message)

    def _show(self) -> None:
        text = self.progress_text()
        if text != self._shown:
            self._shown = text
            self.progress.emit(text)

    def _end(self, outcome: Outcome) -> None:
        self.outcome = outcome
        if outcome.error and self._process is not None:  # cancelled, timed out or died
            self._process.kill()
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        # The process exits by itself after its outcome (a second or so with PyTorch loaded):
        # it is reaped by the timer without waiting, and killed if it lingers.
        self._ended_at = time.monotonic()
        self._timer.timeout.disconnect(self._poll)
        self._timer.timeout.connect(self._reap)
        self.finished.emit(outcome)

    def _reap(self) -> None:
        process = self._process
        if process is None or not process.is_alive():  # is_alive() does not wait
            self._timer.stop()
            if process is not None:
                process.join(0)
            return
        if time.monotonic() - self._ended_at > END_GRACE_S:
            process.kill()
