"""Child processes die with their parent, and stop in order when asked: on every platform alike.

Design: docs/platforms.md, "The process layer".
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from multiprocessing import resource_tracker
from multiprocessing.connection import wait as wait_for_objects
from typing import Any, NoReturn

log = logging.getLogger(__name__)

#: Exit status of a child whose parent ended (128 + SIGTERM, as if signalled, on every platform).
ORPHAN_EXIT_CODE = 128 + int(signal.SIGTERM)
#: How long an orphan with an orderly stop of its own gets to finish its files before it ends.
ORPHAN_GRACE_S = 10.0
#: How long the acts set with :func:`at_orphan_end` get before the process ends regardless.
LAST_ACTS_S = 5.0

_parent_gone = threading.Event()
_last_acts: list[Callable[[], None]] = []


def at_orphan_end(act: Callable[[], None]) -> None:
    """Run ``act`` when this process ends because its parent is gone, before it ends.

    ``act`` runs beside the work's thread and shares :data:`LAST_ACTS_S`: thread-safe and quick.
    """
    _last_acts.append(act)


def recorded_parent_pid() -> int | None:
    """Return the pid of this process's parent as recorded at its start (None if not known)."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None else None


def parent_ended() -> bool:
    """Return whether :func:`die_with_parent`'s watch has seen the parent end (cheap: a flag)."""
    return _parent_gone.is_set()


def parent_alive() -> bool:
    """Tell whether the process that started this one still runs (True when none is known)."""
    if _parent_gone.is_set():
        return False
    parent = multiprocessing.parent_process()
    if parent is None:
        return True
    try:
        return not wait_for_objects([parent.sentinel], timeout=0)
    except (OSError, ValueError):  # the sentinel was closed: the parent's handle is gone
        return False


