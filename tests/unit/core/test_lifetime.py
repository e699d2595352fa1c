"""Children end with their parent, and stop in order when asked: one mechanism on every platform.

Real processes: a parent process starts a child and is then killed with SIGKILL; the child must
notice through its parent's sentinel (no ``getppid``, no ``prctl``) and end, or run its own
orderly stop first when it has one. A :class:`StopLine` asks a child to stop by message.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType

import psutil

from deeplabstream.core.lifetime import (
    ORPHAN_EXIT_CODE,
    StopLine,
    die_with_parent,
    parent_alive,
    parent_ended,
)

# Long enough that a child still there after it would have been an orphan; only the end counts.
GONE_WITHIN_S = 60.0


def _orphan(marker: str, orderly: bool) -> None:
    """The grandchild: watches its parent; with ``orderly``, writes ``marker`` in its handler."""
    if orderly:

        def stop(signum: int, frame: FrameType | None) -> None:
            Path(marker).write_text(f"stopped in order; parent ended: {parent_ended()}")
            os._exit(0)

        signal.signal(signal.SIGTERM, stop)
    assert parent_alive()
    die_with_parent(signal.SIGTERM)
    while True:
        time.sleep(0.05)


def _middle(marker: str, orderly: bool, pid_file: str) -> None:
    """The parent that will be killed: starts the grandchild and waits forever."""
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=_orphan, args=(marker, orderly))
    child.start()
    Path(pid_file).write_text(str(child.pid))
    while True:
        time.sleep(0.05)


def _start_family(tmp_path: Path, orderly: bool) -> tuple[multiprocessing.process.BaseProcess, int]:
    context = multiprocessing.get_context("spawn")
    pid_file = tmp_path / "child.pid"
    middle = context.Process(
        target=_middle, args=(str(tmp_path / "marker"), orderly, str(pid_file))
    )
    middle.start()
    deadline = time.monotonic() + GONE_WITHIN_S
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the child did not start"
        time.sleep(0.05)
    return middle, int(pid_file.read_text())


def _wait_gone(pid: int) -> int | None:
    """Wait for ``pid`` (not our child: polled) to end; its exit code when psutil saw it."""
    try:
        process = psutil.Process(pid)
        return process.wait(GONE_WITHIN_S)
    except psutil.NoSuchProcess:
        return None


def test_a_child_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    middle, child = _start_family(tmp_path, orderly=False)
    time.sleep(0.5)  # the child is watching by now (or notices a dead parent at once)
    os.kill(middle.pid, signal.SIGKILL)
    middle.join(30)
    _wait_gone(child)  # psutil.TimeoutExpired would fail the test: an orphan lived on
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert not (tmp_path / "marker").exists()


def test_an_orphan_with_an_orderly_stop_runs_it_first(tmp_path: Path) -> None:
    middle, child = _start_family(tmp_path, orderly=True)
    time.sleep(0.5)
    os.kill(middle.pid, signal.SIGKILL)
    middle.join(30)
    _wait_gone(child)
    assert (tmp_path / "marker").read_text() == "stopped in order; parent ended: True"


def _obeys(stop: StopLine, marker: str) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        Path(marker).write_text("finished its files")
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)
    stop.obey(signal.SIGTERM)
    while True:
        time.sleep(0.05)


def test_a_stop_line_stops_a_child_in_order_without_terminate(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    stop = StopLine(context)
    child = context.Process(target=_obeys, args=(stop, str(tmp_path / "marker")))
    child.start()
    assert not stop.requested
    stop.request()  # whenever it comes: the message waits in the line until the child reads it
    assert stop.requested
    child.join(GONE_WITHIN_S)
    assert child.exitcode == 0
    assert (tmp_path / "marker").read_text() == "finished its files"


def _sleeps_without_handler(stop: StopLine) -> None:
    stop.obey(signal.SIGTERM)
    while True:
        time.sleep(0.05)


def test_a_child_without_an_orderly_stop_ends_at_once_with_the_orphan_code() -> None:
    context = multiprocessing.get_context("spawn")
    stop = StopLine(context)
    child = context.Process(target=_sleeps_without_handler, args=(stop,))
    child.start()
    stop.request()
    child.join(GONE_WITHIN_S)
    assert child.exitcode == ORPHAN_EXIT_CODE


def _obeys_then_ends_by_itself(stop: StopLine) -> None:
    stop.obey(signal.SIGTERM)  # its thread waits on the line when the process ends


def test_asking_a_child_that_already_ended_does_not_hang_the_parent() -> None:
    # A replay that stopped by itself on the same Ctrl-C ended while it waited on its stop line.
    # With a multiprocessing.Event, setting it waited for ever for the dead sleeper to wake.
    context = multiprocessing.get_context("spawn")
    stop = StopLine(context)
    child = context.Process(target=_obeys_then_ends_by_itself, args=(stop,))
    child.start()
    child.join(GONE_WITHIN_S)
    assert child.exitcode == 0
    asking = threading.Thread(target=stop.request, daemon=True)
    asking.start()
    asking.join(GONE_WITHIN_S)
    assert not asking.is_alive(), "request() hung on a child that had ended"
    assert stop.requested


def test_the_main_process_has_no_parent_to_watch() -> None:
    assert die_with_parent() is False
    assert parent_alive() and not parent_ended()
