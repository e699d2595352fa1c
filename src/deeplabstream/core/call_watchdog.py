"""A time limit on a call of the main thread: a lab's code that never returns is interrupted.

Per platform: docs/platforms.md; what the worker does: docs/reliability.md.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from deeplabstream.core.heartbeat import Heartbeat
from deeplabstream.core.timing import host_now_ns

#: How often the watchdog thread looks at the guarded call: rarely, since each look takes the
#: GIL from the loop's thread (at 50 ms the 200 fps self-test's pipeline p99 grew; a stuck
#: update is still stopped within a quarter of a second of its limit).
CHECK_INTERVAL_S = 0.25
#: How long after its interruption was asked for a call still running counts as stuck in C code
#: that never returns to Python (an interrupted call ends within a check or two).
STUCK_GRACE_S = 1.0
_SIGNAL = getattr(signal, "SIGUSR1", None)


class CallStalled(BaseException):
    """Raised inside a guarded call that ran past its limit; ``elapsed_s`` says how long."""

    def __init__(self, what: str, limit_s: float, elapsed_s: float) -> None:
        super().__init__(
            f"{what} did not return within {limit_s:g} s (stopped after {elapsed_s:.1f} s)"
        )
        self.what = what
        self.limit_s = limit_s
        self.elapsed_s = elapsed_s


class CallStuck(CallStalled):
    """A guarded call that ran past its limit and could not be interrupted (stuck in C code)."""

    def __init__(self, what: str, limit_s: float, elapsed_s: float) -> None:
        super().__init__(what, limit_s, elapsed_s)
        self.args = (
            f"{what} did not return within {limit_s:g} s and could not be interrupted (still "
            f"inside code that never returned to Python after {elapsed_s:.1f} s)",
        )


StuckHandler = Callable[[CallStuck], None]
_Outer = tuple[str, float, float]  # a guarded call's name, limit and start


class _Watchdog:
    """The one watchdog thread of a process and the call it guards now (main thread only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._what = ""
        self._limit_s = 0.0
        self._started = 0.0
        self._guarding = False  # the main thread is inside the guarded call
        self._fired = False  # the exception was asked for, for this call
        self._fired_at = 0.0
        self._stuck_told = False  # the stuck handler ran, for this call
        self.on_stuck: StuckHandler | None = None
        self._main = threading.main_thread()
        self._thread: threading.Thread | None = None
        self._use_signal = _SIGNAL is not None and hasattr(signal, "pthread_kill")
        self.heartbeat: Heartbeat | None = None  # where the guarded call is published

    def enter(self, what: str, limit_s: float) -> _Outer | None:
        """Begin guarding a call (a nested one is watched alone till it ends); return the outer."""
        if self._thread is None:
            self._start()
        with self._lock:
            outer = (self._what, self._limit_s, self._started) if self._guarding else None
            self._what, self._limit_s = what, limit_s
            self._started = time.monotonic()
            self._guarding, self._fired, self._stuck_told = True, False, False
            self._publish()
        return outer

    def leave(self, outer: _Outer | None = None) -> None:
        """End guarding the call (it returned or raised); guard ``outer`` again, if given."""
        with self._lock:
            if outer is None:
                self._guarding = False
                if self.heartbeat is not None:
                    self.heartbeat.leave()
                return
            self._what, self._limit_s, self._started = outer
            self._guarding, self._fired, self._stuck_told = True, False, False
            self._publish()

    def _publish(self) -> None:
        """Publish the guarded call to the parent (locked; core/heartbeat.py)."""
        if self.heartbeat is not None:
            started_ns = host_now_ns() - round((time.monotonic() - self._started) * 1e9)
            self.heartbeat.enter(self._what, self._limit_s, started_ns)

    def start(self) -> None:
        """Start the watchdog's thread now (else at the first guarded call)."""
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        if self._use_signal:
            assert _SIGNAL is not None
            signal.signal(_SIGNAL, self._on_signal)
        self._thread = threading.Thread(target=self._watch, name="call-watchdog", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while self._main.is_alive():
            time.sleep(CHECK_INTERVAL_S)
            if self.heartbeat is not None:  # a held process stops beating: its parent sees it
                self.heartbeat.beat()
            with self._lock:
                now = time.monotonic()
                stuck = self._stuck_call(now)
                due = self._guarding and not self._fired
                if due and now - self._started > self._limit_s:
                    self._fired, self._fired_at = True, now
                else:
                    due = False
            if stuck is not None and self.on_stuck is not None:
                self.on_stuck(stuck)
            if due:
                self._interrupt()

    def _stuck_call(self, now: float) -> CallStuck | None:
        """Return the guarded call once it outlived its interruption by STUCK_GRACE_S (locked)."""
        if not (self._guarding and self._fired) or self._stuck_told:
            return None
        if now - self._fired_at < STUCK_GRACE_S:
            return None
        self._stuck_told = True
        return CallStuck(self._what, self._limit_s, now - self._started)

    def _interrupt(self) -> None:
        ident = self._main.ident
        if ident is None:
            return
        if self._use_signal:
            assert _SIGNAL is not None
            signal.pthread_kill(ident, _SIGNAL)
            return
        set_async = ctypes.pythonapi.PyThreadState_SetAsyncExc
        set_async(ctypes.c_ulong(ident), ctypes.py_object(_PendingStall))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.raise_if_stalled()

    def raise_if_stalled(self) -> None:
        """Raise CallStalled when the guarded call is still running past its limit."""
        with self._lock:
            if not (self._guarding and self._fired):
                return  # it returned meanwhile: nothing to stop
            self._guarding = False
            stall = CallStalled(self._what, self._limit_s, time.monotonic() - self._started)
        raise stall


class _PendingStall(CallStalled):
    """What ``PyThreadState_SetAsyncExc`` raises (it takes a class): turned into CallStalled."""

    def __init__(self) -> None:
        super().__init__("the guarded call", 0.0, 0.0)


_WATCHDOG: _Watchdog | None = None


def _watchdog() -> _Watchdog:
    global _WATCHDOG
    if _WATCHDOG is None:
        _WATCHDOG = _Watchdog()
    return _WATCHDOG


def when_stuck(handler: StuckHandler | None) -> None:
    """Run ``handler`` (in the watchdog's thread) for a guarded call that cannot be interrupted.

    The main thread is stuck for good then: the handler flushes files and may end the process.
    """
    _watchdog().on_stuck = handler


def publish_to(heartbeat: Heartbeat) -> None:
    """Publish every guarded call to ``heartbeat`` and beat it every :data:`CHECK_INTERVAL_S`.

    The beating thread starts now, so a parent sees a process held whole by a C call.
    """
    watchdog = _watchdog()
    watchdog.heartbeat = heartbeat
    watchdog.start()


@contextmanager
def time_limit(what: str, limit_s: float) -> Iterator[None]:
    """Guard the block (main thread): past ``limit_s`` seconds, :class:`CallStalled` is raised.

    ``CallStalled`` is a ``BaseException`` (a lab's ``except Exception`` does not swallow it);
    ``what`` names the call in its text.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread can be interrupted (and takes signals)
        return
    watchdog = _watchdog()
    outer = watchdog.enter(what, limit_s)
    started = time.monotonic()
    try:
        yield
    except _PendingStall:  # the portable way's exception, with the figures of this call
        raise CallStalled(what, limit_s, time.monotonic() - started) from None
    finally:
        watchdog.leave(outer)
