"""Ctrl-C and SIGTERM of a command, taken from its very start and passed on to its run.

A stop is remembered and honoured by the run, never a ``KeyboardInterrupt`` traceback.
"""

from __future__ import annotations

# Nothing else is imported before the handlers are in place: the standard library's ``signal``
# (its enum, functools, collections) took 20 ms on a loaded machine.
try:  # the C module ``signal`` wraps: imported in microseconds
    import _signal as signal  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - every CPython has it
    import signal

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

EXIT_INTERRUPTED = 128  # + the signal's number (130: Ctrl-C, 143: SIGTERM) during start-up
_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}  # the signals taken
# A closed terminal or a dropped SSH session (SIGHUP) stops a run as SIGTERM does: its default,
# the end on the spot, left session.json "running". Windows has no SIGHUP.
if hasattr(signal, "SIGHUP"):
    _NAMES[signal.SIGHUP] = "SIGHUP"


class StopRequests:
    """Ctrl-C and SIGTERM from the very start: remembered, then passed on to the run.

    A stop during start-up is honoured at once; such a run exits with :attr:`exit_code`.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self.signum: int | None = None
        self._forward: Callable[[str], object] | None = None

    @property
    def exit_code(self) -> int:
        """The exit code of a run stopped by the first signal, as a shell reports it (130)."""
        return EXIT_INTERRUPTED + (self.signum or 2)

    def install(self) -> None:
        """Take Ctrl-C, SIGTERM and SIGHUP (where there is one) from now on."""
        for signum in _NAMES:
            signal.signal(signum, self._handler)

    def forward_to(self, on_stop: Callable[[str], object]) -> None:
        """Pass this and later requests to ``on_stop`` (a request already made: at once)."""
        self._forward = on_stop
        if self.reason is not None:
            on_stop(self.reason)

    def __call__(self, reason: str) -> None:
        """Remember the first reason to stop; pass every one on once there is a run."""
        if self.reason is None:
            self.reason = reason
        if self._forward is not None:
            self._forward(reason)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        self("Ctrl-C received" if signum == signal.SIGINT else f"{_NAMES[signum]} received")

    @property
    def said(self) -> str:
        """What the command prints when it stops before anything started."""
        return f"Stopped before the start: {self.reason}; nothing was started"


_PROCESS_STOPS: StopRequests | None = None


def take_stop_signals() -> StopRequests:
    """Take Ctrl-C and SIGTERM for this process from now on; the one :class:`StopRequests`.

    Call it first thing in a command, in the main thread (Python's rule for signal handlers).
    """
    global _PROCESS_STOPS
    if _PROCESS_STOPS is not None:
        _PROCESS_STOPS.install()  # again: a run in this process may have put its own since
    else:
        _PROCESS_STOPS = StopRequests()
        _PROCESS_STOPS.install()
        # Imported once the signals are taken: it imports multiprocessing (tens of ms).
        from deeplabstream.core.fault_hooks import hold_here

        hold_here("stop-signals-taken")  # a fault test's chosen moment (core/fault_hooks.py)
    return _PROCESS_STOPS


def stop_signal_received() -> int | None:
    """Return the stop signal received since :func:`take_stop_signals`, else None."""
    return _PROCESS_STOPS.signum if _PROCESS_STOPS is not None else None
