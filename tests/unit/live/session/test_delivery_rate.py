"""A camera below its FRAMERATE: warned once, with advice for its kind (issue 63 #4).

A video file that fell behind every 30 s was warned 19 times in one session, each time with
advice (WIDTH, HEIGHT, EXPOSURE) that means nothing to a file. The ring headers are written by
hand (stand-ins for CameraBranch) on the watch's own clock, set by the test: the frames come at
the rates the test chooses, whatever the machine's speed.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from deeplabstream.live.session.report import delivery
from deeplabstream.live.session.report.delivery import (
    ADVICE,
    SIMULATION_ADVICE,
    VIDEO_ADVICE,
    DeliveryWatch,
    advice_for,
)

S = 1_000_000_000


class Clock:
    """The watch's host clock, moved by the test."""

    def __init__(self) -> None:
        self.ns = 1000 * S

    def __call__(self) -> int:
        return self.ns


def _branch(source: str, live: bool) -> SimpleNamespace:
    header = {"captured": 0, "last_host_ns": 0, "last_frame_index": -1, "camera_gaps": 0}
    return SimpleNamespace(
        name="clip",
        opened=SimpleNamespace(paced=True, nominal_fps=25.0, live=live),
        ring=SimpleNamespace(header=header, stop_requested=False),
        ended=False,
        lost_after_ns=None,
        settings=SimpleNamespace(source=source),
    )


def _deliver(watch, branch, clock: Clock, fps: float, seconds: float) -> list:
    """Deliver frames at ``fps`` for ``seconds`` on the clock, looking after each; return news."""
    news = []
    header = branch.ring.header
    for _ in range(round(fps * seconds)):
        clock.ns += round(S / fps)
        header["captured"] += 1
        header["last_frame_index"] += 1
        header["last_host_ns"] = clock.ns
        news += watch.check([branch])
    return news


def test_a_video_that_falls_behind_again_and_again_is_warned_once_without_camera_advice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(delivery, "time", SimpleNamespace(perf_counter_ns=clock))
    watch = DeliveryWatch(clock.ns)
    branch = _branch("video", live=False)
    news = _deliver(watch, branch, clock, 25.0, 8.0)  # keeps its rate
    assert news == []
    for _ in range(6):  # behind for 10 s, then back for 20 s: six times in three minutes
        news += _deliver(watch, branch, clock, 12.0, 10.0)
        news += _deliver(watch, branch, clock, 25.0, 20.0)
    warnings = [item for item in news if item.level >= logging.WARNING]
    assert len(warnings) == 1, [item.live for item in warnings]
    (warning,) = warnings
    assert "below its FRAMERATE 25" in warning.live and warning.live.endswith(VIDEO_ADVICE)
    for word in ("EXPOSURE", "WIDTH", "HEIGHT"):
        assert word not in warning.live
    again = [item.live for item in news if item.level == logging.INFO and "again (" in item.live]
    assert len(again) == 5 and "6 times so far" in again[-1]
    # session.json keeps one warning with the totals, the video's advice with it.
    kept = [item.warning for item in news if item.warning is not None][-1]
    assert "6 time(s)" in kept and kept.endswith(VIDEO_ADVICE)
    assert watch.below_rate("clip") is None and watch.close([branch]) == []


def test_a_camera_is_warned_again_after_a_long_quiet_spell(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(delivery, "time", SimpleNamespace(perf_counter_ns=clock))
    watch = DeliveryWatch(clock.ns)
    branch = _branch("basler", live=True)
    news = _deliver(watch, branch, clock, 25.0, 8.0)
    news += _deliver(watch, branch, clock, 12.0, 10.0)
    news += _deliver(watch, branch, clock, 25.0, delivery.REWARN_AFTER_S + 10)
    news += _deliver(watch, branch, clock, 12.0, 10.0)
    warnings = [item.live for item in news if item.level >= logging.WARNING]
    assert len(warnings) == 2 and all(text.endswith(ADVICE) for text in warnings)


def test_the_advice_fits_the_kind_of_camera() -> None:
    assert advice_for("video", live=False) == VIDEO_ADVICE
    assert advice_for("synthetic", live=False) == SIMULATION_ADVICE
    assert "EXPOSURE" not in SIMULATION_ADVICE
    assert advice_for("basler", live=True) == ADVICE and "EXPOSURE" in ADVICE
    assert advice_for("my_lab_camera", live=False) == ADVICE  # a lab's camera: the general words