def die_with_parent(sig: int = signal.SIGTERM, grace_s: float = ORPHAN_GRACE_S) -> bool:
    """Watch the parent; when it ends, stop this process in order (``sig``) or end it at once.

    Call it first thing in a child's main thread. Returns False in a process ``multiprocessing``
    did not start (no sentinel to watch).
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        log.debug("die_with_parent: not a multiprocessing child; no parent to watch")
        return False
    sentinel = parent.sentinel
    watcher = threading.Thread(
        target=_watch_parent, args=(sentinel, int(sig), grace_s), name="parent-watch", daemon=True
    )
    watcher.start()
    return True


def _watch_parent(sentinel: Any, sig: int, grace_s: float) -> None:
    try:
        wait_for_objects([sentinel])
    except (OSError, ValueError) as error:  # the sentinel is unusable: treat as the parent's end
        log.debug("die_with_parent: the parent's sentinel failed: %s", error)
    _parent_gone.set()
    log.warning("the parent process has ended; this process stops too")
    stop_this_process(sig, grace_s)


def stop_this_process(sig: int, grace_s: float) -> None:
    """Raise ``sig`` here when handled, else end the process now; end it ``grace_s`` later."""
    handler = signal.getsignal(sig)
    if not callable(handler) or handler is _sigterm_in_a_child:
        _end_now()  # SIG_DFL, SIG_IGN, unknown, or left to the parent: nothing of its own to finish
    signal.raise_signal(sig)
    threading.Event().wait(grace_s)
    log.warning("this process did not stop within %.0f s of being asked; ending it", grace_s)
    _end_now()


def _end_now() -> NoReturn:
    if _last_acts:
        acts = threading.Thread(target=_run_last_acts, name="last-acts", daemon=True)
        acts.start()
        acts.join(LAST_ACTS_S)
    logging.shutdown()  # whatever the handlers buffered reaches the log first
    os._exit(ORPHAN_EXIT_CODE)


def _run_last_acts() -> None:
    for act in _last_acts:
        try:
            act()
        except Exception:  # one act failing never keeps the others from running
            log.exception("a last act before this process ends failed")


class StopLine:
    """An orderly stop asked of a child process, by message, on every platform.

    The child calls :meth:`obey` first thing; the parent calls :meth:`request`, then joins it.
    """

    def __init__(self, context: Any = None) -> None:
        context = context or multiprocessing.get_context("spawn")
        # A pipe, not a multiprocessing.Event: setting an Event waits until every sleeper has
        # woken, so a child that ended while it waited would hang its parent for ever.
        self._receiver, self._sender = context.Pipe(duplex=False)

        self._requested = False

    def request(self) -> None:
        """Ask the child to stop (it raises its ``sig`` in itself: its orderly stop)."""
        if self._requested:
            return
        self._requested = True
        try:
            self._sender.send_bytes(b"stop")
        except (OSError, ValueError):  # the child has gone, or the line was closed
            log.debug("stop line: the child was not there to be told")

    @property
    def requested(self) -> bool:
        """Whether this side asked for the stop."""
        return self._requested

    def obey(self, sig: int = signal.SIGTERM, grace_s: float = ORPHAN_GRACE_S) -> None:
        """In the child: raise ``sig`` in this process once the parent asks for the stop."""
        thread = threading.Thread(
            target=self._wait_then_stop, args=(int(sig), grace_s), name="stop-line", daemon=True
        )
        thread.start()

    def _wait_then_stop(self, sig: int, grace_s: float) -> None:
        try:
            self._receiver.recv_bytes()
        except (EOFError, OSError):  # the line is gone: the parent's end is die_with_parent's
            return
        log.info("stop asked by the parent process")
        stop_this_process(sig, grace_s)


#: The signals a terminal or a process manager sends to a whole process group to stop a program:
#: Ctrl-C (SIGINT) and ``kill -TERM -<group>`` / ``timeout`` / a service manager's stop (SIGTERM).
#: A closed terminal or dropped SSH session sends SIGHUP to the group: a stop too (not on Windows).
STOP_SIGNALS = frozenset(
    {signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])}
)


@contextlib.contextmanager
def children_leave_stop_signals_to_parent() -> Iterator[None]:
    """Start child processes inside this block: no stop signal reaches them before they leave it.

    Each child must call :func:`leave_stop_signals_to_parent` first thing in its entry function.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    # multiprocessing starts its resource tracker with the first child, blocking SIGINT around
    # that start and then unblocking it: inside this block that would undo the block before
    # the child is spawned. Started here first, it is already running then.
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def leave_stop_signals_to_parent() -> None:
    """Leave Ctrl-C and SIGTERM to the main process from now on: it decides when this one stops.

    Call it first thing in a child's main thread. Ctrl-C is ignored; SIGTERM too while the parent
    runs, and after it ends SIGTERM exits with :data:`ORPHAN_EXIT_CODE`. A child that needs its own
    orderly stop installs its SIGTERM handler afterwards.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _sigterm_in_a_child)
    if hasattr(signal, "SIGHUP"):  # a closed terminal: the main process stops this one in order
        signal.signal(signal.SIGHUP, _sigterm_in_a_child)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


_sigterm_ignored_once = threading.Event()


def _sigterm_in_a_child(signum: int, frame: object) -> None:
    """SIGTERM in a child: the parent's to act on while it runs; the end once it is gone."""
    del signum, frame
    if parent_alive():
        if not _sigterm_ignored_once.is_set():
            _sigterm_ignored_once.set()
            log.info("SIGTERM received: left to the main process, which stops this one in order")
        return
    _end_now()


__all__ = [
    "ORPHAN_EXIT_CODE",
    "ORPHAN_GRACE_S",
    "STOP_SIGNALS",
    "StopLine",
    "at_orphan_end",
    "children_leave_stop_signals_to_parent",
    "die_with_parent",
    "leave_stop_signals_to_parent",
    "parent_alive",
    "parent_ended",
    "recorded_parent_pid",
    "stop_this_process",
]
