"""The command line's status line: rates on the camera's own clock (issue 38 #6).

A status refresh that comes late under load used to divide the frames counted since the last
refresh by the host time between refreshes; frames that arrived in a burst then read as 100 fps
of a 30 fps camera. The runner now measures over the newest frame's camera stamps, read from the
ring header. The stream here is a scripted stand-in (a mock: its ring-header figures are given
as a real capture process would leave them after a burst), so the burst happens on purpose.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from deeplabstream.live.session.runner import SessionRunner


class _ScriptedStreamMock:
    """What the runner reads of a LiveSession: per-camera figures, recording, analysis."""

    recording = False
    analysis = object()  # an analysis runs
    branches: tuple[Any, ...] = ()  # no camera branch: the figures are the ring header's alone

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Any]] = {}
        self.pose = self  # its own pose part (LiveSession.pose) too

    def camera_stats(self) -> dict[str, dict[str, Any]]:
        return {name: dict(figures) for name, figures in self.figures.items()}


def _header(captured: int, fps: float, analysed: int, host_s: float) -> dict[str, Any]:
    """A 30 fps camera's ring figures: frame ``captured - 1`` stamped at (captured - 1) / fps."""
    return {
        "captured": captured,
        "camera_gaps": 0,
        "analysed": analysed,
        "last_camera_ts": (captured - 1) / fps,
        "last_host_ns": int(host_s * 1e9),
    }


def test_a_burst_after_a_late_refresh_reads_as_the_cameras_own_rate() -> None:
    stream = _ScriptedStreamMock()
    runner = SessionRunner(stream, status_out=io.StringIO())  # type: ignore[arg-type]
    stream.figures["cam"] = _header(31, 30.0, 31, host_s=1.0)
    runner.camera_figures()
    # 1.3 s later by the host's clock, 60 more frames have come (2 s of the camera's time: the
    # capture process caught up in a burst): 60 / 1.3 = 46 fps counted between refreshes.
    stream.figures["cam"] = _header(91, 30.0, 85, host_s=3.0)
    (figures,) = runner.camera_figures()
    assert figures.capture_fps == pytest.approx(30.0)
    assert figures.analysed_fps == pytest.approx(54 / 2.0)
    assert figures.analysed_fps <= figures.capture_fps


def test_a_camera_without_a_clock_is_timed_by_its_frames_arrival() -> None:
    stream = _ScriptedStreamMock()
    runner = SessionRunner(stream, status_out=io.StringIO())  # type: ignore[arg-type]
    stream.figures["cam"] = {**_header(10, 30.0, 10, host_s=5.0), "last_camera_ts": float("nan")}
    runner.camera_figures()
    stream.figures["cam"] = {**_header(30, 30.0, 30, host_s=6.0), "last_camera_ts": float("nan")}
    (figures,) = runner.camera_figures()
    assert figures.capture_fps == pytest.approx(20.0)  # 20 frames over 1 s of arrivals


def test_before_two_stamps_the_first_refresh_counts_frames_as_before() -> None:
    stream = _ScriptedStreamMock()
    runner = SessionRunner(stream, status_out=io.StringIO())  # type: ignore[arg-type]
    stream.figures["cam"] = {"captured": 0, "camera_gaps": 0, "last_host_ns": None}
    (figures,) = runner.camera_figures()
    assert figures.capture_fps == 0.0
    assert "cam:" in runner.status_lines()[0]
