"""A watch over plugin code the start waits on: named when slow, abandoned on a stop."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

#: A lab's module still importing after this long is named in a warning: a module that loops or
#: waits at import holds whatever imports it (Ctrl-C stops it, in a command's main process).
SLOW_IMPORT_S = 5.0


class PluginStopped(BaseException):
    """Ctrl-C or SIGTERM came while a plugin's code held the start: that code was abandoned.

    A ``BaseException``, so no ``except Exception`` turns it into a failure; exit 128 +
    :attr:`signum`.
    """

    def __init__(self, doing: str, signum: int, elapsed_s: float, into: str = "it") -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        super().__init__(
            f"{name} received while {doing} ({elapsed_s:.1f} s into {into}); it was abandoned"
        )
        self.signum = signum


class ImportStopped(PluginStopped):
    """Ctrl-C or SIGTERM came while a plugin's module was imported: the import was abandoned."""

    def __init__(self, what: str, signum: int, elapsed_s: float) -> None:
        super().__init__(f"importing {what}", signum, elapsed_s, "its import")
        self.args = (str(self).replace("; it was abandoned", "; the import was abandoned"),)


@contextmanager
def import_watch(what: str) -> Iterator[None]:
    """Watch an import of a plugin's module: name it when slow, and let a stop abandon it.

    Abandoned (:class:`ImportStopped`) only in a command that asked
    (:func:`abandon_imports_on_stop`).
    """
    slow = (
        f"still importing {what} after {SLOW_IMPORT_S:.0f} s: a module that never finishes "
        "importing holds the start (Ctrl-C stops it)"
    )
    with _watched(slow, lambda signum, took: ImportStopped(what, signum, took)):
        yield


@contextmanager
def plugin_call_watch(what: str, call: str) -> Iterator[None]:
    """Watch a call of a plugin's code the start waits on, as :func:`import_watch` an import."""
    slow = (
        f"still waiting for {what}: its {call} has not returned after {SLOW_IMPORT_S:.0f} s, "
        "and the start waits on it (Ctrl-C stops it)"
    )
    doing = f"{what} ran its {call}"
    with _watched(slow, lambda signum, took: PluginStopped(doing, signum, took)):
        yield


@contextmanager
def _watched(slow: str, stopped: Callable[[int, float], PluginStopped]) -> Iterator[None]:
    """Say ``slow`` after :data:`SLOW_IMPORT_S`; let a stop raise ``stopped(signum, seconds)``."""
    started = time.monotonic()
    finished = threading.Event()

    def warn_when_slow() -> None:
        # The stop signals are the main thread's to take: one this thread took would wake
        # nothing, and the main thread would sleep on inside the lab's code.
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        if not finished.wait(SLOW_IMPORT_S):
            log.warning("%s", slow)

    watcher = threading.Thread(target=warn_when_slow, name="plugin-watch", daemon=True)
    watcher.start()
    replaced = _stops_abandon(lambda signum: stopped(signum, time.monotonic() - started))
    try:
        yield
    finally:
        finished.set()
        for signum, handler in replaced.items():
            signal.signal(signum, handler)


_abandon_on_stop = False


def abandon_imports_on_stop(enabled: bool = True) -> None:
    """Let Ctrl-C and SIGTERM abandon a plugin's import in this process (:func:`import_watch`).

    For a command whose stop handlers only note a stop, called once they are taken.
    """
    global _abandon_on_stop
    _abandon_on_stop = enabled


def _stops_abandon(stopped: Callable[[int], PluginStopped]) -> dict[int, Any]:
    """Make Ctrl-C and SIGTERM raise ``stopped(signum)`` here; return the handlers they had."""
    if not _abandon_on_stop or threading.current_thread() is not threading.main_thread():
        return {}
    replaced: dict[int, Any] = {}
    raised: list[int] = []  # once: a second signal while the first unwinds is only noted
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if not callable(handler) or handler is signal.default_int_handler:
            continue  # ignored, the default, or KeyboardInterrupt: nothing held back

        def abandon(number: int, frame: FrameType | None, noted: Any = handler) -> None:
            noted(number, frame)  # the command notes its stop as it always does
            if not raised:
                raised.append(number)
                raise stopped(number)

        replaced[signum] = signal.signal(signum, abandon)
    return replaced
