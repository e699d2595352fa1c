"""Issue 63, the window: clicks while a part starts, a session's summary after Stop, room on a
laptop's screen (names on regions, drop-downs, the Log tab, the camera table).

Real widgets offscreen (pytest-qt); the real main window where the window's own wiring is what
is tested. Geometry on a real X display is tests/integration/test_window_fits_screen.py's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt5.QtCore import QPointF
from PyQt5.QtWidgets import QApplication, QComboBox, QWidget

from deeplabstream.app.display.overlay import name_anchor
from deeplabstream.app.gui.event_log import EventLogPanel
from deeplabstream.app.gui.fitting import narrow_choice
from deeplabstream.app.gui.live_view import NAME_BELOW_EDGE_PX, name_boxes
from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.messages import WARNING_COLOURS
from deeplabstream.app.gui.preferences import STATE_ENV
from deeplabstream.app.gui.region_drawing import handles
from deeplabstream.app.gui.session import Part
from deeplabstream.app.gui.status_panel import camera_row
from deeplabstream.core.device_lock import LOCK_ENV
from deeplabstream.core.fault_hooks import HOLD_DIR_VARIABLE, HOLD_VARIABLE, RELEASE_FILE
from deeplabstream.experiments.triggers.geometry import Circle, Rectangle
from deeplabstream.live.processes.messages import ExperimentStatus, TriggerView
from deeplabstream.live.session.runner import CameraFigures
from tests.support.files import write_settings
from tests.support.open_window import module_window

ARENA = "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\n"


@pytest.fixture(scope="module")
def shared_window(qapp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MainWindow]:
    """One window for the tests that start nothing (opening one takes seconds)."""
    yield from module_window(tmp_path_factory, "window_issue63", ARENA, (1366, 696))


@pytest.fixture
def window(qtbot, shared_window: MainWindow) -> Iterator[MainWindow]:
    """The shared window with no message and nothing waiting."""
    yield shared_window
    shared_window.queue.clear()
    shared_window.controller.busy = None
    shared_window.forget_last_session()
    shared_window.controller.changed.emit()


# -- 3: a click while a part starts or stops is never lost ---------------------------------------


def test_a_click_while_a_part_starts_is_queued_then_run_or_refused_in_sight(
    window: MainWindow,
) -> None:
    """Issue 63 #3: Start Recording greyed every button for seconds and a Start Experiment
    clicked then was lost without a word. Here the stream is starting (a task in progress, set
    as the controller sets it): Start Recording stays usable, its click waits, is said beside the
    buttons, and once the start is over it runs, or (the stream failed to start) the window
    says why it was not run, until dismissed."""
    controller, recording = window.controller, window.buttons[Part.RECORDING]
    controller.busy = "starting stream"
    controller.changed.emit()
    assert recording.isEnabled() and "once stream has started" in recording.toolTip()
    recording.click()
    assert window.queue.text() == "Start Recording"
    assert "Start Recording: queued, it runs once stream has started" in window.info.full_text()
    assert window.busy_label.text() == "starting stream...; then Start Recording"
    recording.click()  # a second click takes it back
    assert window.queue.clicks == [] and "no longer queued" in window.info.full_text()
    recording.click()
    controller.busy = None  # the start failed: no stream
    controller.changed.emit()
    QApplication.processEvents()
    assert window.queue.clicks == []
    said = window.info.full_text()
    assert "Start Recording, clicked while starting stream, was not run: press Start Stream" in said
    assert window.info.colours == WARNING_COLOURS and window.info.staying  # until dismissed


def test_start_and_stop_buttons_keep_their_width(window: MainWindow) -> None:
    """Issue 63 #1: "Start" -> "Stop" -> "Cancel" changed a button's width and moved the ones
    beside it."""
    analysis = window.buttons[Part.ANALYSIS]
    width = analysis.width()
    for text in ("Stop Analysis", "Cancel Analysis", "Start Analysis"):
        analysis.setText(text)
        QApplication.processEvents()
        assert analysis.width() == width


# -- 5: after Stop, the summary in two lines, verify's verdict above it ---------------------------


def test_the_summary_stays_in_two_lines_and_verify_never_replaces_it(window: MainWindow) -> None:
    summary = "\n".join(
        [
            "Stopped by the user: the recorder lost 12 frames of 'arena' (its video has holes)",
            "Session folder: /lab/sessions/2026-11-24_10-15-02_mouse12",
            "  arena: 9000 frames captured (30.00 fps), 8988 recorded + 12 lost in recording",
            "  arena: 8000 frames analysed (26.7 fps), 1000 skipped",
        ]
    )
    window.say.summary(summary, warning=True)
    QApplication.processEvents()
    label = window.info.label
    assert label.height() <= label.lines_height(2) and window.info.show_all.isVisible()
    assert "recorder lost 12 frames" in label.text().split("\n")[0]  # the first line: in sight
    window._show_verdict("Verify: the session agrees with its recording")
    lines = window.info.full_text().split("\n")
    assert lines[0] == "Verify: the session agrees with its recording"
    assert "\n".join(lines[1:]) == summary  # still there, whole


# -- 6: room on a laptop's screen -----------------------------------------------------------------


def test_region_names_sit_under_their_top_edges_clear_of_handles_and_of_each_other(qtbot) -> None:
    """Issue 63 #6: names covered a circle's handles; nested regions' names covered each other."""
    zone, centre = Circle(320, 240, 150), Circle(320, 240, 50)
    touching = Rectangle(250, 88, 390, 200)  # its top edge just above the zone's
    shapes = {"zone": zone, "centre": centre, "zone_top": touching}
    widget = QWidget()
    qtbot.addWidget(widget)
    names = [(QPointF(*name_anchor(shape)), name) for name, shape in shapes.items()]
    boxes = name_boxes(widget.fontMetrics(), names)
    for index, box in enumerate(boxes):
        for other in boxes[index + 1 :]:
            assert not box.intersects(other), (box, other)
        assert box.top() >= names[index][0].y() + NAME_BELOW_EDGE_PX  # under its own edge
    for shape, box in zip(shapes.values(), boxes, strict=True):
        for x, y in handles(shape):  # a handle's square (8 px) stays free
            assert not box.intersects(box.__class__(x - 4, y - 4, 8, 8)), (shape, box)


