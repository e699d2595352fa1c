"""Issue 28's new user, on a real display: a lab's DeepLabCut model wired to an experiment.

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb \
        .venv/bin/python tests/support/new_user_dlc.py SETTINGS OUTPUT_DIR RESULT_JSON

Run by ``tests/integration/test_new_user_dlc.py``. Starting from a copy of the default settings,
it does in the window only what a user does with the mouse: removes the simulated arena and adds
the DeepLabCut 3.0 model's open-field clip as the camera (Add, the file dialog, LOOP in the key
table), chooses the model (Browse..., the file dialog), maps the example experiment's keypoints
onto the model's (the Rig tab's keypoint box), starts the stream, draws a circle on the live view
with mouse events where the snout walks in (read from DeepLabCut's own predictions of the clip),
gives it a 100 ms pulse on entry on the rig's log device, saves it, starts analysis, recording and
the experiment, waits until the region has been entered twice, and stops the stream. It writes
what it found to RESULT_JSON (the session folder, the config the window wrote) for the test to
check the files; exit status 0 when every step worked. Every wait is for a condition, with a
limit that only turns a hang into a failure.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PyQt5.QtCore import QEvent, Qt, QTimer  # noqa: E402
from PyQt5.QtGui import QMouseEvent  # noqa: E402
from PyQt5.QtTest import QTest  # noqa: E402
from PyQt5.QtWidgets import (  # noqa: E402
    QAbstractButton,
    QApplication,
    QComboBox,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QLineEdit,
    QMessageBox,
    QTableWidget,
    QWidget,
)

DATA = PROJECT.parent / "shared" / "data" / "dlc3-openfield-cspnext_s"
MODEL = next((DATA / "model").glob("*.pt"), DATA / "model" / "missing.pt")
CLIP = DATA / "clip" / "m3v1mp4_first100.mp4"
PREDICTIONS = DATA / "reference" / "analyze_videos_bs1"
KEYPOINT = "snout"
LIMIT_S = 300.0  # a step that takes longer has hung (the first load converts the model)
ENTRIES = 2


def main(argv: list[str]) -> int:
    """Drive the window; return 0 when every step worked."""
    settings, output, result = (Path(a) for a in argv[1:4])
    from deeplabstream.app.gui.main_window import MainWindow
    from deeplabstream.app.gui.session import Part

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert app is not None
    window = MainWindow(settings, output)
    window.resize(1500, 940)
    window.show()
    rig = window.rig_panel
    wait_for(lambda: window.isVisible() and not rig.checker.running, "the first check of the rig")

    # Rig tab: the clip replaces the simulated arena, looping so the mouse comes back.
    select_row(rig.camera_box.camera_list, "arena")
    answer_next_dialog(press_yes)  # Remove asks first
    click(rig.camera_box.remove_camera_button)
    wait_for(lambda: rig.camera_names() == [], "the arena removed")
    choose(rig.camera_box.add_camera_choice, "Video file...")
    answer_next_dialog(lambda dialog: choose_file(dialog, CLIP))
    click(rig.camera_box.add_camera_button)
    wait_for(lambda: len(rig.camera_names()) == 1, "the clip added as a camera")
    camera = rig.camera_names()[0]
    rig.camera_box.camera_table.set_value("LOOP", "true")

    # The lab's model, through Browse... and its file dialog.
    answer_next_dialog(lambda dialog: choose_file(dialog, MODEL))
    click(find(rig, QAbstractButton, "rig_model_browse"))
    wait_for(lambda: rig.model_box.model_edit.text().endswith(MODEL.name), "the model chosen")

    # The example reads "nose"; the keypoint box offers the model's "snout" for it.
    box = rig.keypoint_map
    wait_for(lambda: box.isVisible() and "nose" in box.choices, "the keypoint mapping offered")
    rig_problem = next(p for p in rig.problems if "'nose'" in p)
    offered = box.choices["nose"].currentText()
    click(find(box, QAbstractButton, "keypoint_map_save"))
    wait_for(lambda: not box.isVisible() and not rig.problems and not rig.checker.running, "mapped")

    # Start Stream; the clip shows on its tile.
    press(window, Part.STREAM)
    wait_running(window, Part.STREAM)
    view = window.view_side.live_view.views[camera]
    wait_for(lambda: view.image is not None, "a frame on the tile")

    # Regions tab: a circle where the snout walks in, drawn with the mouse; a 100 ms pulse.
    editor = window.region_editor
    window.tabs.setCurrentWidget(editor)
    (cx, cy), radius = entry_circle()
    click(find(editor, QAbstractButton, "region_circle"))
    drag(view, (cx, cy), (cx + radius, cy))
    region = editor.region(editor.selected or "")
    assert region is not None and region.camera == camera, editor.status.text()
    keypoint_choice = find(editor, QComboBox, "region_keypoint").currentText()
    choose(find(editor, QComboBox, "region_action"), "Pulse")
    find(editor, QDoubleSpinBox, "region_duration").setValue(100.0)
    device = find(editor, QComboBox, "region_device").currentText()
    edge = find(editor, QComboBox, "region_edge").currentText()
    click(find(editor, QAbstractButton, "region_save"))
    wait_for(lambda: not editor.dirty, "the region saved")
    config = editor.file.path

    for part in (Part.ANALYSIS, Part.RECORDING, Part.EXPERIMENT):
        press(window, part)
        wait_running(window, part)
    regions = find(window.event_log, QTableWidget, "region_table")
    wait_for(lambda: entries(regions, region.name) >= ENTRIES, "the snout entering the region")

    press(window, Part.STREAM)  # Stop Stream: everything stops in order
    wait_for(lambda: not window.controller.streaming, "the stream stopped")
    session = window.controller.session_dir
    result.write_text(
        json.dumps(
            {
                "session": str(session),
                "config": str(config),
                "region": region.name,
                "camera": camera,
                "offered": offered,
                "rig_problem": rig_problem,
                "keypoint_choice": keypoint_choice,
                "device": device,
                "edge": edge,
                "banner": window.banner.label.text(),
            }
        )
    )
    window.close()
    wait_for(lambda: window.closed_down, "the window closed")
    return 0


# ------------------------------------------------------------------------------------------------
# The region: from DeepLabCut's own predictions of the clip
# ------------------------------------------------------------------------------------------------


def entry_circle() -> tuple[tuple[float, float], float]:
    """Return a circle (frame pixels) the snout enters from outside while it is seen.

    The longest run of frames whose snout likelihood is at least the experiment's 0.5 (so the
    trigger sees it throughout); the circle is centred where the snout is three quarters
    through the run, with half its distance from the run's start as radius: the snout starts
    outside and walks in, once per loop of the clip.
    """
    table = pd.read_csv(next(PREDICTIONS.glob("*.csv")), header=[0, 1, 2], index_col=0)
    snout = table.xs(KEYPOINT, level=1, axis=1)
    x = snout.xs("x", level=1, axis=1).iloc[:, 0].to_numpy()
    y = snout.xs("y", level=1, axis=1).iloc[:, 0].to_numpy()
    seen = snout.xs("likelihood", level=1, axis=1).iloc[:, 0].to_numpy() >= 0.5
    best, start = (0, 0), None
    for index, flag in enumerate([*seen, False]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            best = max(best, (index - start, start), key=lambda run: run[0])
            start = None
    length, first = best
    inside = first + int(0.75 * length)
    radius = 0.5 * math.dist((x[first], y[first]), (x[inside], y[inside]))
    return (float(np.round(x[inside])), float(np.round(y[inside]))), float(np.round(radius))


# ------------------------------------------------------------------------------------------------
# Input, as a user gives it
# ------------------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Let the window work until ``condition`` holds; a hang past LIMIT_S is an error."""
    deadline = time.monotonic() + LIMIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        QTest.qWait(20)


