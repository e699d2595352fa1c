"""Watching the experiment: the event log, the region table, the plots, the loss alarm, overlays.

Widgets are found by object name and fed synthetic statuses, figures and poses, offscreen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QCheckBox, QLabel, QPushButton, QTableWidget, QWidget

from deeplabstream.app.gui import event_log
from deeplabstream.app.gui.event_log import EventLogPanel
from deeplabstream.app.gui.live_view import LiveView
from deeplabstream.app.gui.loss_alarm import (
    RECORDER_LOST_TOO,
    RECORDING_KEEPS_ALL,
    SKIPPING_ADVICE,
    LossAlarm,
    LossBanner,
    LossThresholds,
)
from deeplabstream.app.gui.overlays import OverlayOptions, OverlayToggles
from deeplabstream.app.gui.plots import SessionPlots
from deeplabstream.live.processes.messages import (
    EventView,
    ExperimentStatus,
    PoseReady,
    PoseRecord,
    TriggerView,
)
from deeplabstream.live.session.analysis import Analysis
from deeplabstream.live.session.runner import CameraFigures

# --------------------------------------------------------------------------------------------------
# The event log and the regions
# --------------------------------------------------------------------------------------------------


def _status(
    events: tuple[EventView, ...] = (),
    total: int | None = None,
    triggers: tuple[TriggerView, ...] = (),
    elapsed_s: float = 10.0,
    trial: int | None = None,
    error: str | None = None,
) -> ExperimentStatus:
    return ExperimentStatus(
        name="reward_on_dwell",
        state="in_trial" if trial else "waiting",
        trials=trial or 0,
        trial=trial,
        actions=0,
        last_event="",
        triggers=triggers,
        error=error,
        new_events=events,
        events_total=len(events) if total is None else total,
        elapsed_s=elapsed_s,
    )


def _events(first: int, count: int) -> tuple[EventView, ...]:
    return tuple(
        EventView(0.5 * i, "trigger", "dwelling", "true" if i % 2 else "false", None)
        for i in range(first, first + count)
    )


def _cells(table: QTableWidget, row: int) -> list[str]:
    return [table.item(row, column).text() for column in range(table.columnCount())]


@pytest.fixture
def log_panel(qtbot) -> EventLogPanel:
    panel = EventLogPanel()
    qtbot.addWidget(panel)
    return panel


def test_the_log_appends_each_statuses_new_events_newest_at_the_bottom(log_panel) -> None:
    table = log_panel.findChild(QTableWidget, "event_table")
    assert log_panel.objectName() == "event_log" and table.rowCount() == 0
    start = EventView(0.0, "start", "reward_on_dwell", "water for staying", None)
    log_panel.show_status(_status((start,)))
    second = _status(
        (
            EventView(2.0, "trigger", "dwelling", "true", None),
            EventView(2.0, "trial_start", "reward", "", 1),
            EventView(2.0, "action", "water_valve", "pulse channel=0", 1, animal="2"),
        ),
        total=4,
        trial=1,
    )
    log_panel.show_status(second)
    log_panel.show_status(second)  # the same status twice: nothing added
    log_panel.show_status(None)  # no experiment now: what is shown stays
    assert table.rowCount() == 4
    assert _cells(table, 0) == ["0.000", "start", "reward_on_dwell", "water for staying", "", ""]
    # the animal that made it (events.csv's animal column), with a multi-animal model
    assert _cells(table, 3) == ["2.000", "action", "water_valve", "pulse channel=0", "1", "2"]
    header = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert header == list(event_log.EVENT_COLUMNS)
    assert header[-1] == "animal"
    summary = log_panel.findChild(QLabel, "trial_summary").text()
    assert "trial 1 in progress" in summary and "4 events" in summary
    assert log_panel.received == 4 and log_panel.missed == 0


def test_the_log_counts_events_it_never_received_and_caps_its_rows(
    log_panel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_log, "MAX_ROWS", 10)
    table = log_panel.findChild(QTableWidget, "event_table")
    log_panel.show_status(_status(_events(0, 6)))
    log_panel.show_status(_status(_events(20, 4), total=24))  # 14 events never came
    assert log_panel.missed == 14
    log_panel.show_status(_status(_events(24, 5), total=29))
    assert table.rowCount() == 10
    assert _cells(table, 9)[0] == f"{0.5 * 28:.3f}"  # the newest stays, at the bottom
    assert _cells(table, 0)[0] == f"{0.5 * 5:.3f}"  # the 5 oldest rows went
    note = log_panel.findChild(QLabel, "event_log_note").text()
    assert "5 older rows removed" in note and "14 events not received" in note


def test_clear_and_a_new_experiment_start_an_empty_log(log_panel) -> None:
    table = log_panel.findChild(QTableWidget, "event_table")
    log_panel.show_status(_status(_events(0, 5)))
    log_panel.clear()
    assert table.rowCount() == 0 and log_panel.received == 0
    assert log_panel.findChild(QLabel, "trial_summary").text() == "no experiment"
    log_panel.show_status(_status(_events(0, 2)))  # nothing of the last one is carried over
    assert table.rowCount() == 2 and log_panel.missed == 0
    log_panel.show_status(_status(_events(2, 6), total=8))
    log_panel.show_status(_status(_events(0, 1), total=1))  # counting from zero: another run
    assert table.rowCount() == 1 and log_panel.missed == 0


def test_the_region_table_shows_entries_time_and_share(log_panel) -> None:
    triggers = (
        TriggerView("dwelling", True, (), "top", entries=3, seconds_active=12.5),
        TriggerView("left_zone", False, (), None, entries=0, seconds_active=0.0),
    )
    log_panel.show_status(_status(triggers=triggers, elapsed_s=50.0))
    regions = log_panel.findChild(QTableWidget, "region_table")
    assert regions.rowCount() == 2
    assert _cells(regions, 0) == ["dwelling", "top", "3", "12.5", "25.0"]
    assert _cells(regions, 1) == ["left_zone", "any", "0", "0.0", "0.0"]
    assert regions.item(0, 0).font().bold() and not regions.item(1, 0).font().bold()


def test_an_experiment_error_turns_the_trial_line_red(log_panel) -> None:
    log_panel.show_status(_status(error="experiment stopped: device 'box': unplugged"))
    summary = log_panel.findChild(QLabel, "trial_summary")
    assert "unplugged" in summary.text() and "b71c1c" in summary.styleSheet()


# --------------------------------------------------------------------------------------------------
# The plots
# --------------------------------------------------------------------------------------------------


def _figures(
    name: str,
    second: int,
    fps: float = 30.0,
    skipped_per_s: int = 0,
    dropped_per_s: int = 0,
    latency: tuple[float, float] | None = (20.0, 35.0),
    analysed: float | None = 29.0,
) -> CameraFigures:
    return CameraFigures(
        name=name,
        capture_fps=fps,
        captured=int(fps * second),
        recorded=int(fps * second),
        dropped=dropped_per_s * second,
        analysed_fps=analysed,
        skipped=skipped_per_s * second,
        latency_ms=latency,
    )


def test_the_plots_keep_a_series_per_camera_and_quantity(qtbot) -> None:
    plots = SessionPlots()
    qtbot.addWidget(plots)
    assert plots.objectName() == "session_plots"
    for name in ("plot_rate", "plot_latency", "plot_skipped", "plot_dropped"):
        assert plots.findChild(QWidget, name) is not None
    for second in range(1, 6):
        side_latency = None if second < 3 else (40.0, 80.0)  # no poses yet at first
        plots.add(
            [
                _figures("top", second, skipped_per_s=3, dropped_per_s=1),
                _figures("side", second, fps=60.0, latency=side_latency, analysed=None),
            ],
            float(second),
        )
    assert plots.cameras() == ["top", "side"]
    times, fps = plots.series("top", "capture_fps")
    assert times.tolist() == [1, 2, 3, 4, 5] and fps.tolist() == [30.0] * 5
    _, skipped = plots.series("top", "skipped_per_s")
    assert np.isnan(skipped[0]) and skipped[1:].tolist() == [3.0] * 4  # a rate, not the count
    _, dropped = plots.series("top", "dropped_per_s")
    assert dropped[1:].tolist() == [1.0] * 4
    _, p99 = plots.series("side", "latency_p99_ms")
    assert np.isnan(p99[:2]).all() and p99[2:].tolist() == [80.0] * 3
    _, analysed = plots.series("side", "analysed_fps")
    assert np.isnan(analysed).all()
    x, y = plots.curve("top", "latency_p50_ms").getData()
    assert x.tolist() == [1, 2, 3, 4, 5] and y.tolist() == [20.0] * 5
    with pytest.raises(KeyError, match="quantity"):
        plots.series("top", "fps")
    assert plots.series("nobody", "capture_fps")[0].size == 0


def test_the_plots_forget_points_older_than_their_history_and_clear(qtbot) -> None:
    plots = SessionPlots(history_s=3.0)
    qtbot.addWidget(plots)
    for second in range(1, 11):
        plots.add([_figures("top", second)], float(second))
    times, _ = plots.series("top", "capture_fps")
    assert times.tolist() == [7, 8, 9, 10]
    plots.show_alerts(["dropped"])
    assert plots.loud_plots == {"plot_dropped"}
    plots.show_alerts([])
    assert plots.loud_plots == set()
    plots.clear()
    assert plots.cameras() == [] and plots.series("top", "capture_fps")[0].size == 0
    plots.add([_figures("top", 1)], 100.0)  # a new session: curves again
    assert plots.curve("top", "capture_fps").getData()[0].tolist() == [100.0]


def test_a_counter_that_goes_back_starts_its_rate_again(qtbot) -> None:
    plots = SessionPlots()
    qtbot.addWidget(plots)
    plots.add([_figures("top", 10, dropped_per_s=5)], 1.0)
    plots.add([_figures("top", 1, dropped_per_s=5)], 2.0)  # a new stream's counters
    assert plots.series("top", "dropped_per_s")[1][1] == 0.0


# --------------------------------------------------------------------------------------------------
# The loss alarm
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Counters:
    name: str
    captured: int
    dropped: int = 0
    skipped: int = 0
    record_lost: int = 0


def test_dropped_frames_above_one_percent_in_ten_seconds_raise_an_alert() -> None:
    alarm = LossAlarm()
    for second in range(11):  # 30 fps, 2 frames dropped over 10 s: 0.66 %, quiet
        assert alarm.update([_Counters("top", 30 * second, dropped=second // 5)], second) == []
    assert not alarm.loud
    raised = alarm.update([_Counters("top", 330, dropped=6)], 11.0)  # 4 more in a second
    assert [(a.camera, a.figure) for a in raised] == [("top", "dropped")]
    assert "camera 'top'" in alarm.message() and "dropped" in alarm.message()


def test_an_alert_latches_until_acknowledged_and_is_raised_once() -> None:
    alarm = LossAlarm(LossThresholds(window_s=5.0))
    alarm.update([_Counters("top", 0)], 0.0)
    assert len(alarm.update([_Counters("top", 30, dropped=5)], 1.0)) == 1
    for second in range(2, 30):  # no more losses: the alert stays (it latched)
        assert alarm.update([_Counters("top", 30 * second, dropped=5)], float(second)) == []
    assert alarm.loud and alarm.alerts[0].time_s == 1.0
    alarm.acknowledge()
    assert not alarm.loud and alarm.message() == ""
    assert alarm.update([_Counters("top", 900, dropped=5)], 30.0) == []  # old losses stay quiet
    assert len(alarm.update([_Counters("top", 930, dropped=9)], 31.0)) == 1  # new ones do not


def test_any_recorder_loss_and_heavy_skipping_are_loud() -> None:
    alarm = LossAlarm()
    alarm.update([_Counters("top", 0), _Counters("side", 0)], 0.0)
    raised = alarm.update(
        [
            _Counters("top", 3000, record_lost=1),  # 1 of 3000: only the recorder
            _Counters("side", 300, skipped=120),  # 40 % skipped: normal for a slower model
        ],
        10.0,
    )
    assert [(a.camera, a.figure) for a in raised] == [("top", "recorder")]
    raised = alarm.update([_Counters("side", 600, skipped=320)], 20.0)  # 200 of 300
    assert [(a.camera, a.figure, a.lost, a.frames) for a in raised] == [
        ("side", "skipped", 200, 300)
    ]


def test_recorder_losses_come_first_each_frame_counted_once_under_a_headline() -> None:
    """Issue 63 #2: "the recorder lost 228 frames" was seen only under Show all (a line below
    the camera's drops), and the same frames were said as "dropped" and "lost"."""
    alarm = LossAlarm()
    alarm.update([_Counters("top", 0), _Counters("side", 0)], 0.0)
    alarm.update(
        [
            _Counters("top", 300, dropped=40, skipped=200),  # the camera's own drops
            _Counters("side", 300, record_lost=228),  # the recorder's: never also "dropped"
        ],
        10.0,
    )
    assert [(a.camera, a.figure) for a in alarm.alerts] == [
        ("side", "recorder"),
        ("top", "dropped"),
        ("top", "skipped"),
    ]
    headline, first, *rest = alarm.message().split("\n")
    assert headline.startswith("Losses: the recorder lost frames (the video has holes) ('side')")
    assert "dropped" in headline and headline.index("recorder") < headline.index("dropped")
    assert first.startswith("camera 'side': the recorder lost 228 frames")
    assert "228" not in "\n".join(rest)  # said once, by the recorder
    assert "40 frames dropped of 340" in rest[0]