def test_a_narrow_drop_downs_list_shows_its_longest_item_whole(qtbot) -> None:
    """Issue 63 #6: the Rules drop-down's rules were cut at its edge."""
    choice = narrow_choice(QComboBox())
    qtbot.addWidget(choice)
    rule = "zone_entry_with_a_long_name: when zone becomes true, do light, start a trial"
    choice.addItems(["short", rule])
    choice.show()
    assert choice.width() < choice.fontMetrics().horizontalAdvance(rule)  # the box is narrow
    choice.showPopup()
    view = choice.view()
    qtbot.waitUntil(lambda: view.isVisible())
    assert view.window().width() >= view.fontMetrics().horizontalAdvance(rule)
    choice.hidePopup()


def test_the_log_tab_gives_its_height_to_the_events(qtbot) -> None:
    """Issue 63 #6: the events showed 1-4 rows beside an empty region table 160 px tall."""
    panel = EventLogPanel()
    qtbot.addWidget(panel)
    panel.resize(600, 400)
    panel.show()
    triggers = tuple(TriggerView(name, False, (), None, 0, 0.0) for name in ("a", "b", "c"))
    panel.show_status(ExperimentStatus("x", "running", None, 0, 0, "", triggers, "", (), 0, 1.0))
    QApplication.processEvents()
    row = panel.events.verticalHeader().defaultSectionSize()
    assert row <= panel.fontMetrics().height() + 8  # one line of text, not 30 px
    regions = panel.regions
    assert regions.height() <= regions.horizontalHeader().height() + 3 * row + 4  # its rows
    assert panel.events.viewport().height() >= 0.5 * panel.height()  # most of the tab


