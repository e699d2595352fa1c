"""How the inference worker waits for its next frame: asleep, or awake when the frame is due.

``[Pose] WAIT``; design and cost: docs/performance.md, "Waking the worker".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Literal, Protocol

from deeplabstream.core.timing import host_now_ns
from deeplabstream.core.waiting import wait_readable

WaitMode = Literal["auto", "block", "spin"]
#: ``auto`` spins for cameras at this rate or more (their frame interval is short enough that a
#: wake-up is a visible part of the loop).
AUTO_SPIN_FPS = 100.0
SPIN_BEFORE_NS = 300_000  # awake this long before a frame is due (arrival jitter)
SPIN_AFTER_NS = 1_000_000  # and at most this long after, for a late frame, then asleep
INTERVALS_KEPT = 15


class Waitable(Protocol):
    """Anything with a pipe's descriptor (a handle on Windows) that becomes readable."""

    def fileno(self) -> int:
        """Return the descriptor or handle to wait on."""
        ...


@dataclass
class ArrivalClock:
    """When one camera's frames arrive: its last arrival and its recent intervals."""

    last_arrival_ns: int = 0
    last_seq: int = -1
    intervals: deque[int] = field(default_factory=lambda: deque(maxlen=INTERVALS_KEPT))
    _interval_ns: int = 0

    def arrived(self, seq: int, arrival_ns: int) -> None:
        """Note a frame's announcement (its sequence number and host arrival time)."""
        if self.last_seq >= 0 and seq > self.last_seq and arrival_ns > self.last_arrival_ns:
            self.intervals.append((arrival_ns - self.last_arrival_ns) // (seq - self.last_seq))
            self._interval_ns = int(median(self.intervals))
        if seq > self.last_seq:
            self.last_seq, self.last_arrival_ns = seq, arrival_ns

    @property
    def interval_ns(self) -> int:
        """The camera's frame interval as delivered (0 until two frames arrived)."""
        return self._interval_ns

    def next_due_ns(self, now_ns: int) -> int | None:
        """Return when its next frame is due on its grid (None until its interval is known)."""
        if not self._interval_ns:
            return None
        due = self.last_arrival_ns + self._interval_ns
        if due + SPIN_AFTER_NS < now_ns:  # frames overdue (a paused camera): on the grid ahead
            missed = (now_ns - due) // self._interval_ns + 1
            due += missed * self._interval_ns
        return due


def spins(mode: WaitMode, clocks: Sequence[ArrivalClock]) -> bool:
    """Whether to stay awake before the next frame: ``spin``; ``auto`` for fast cameras."""
    if mode == "spin":
        return True
    if mode == "block":
        return False
    fast = 1e9 / AUTO_SPIN_FPS
    return any(0 < clock.interval_ns <= fast for clock in clocks)


class FrameWaiter:
    """Wait until one of ``waitables`` is readable, awake around the frames' due times.

    ``mode``: ``[Pose] WAIT`` (``auto``, ``block`` or ``spin``).
    """

    def __init__(self, mode: WaitMode = "auto") -> None:
        self.mode = mode
        self.spun_ns = 0  # time spent awake waiting (the cost, for session.json)
        self.woken_awake = 0  # frames found while awake
        self.woken_asleep = 0  # frames that had to wake the worker

    def wait(
        self, waitables: Sequence[Waitable], clocks: Sequence[ArrivalClock], timeout_s: float
    ) -> bool:
        """Return once something is readable (True) or ``timeout_s`` passed (False)."""
        start = host_now_ns()
        if not spins(self.mode, clocks):
            return self._sleep(waitables, timeout_s)
        dues = [due for clock in clocks if (due := clock.next_due_ns(start)) is not None]
        if not dues:
            return self._sleep(waitables, timeout_s)
        wake_at = min(dues) - SPIN_BEFORE_NS
        if wake_at > start and self._sleep(
            waitables, min(timeout_s, (wake_at - start) / 1e9), precise=True
        ):
            return True  # something came before the frame was due (a control message)
        give_up = min(dues) + SPIN_AFTER_NS
        while True:
            now = host_now_ns()
            if _readable(waitables, 0.0):
                self.spun_ns += now - max(start, wake_at)
                self.woken_awake += 1
                return True
            if now >= give_up:
                self.spun_ns += now - max(start, wake_at)
                left = timeout_s - (now - start) / 1e9
                return left > 0 and self._sleep(waitables, left)

    def _sleep(
        self, waitables: Sequence[Waitable], timeout_s: float, precise: bool = False
    ) -> bool:
        readable = _readable(waitables, timeout_s, precise)
        if readable:
            self.woken_asleep += 1
        return readable

    def figures(self) -> dict[str, float | int | str]:
        """Return the waits' cost and effect, for the worker's closing figures."""
        return {
            "mode": self.mode,
            "awake_waiting_s": round(self.spun_ns / 1e9, 3),
            "found_awake": self.woken_awake,
            "woken": self.woken_asleep,
        }


def _readable(waitables: Sequence[Waitable], timeout_s: float, precise: bool = False) -> bool:
    """Whether one of ``waitables`` became readable within ``timeout_s`` (any platform)."""
    return bool(wait_readable(waitables, timeout_s, precise))
