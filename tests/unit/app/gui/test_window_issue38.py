"""Issue 38: the window a lab lives in all day (offscreen; the screen sizes are measured on a
real X display by tests/integration/test_window_fits_screen.py).

Each test names the point of the issue it covers. Real widgets, real settings files; where a
stream runs, real camera, pose worker and recorder processes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PyQt5.QtCore import QPoint
from PyQt5.QtWidgets import QAbstractSlider, QApplication, QLabel, QMessageBox, QTableWidget

from deeplabstream.app.display.overlay import name_anchor
from deeplabstream.app.gui.event_log import EVENT_COLUMNS, EventLogPanel
from deeplabstream.app.gui.fitting import ElidedLabel
from deeplabstream.app.gui.keypoint_plot import TEXT_COLOUR, KeypointPlot
from deeplabstream.app.gui.live_view import _trigger_names
from deeplabstream.app.gui.main_window import MAIN_SPLIT_KEY, MainWindow, initial_size
from deeplabstream.app.gui.plots import SessionPlots
from deeplabstream.app.gui.rig_panel import RigPanel
from deeplabstream.app.gui.session import Part
from deeplabstream.experiments.events import EVENT_COLUMNS as CSV_COLUMNS
from deeplabstream.experiments.triggers.geometry import Circle, Rectangle
from deeplabstream.live.processes.messages import EventView, ExperimentStatus, TriggerView
from deeplabstream.live.session.runner import CameraFigures
from tests.support.files import write_settings
from tests.support.open_window import ARENA, START_TIMEOUT_MS, close_window, open_window

# -- 2, 3: text that fits, banners that can be read and closed --------------------------------


def test_a_long_line_is_cut_with_its_whole_text_on_hover_never_widening(qtbot) -> None:
    """#2: one unwrapped line made the window 1709 px wide on a 1600 px screen."""
    label = ElidedLabel("")
    qtbot.addWidget(label)
    long_text = "the session folder is /data/" + "deep/" * 80 + "mouse12"
    label.setText(long_text)
    label.resize(300, 30)
    assert label.minimumSizeHint().width() <= 40
    assert label.text() == long_text and label.toolTip() == long_text
    assert label.is_cut() and label.elided().endswith("…")


def test_a_long_banner_shows_two_lines_a_show_all_button_and_its_dismiss(
    qtbot, window: MainWindow
) -> None:
    """#3: the red summary of ~9 lines had its Dismiss out of sight until scrolled to."""
    summary = "The session ended with errors:\n" + "\n".join(f"line {i}" for i in range(9))
    window.say.error(summary)
    QApplication.processEvents()
    banner = window.banner
    area = window.messages.viewport()
    dismiss = banner.button.mapTo(area, QPoint(0, 0))
    assert dismiss.y() >= 0 and dismiss.y() + banner.button.height() <= area.height()
    assert banner.show_all.isVisible() and banner.overflows()
    assert banner.full_text() == summary and banner.toolTip() == summary
    assert banner.label.height() <= banner.label.maximumHeight()
    banner.show_all.click()
    box = banner.whole_text_box
    assert isinstance(box, QMessageBox) and box.text() == summary
    box.close()
    window.say.error("Short")  # a short one: no Show all
    QApplication.processEvents()
    assert not banner.show_all.isVisible()


def test_banners_belong_to_their_session_and_go_with_the_next_start_stream(
    qtbot, window: MainWindow
) -> None:
    """#3, #9: the last session's summary, warnings and camera rows survived a new Start."""
    window.say.error("The session ended with errors:\nrecorder lost 12 frames")
    window.say.notice("Warning: frames are not the model's size")
    window.status_panel.show_cameras([CameraFigures("old_camera", 30.0, 10, 0, 0, None, 0, None)])
    assert window.status_panel.table.rowCount() == 1
    window.buttons[Part.STREAM].click()
    assert window.banner.isHidden() and window.info.isHidden()  # gone at the press
    assert window.status_panel.table.rowCount() == 0
    qtbot.waitUntil(lambda: window.controller.running(Part.STREAM), timeout=START_TIMEOUT_MS)
    cameras = {window.status_panel.table.item(row, 0).text()
               for row in range(window.status_panel.table.rowCount())}  # fmt: skip
    assert "old_camera" not in cameras


# -- 5: the Log's clock and name, and following ---------------------------------------------


def _status(events: tuple[EventView, ...], total: int) -> ExperimentStatus:
    return ExperimentStatus("x", "running", 0, None, 0, "", (), None, events, total, 10.0)


def test_the_log_shows_events_csvs_time_under_its_name(qtbot) -> None:
    """#5: the Log counted from the experiment's start (10.100) under the name events.csv uses
    for the stream's clock (77.333)."""
    panel = EventLogPanel()
    qtbot.addWidget(panel)
    panel.show_status(_status((EventView(77.333, "action", "box", "pulse", 1),), 1))
    table = panel.findChild(QTableWidget, "event_table")
    assert EVENT_COLUMNS[0] == CSV_COLUMNS[0] == "time_s"
    assert table.horizontalHeaderItem(0).text() == "time_s"
    assert table.item(0, 0).text() == "77.333"