def wait_running(window: QWidget, part: object) -> None:
    controller = window.controller  # type: ignore[attr-defined]

    def running() -> bool:
        error = window.banner.label.text()  # type: ignore[attr-defined]
        if controller.busy is None and not controller.running(part) and error:
            raise RuntimeError(f"{part} did not start: {error}")
        return controller.busy is None and controller.running(part)

    wait_for(running, f"{part} running")


def find(parent: QWidget, kind: type, name: str) -> Any:
    widget = parent.findChild(kind, name)
    assert widget is not None, name
    return widget


def click(button: QAbstractButton) -> None:
    assert button.isEnabled(), button.objectName()
    QTest.mouseClick(button, Qt.LeftButton)


def press(window: QWidget, part: object) -> None:
    click(window.buttons[part])  # type: ignore[attr-defined]


def choose(box: QComboBox, text: str) -> None:
    """Pick ``text`` in a combo box as a user's pick does (``activated`` is sent)."""
    index = box.findText(text)
    assert index >= 0, f"{box.objectName()}: no {text!r}"
    box.setCurrentIndex(index)
    box.activated.emit(index)


def select_row(view: QWidget, text: str) -> None:
    items = view.findItems(text, Qt.MatchExactly)  # type: ignore[attr-defined]
    assert items, text
    view.setCurrentItem(items[0])  # type: ignore[attr-defined]