def test_after_the_stop_no_loss_says_in_the_last_10_s() -> None:
    """Issue 63 #5: after Stop the loss lines still said "in the last 10 s"."""
    alarm = LossAlarm()
    alarm.update([_Counters("top", 0)], 0.0)
    alarm.update([_Counters("top", 300, record_lost=12)], 10.0)
    assert "in the last 10 s" in alarm.message()
    alarm.end_stream()
    assert alarm.loud  # still there until acknowledged
    assert "in the last" not in alarm.message() and "not since" not in alarm.message()
    assert "in the 10 s up to 0:00:10 of the stream" in alarm.message()


def test_the_skipping_advice_is_the_loss_bars_last_line_and_never_contradicts_it(qtbot) -> None:
    """Issue 63 #2: "Analysis skipping costs the recording nothing" stood beside the recorder's
    losses."""
    banner = LossBanner()
    qtbot.addWidget(banner)
    banner.recording = True
    banner.update_figures([_Counters("top", 0)], 0.0)
    banner.update_figures([_Counters("top", 300, skipped=240)], 10.0)
    assert banner.full_text().endswith(f"{SKIPPING_ADVICE} {RECORDING_KEEPS_ALL}")
    banner.update_figures([_Counters("top", 600, skipped=480, record_lost=9)], 20.0)
    advice = banner.full_text().split("\n")[-1]
    assert advice == f"{SKIPPING_ADVICE} {RECORDER_LOST_TOO}"
    assert "costs the recording nothing" not in banner.full_text()
    assert "missing from the video" in advice
    banner.acknowledge()
    assert banner.isHidden() and banner.full_text() == ""  # the advice goes with its losses


