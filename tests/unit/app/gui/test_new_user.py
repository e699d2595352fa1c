"""Issue 16's "done when", as a new user does it, from the window alone.

Two cameras (the simulated arena and a video file) are set up in the Rig tab, the example
experiment's regions get a camera each in the Regions tab, one region is moved with the mouse on
the live view, everything starts, the log and plots fill, everything stops and every file is
there. Real camera, inference and recorder processes; files read back.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from PyQt5.QtCore import QEvent, Qt
from PyQt5.QtGui import QMouseEvent
from PyQt5.QtWidgets import QAbstractButton, QApplication, QComboBox, QListWidget, QTableWidget

from deeplabstream.app.gui.live_view import CameraView
from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.session import Part
from deeplabstream.experiments.config.parse import load_experiment_config
from deeplabstream.experiments.registry import CONFIG_FOLDER
from tests.support.arena import back_and_forth
from tests.support.files import make_ffv1_video, read_video, write_settings
from tests.support.processes import only_session

START_TIMEOUT_MS = 90_000


@pytest.fixture
def rig(tmp_path: Path) -> Path:
    """A rig folder: the arena only, the example experiment (a copy the test may change)."""
    experiment = tmp_path / "ExampleExperiment.ini"
    shutil.copy(CONFIG_FOLDER / "ExampleExperiment.ini", experiment)
    make_ffv1_video(tmp_path / "side.mkv", frames=90, width=160, height=120)
    return write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nSEED = 3\nMOTION = waypoints\n"
        f"WAYPOINTS = {back_and_forth()}\n"
        f"[Experiment]\nNAME = {experiment}\n[Device stimulus_box]\nTYPE = log\n",
    )


@pytest.fixture
def window(qtbot, rig: Path, tmp_path: Path) -> Iterator[MainWindow]:
    main = MainWindow(rig, tmp_path / "out")
    main.show()  # (not qtbot.addWidget: it would delete the window while it still closes)
    main.rig_panel.wait_checked()
    yield main
    main.close()
    qtbot.waitUntil(lambda: main.closed_down, timeout=START_TIMEOUT_MS)
    main.deleteLater()


def _press(qtbot, window: MainWindow, part: Part) -> None:
    button = window.buttons[part]
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.LeftButton)


def _wait_running(qtbot, window: MainWindow, part: Part) -> None:
    def running() -> None:
        assert window.controller.busy is None
        assert window.controller.running(part), window.banner.label.text()

    qtbot.waitUntil(running, timeout=START_TIMEOUT_MS)


def _mouse(view: CameraView, kind: QEvent.Type, x: float, y: float) -> None:
    """One mouse event at frame pixel (x, y); moves hold the left button (QTest's do not)."""
    button = Qt.NoButton if kind == QEvent.MouseMove else Qt.LeftButton
    held = Qt.NoButton if kind == QEvent.MouseButtonRelease else Qt.LeftButton
    QApplication.sendEvent(
        view, QMouseEvent(kind, view.to_widget(x, y), button, held, Qt.NoModifier)
    )


def _drag(view: CameraView, start: tuple[float, float], end: tuple[float, float]) -> None:
    _mouse(view, QEvent.MouseButtonPress, *start)
    for step in range(1, 6):
        x = start[0] + (end[0] - start[0]) * step / 5
        y = start[1] + (end[1] - start[1]) * step / 5
        _mouse(view, QEvent.MouseMove, x, y)
    _mouse(view, QEvent.MouseButtonRelease, *end)


@pytest.mark.slow
def test_a_new_user_sets_up_two_cameras_moves_a_region_and_runs_everything(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    # Rig tab: the video becomes a second camera; the example's regions now need a camera.
    rig = window.rig_panel
    assert rig.camera_box.add_video_camera(tmp_path / "side.mkv") == "side"
    rig.camera_box.camera_table.set_value("LOOP", "true")
    rig.wait_checked()
    assert any("nose_in_left" in p and "CAMERA" in p for p in rig.problems), rig.problems
    _press(qtbot, window, Part.STREAM)  # refused, and the banner says why
    assert not window.controller.streaming
    assert "nose_in_left" in window.banner.label.text()

    # Regions tab: each region gets the arena camera (chosen in the list, before any frame).
    editor = window.region_editor
    window.tabs.setCurrentWidget(editor)
    regions = editor.findChild(QListWidget, "region_list")
    assert regions.count() == 2
    camera_box = editor.findChild(QComboBox, "region_camera")
    for row in range(regions.count()):
        regions.setCurrentRow(row)
        index = camera_box.findText("arena")
        camera_box.setCurrentIndex(index)
        camera_box.activated.emit(index)  # what a user's pick in the list sends
    qtbot.mouseClick(_save_button(editor), Qt.LeftButton)
    rig.wait_checked()
    assert rig.problems == [], rig.problems

    # Start Stream saves the rig and opens both cameras; the regions are drawn on the arena.
    _press(qtbot, window, Part.STREAM)
    _wait_running(qtbot, window, Part.STREAM)
    assert window.view_side.live_view is not None
    assert set(window.view_side.live_view.views) == {"arena", "side"}
    arena = window.view_side.live_view.views["arena"]
    qtbot.waitUntil(lambda: arena.image is not None, timeout=20_000)

    # Move the left region 40 px to the right with the mouse, and save it.
    _drag(arena, (160, 240), (200, 240))
    assert editor.dirty
    qtbot.mouseClick(_save_button(editor), Qt.LeftButton)
    experiment = Path(rig.settings.experiment.name)
    text = experiment.read_text()
    assert "SHAPE = circle 200 240 60" in text and text.count("CAMERA = arena") == 2
    load_experiment_config(experiment)  # still a valid config

    # Everything starts; the log and the plots fill while the mouse walks in and out.
    for part in (Part.ANALYSIS, Part.RECORDING, Part.EXPERIMENT):
        _press(qtbot, window, part)
        _wait_running(qtbot, window, part)
    events = window.event_log.findChild(QTableWidget, "event_table")
    per_region = window.event_log.findChild(QTableWidget, "region_table")
    qtbot.waitUntil(lambda: _entries(per_region, "nose_in_left") >= 2, timeout=60_000)
    assert events.rowCount() > 0
    qtbot.waitUntil(lambda: len(window.plots.series("arena", "capture_fps")[0]) >= 2, timeout=5000)
    _, rates = window.plots.series("arena", "capture_fps")
    assert rates.max() > 0  # once a second, per camera

    _press(qtbot, window, Part.STREAM)  # Stop Stream: everything stops in order
    qtbot.waitUntil(lambda: not window.controller.streaming, timeout=START_TIMEOUT_MS)
    session = only_session(tmp_path / "out")
    info = json.loads((session / "session.json").read_text())
    assert info["status"] == "finished" and not info["errors"]
    for camera in ("arena", "side"):
        recorded = info["cameras"][camera]["frames_recorded"]
        assert len(read_video(session / f"{camera}.mp4")) == recorded > 0
        assert list(session.glob(f"{camera}.pose.*")), sorted(p.name for p in session.iterdir())
    log = pd.read_csv(session / "events.csv")
    assert log.to_string().count("nose_in_left") >= 2


def _save_button(editor) -> QAbstractButton:
    return editor.findChild(QAbstractButton, "region_save")


def _entries(table: QTableWidget, trigger: str) -> int:
    for row in range(table.rowCount()):
        if table.item(row, 0) is not None and table.item(row, 0).text() == trigger:
            header = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
            return int(table.item(row, header.index("entries")).text())
    return 0
