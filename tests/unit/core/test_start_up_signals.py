"""Children leave Ctrl-C to their parent from their first instruction; start-up waits can stop."""

from __future__ import annotations

import multiprocessing
import signal
import sys
import time
from multiprocessing.connection import Connection

import pytest

from deeplabstream.core.control import StopRequested, receive_unless_stopped
from deeplabstream.core.lifetime import children_leave_sigint_to_parent, leave_sigint_to_parent

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the signal masks in /proc"
)


def _signal_set(prefix: str) -> int:
    """This process's signal set ``prefix`` (SigBlk: blocked, SigIgn: ignored), as a bit mask."""
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith(prefix))
    return int(line.split()[1], 16)


def _report_masks(answer: Connection) -> None:
    """A child's entry: SIGINT's state before and after :func:`leave_sigint_to_parent`."""
    bit = 1 << (signal.SIGINT - 1)
    before = bool(_signal_set("SigBlk:") & bit)
    leave_sigint_to_parent()
    after = (
        bool(_signal_set("SigBlk:") & bit),
        bool(_signal_set("SigIgn:") & bit),
    )
    answer.send((before, after))


def test_a_spawned_child_starts_with_sigint_blocked_then_ignores_it() -> None:
    context = multiprocessing.get_context("spawn")
    for _ in range(2):  # the first start also starts multiprocessing's resource tracker
        mine, theirs = context.Pipe()
        process = context.Process(target=_report_masks, args=(theirs,))
        with children_leave_sigint_to_parent():
            process.start()
        assert mine.recv() == (True, (False, True))  # blocked at entry; then ignored, unblocked
        process.join(30)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    assert signal.SIGINT not in mask  # the parent's mask is as it was


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