def test_the_log_follows_new_events_unless_scrolled_back(qtbot) -> None:
    """#5: the Log stayed on rows 10.0-13.8 s of 73 events."""
    panel = EventLogPanel()
    panel.resize(500, 300)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    table = panel.events
    bar = table.verticalScrollBar()
    total = 0

    def add(count: int) -> None:
        nonlocal total
        events = tuple(
            EventView(float(total + i), "trigger", "r", "true", None) for i in range(count)
        )
        total += count
        panel.show_status(_status(events, total))
        QApplication.processEvents()

    for _ in range(8):
        add(10)
    assert bar.maximum() > 0 and bar.value() == bar.maximum()
    bar.triggerAction(QAbstractSlider.SliderPageStepSub)  # the user scrolls back to read
    qtbot.waitUntil(lambda: not panel.following)
    reading = bar.value()
    add(10)
    assert bar.value() == reading < bar.maximum()  # stays where the user reads
    bar.triggerAction(QAbstractSlider.SliderToMaximum)  # back at the newest row: follows again
    qtbot.waitUntil(lambda: panel.following)
    panel.hide()  # the Log tab not shown meanwhile
    add(40)
    panel.show()
    QApplication.processEvents()
    assert bar.value() == bar.maximum()
    last = table.rowAt(table.viewport().height() - 2)
    assert last in (table.rowCount() - 1, -1) or last >= table.rowCount() - 2


# -- 8, 9: the keypoint plot, region names, plot labels, the layout ---------------------------


def test_the_keypoint_plot_keeps_x_y_and_likelihood_per_camera_and_animal(qtbot) -> None:
    """#8: no plot of keypoint positions and likelihoods over time."""
    plot = KeypointPlot()
    qtbot.addWidget(plot)
    plot.show()
    keypoints = ("nose", "tail")
    for frame in range(50):
        animals = np.array(
            [[[frame, 10.0, 0.9], [frame + 5, 20.0, 0.3]], [[100.0, frame, 0.8], [0, 0, 0.1]]]
        )
        plot.add_pose("top", frame / 30, animals, keypoints, 0.5)
    times, values = plot.series("top", 1, "nose")
    assert len(times) == 50 and times[-1] == pytest.approx(49 / 30)
    assert values[-1].tolist() == [100.0, 49.0, 0.8]
    assert plot.camera.currentText() == "top" and plot.animal.count() == 2
    plot._changed = True
    plot.redraw()
    xs, ys = plot._curves["likelihood"][1].getData()
    assert len(xs) == 50 and ys[0] == pytest.approx(0.3)
    assert plot._threshold_line.value() == 0.5
    plot.clear()
    assert plot.series("top", 0, "nose")[0].size == 0


def test_plot_labels_are_dark_on_white(qtbot) -> None:
    """#9: the plots' labels were light grey on white."""
    plots = SessionPlots()
    qtbot.addWidget(plots)
    for plot in plots.plots.values():
        axis = plot.getAxis("left")
        assert axis.textPen().color().name() == TEXT_COLOUR
        assert TEXT_COLOUR in axis.labelStyle.get("color", "")


def test_region_names_are_written_on_their_top_edge_while_the_experiment_runs() -> None:
    """#9: region names vanished once the experiment started."""
    triggers = (
        TriggerView("left", False, (Circle(100, 120, 40),), "arena"),
        TriggerView("right", True, (Rectangle(300, 100, 400, 200),), None),
        TriggerView("elsewhere", False, (Circle(1, 1, 1),), "side"),
    )
    status = ExperimentStatus("x", "running", 0, None, 0, "", triggers)
    assert _trigger_names(status, "arena") == [(100.0, 80.0, "left"), (350.0, 100.0, "right")]
    assert name_anchor(Circle(10, 50, 5)) == (10.0, 45.0)
    assert _trigger_names(None, "arena") == []


def test_the_split_between_view_and_tabs_is_remembered(qtbot, tmp_path: Path) -> None:
    """#8: the live view took about a third of the window; now most, and as the user left it."""
    settings = write_settings(tmp_path, ARENA)
    first = open_window(qtbot, settings, tmp_path / "out", (1600, 1000))
    sizes = first.main_splitter.sizes()
    assert sizes[0] > sizes[1]  # the view takes most of the width at first
    total = sum(sizes)
    first.main_splitter.moveSplitter(total - 200, 1)  # the user gives the view even more
    moved = first.main_splitter.sizes()
    assert first.preferences.layout_state(MAIN_SPLIT_KEY) is not None
    close_window(qtbot, first)
    second = open_window(qtbot, settings, tmp_path / "out", (1600, 1000))
    assert second.main_splitter.sizes() == moved
    close_window(qtbot, second)