def test_camera_figures_without_record_lost_and_a_new_stream() -> None:
    alarm = LossAlarm()
    alarm.update([_figures("top", 100, dropped_per_s=0)], 0.0)
    alarm.update([_figures("top", 2, dropped_per_s=0)], 1.0)  # counters went back: a new stream
    assert not alarm.loud
    assert alarm.update([_figures("top", 3, dropped_per_s=1)], 2.0)[0].figure == "dropped"


def test_the_banner_shows_the_alerts_until_acknowledged(qtbot) -> None:
    banner = LossBanner()
    qtbot.addWidget(banner)
    banner.update_figures([_Counters("top", 0)], 0.0)
    assert banner.isHidden()
    banner.update_figures([_Counters("top", 30, dropped=3)], 1.0)
    assert not banner.isHidden()
    assert "top" in banner.findChild(QLabel, "loss_message").text()
    banner.update_figures([_Counters("top", 60, dropped=3)], 2.0)
    assert not banner.isHidden()  # stays visible
    with qtbot.waitSignal(banner.acknowledged):
        qtbot.mouseClick(banner.findChild(QPushButton, "acknowledge_losses"), Qt.LeftButton)
    assert banner.isHidden() and not banner.alarm.loud


# --------------------------------------------------------------------------------------------------
# The trail and the heatmap in the live view
# --------------------------------------------------------------------------------------------------


