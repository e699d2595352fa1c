"""Run a stream until something says stop: Ctrl-C, a frame or time limit, the sources ending."""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO

from deeplabstream.live.session.cameras import end_summary, recorded_and_lost
from deeplabstream.live.session.live import LiveSession, SessionEvent
from deeplabstream.live.session.report.rates import CameraRates, StampSample, frame_time_s

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 1.0


@dataclass(frozen=True)
class CameraFigures:
    """One camera's live figures over the last status interval (what the CLI and GUI show)."""

    name: str
    capture_fps: float
    captured: int
    recorded: int
    dropped: int  # frames the camera dropped (its gaps); the recorder's losses: record_lost
    analysed_fps: float | None  # None while no analysis runs
    skipped: int
    latency_ms: tuple[float, float] | None  # frame-to-pose p50, p99 over the recent poses
    record_lost: int = 0  # frames the recorder could not take (never also in ``dropped``)
    analysed: int = 0  # frames analysed so far
    late: int = 0  # analysed frames that missed the deadline so far (live/session/report/health.py)
    stalled_s: float | None = None  # how long its analysis has been stalled; None: it is not
    # frame -> decision or command p50, p99 over the recent poses; None without an experiment
    loop_latency_ms: tuple[float, float] | None = None
    # Its FRAMERATE while it delivers below it (live/session/report/delivery.py); None: it keeps it
    below_framerate: float | None = None
    no_frame_s: float | None = None  # how long it has delivered no frame (a stall); None: it does
    # How long its recorder has given no sign of life (report/recorders.py); None: it answers
    recorder_silent_s: float | None = None
    record_waiting: int = 0  # frames captured that its silent recorder has not taken