def answer_next_dialog(answer: Callable[[QWidget], None]) -> None:
    """Answer the next modal dialog (a file dialog, a question) once it shows."""

    def poll() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is not None and dialog.isVisible():
            answer(dialog)
        else:
            QTimer.singleShot(20, poll)

    QTimer.singleShot(20, poll)


def choose_file(dialog: QWidget, path: Path) -> None:
    """Type the file's path into Qt's file dialog and press its Open button."""
    assert isinstance(dialog, QFileDialog), type(dialog).__name__
    name = find(dialog, QLineEdit, "fileNameEdit")
    name.setText(str(path))
    buttons = find(dialog, QDialogButtonBox, "buttonBox")
    click(buttons.button(QDialogButtonBox.Open))


def press_yes(dialog: QWidget) -> None:
    assert isinstance(dialog, QMessageBox), type(dialog).__name__
    click(dialog.button(QMessageBox.Yes))


def fail_at_once(kind: type, error: BaseException, trace: object) -> None:
    """A failure inside a Qt callback (a dialog's answer) ends the run instead of hanging it."""
    traceback.print_exception(kind, error, trace)  # type: ignore[arg-type]
    sys.stderr.flush()
    os._exit(1)


def mouse(view: QWidget, kind: QEvent.Type, x: float, y: float) -> None:
    """One mouse event at frame pixel (x, y); moves hold the left button."""
    button = Qt.NoButton if kind == QEvent.MouseMove else Qt.LeftButton
    held = Qt.NoButton if kind == QEvent.MouseButtonRelease else Qt.LeftButton
    point = view.to_widget(x, y)  # type: ignore[attr-defined]
    QApplication.sendEvent(view, QMouseEvent(kind, point, button, held, Qt.NoModifier))


def drag(view: QWidget, start: tuple[float, float], end: tuple[float, float]) -> None:
    mouse(view, QEvent.MouseButtonPress, *start)
    for step in range(1, 6):
        x = start[0] + (end[0] - start[0]) * step / 5
        y = start[1] + (end[1] - start[1]) * step / 5
        mouse(view, QEvent.MouseMove, x, y)
    mouse(view, QEvent.MouseButtonRelease, *end)


def entries(table: QTableWidget, trigger: str) -> int:
    header = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    for row in range(table.rowCount()):
        item = table.item(row, 0)
        if item is not None and item.text() == trigger:
            return int(table.item(row, header.index("entries")).text())
    return 0


if __name__ == "__main__":
    sys.excepthook = fail_at_once
    sys.exit(main(sys.argv))