def test_the_toggles_set_the_options(qtbot) -> None:
    options = OverlayOptions()
    toggles = OverlayToggles(options)
    qtbot.addWidget(toggles)
    with qtbot.waitSignal(toggles.changed):
        toggles.findChild(QCheckBox, "show_trail").setChecked(True)
    assert options.show_trail and not options.show_heatmap
    toggles.findChild(QCheckBox, "show_heatmap").setChecked(True)
    assert options.show_heatmap
    fresh = OverlayOptions()
    toggles.use(fresh)  # a new live view takes the boxes as they are
    assert fresh.show_trail and fresh.show_heatmap
    with qtbot.waitSignal(toggles.reset_requested):
        qtbot.mouseClick(toggles.findChild(QPushButton, "reset_overlays"), Qt.LeftButton)


KEYPOINTS = ("nose", "body_center", "tail_base")


class _PoseReader:
    def __init__(self) -> None:
        self.records: list[PoseRecord] = []

    def read_available(self) -> list[PoseRecord]:
        records, self.records = self.records, []
        return records


class _FrameReader:
    def poll(self) -> bool:
        return False

    def close(self) -> None:
        pass


class _Stream:
    camera_names = ("top",)

    def __init__(self) -> None:
        ready = PoseReady({}, KEYPOINTS, (("nose", "body_center"),))
        self.analysis: Analysis | None = Analysis(None, None, _PoseReader(), ready, {0: "top"})  # type: ignore[arg-type]
        self.pose = self  # the stand-in is its own pose part (LiveSession.pose) too

    def display_reader(self, name: str) -> _FrameReader:
        return _FrameReader()

    def likelihood_threshold(self, name: str) -> float:
        return 0.5


