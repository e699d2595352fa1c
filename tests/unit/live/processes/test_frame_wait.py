"""The inference worker's wait: asleep, or awake when the next frame is due ([Pose] WAIT)."""

from __future__ import annotations

import os
import threading

from deeplabstream.core.timing import host_now_ns
from deeplabstream.live.processes.analysis.frame_wait import (
    SPIN_AFTER_NS,
    ArrivalClock,
    FrameWaiter,
    spins,
)

MS = 1_000_000


class _Pipe:
    """A real pipe: its read end is what the worker waits on."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()

    def fileno(self) -> int:
        return self.read_fd

    def ring(self) -> None:
        os.write(self.write_fd, b"x")

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)


def test_the_interval_is_the_median_of_the_arrivals_per_frame() -> None:
    clock = ArrivalClock()
    assert clock.next_due_ns(0) is None  # unknown until two frames came
    for seq, arrival in ((0, 0), (1, 5 * MS), (2, 10 * MS + 300_000), (4, 20 * MS)):
        clock.arrived(seq, arrival)  # seq 3 was passed over: its interval is split in two
    assert clock.interval_ns == 5 * MS
    assert clock.next_due_ns(20 * MS) == 25 * MS
    clock.arrived(4, 20 * MS)  # the same frame again changes nothing
    assert clock.interval_ns == 5 * MS


def test_a_camera_that_paused_is_expected_on_its_grid_ahead_not_in_the_past() -> None:
    clock = ArrivalClock()
    clock.arrived(0, 0)
    clock.arrived(1, 5 * MS)
    due = clock.next_due_ns(100 * MS)
    assert due is not None and due >= 100 * MS - SPIN_AFTER_NS and (due - 5 * MS) % (5 * MS) == 0


def test_auto_spins_only_for_fast_cameras() -> None:
    slow, fast = ArrivalClock(), ArrivalClock()
    for seq in range(3):
        slow.arrived(seq, seq * 33 * MS)
        fast.arrived(seq, seq * 5 * MS)
    assert not spins("auto", [slow]) and spins("auto", [slow, fast])
    assert spins("spin", [slow]) and not spins("block", [fast])


def test_both_modes_return_when_a_frame_is_announced_and_time_out_without() -> None:
    for mode in ("block", "spin"):
        pipe = _Pipe()
        try:
            clock = ArrivalClock()
            now = host_now_ns()
            clock.arrived(0, now - 10 * MS)
            clock.arrived(1, now - 5 * MS)  # the next one is due now
            waiter = FrameWaiter(mode)
            assert waiter.wait([pipe], [clock], timeout_s=0.05) is False
            pipe.ring()
            assert waiter.wait([pipe], [clock], timeout_s=5.0) is True
            figures = waiter.figures()
            assert figures["mode"] == mode
            assert figures["found_awake"] + figures["woken"] == 1
        finally:
            pipe.close()


def test_a_message_long_before_the_next_frame_is_answered_without_waiting_for_the_frame() -> None:
    pipe, control = _Pipe(), _Pipe()
    try:
        clock = ArrivalClock()
        now = host_now_ns()
        clock.arrived(0, now - 10_000 * MS)
        clock.arrived(1, now)  # a frame every 10 s: the next is due in 10 s
        waiter = FrameWaiter("spin")
        timer = threading.Timer(0.05, control.ring)
        timer.start()
        assert waiter.wait([pipe, control], [clock], timeout_s=60.0) is True
        assert waiter.figures()["woken"] == 1  # it slept, and the message woke it
        timer.join()
    finally:
        pipe.close()
        control.close()
