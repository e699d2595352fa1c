"""Frame rates on the camera's own clock: what the camera delivered, never a host artefact.

The lower of the camera clock's and the host arrivals' rate; docs/gui.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass

DEFAULT_WINDOW_S = 5.0  # long enough to smooth a burst, short enough to show a change


@dataclass(frozen=True)
class StampSample:
    """The newest frame of a camera as the window last saw it, and the analysed count then."""

    seq: int  # frames the camera published so far (the ring's sequence number)
    time_s: float  # that frame's time on the camera's clock (host arrival without one)
    analysed: int  # frames analysed so far
    host_s: float = math.nan  # that frame's host arrival (NaN: not known, the clock's rate only)


def frame_time_s(camera_timestamp: float, host_timestamp_ns: int) -> float:
    """Return a frame's time: its camera timestamp, else (NaN: no camera clock) its arrival."""
    if math.isfinite(camera_timestamp):
        return float(camera_timestamp)
    return host_timestamp_ns / 1e9


class CameraRates:
    """Capture and analysed rates of each camera over the last ``window_s`` of its own clock."""

    def __init__(self, window_s: float = DEFAULT_WINDOW_S) -> None:
        self.window_s = float(window_s)
        self._samples: dict[str, deque[StampSample]] = {}

    def add(self, camera: str, sample: StampSample) -> None:
        """Take ``camera``'s newest frame; a sample that goes back starts the camera afresh."""
        samples = self._samples.setdefault(camera, deque())
        if samples and (sample.seq < samples[-1].seq or sample.time_s < samples[-1].time_s):
            samples.clear()  # a new stream, or a video that looped: its clock started again
        if samples and sample.seq == samples[-1].seq:
            # No new frame: keep the analysed count current, not a second point of time.
            samples[-1] = dataclasses.replace(samples[-1], analysed=sample.analysed)
            return
        samples.append(sample)
        while len(samples) > 2 and samples[1].time_s <= sample.time_s - self.window_s:
            samples.popleft()

    def capture_fps(self, camera: str) -> float | None:
        """Return the frames per second delivered, None before two frames' stamps."""
        span = self._span(camera)
        if span is None:
            return None
        first, last = span
        frames = last.seq - first.seq
        rate = frames / (last.time_s - first.time_s)
        host_span_s = last.host_s - first.host_s
        if host_span_s > 0:  # NaN (not known) compares False
            rate = min(rate, frames / host_span_s)
        return rate

    def analysed_fps(self, camera: str) -> float | None:
        """Return analysed frames per second of the camera's clock, at most the capture rate."""
        span = self._span(camera)
        capture = self.capture_fps(camera)
        if span is None or capture is None:
            return None
        first, last = span
        rate = max(last.analysed - first.analysed, 0) / (last.time_s - first.time_s)
        return min(rate, capture)

    def clear(self) -> None:
        """Forget every camera (a new stream)."""
        self._samples.clear()

    def _span(self, camera: str) -> tuple[StampSample, StampSample] | None:
        samples = self._samples.get(camera)
        if not samples or len(samples) < 2 or samples[-1].time_s <= samples[0].time_s:
            return None
        return samples[0], samples[-1]