def _pose(frame: int, x: float, y: float, likelihood: float = 0.9) -> PoseRecord:
    pose = np.array([[x + 20, y, 0.9], [x, y, likelihood], [x - 20, y, 0.9]], np.float32)
    host_ns = 10**12 + frame * 33_333_333
    return PoseRecord(0, frame, host_ns, host_ns, host_ns + 5_000_000, frame, pose)


def test_the_live_view_feeds_trail_and_heatmap_from_every_pose_and_draws_them(qtbot) -> None:
    stream = _Stream()
    view = LiveView(stream)  # type: ignore[arg-type]
    qtbot.addWidget(view)
    frame = np.zeros((240, 320, 3), np.uint8)
    view._annotated("top", frame, None, False)  # the first frame: it starts listening
    analysis = stream.analysis
    assert analysis is not None and view._on_pose in analysis.pose_listeners
    reader = analysis.reader
    reader.records = [_pose(i, 100.0 + 2 * i, 120.0) for i in range(30)]  # type: ignore[attr-defined]
    reader.records.append(_pose(30, 200.0, 120.0, likelihood=0.1))  # type: ignore[attr-defined]
    analysis.drain()
    (trail,), occupancy = view.trails["top"], view.occupancy["top"]
    assert len(trail) == 31 and np.isnan(trail.points()[-1, 1])  # unseen: a break
    assert occupancy.total == 30  # below the threshold: not counted
    assert trail.points()[0, 1] == 100.0  # body_center, not the nose
    plain = view._annotated("top", frame, None, False)
    assert not plain[120, 130].any()  # both toggles off: only the newest pose (x 180 to 220)
    view.overlays.show_heatmap = True
    heat = view._annotated("top", frame, None, False)
    assert heat[120, 130].any() and not heat[20, 20].any()
    view.overlays.show_heatmap, view.overlays.show_trail = False, True
    trail_drawn = view._annotated("top", frame, None, False)
    assert trail_drawn[120, 130].any() and not trail_drawn[200, 130].any()
    view.reset_overlays()
    assert view.trails == {} and view.occupancy == {}
    view.stop_listening()
    assert analysis.pose_listeners == []


