"""Issue 28: messages in their place, and room to work, in the real window (offscreen).

Each test names the defect of the issue it covers. Real widgets and settings files; where a
stream runs, real camera and recorder processes. The tests that only show messages and read the
layout share one window (``idle_window``), cleared between them; a test that saves settings,
starts a stream or resizes the window opens its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PyQt5.QtCore import QPoint, QPointF, Qt, QTimer
from PyQt5.QtGui import QColor, QImage, QPainter
from PyQt5.QtWidgets import (
    QApplication,
    QCheckBox,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QWidget,
)

from deeplabstream.app.gui.live_view import paint_label
from deeplabstream.app.gui.loss_alarm import SKIPPING_ADVICE
from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.plots import SessionPlots
from deeplabstream.app.gui.rig.parts import PROBLEM_COLOUR
from deeplabstream.app.gui.rig_panel import MIN_AREA_PX, RigPanel
from deeplabstream.app.gui.session import Part, with_second_rig_hint
from deeplabstream.live.session.runner import CameraFigures
from tests.support.files import make_ffv1_video, write_settings
from tests.support.in_process import headless_here
from tests.support.open_window import (
    ARENA,
    START_TIMEOUT_MS,
    close_window,
    module_window,
    open_window,
)


@pytest.fixture(scope="module")
def shared_window(qapp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MainWindow]:
    """One window for the tests that start nothing (opening one takes seconds)."""
    yield from module_window(tmp_path_factory, "window_messages", ARENA, (1280, 720))


@pytest.fixture
def idle_window(qtbot, shared_window: MainWindow) -> Iterator[MainWindow]:
    """The shared window with no message showing, its Rig tab's split as it was opened."""
    qtbot.waitExposed(shared_window)
    splitter = shared_window.rig_panel.findChild(QSplitter, "rig_splitter")
    sizes = splitter.sizes()
    assert shared_window.messages.showing() == []
    yield shared_window
    shared_window.banner.clear()
    shared_window.loss_banner.clear()
    shared_window.info.clear()
    splitter.setSizes(sizes)
    QApplication.processEvents()


def _top(widget: QWidget) -> int:
    """The widget's top edge in its window's coordinates."""
    return widget.mapTo(widget.window(), QPoint(0, 0)).y()


def _figures(name: str, captured: int, skipped: int = 0, dropped: int = 0) -> CameraFigures:
    return CameraFigures(name, 30.0, captured, 0, dropped, 10.0, skipped, None)


# -- messages in their place ---------------------------------------------------------------------


def _geometry(window: MainWindow) -> dict[str, tuple[int, int, int, int]]:
    """Where the live view, the tabs, the camera table and the Rig tab's table are, and how big."""
    watched = {
        "view": window.view_side,
        "tabs": window.tabs,
        "camera_table": window.status_panel.table,
        "camera_keys": window.rig_panel.camera_box.camera_table,
        "messages": window.messages,
    }
    return {
        name: (
            _top(widget),
            widget.mapTo(window, QPoint(0, 0)).x(),
            widget.width(),
            widget.height(),
        )
        for name, widget in watched.items()
    }


def test_messages_never_move_the_tabs_the_live_view_or_the_camera_table(
    qtbot, idle_window: MainWindow
) -> None:
    """Issue 28 #6: banners pushed the tabs and live view down 45-60 px. Issue 63 #1: a hint or a
    repeating warning shrank the live view and the tabs and moved the camera table up 39 px;
    three warnings left the live view 265 px tall of 400. The area is as tall as two lines,
    always: no message, one, three warnings, every kind at once, none again: nothing moves."""
    window = idle_window
    before = _geometry(window)
    assert window.messages.isVisible() and window.messages.showing() == []
    window.say.notice("Start Experiment: press Start Analysis first")  # a hint
    QApplication.processEvents()
    assert _geometry(window) == before
    for n in range(3):  # a repeating warning, three times
        window.say.warning(f"camera 'arena' delivers {20 + n}.0 fps, below its FRAMERATE 30")
    QApplication.processEvents()
    assert _geometry(window) == before
    shown = window.info.full_text().split("\n")  # the hint (news) above the warnings (stay)
    assert len(shown) == 4 and shown[0].startswith("Start Experiment")
    qtbot.waitUntil(window.info.show_all.isVisible)  # the area fits on the next turn
    window.say.error("Cannot start the stream:\n" + "\n".join(f"problem {i}" for i in range(8)))
    window.loss_banner.update_figures([_figures("arena", 0, dropped=0)], 0.0)
    window.loss_banner.update_figures([_figures("arena", 300, dropped=50)], 10.0)
    qtbot.waitUntil(lambda: len(window.messages.showing()) == 3)
    QApplication.processEvents()
    assert window.banner.isVisible() and window.loss_banner.isVisible()
    shown = window.messages.showing()
    assert "problem 7" in shown[0] and "dropped" in shown[1]  # errors, then losses, then news
    assert _geometry(window) == before
    for banner in window.messages.shown_banners():  # one line each, the rest under Show all
        label = banner.label
        shown_px = min(label.needed_height(), label.maximumHeight())
        assert shown_px <= label.lines_height(1), banner.objectName()
    window.banner.clear()
    window.loss_banner.acknowledge()
    window.info.clear()
    QApplication.processEvents()
    assert window.messages.showing() == []
    assert _geometry(window) == before


