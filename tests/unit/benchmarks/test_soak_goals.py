"""The soak judges its goals: every loss, error and memory slope is a named miss with its figure."""

from __future__ import annotations

from benchmarks.soak import MIN_JUDGED_S, goal_misses, judged_span_s, slope_mb_per_10min


def _camera(captured: int, recorded: int, lost: int = 0, dropped: int = 0) -> dict:
    return {
        "frames_captured": captured,
        "frames_recorded": recorded,
        "frames_lost_in_recording": lost,
        "frames_dropped_by_camera": dropped,
    }


def _rss(minutes: float, mb_per_10min: float, every_s: float = 5.0) -> list[tuple[float, float]]:
    """RSS samples growing steadily, after a first sample far below (the warm-up)."""
    times = [every_s * i for i in range(int(minutes * 60 / every_s) + 1)]
    return [(t, 100.0 + mb_per_10min * t / 600 + (0 if t else -90)) for t in times]


def test_a_clean_soak_misses_nothing() -> None:
    info = {"cameras": {"left": _camera(600, 600)}, "errors": [], "exit_code": 0}
    misses, notes = goal_misses(info, {"pose": _rss(20, 0.2)})
    assert misses == [] and notes == []


def test_every_lost_frame_error_and_imbalance_is_a_miss_with_its_figure() -> None:
    info = {
        "cameras": {"left": _camera(600, 580, lost=20), "right": _camera(900, 890, dropped=3)},
        "errors": ["camera 'left': 20 of 600 frames captured while recording are not in it"],
        "exit_code": 1,
    }
    misses, _ = goal_misses(info, {})
    assert misses[0] == (
        "camera 'left': 20 frames lost in recording and 0 dropped by the camera, of 600 captured "
        "(goal: 0)"
    )
    assert misses[1].startswith("camera 'right': 0 frames lost in recording and 3 dropped")
    assert "recorded 890 + lost 0 is not the 900 captured" in misses[2]
    assert misses[3].startswith("session error: camera 'left'")
    assert len(misses) == 4  # the exit code is the errors': not counted twice


def test_memory_growth_is_judged_only_over_a_long_enough_stretch() -> None:
    growing = _rss(20, 2.5)
    assert abs(slope_mb_per_10min(growing) - 2.5) < 1e-6  # the warm-up sample is left out
    misses, _ = goal_misses({"cameras": {}, "errors": []}, {"pose": growing})
    assert misses == ["pose: RSS grew 2.50 MB per 10 min after warm-up (goal < 1)"]
    short = _rss(3, 2.5)
    assert judged_span_s(short) < MIN_JUDGED_S
    misses, notes = goal_misses({"cameras": {}, "errors": []}, {"pose": short})
    assert misses == [] and notes[0].startswith("pose: RSS slope 2.50 MB / 10 min over")
    assert "not judged" in notes[0]
