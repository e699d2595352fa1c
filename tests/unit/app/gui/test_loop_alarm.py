"""The loss alarm also says when the loop is late (deadline misses) or stalled."""

from __future__ import annotations

from deeplabstream.app.gui.loss_alarm import LossAlarm
from deeplabstream.app.gui.status_panel import CAMERA_COLUMNS, camera_row
from deeplabstream.live.session.runner import CameraFigures


def figures(captured: int, analysed: int, late: int, stalled_s: float | None = None):
    return CameraFigures(
        name="arena", capture_fps=30.0, captured=captured, recorded=0, dropped=0,
        analysed_fps=2.0, skipped=captured - analysed, latency_ms=(20.0, 30.0),
        analysed=analysed, late=late, stalled_s=stalled_s, loop_latency_ms=(520.0, 600.0),
    )  # fmt: skip


def test_late_frames_above_the_tolerance_raise_a_latched_alert():
    alarm = LossAlarm()
    assert alarm.update([figures(0, 0, 0)], 0.0) == []
    assert alarm.update([figures(300, 295, 2)], 10.0) == []  # 2 late: fewer than 3
    (alert,) = alarm.update([figures(600, 590, 20)], 20.0)
    assert alert.figure == "late" and alert.lost == 18
    assert (
        alert.message
        == "camera 'arena': 18 of 295 analysed frames missed the loop's deadline in the last 10 s"
    )


def test_a_stalled_analysis_raises_an_alert_and_shows_as_stalled_in_the_table():
    alarm = LossAlarm()
    alarm.update([figures(0, 0, 0)], 0.0)
    stalled = figures(150, 60, 0, stalled_s=4.2)
    alerts = {alert.figure: alert for alert in alarm.update([stalled], 5.0)}
    assert "analysis stalled for 4.2 s" in alerts["stalled"].message  # and "skipped": 90 of 150
    row = dict(zip(CAMERA_COLUMNS, camera_row(stalled), strict=True))
    assert row["latency p50/p99 ms"] == "STALLED 4 s"  # never the last latency of a stopped loop
    row = dict(zip(CAMERA_COLUMNS, camera_row(figures(150, 60, 7)), strict=True))
    assert row["latency p50/p99 ms"] == "520.0 / 600.0 (loop)" and row["late"] == "7"