def test_success_and_information_are_not_in_the_error_colour(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    """Issue 28 #6: "Saved ..." was shown in the error red."""
    rig = window.rig_panel
    rig.findChild(QCheckBox, "record_arena").setChecked(False)
    rig.wait_checked()
    rig.save()
    saved = rig.findChild(QLabel, "rig_problems")
    assert saved.text().startswith("Saved ")
    assert PROBLEM_COLOUR not in saved.styleSheet()
    assert window.info.isVisible() and "Settings saved" in window.info.label.text()
    colour = window.info.palette().color(window.info.backgroundRole())
    assert colour != QColor(PROBLEM_COLOUR)
    assert "#b00020" not in window.info.styleSheet() and "#e65100" not in window.info.styleSheet()
    rig.camera_box.camera_table.set_value("FRAMERATE", "fast")  # a problem is still red
    rig.wait_checked()
    assert PROBLEM_COLOUR in saved.styleSheet() and "FRAMERATE" in saved.text()


def _refused(qtbot, window: MainWindow) -> None:
    """Wait until a start's checks (a background thread) have refused it."""
    qtbot.waitUntil(
        lambda: window.banner.isVisible() and not window.controller.working,
        timeout=START_TIMEOUT_MS,
    )


def test_a_settings_error_goes_once_the_rig_is_fixed(qtbot, tmp_path: Path) -> None:
    """Issue 28 #1: the red banner stayed up after its cause was fixed."""
    settings = write_settings(tmp_path, ARENA.replace("FRAMERATE = 30", "FRAMERATE = fast"))
    window = open_window(qtbot, settings, tmp_path / "out")
    window.buttons[Part.STREAM].click()
    _refused(qtbot, window)  # by the start's checks, on a background thread (issue 53)
    assert "FRAMERATE" in window.banner.label.text()
    window.rig_panel.camera_box.camera_table.set_value("FRAMERATE", "30")  # fixed in the Rig tab
    window.rig_panel.wait_checked()
    assert window.rig_panel.problems == []
    assert window.banner.isHidden()
    close_window(qtbot, window)


def test_an_error_goes_when_its_part_starts_well_and_not_before(idle_window: MainWindow) -> None:
    """Issue 28 #1: the red banner stayed up after the fixed experiment ran."""
    window = idle_window
    window.say.error("Starting experiment failed: no such device", "experiment")
    window.controller.resolved.emit("analysis")  # another part starting says nothing of it
    assert window.banner.isVisible()
    window.controller.resolved.emit("experiment")  # the experiment started well
    assert window.banner.isHidden()
    window.say.error("Cannot start the stream: FRAMERATE", "settings")
    window.controller.resolved.emit("stream")  # any part starting well: the settings are fine
    assert window.banner.isHidden()
    window.say.error("No file manager could open the folder")  # no cause: stays until dismissed
    window.controller.resolved.emit("stream")
    assert window.banner.isVisible()


def test_a_greyed_button_says_why_it_cannot_be_pressed(qtbot, idle_window: MainWindow) -> None:
    """Issue 28 #2: a click that cannot be honoured was dropped without a word."""
    window = idle_window
    experiment = window.buttons[Part.EXPERIMENT]
    assert not experiment.isEnabled()
    assert "Start Stream first" in experiment.toolTip()
    qtbot.mouseClick(experiment, Qt.LeftButton)  # Qt gives a greyed button no click
    assert window.info.isVisible()
    assert window.info.label.text() == f"Start Experiment: {experiment.toolTip()}"
    window.controller.toggle(Part.RECORDING)  # pressed another way (--start, a script)
    assert "Recording: press Start Stream first" in window.info.label.text()


def test_the_folder_sessions_go_to_is_the_one_shown(qtbot, tmp_path: Path) -> None:
    """Issue 28 #5: with --output-dir the window showed the settings' folder."""
    settings = write_settings(tmp_path, ARENA + "[Output]\nDIRECTORY = from_settings\n")
    out = tmp_path / "given_on_the_command_line"
    window = open_window(qtbot, settings, out)
    summary = window.rig_panel.findChild(QLabel, "rig_summary").text()
    assert f"sessions go to: {out} (app.py --output-dir" in summary
    assert str(out) in window.session_row.session_label.text()
    assert window.rig_panel.session_box.output_edit.isReadOnly()
    window.buttons[Part.STREAM].click()
    qtbot.waitUntil(lambda: window.controller.session_dir is not None, timeout=START_TIMEOUT_MS)
    assert window.controller.session_dir.parent == out
    assert str(out) in window.session_row.session_label.text()
    close_window(qtbot, window)


def test_heavy_skipping_says_what_to_do(qtbot, idle_window: MainWindow) -> None:
    """Issue 28 #12: heavy skipping was reported, but not what to do about it."""
    window = idle_window
    window.loss_banner.update_figures([_figures("arena", 0)], 0.0)
    window.loss_banner.update_figures([_figures("arena", 300, skipped=240)], 10.0)
    # What to do comes with the losses, their last line.
    assert window.loss_banner.full_text().split("\n")[-1] == SKIPPING_ADVICE
    for remedy in ("lighter model", "DYNAMIC_CROP", "GPU", "frame rate"):
        assert remedy in SKIPPING_ADVICE
    qtbot.mouseClick(window.findChild(QPushButton, "acknowledge_losses"), Qt.LeftButton)
    assert window.loss_banner.isHidden()


def test_the_end_of_a_video_is_said_where_the_user_looks(qtbot, tmp_path: Path) -> None:
    """Issue 28 #4: when a video source ended, the stream stopped without a word."""
    make_ffv1_video(tmp_path / "short.mkv", frames=15)
    settings = write_settings(
        tmp_path, "[Camera clip]\nSOURCE = video\nPATH = short.mkv\nPACING = native\n"
    )
    window = open_window(qtbot, settings, tmp_path / "out")
    window.buttons[Part.STREAM].click()
    qtbot.waitUntil(lambda: "stopped by itself" in window.info.label.text(), timeout=60_000)
    qtbot.waitUntil(lambda: not window.controller.streaming, timeout=START_TIMEOUT_MS)
    text = window.info.label.text()
    assert "every camera has ended" in text and "LOOP = true" in text
    # What happened to the session is said with it, above it (here: a preview, nothing kept).
    assert text.splitlines()[0].startswith("Only a preview")
    assert window.info.isVisible()  # it stays until dismissed
    window.buttons[Part.STREAM].click()  # a new stream: the old news goes
    qtbot.waitUntil(lambda: window.info.isHidden(), timeout=START_TIMEOUT_MS)
    close_window(qtbot, window)


def test_the_lock_error_is_shown_whole_and_says_how_to_run_a_second_rig() -> None:
    """Issue 28 #13: the lock banner did not say how to run a second rig."""
    bare = "another DeepLabStream (process 12) holds the cameras."
    assert with_second_rig_hint(bare).startswith(bare)
    assert "second rig" in with_second_rig_hint(bare)
    told = "camera x is in use.\nTo run a second rig on this PC, give it cameras of its own."
    assert with_second_rig_hint(told) == told  # the lock's own advice is not repeated


def test_a_device_in_use_is_refused_with_the_locks_whole_message(qtbot, tmp_path: Path) -> None:
    """Issue 28 #13: the window shows the lock error's own text fully, with its advice."""
    from deeplabstream.core.device_lock import DeviceBusyError, DeviceLocks
    from deeplabstream.live.session.device_locks import session_claims
    from deeplabstream.settings import load_settings

    settings_file = write_settings(
        tmp_path, ARENA + "[Device box]\nTYPE = serial\nPORT = /dev/ttyDLS_28b\n"
    )
    other = DeviceLocks(
        session_claims(load_settings(settings_file), devices=True), settings_file=settings_file
    )
    other.acquire()  # as another rig using the same port would
    try:
        window = open_window(qtbot, settings_file, tmp_path / "out")
        with pytest.raises(DeviceBusyError) as refused:
            DeviceLocks(
                session_claims(load_settings(settings_file), devices=True),
                settings_file=settings_file,
            ).acquire()
        window.buttons[Part.STREAM].click()
        _refused(qtbot, window)
        assert window.banner.label.text() == with_second_rig_hint(str(refused.value))
        assert "second rig" in window.banner.label.text()
        assert window.banner.toolTip() == window.banner.label.text()  # whole, also on hover
        assert not window.controller.streaming
        close_window(qtbot, window)
    finally:
        other.release()


# -- room to work --------------------------------------------------------------------------------


def test_the_rig_tab_is_usable_at_1280x720_and_its_areas_resize(
    qtbot, idle_window: MainWindow
) -> None:
    """Issue 28 #8: the settings area was 130 px tall at 1280x720 and the summary fixed."""
    window = idle_window
    rig = window.rig_panel
    settings_area = rig.findChild(QScrollArea, "rig_settings_area")
    summary = rig.findChild(QWidget, "rig_summary_box")
    splitter = rig.findChild(QSplitter, "rig_splitter")
    assert splitter.indexOf(settings_area) == 0 and splitter.indexOf(summary) == 1
    assert settings_area.height() >= 200, settings_area.height()  # 235 px here, offscreen
    assert summary.height() >= 60
    total = sum(splitter.sizes())
    splitter.moveSplitter(total // 3, 1)  # the user drags the handle up: more summary
    assert splitter.sizes()[1] > total // 2
    body = window.findChild(QSplitter, "body_splitter")  # the figures give height too
    assert body.indexOf(window.status_panel) == 1


USABLE_ROWS = 5  # rows of fields the settings area shows at least, at the smallest size


def test_the_rig_tabs_settings_stay_usable_at_the_windows_smallest_size(
    qtbot, window: MainWindow
) -> None:
    """Issue 28 #8: the Rig tab's settings area was 40 px tall at the window's smallest size."""
    window.resize(1, 1)  # as small as the window lets itself be made
    qtbot.waitUntil(lambda: window.size() == window.minimumSize())
    smallest = window.size()
    assert smallest.width() <= 1280 and smallest.height() <= 720, smallest
    window.tabs.setCurrentWidget(window.rig_panel)
    rig = window.rig_panel
    settings_area = rig.findChild(QScrollArea, "rig_settings_area")
    summary = rig.findChild(QWidget, "rig_summary_box")
    row = QLineEdit().sizeHint().height()  # one field, in this display's font
    assert settings_area.viewport().height() >= USABLE_ROWS * row, (
        settings_area.viewport().height(),
        row,
    )
    assert summary.height() >= MIN_AREA_PX
    # Dragged as far as it goes either way, neither area is squeezed below its floor.
    splitter = rig.findChild(QSplitter, "rig_splitter")
    splitter.moveSplitter(0, 1)
    assert settings_area.height() >= MIN_AREA_PX
    splitter.moveSplitter(sum(splitter.sizes()), 1)
    assert summary.height() >= MIN_AREA_PX
    assert settings_area.viewport().height() >= USABLE_ROWS * row


def test_keep_these_values_needs_a_stream(qtbot, window: MainWindow) -> None:
    """Issue 28 #13: "Keep these values" was enabled with no stream."""
    keep = window.findChild(QPushButton, "camera_controls_save")
    assert not keep.isEnabled() and "Start Stream first" in keep.toolTip()
    window.buttons[Part.STREAM].click()
    qtbot.waitUntil(lambda: keep.isEnabled(), timeout=START_TIMEOUT_MS)


def test_the_view_toggles_are_remembered_between_launches(qtbot, tmp_path: Path) -> None:
    """Issue 28 #13: trail and heatmap toggles were forgotten between launches."""
    settings = write_settings(tmp_path, ARENA)
    first = open_window(qtbot, settings, tmp_path / "out")
    assert not first.view_side.overlay_toggles.trail.isChecked()
    first.view_side.overlay_toggles.trail.setChecked(True)
    first.view_side.overlay_toggles.heatmap.setChecked(True)
    first.view_side.overlay_toggles.heatmap.setChecked(False)
    close_window(qtbot, first)
    assert "trail=true" in (tmp_path / "window.ini").read_text()
    second = open_window(qtbot, settings, tmp_path / "out")  # the next launch
    assert second.view_side.overlay_toggles.trail.isChecked()
    assert not second.view_side.overlay_toggles.heatmap.isChecked()
    close_window(qtbot, second)


def test_remove_asks_before_a_camera_is_taken_out(qtbot, tmp_path: Path) -> None:
    """Issue 28 #13: Remove deleted a camera without asking."""
    rig = RigPanel(write_settings(tmp_path, ARENA + "[Camera side]\nSOURCE = synthetic\n"))
    qtbot.addWidget(rig)
    rig.show()
    rig.camera_box.camera_list.setCurrentRow(1)
    answers = []

    def answer(button: QMessageBox.StandardButton) -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox) and "'side'" in box.text()
        answers.append(box.defaultButton() is box.button(QMessageBox.No))
        box.button(button).click()

    QTimer.singleShot(0, lambda: answer(QMessageBox.No))
    qtbot.mouseClick(rig.findChild(QPushButton, "rig_remove_camera"), Qt.LeftButton)
    assert rig.camera_names() == ["arena", "side"]  # "No" keeps it
    QTimer.singleShot(0, lambda: answer(QMessageBox.Yes))
    qtbot.mouseClick(rig.findChild(QPushButton, "rig_remove_camera"), Qt.LeftButton)
    assert rig.camera_names() == ["arena"]
    assert answers == [True, True]  # "No" is the default: Enter never deletes


def test_a_broken_video_file_is_refused_at_the_rig_check(qtbot, tmp_path: Path) -> None:
    """Issue 28 #10: random bytes named .mp4 passed the check and failed at Start."""
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(np.random.default_rng(1).integers(0, 256, 100_000, np.uint8).tobytes())
    rig = RigPanel(write_settings(tmp_path, ARENA))
    qtbot.addWidget(rig)
    rig.camera_box.add_video_camera(broken)
    rig.wait_checked()
    text = "\n".join(rig.problems)
    assert "[Camera broken] PATH" in text or ("broken" in text and "PATH" in text), text
    assert "cannot be read as a video" in text and "Errno" not in text
    assert str(broken) in text
    # The command-line tool refuses it the same way, before anything starts.
    settings = write_settings(
        tmp_path, f"[Camera broken]\nSOURCE = video\nPATH = {broken}\n", name="cli.ini"
    )
    # Its main in this process: the same parser and checks, refused before any start.
    result = headless_here("--settings", str(settings), "--headless", "--frames", "5",
                           "--output-dir", str(tmp_path / "out"))  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "cannot be read as a video" in result.stderr and "Errno" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_region_names_are_white_on_a_dark_box(qtbot) -> None:
    """Issue 28 #13: region labels were cyan on the grey arena, hard to read."""
    image = QImage(200, 100, QImage.Format_RGB888)
    image.fill(QColor(128, 128, 128))  # the arena's grey floor
    painter = QPainter(image)
    paint_label(painter, QPointF(100, 50), "nose_in_left")
    painter.end()
    pixels = np.array([[QColor(image.pixel(x, y)).value() for x in range(60, 140)]
                       for y in range(44, 56)])  # fmt: skip
    assert (pixels > 200).any()  # white letters
    assert np.median(pixels) < 70  # on a dark box, not on the grey floor


def test_plot_legends_are_beside_the_plots_not_over_the_curves(qtbot) -> None:
    """Issue 28 #13: plot legends sat over the curves."""
    plots = SessionPlots()
    qtbot.addWidget(plots)
    plots.add([_figures("arena", 30), _figures("side", 30)], 1.0)
    assert all(plot.plotItem.legend is None for plot in plots.plots.values())
    legend = plots.findChild(QLabel, "plots_legend").text()
    assert "arena" in legend and "side" in legend and "dashed" in legend
    plots.clear()
    assert plots.findChild(QLabel, "plots_legend").text() == ""