def test_the_camera_table_says_below_framerate_and_the_recorders_losses_apart() -> None:
    """Issue 63 #2, #4: the table said "dropped 608" (the recorder's losses in it) where the
    summary said "0 dropped by the camera", and "capture fps 25.0" beside "below its FRAMERATE"."""
    figures = CameraFigures(
        "clip", 21.4, 900, 672, 0, None, 0, None, record_lost=228, below_framerate=25.0
    )
    cells = dict(zip(("camera", "capture", "dropped", "recorded"), _cells(figures), strict=True))
    assert cells == {
        "camera": "clip",
        "capture": "21.4 (below 25)",
        "dropped": "0",
        "recorded": "672 + 228 lost",
    }


def _cells(figures: CameraFigures) -> list[str]:
    row = camera_row(figures)
    return [row[0], row[1], row[4], row[7]]


# -- 3 and 8, on a real stream ---------------------------------------------------------------------

EXPERIMENT = (
    "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nWIDTH = 320\nHEIGHT = 240\n"
    "[Experiment]\nNAME = ExampleExperiment\n[Device stimulus_box]\nTYPE = log\n"
)
START_TIMEOUT_MS = 120_000


def _off_rows(events: Path) -> list[list[str]]:
    """The experiment's switch-off rows of ``events.csv`` (its stop's "off" commands)."""
    if not events.is_file():
        return []
    rows = [line.split(",") for line in events.read_text().splitlines()[1:]]
    return [row for row in rows if row[1] == "action" and row[3].startswith("off ")]


@pytest.mark.slow
def test_a_start_clicked_while_recording_starts_runs_and_stop_switches_off_first(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 63 #3: while Start Recording started its recorders every button was grey (Stop
    Stream too) and a Start Experiment clicked then was lost: the session never ran its
    experiment. Issue 63 #8: the experiment's two "off" commands went out 16.4 s after Stop,
    after the cameras, the recorders and the pose files had finished.

    The stream's stop is held at its start (``stream-stop``, core/fault_hooks.py) until the
    test has read events.csv: the "off" rows are there, acknowledged, before any camera stops.
    """
    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "instance.lock"))
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "window.ini"))
    holds = tmp_path / "holds"
    holds.mkdir()
    monkeypatch.setenv(HOLD_VARIABLE, "stream-stop")
    monkeypatch.setenv(HOLD_DIR_VARIABLE, str(holds))
    window = MainWindow(write_settings(tmp_path, EXPERIMENT), tmp_path / "out")
    window.show()
    controller = window.controller
    try:
        for part in (Part.STREAM, Part.ANALYSIS):
            window.buttons[part].click()
            qtbot.waitUntil(
                lambda p=part: controller.running(p) and not controller.working,
                timeout=START_TIMEOUT_MS,
            )
        window.buttons[Part.RECORDING].click()
        assert controller.busy == "starting recording"  # set at the click, on this thread
        experiment, stream = window.buttons[Part.EXPERIMENT], window.buttons[Part.STREAM]
        assert experiment.isEnabled() and stream.isEnabled()  # usable while it starts
        experiment.click()
        assert window.queue.text() == "Start Experiment"
        qtbot.waitUntil(lambda: controller.running(Part.EXPERIMENT), timeout=START_TIMEOUT_MS)
        assert controller.running(Part.RECORDING)  # it ran after the recording started
        assert "was not run" not in window.info.full_text()
        events = controller.session_dir / "events.csv"
        stream.click()  # Stop Stream
        qtbot.waitUntil(lambda: any(holds.glob("stream-stop.*")), timeout=START_TIMEOUT_MS)
        off = _off_rows(events)  # the cameras have not been told to stop yet
        assert len(off) == 2, events.read_text()
        assert all(row[12] for row in off)  # acknowledged by the device
        (holds / RELEASE_FILE).write_text("go\n")
        qtbot.waitUntil(lambda: not controller.streaming, timeout=START_TIMEOUT_MS)
        assert window.buttons[Part.STREAM].text() == "Start Stream"
    finally:
        (holds / RELEASE_FILE).write_text("go\n")
        window.close()
        qtbot.waitUntil(lambda: window.closed_down, timeout=START_TIMEOUT_MS)
        window.deleteLater()