def test_what_start_will_run_has_no_blank_first_line(qtbot, window: MainWindow) -> None:
    """#9: the summary kept a blank first line (an empty problem line above it)."""
    rig = window.rig_panel
    assert rig.problems == []
    assert rig.findChild(QLabel, "rig_problems").isHidden()
    assert rig.findChild(QLabel, "rig_summary").text().startswith("camera arena:")


def test_the_window_opens_within_the_screen() -> None:
    """#2: at 1280x720 the window opened 1360x860, past the screen's edges."""
    screen = QApplication.primaryScreen()
    width, height = initial_size(screen)
    free = screen.availableGeometry()
    assert width <= free.width() and height <= free.height()


# -- 7: every camera kind by hand, 9: where a camera goes in the file -------------------------


def test_the_add_list_offers_every_camera_kind_by_hand(qtbot, tmp_path: Path) -> None:
    """#7, #9: the Add list offered only the simulated arena and a video file; a new camera
    was appended after [Session]; a removed one left blank lines."""
    settings = write_settings(
        tmp_path,
        ARENA + "[Camera side]\nSOURCE = synthetic\n\n[Session]\nANIMAL = m1\n",
    )
    rig = RigPanel(settings)
    qtbot.addWidget(rig)
    rig.wait_checked()
    choice = rig.camera_box.add_camera_choice
    labels = [choice.itemText(i) for i in range(choice.count())]
    assert any("OpenCV" in label for label in labels)
    assert any("Basler" in label for label in labels) and any("RealSense" in x for x in labels)
    usb = rig.camera_box.add_camera_by_hand("opencv", "2")
    basler = rig.camera_box.add_camera_by_hand("basler", "21234567")
    stream = rig.camera_box.add_camera_by_hand("opencv", "rtsp://10.0.0.5/live")
    assert rig.document.items(f"Camera {usb}") == {"SOURCE": "opencv", "DEVICE": "2"}
    assert rig.document.items(f"Camera {basler}") == {"SOURCE": "basler", "SERIAL": "21234567"}
    assert rig.document.get(f"Camera {stream}", "DEVICE") == "rtsp://10.0.0.5/live"
    with pytest.raises(ValueError, match="no camera kind"):
        rig.camera_box.add_camera_by_hand("firewire", "1")
    sections = rig.document.sections()
    assert sections.index(f"Camera {stream}") < sections.index("Session")
    rig.camera_box.remove_camera("side")
    text = rig.document.text()
    assert "\n\n\n" not in text
    assert text.index(f"[Camera {usb}]") > text.index("[Camera arena]")


# -- 6, 8: rates on the camera's clock, keypoints on the same clock, in a running stream -------


def test_rates_on_the_cameras_clock_and_keypoints_on_events_csvs_clock(
    qtbot, window: MainWindow
) -> None:
    """#6: a 30 fps camera showed 46 and 73 fps under load. #8: the keypoint plot fills from
    the running analysis, its times the camera's clock (as events.csv's time_s)."""
    window.buttons[Part.STREAM].click()
    qtbot.waitUntil(lambda: window.buttons[Part.ANALYSIS].isEnabled(), timeout=START_TIMEOUT_MS)
    window.buttons[Part.ANALYSIS].click()
    qtbot.waitUntil(lambda: window.controller.running(Part.ANALYSIS), timeout=START_TIMEOUT_MS)
    window.tabs.setCurrentWidget(window.keypoint_plot)
    plot = window.keypoint_plot
    qtbot.waitUntil(lambda: plot.series("arena", 0, "nose")[0].size >= 30, timeout=60_000)
    shown: list[float] = []

    def rates_shown() -> bool:
        item = window.status_panel.table.item(0, 1)
        if item is not None and window.view_side.camera_rates.capture_fps("arena") is not None:
            shown.append(float(item.text()))
        return len(shown) >= 3

    qtbot.waitUntil(rates_shown, timeout=60_000)
    # Frames k carry camera time k / 30 s: delivered frames per camera second cannot pass 30.
    assert all(0 < rate <= 30.05 for rate in shown), shown
    analysed = window.view_side.camera_rates.analysed_fps("arena")
    assert analysed is not None and analysed <= window.view_side.camera_rates.capture_fps("arena")
    times, values = plot.series("arena", 0, "nose")
    newest = window.view_side.live_view.newest_frames()["arena"]
    assert np.all(np.diff(times) >= 0)
    # The pose times are on the camera's clock: within a frame or two of the newest frame's.
    assert times[-1] <= newest.camera_timestamp + 0.2
    assert times[0] >= -0.1 and values.shape[1] == 3
    window.buttons[Part.STREAM].click()
    qtbot.waitUntil(lambda: not window.controller.streaming, timeout=START_TIMEOUT_MS)