def test_several_animals_each_get_a_trail_in_their_identitys_colour(qtbot) -> None:
    from deeplabstream.live.processes.messages import CameraModel
    from deeplabstream.outputs.pose.drawing import identity_colour

    stream = _Stream()
    skeleton = (("nose", "body_center"),)
    cameras = {"top": CameraModel(KEYPOINTS, skeleton, {}, 2)}
    ready = PoseReady({}, KEYPOINTS, skeleton, cameras, len(KEYPOINTS), 2)
    stream.analysis = Analysis(None, None, _PoseReader(), ready, {0: "top"})  # type: ignore[arg-type]
    view = LiveView(stream)  # type: ignore[arg-type]
    qtbot.addWidget(view)
    frame = np.zeros((240, 320, 3), np.uint8)
    view._annotated("top", frame, None, False)
    analysis = stream.analysis
    assert analysis is not None
    records = []
    for i in range(20):
        first, second = _pose(i, 60.0 + 2 * i, 60.0), _pose(i, 60.0 + 2 * i, 180.0)
        animals = np.stack([first.pose, second.pose])
        records.append(PoseRecord(0, i, first.host_timestamp_ns, first.picked_up_ns,
                                  first.ready_ns, i, first.pose, animals))  # fmt: skip
    analysis.reader.records = records  # type: ignore[attr-defined]
    analysis.drain()
    trails = view.trails["top"]
    assert len(trails) == 2 and all(len(trail) == 20 for trail in trails)
    assert view.occupancy["top"].total == 40  # every animal counts
    view.overlays.show_trail = True
    drawn = view._annotated("top", frame, None, False)
    # The oldest stretch of each trail (x 60 to 80), away from the newest poses (x 78 to 118).
    assert tuple(drawn[60, 65]) != tuple(drawn[180, 65])
    assert drawn[60, 65].any() and drawn[180, 65].any()
    assert identity_colour(0) != identity_colour(1)


def test_a_failing_pose_listener_is_dropped_and_the_poses_go_on() -> None:
    stream = _Stream()
    analysis = stream.analysis
    assert analysis is not None
    got: list[int] = []

    def broken(camera: str, record: PoseRecord) -> None:
        raise RuntimeError("a display bug")

    analysis.pose_listeners += [broken, lambda camera, record: got.append(record.frame_index)]
    analysis.reader.records = [_pose(0, 10, 10), _pose(1, 11, 10)]  # type: ignore[attr-defined]
    analysis.drain()
    assert got == [0, 1] and broken not in analysis.pose_listeners
    assert analysis.latest["top"].frame_index == 1