class SessionRunner:
    """Drive :meth:`LiveSession.service` and decide when the run is over."""

    def __init__(
        self,
        stream: LiveSession,
        *,
        duration_s: float | None = None,
        status_out: TextIO | None = sys.stdout,
        on_event: Callable[[SessionEvent], None] | None = None,
    ) -> None:
        self.stream = stream
        self.duration_s = duration_s
        self.status_out = status_out
        self.on_event = on_event
        self.stop_reason: str | None = None
        #: Whether an experiment's end_session (or session duration) ends this run (a replay
        #: goes on to the video's end).
        self.ends_with_experiment = True
        self._started = 0.0  # set at the first tick: the duration counts streaming time only
        self._next_status = 0.0
        self._previous: dict[str, tuple[float, int, int]] = {}  # time, captured, analysed
        # Rates on each camera's own clock: a late status refresh under load must not read as
        # a burst of frames (46 and 73 fps of a 30 fps camera, counted between host refreshes).
        self.rates = CameraRates()
        self.last_status: list[str] = []
        self.last_figures: list[CameraFigures] = []

    def request_stop(self, reason: str) -> None:
        """Ask the run to end at the next tick (callable from a signal handler)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def signal_stop(self, reason: str) -> None:
        """Take a stop signal: the first ends the run, another hurries the stop."""
        if self.stop_reason is None:
            self.request_stop(reason)
        else:
            self.stream.hurry_stop()

    def tick(self, timeout: float) -> bool:
        """Service the stream for up to ``timeout`` s; False once the run should end."""
        if not self._started:
            self._started = time.monotonic()
            self._next_status = self._started + STATUS_INTERVAL_S
        if self.stop_reason is None:
            for event in self.stream.service(timeout):
                self._say(event)
        if self.duration_s is not None and time.monotonic() - self._started >= self.duration_s:
            self.request_stop(f"duration of {self.duration_s:g} s reached")
        analysis = self.stream.pose.analysis  # the experiment may ask to end the session
        ended_by = analysis.session_ended_by if analysis is not None else None
        if ended_by is not None and self.ends_with_experiment:
            self.request_stop(ended_by)
        if self.stream.all_ended:
            self.request_stop(f"every camera has ended ({end_summary(self.stream.branches)})")
        if time.monotonic() >= self._next_status:
            self._next_status += STATUS_INTERVAL_S
            self._print_status()
        return self.stop_reason is None

    def run_headless(self) -> None:
        """Block until the run should end."""
        while self.tick(0.25):
            pass

    def camera_figures(self) -> list[CameraFigures]:
        """Every camera's figures since the previous call (rates over that interval)."""
        figures = []
        now = time.monotonic()
        analysing = self.stream.pose.analysis is not None
        branches = {branch.name: branch for branch in self.stream.branches}
        for name, stats in self.stream.camera_stats().items():
            # The whole session's, every recording part (as session.json says), not the
            # current part's alone ("15 + 61 lost" beside session.json's 182 + 756).
            branch = branches.get(name)
            recorded, record_lost = (
                recorded_and_lost(branch, stats)
                if branch is not None
                else (stats.get("recorded", 0), stats.get("record_lost", 0))
            )
            captured, analysed = stats["captured"], stats.get("analysed", 0)
            then, captured_before, analysed_before = self._previous.get(
                name, (self._started or now, 0, 0)
            )
            interval = max(now - then, 1e-9)
            self._previous[name] = (now, captured, analysed)
            capture_fps, analysed_fps = self._camera_clock_rates(name, stats)
            if capture_fps is None:  # fewer than two frames' stamps yet: the refresh's count
                capture_fps = (captured - captured_before) / interval
                analysed_fps = (analysed - analysed_before) / interval
            figures.append(
                CameraFigures(
                    name=name,
                    capture_fps=capture_fps,
                    captured=captured,
                    recorded=recorded,
                    dropped=stats["camera_gaps"],
                    analysed_fps=analysed_fps if analysing else None,
                    skipped=stats.get("analysis_skipped", 0),
                    latency_ms=stats.get("latency_ms"),
                    record_lost=record_lost,
                    analysed=analysed,
                    late=stats.get("late", 0),
                    stalled_s=stats.get("stalled_s"),
                    loop_latency_ms=stats.get("loop_latency_ms"),
                    below_framerate=stats.get("below_framerate"),
                    no_frame_s=stats.get("no_frame_s"),
                    recorder_silent_s=stats.get("recorder_silent_s"),
                    record_waiting=stats.get("record_waiting", 0),
                )
            )
        return figures

    def _camera_clock_rates(
        self, name: str, stats: dict[str, Any]
    ) -> tuple[float | None, float | None]:
        """Return the capture and analysed rates over the camera's own stamps (None: too few)."""
        if stats.get("last_host_ns") is None or not stats.get("captured"):
            return None, None
        time_s = frame_time_s(stats["last_camera_ts"], stats["last_host_ns"])
        host_s = stats["last_host_ns"] / 1e9
        self.rates.add(
            name, StampSample(stats["captured"], time_s, stats.get("analysed", 0), host_s)
        )
        return self.rates.capture_fps(name), self.rates.analysed_fps(name)

    def status_lines(self) -> list[str]:
        """One line per camera: rate over the last interval, totals, drops."""
        self.last_figures = self.camera_figures()
        return [self._line(figures) for figures in self.last_figures]

    def _line(self, figures: CameraFigures) -> str:
        text = f"{figures.name}: {figures.capture_fps:6.1f} fps, {figures.captured} frames"
        if figures.no_frame_s is not None:
            text += f" (NO FRAME for {figures.no_frame_s:.1f} s)"
        elif figures.below_framerate is not None:
            text += f" (BELOW FRAMERATE {figures.below_framerate:g})"
        if self.stream.recording or figures.recorded:
            text += f", recorded {figures.recorded}"
        if figures.recorder_silent_s is not None:  # never the last figures of a held recorder
            text += (
                f" (RECORDER SILENT for {figures.recorder_silent_s:.1f} s, "
                f"{figures.record_waiting} waiting)"
            )
        text += f", dropped {figures.dropped}"
        if figures.record_lost:  # counted once: by the camera or by the recorder
            text += f", lost in recording {figures.record_lost}"
        if figures.analysed_fps is not None:
            text += f"; analysed {figures.analysed_fps:5.1f} fps, skipped {figures.skipped}"
            if figures.stalled_s is not None:  # never the last figures of a loop that stopped
                text += f", ANALYSIS STALLED for {figures.stalled_s:.1f} s"
            elif figures.latency_ms:
                p50, p99 = figures.latency_ms
                text += f", latency p50 {p50:.1f} / p99 {p99:.1f} ms"
                if figures.loop_latency_ms:
                    p50, p99 = figures.loop_latency_ms
                    text += f", to decision p50 {p50:.1f} / p99 {p99:.1f} ms"
            if figures.late:
                text += f", late {figures.late}"
        return text

    def _print_status(self) -> None:
        self.last_status = self.status_lines()
        if self.status_out is not None:
            print("  |  ".join(self.last_status), file=self.status_out, flush=True)

    def _say(self, event: SessionEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)
        if self.status_out is not None and event.level >= logging.WARNING:
            print(event.message, file=self.status_out, flush=True)


def install_stop_signals(on_stop: Callable[[str], None]) -> None:
    """Turn SIGINT (Ctrl-C), SIGTERM and SIGHUP into an orderly stop instead of an exception."""

    def handler(signum: int, frame: FrameType | None) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        on_stop(f"{name} received")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    if hasattr(signal, "SIGHUP"):  # a closed terminal: a stop, as SIGTERM (none on Windows)
        signal.signal(signal.SIGHUP, handler)
