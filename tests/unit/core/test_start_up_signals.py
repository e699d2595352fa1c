"""Children leave Ctrl-C and SIGTERM to their parent from their first instruction; start-up waits
can stop."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.connection import Connection

import pytest

from deeplabstream.core import lifetime
from deeplabstream.core.control import StopRequested, receive_unless_stopped
from deeplabstream.core.lifetime import (
    children_leave_stop_signals_to_parent,
    die_with_parent,
    leave_stop_signals_to_parent,
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the signal masks in /proc"
)


def _signal_set(prefix: str) -> int:
    """This process's signal set ``prefix`` (SigBlk: blocked, SigIgn: ignored), as a bit mask."""
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith(prefix))
    return int(line.split()[1], 16)


def _signal_states(signal_number: int) -> tuple[bool, bool, bool]:
    """Whether ``signal_number`` is blocked, ignored, caught by a handler in this process."""
    bit = 1 << (signal_number - 1)
    return tuple(bool(_signal_set(prefix) & bit) for prefix in ("SigBlk:", "SigIgn:", "SigCgt:"))


def _report_masks(answer: Connection) -> None:
    """A child's entry: SIGINT's and SIGTERM's states before and after leaving them."""
    before = (_signal_states(signal.SIGINT)[0], _signal_states(signal.SIGTERM)[0])
    leave_stop_signals_to_parent()
    after = (_signal_states(signal.SIGINT), _signal_states(signal.SIGTERM))
    answer.send((before, after))


def test_a_spawned_child_starts_with_stop_signals_blocked_then_leaves_them() -> None:
    context = multiprocessing.get_context("spawn")
    for _ in range(2):  # the first start also starts multiprocessing's resource tracker
        mine, theirs = context.Pipe()
        process = context.Process(target=_report_masks, args=(theirs,))
        with children_leave_stop_signals_to_parent():
            process.start()
        before, (sigint, sigterm) = mine.recv()
        assert before == (True, True)  # both blocked at entry
        assert sigint == (False, True, False)  # then unblocked and ignored
        assert sigterm == (False, False, True)  # unblocked, caught: left to the parent
        process.join(30)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    assert signal.SIGINT not in mask and signal.SIGTERM not in mask  # the parent's mask as it was


def _serve_until_told(requests: Connection) -> None:
    """A child's entry: answer whether it has left a SIGTERM to its parent, until told to end."""
    leave_stop_signals_to_parent()
    die_with_parent(signal.SIGTERM)
    while (request := requests.recv()) != "end":
        del request
        requests.send(lifetime._sigterm_ignored_once.is_set())


def test_a_child_outlives_sigterm_while_its_parent_runs_and_ends_when_told() -> None:
    # A group SIGTERM (timeout, a service manager) reaches every child: it must wait for the
    # main process's orderly stop instead of ending there and cutting its files.
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    process = context.Process(target=_serve_until_told, args=(theirs,))
    with children_leave_stop_signals_to_parent():
        process.start()
    try:
        mine.send("ping")
        assert mine.recv() is False  # running, nothing received yet
        os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 60  # until the signal has been handled; never a bound
        seen = False
        while not seen and time.monotonic() < deadline:
            mine.send("ping")
            seen = mine.recv()
        assert seen, "the child never reported the SIGTERM"
        assert process.is_alive()
        mine.send("end")
        process.join(30)
        assert process.exitcode == 0
    finally:
        if process.is_alive():
            process.kill()
            process.join(5)


def test_a_wait_ends_with_the_stop_reason() -> None:
    mine, _theirs = multiprocessing.Pipe()  # kept open: the wait must not end on end-of-file
    reasons = iter([None, None, "Ctrl-C received"])
    with pytest.raises(StopRequested, match="Ctrl-C received"):
        receive_unless_stopped(mine, time.monotonic() + 60, lambda: next(reasons))


def test_a_wait_returns_the_message_or_none() -> None:
    mine, theirs = multiprocessing.Pipe()
    theirs.send("ready")
    assert receive_unless_stopped(mine, time.monotonic() + 5, lambda: None) == "ready"
    assert receive_unless_stopped(mine, time.monotonic() + 0.2, lambda: None) is None
    theirs.close()
    assert receive_unless_stopped(mine, time.monotonic() + 60, lambda: None) is None  # gone
