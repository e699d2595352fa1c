"""Run a stream until something says stop: Ctrl-C, a frame or time limit, the sources ending.

Shared by the headless loop and the preview window so both stop for the same reasons and report
the same figures.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import TextIO

from stream.supervisor import Stream

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 1.0


class StreamRunner:
    """Drive :meth:`Stream.service` and decide when the run is over."""

    def __init__(
        self,
        stream: Stream,
        *,
        duration_s: float | None = None,
        status_out: TextIO | None = sys.stdout,
    ) -> None:
        self.stream = stream
        self.duration_s = duration_s
        self.status_out = status_out
        self.stop_reason: str | None = None
        self._started = 0.0  # set at the first tick: the duration counts streaming time only
        self._next_status = 0.0
        self._previous: dict[str, tuple[float, int]] = {}
        self._previous_analysed: dict[str, int] = {}
        self.last_status: list[str] = []

    def request_stop(self, reason: str) -> None:
        """Ask the run to end at the next tick (callable from a signal handler)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def tick(self, timeout: float) -> bool:
        """Service the stream for up to ``timeout`` s; False once the run should end."""
        if not self._started:
            self._started = time.monotonic()
            self._next_status = self._started + STATUS_INTERVAL_S
        if self.stop_reason is None:
            for event in self.stream.service(timeout):
                self._say(event.message, event.level)
        if self.duration_s is not None and time.monotonic() - self._started >= self.duration_s:
            self.request_stop(f"duration of {self.duration_s:g} s reached")
        if self.stream.all_ended:
            self.request_stop(f"every camera has ended ({self.stream.end_summary()})")
        if time.monotonic() >= self._next_status:
            self._next_status += STATUS_INTERVAL_S
            self._print_status()
        return self.stop_reason is None

    def run_headless(self) -> None:
        """Block until the run should end."""
        while self.tick(0.25):
            pass

    def status_lines(self) -> list[str]:
        """One line per camera: rate over the last interval, totals, drops."""
        lines = []
        now = time.monotonic()
        for name, stats in self.stream.camera_stats().items():
            captured = stats["captured"]
            then, before = self._previous.get(name, (self._started, 0))
            rate = (captured - before) / max(now - then, 1e-9)
            self._previous[name] = (now, captured)
            text = f"{name}: {rate:6.1f} fps, {captured} frames"
            if self.stream.recording or stats.get("recorded"):
                text += f", recorded {stats.get('recorded', 0)}"
            dropped = stats["camera_gaps"] + stats.get("record_lost", 0)
            text += f", dropped {dropped}"
            if self.stream.analysis is not None:
                text += self._analysis_text(name, stats, now - then)
            lines.append(text)
        return lines

    def _analysis_text(self, name: str, stats: dict, interval_s: float) -> str:
        analysed = stats.get("analysed", 0)
        before = self._previous_analysed.get(name, 0)
        self._previous_analysed[name] = analysed
        text = f"; analysed {(analysed - before) / max(interval_s, 1e-9):5.1f} fps"
        text += f", skipped {stats.get('analysis_skipped', 0)}"
        latency = stats.get("latency_ms")
        if latency:
            text += f", latency p50 {latency[0]:.1f} / p99 {latency[1]:.1f} ms"
        return text

    def _print_status(self) -> None:
        self.last_status = self.status_lines()
        if self.status_out is not None:
            print("  |  ".join(self.last_status), file=self.status_out, flush=True)

    def _say(self, message: str, level: int) -> None:
        if self.status_out is not None and level >= logging.WARNING:
            print(message, file=self.status_out, flush=True)


def install_stop_signals(on_stop: Callable[[str], None]) -> None:
    """Turn SIGINT (Ctrl-C) and SIGTERM into an orderly stop instead of an exception."""

    def handler(signum: int, frame: FrameType | None) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        on_stop(f"{name} received")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
