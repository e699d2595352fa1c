"""Child processes die with their parent: no orphan keeps a camera, a model or a video busy.

Every process this project starts (capture, pose worker, recorders, replay jobs) calls
:func:`die_with_parent` first thing. On Linux it asks the kernel, with
``prctl(PR_SET_PDEATHSIG)``, for a signal when its parent ends, however it ends (SIGKILL
included), and then delivers ``sig`` (SIGTERM unless told otherwise) to itself. What ``sig`` does
is the process's own business: a process without a handler for it ends at once; one that turns
SIGTERM into an orderly stop (a replay job) stops its stream and finalises its files. The parent
cannot finalise anything once it is dead, so no child may wait for it.

Why not ask the kernel for ``sig`` itself: the kernel's "parent" is the *thread* that started the
process, not the process. The GUI starts its streams from a worker thread that ends once the
stream is up; a plain ``PR_SET_PDEATHSIG = SIGTERM`` would kill every capture process right then.
So the kernel sends a private real-time signal, and its handler checks that the parent process
really is gone (``os.getppid()`` no longer the recorded parent) before it delivers ``sig``; when
only the starting thread ended, the child is adopted by another thread of the parent, the signal
stays armed and comes again when that one ends.

The request only covers a parent that is alive when it is made: a parent that died between the
child's start and the call is caught by comparing ``os.getppid()`` with the parent's pid recorded
before (by ``multiprocessing`` in the child, or passed in); then the child ends at once.

Elsewhere (macOS, Windows) there is no such request: the call does nothing but say so in the
debug log, and the processes' own checks (a capture process watches ``os.getppid()``) remain.

Children also leave Ctrl-C to their parent, from their very first instruction: they are started
inside :func:`children_leave_sigint_to_parent` and call :func:`leave_sigint_to_parent` first
thing, so a Ctrl-C at any moment of a start-up never kills one with a traceback.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator
from multiprocessing import resource_tracker
from types import FrameType

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: Exit status of a child that found its parent already gone (128 + SIGTERM, as if signalled).
ORPHAN_EXIT_CODE = 128 + signal.SIGTERM


def recorded_parent_pid() -> int | None:
    """Return the pid of the process that started this one, as recorded when it started.

    ``multiprocessing`` children know it (it travels with the spawn); elsewhere None.
    """
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None else None


def parent_alive(parent_pid: int | None = None) -> bool:
    """Tell whether the parent (``parent_pid``, else the recorded one) is still this one's parent.

    A process whose parent died is re-parented (to init or a subreaper), so its ``getppid()``
    changes; with no recorded pid there is nothing to compare and it answers True.
    """
    expected = parent_pid if parent_pid is not None else recorded_parent_pid()
    return expected is None or os.getppid() == expected


def die_with_parent(sig: int = signal.SIGTERM, parent_pid: int | None = None) -> bool:
    """Have ``sig`` delivered to this process when its parent ends; end now if it already has.

    Call it first thing in a child process's entry function, in its main thread.

    Parameters
    ----------
    sig
        What this process gets when its parent ends (SIGTERM: the default action ends the
        process; a process with an orderly-stop handler stops cleanly).
    parent_pid
        The parent's pid as recorded before this process started; None: the one
        ``multiprocessing`` recorded (``multiprocessing.parent_process()``), else the current
        parent.

    Returns
    -------
    bool
        True when the kernel will tell this process; False where that is not possible (not
        Linux, no libc, not the main thread), which is logged at debug level only.
    """
    global _parent_pid, _signal_on_death
    expected = parent_pid if parent_pid is not None else recorded_parent_pid()
    if expected is None:
        expected = os.getppid()
    if not sys.platform.startswith("linux"):
        log.debug(
            "die_with_parent: not available on %s; the process may outlive its parent",
            sys.platform,
        )
        return False
    try:
        signal.signal(_DEATH_SIGNAL, _on_death_signal)
        _parent_pid, _signal_on_death = expected, int(sig)
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(_DEATH_SIGNAL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError, ValueError) as error:  # ValueError: not the main thread
        log.debug("die_with_parent: prctl(PR_SET_PDEATHSIG) not possible: %s", error)
        return False
    # The parent may have died before the request was made: then no signal will ever come.
    if not parent_alive(expected):
        log.warning("the parent process has ended already; this process ends too")
        os._exit(ORPHAN_EXIT_CODE)  # nothing of ours is open yet: nothing to finalise
    return True


#: The kernel's signal to this process when the thread that started it ends (a real-time signal
#: nothing else in the project uses; its default action would end the process too).
_DEATH_SIGNAL = signal.SIGRTMIN + 3 if hasattr(signal, "SIGRTMIN") else signal.SIGTERM
_parent_pid: int | None = None
_signal_on_death = int(signal.SIGTERM)


def _on_death_signal(signum: int, frame: FrameType | None) -> None:
    """Handle the starting thread's end: pass ``sig`` on if the whole parent has ended."""
    if parent_alive(_parent_pid):
        return  # another thread of the parent adopted this process; the signal stays armed
    os.kill(os.getpid(), _signal_on_death)  # its handler, or its default action (the end)


@contextlib.contextmanager
def children_leave_sigint_to_parent() -> Iterator[None]:
    """Start child processes inside this block: Ctrl-C cannot reach them before they ignore it.

    Ctrl-C at a terminal goes to every process of its group. A child must leave it to the main
    process, which stops everything in order; but a child started with ``spawn`` (or
    ``forkserver``) imports its modules before its entry function can say so, and a Ctrl-C then
    prints a ``KeyboardInterrupt`` traceback and kills it. So SIGINT is blocked in the starting
    thread while children start: the block travels through ``fork`` and ``exec`` (a signal mask
    is inherited, unlike a handler), a Ctrl-C waits in the child until
    :func:`leave_sigint_to_parent`, first thing in its entry function, ignores it (which drops
    it). The parent's own Ctrl-C is not lost: it waits until the block ends (another thread of
    the parent may take it meanwhile). Any thread may use it, not only the main one (the GUI
    starts streams from a worker thread). Elsewhere than POSIX it does nothing.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    # multiprocessing starts its resource tracker with the first child, blocking SIGINT around
    # that start and then unblocking it: inside this block that would undo the block before
    # the child is spawned. Started here first, it is already running then.
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def leave_sigint_to_parent() -> None:
    """Ignore Ctrl-C in this child process from now on (the main process decides when to stop).

    Call it first thing in a child's entry function, in its main thread. A Ctrl-C that came
    while the child started (held back by :func:`children_leave_sigint_to_parent`) is dropped.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


__all__ = [
    "ORPHAN_EXIT_CODE",
    "children_leave_sigint_to_parent",
    "die_with_parent",
    "leave_sigint_to_parent",
    "parent_alive",
    "recorded_parent_pid",
]
