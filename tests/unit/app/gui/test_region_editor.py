"""The region editor on camera tiles, driven by mouse events in an offscreen Qt window."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PyQt5 import sip
from PyQt5.QtCore import QEvent, QPoint, QPointF, Qt
from PyQt5.QtGui import QMouseEvent
from PyQt5.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QToolButton,
    QWidget,
)

from deeplabstream.app.gui.live_view import CameraView
from deeplabstream.app.gui.region_editor import Region, RegionEditor
from deeplabstream.experiments.config.parse import load_experiment_config
from deeplabstream.experiments.registry import CONFIG_FOLDER
from deeplabstream.experiments.triggers.geometry import Circle, Ellipse, Polygon, Rectangle

# The tiles are 320 x 240 and the frames 640 x 480: one widget pixel is two frame pixels.
FRAME = np.zeros((480, 640, 3), np.uint8)
PULSE = "pulse 1000 ms, stimulus_box channel"  # the example's rules, as the list shows them


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ExampleExperiment.ini"
    shutil.copy(CONFIG_FOLDER / "ExampleExperiment.ini", path)
    return path


@pytest.fixture
def tiles(qtbot) -> Iterator[dict[str, CameraView]]:
    holder = QWidget()
    qtbot.addWidget(holder)
    row = QHBoxLayout(holder)
    views = {}
    for name in ("top", "side"):
        view = CameraView(name)
        view.setFixedSize(320, 240)
        view.show_frame(FRAME)
        row.addWidget(view)
        views[name] = view
    holder.show()
    qtbot.waitExposed(holder)
    yield views  # (the holder stays referenced until the test ends)


@pytest.fixture
def editor(qtbot, tiles: dict[str, CameraView], config: Path) -> RegionEditor:
    editor = RegionEditor()
    qtbot.addWidget(editor)
    editor.show()
    editor.attach(tiles)
    editor.load(config, ["top", "side"], ["nose", "tail_base"])
    return editor


def _send(view: CameraView, kind: QEvent.Type, x: float, y: float) -> None:
    """Send one mouse event at frame pixel (x, y); moves carry the held left button.

    QTest's mouseMove does not hold a button in Qt 5, so the events are sent as objects.
    """
    button = Qt.NoButton if kind == QEvent.MouseMove else Qt.LeftButton
    held = Qt.NoButton if kind == QEvent.MouseButtonRelease else Qt.LeftButton
    event = QMouseEvent(kind, view.to_widget(x, y), button, held, Qt.NoModifier)
    QApplication.sendEvent(view, event)


def _drag(view: CameraView, start: tuple[float, float], end: tuple[float, float]) -> None:
    _send(view, QEvent.MouseButtonPress, *start)
    middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    _send(view, QEvent.MouseMove, *middle)
    _send(view, QEvent.MouseMove, *end)
    _send(view, QEvent.MouseButtonRelease, *end)


def _click(view: CameraView, x: float, y: float) -> None:
    _send(view, QEvent.MouseButtonPress, x, y)
    _send(view, QEvent.MouseButtonRelease, x, y)


def _button(editor: RegionEditor, name: str) -> QToolButton:
    button = editor.findChild(QToolButton, name)
    assert button is not None, name
    return button


def _region(editor: RegionEditor, name: str) -> Region:
    region = editor.region(name)
    assert region is not None, name
    return region


def _items(editor: RegionEditor) -> list[str]:
    region_list = editor.findChild(QListWidget, "region_list")
    items = [region_list.item(i) for i in range(region_list.count())]
    return [item.text() for item in items if item is not None]


def test_to_frame_inverts_to_widget(tiles: dict[str, CameraView]) -> None:
    view = tiles["top"]
    assert view.scale() == pytest.approx(0.5)
    for x, y in ((0, 0), (100.5, 33), (639, 479)):
        assert view.to_frame(view.to_widget(x, y)) == pytest.approx((x, y))
    assert CameraView("empty").to_frame(QPointF(1, 1)) is None
    assert view.overlay is None and not view.grab().isNull()  # no overlay: just the frame


def test_draw_move_resize_delete_assign_and_save(
    qtbot, editor: RegionEditor, tiles: dict[str, CameraView], config: Path
) -> None:
    top, side = tiles["top"], tiles["side"]
    status = editor.findChild(QLabel, "region_status")
    assert editor.findChild(QComboBox, "region_camera") is not None
    assert _items(editor) == [
        f"nose_in_left (camera?): circle 160 240 60, nose, {PULSE} 1, on entry",
        f"nose_in_right (camera?): circle 480 240 60, nose, {PULSE} 2, on entry",
    ]
    assert not editor.dirty

    # a circle: drag from the centre outwards, on the top tile
    qtbot.mouseClick(_button(editor, "region_circle"), Qt.LeftButton)
    assert editor.tool == "circle"
    _drag(top, (100, 100), (130, 100))
    assert editor.selected == "region_1" and editor.tool == "select"
    circle = editor.region("region_1")
    assert circle is not None
    assert circle.camera == "top" and circle.keypoint == "nose"
    assert circle.shape == Circle(100, 100, 30)
    assert editor.dirty

    # move it (drag inside), then resize it (drag the right-hand handle)
    _drag(top, (100, 100), (150, 120))
    assert circle.shape == Circle(150, 120, 30)
    _drag(top, (180, 120), (190, 120))
    assert circle.shape == Circle(150, 120, 40)
    # a drag on the other tile does not reach a region of this one
    _drag(side, (150, 120), (300, 300))
    assert circle.shape == Circle(150, 120, 40) and editor.selected is None

    # a rectangle on the side tile, corner to corner
    qtbot.mouseClick(_button(editor, "region_rectangle"), Qt.LeftButton)
    _drag(side, (300, 260), (200, 200))
    rectangle = editor.region("region_2")
    assert rectangle is not None
    assert (rectangle.camera, rectangle.shape) == ("side", Rectangle(200, 200, 300, 260))
    _drag(side, (300, 260), (320, 280))  # its bottom-right corner
    assert rectangle.shape == Rectangle(200, 200, 320, 280)

    # a polygon: click the vertices, double-click the last one
    qtbot.mouseClick(_button(editor, "region_polygon"), Qt.LeftButton)
    _click(top, 400, 50)
    _click(top, 500, 50)
    _send(top, QEvent.MouseMove, 480, 150)
    _send(top, QEvent.MouseButtonPress, 450, 150)
    _send(top, QEvent.MouseButtonRelease, 450, 150)
    _send(top, QEvent.MouseButtonDblClick, 450, 150)
    _send(top, QEvent.MouseButtonRelease, 450, 150)
    triangle = editor.region("region_3")
    assert triangle is not None
    assert triangle.shape == Polygon(((400, 50), (500, 50), (450, 150)))
    # another, closed by clicking its first vertex
    qtbot.mouseClick(_button(editor, "region_polygon"), Qt.LeftButton)
    for x, y in ((10, 400), (60, 400), (60, 450), (10, 450), (11, 401)):
        _click(side, x, y)
    square = editor.region("region_4")
    assert square is not None and square.camera == "side"
    assert square.shape == Polygon(((10, 400), (60, 400), (60, 450), (10, 450)))
    # its vertex is a handle
    _drag(side, (60, 450), (70, 460))
    assert square.shape == Polygon(((10, 400), (60, 400), (70, 460), (10, 450)))

    # paint the tiles with the overlay on them: the selected polygon's edge is yellow
    image = side.grab().toImage()
    edge = side.to_widget(35, 400)
    colour = image.pixelColor(int(edge.x()), int(edge.y()))
    assert colour.red() > 200 and colour.green() > 150 and colour.blue() < 100

    # delete the rectangle with the Delete key, region_3 with the button
    editor.select("region_2")
    qtbot.keyClick(side, Qt.Key_Delete)
    assert editor.region("region_2") is None
    editor.select("region_3")
    qtbot.mouseClick(_button(editor, "region_delete"), Qt.LeftButton)
    assert editor.region("region_3") is None
    # a region a rule uses is not deleted
    failures: list[str] = []
    editor.failed.connect(failures.append)
    editor.select("nose_in_left")
    qtbot.mouseClick(_button(editor, "region_delete"), Qt.LeftButton)
    assert editor.region("nose_in_left") is not None
    assert "left_entry" in failures[0] and "left_entry" in status.text()

    # give the example's regions a camera each, with the chooser
    chooser = editor.findChild(QComboBox, "region_camera")
    chooser.setCurrentIndex(chooser.findText("top"))
    chooser.activated.emit(chooser.currentIndex())
    editor.select("nose_in_right")
    chooser.setCurrentIndex(chooser.findText("side"))
    chooser.activated.emit(chooser.currentIndex())
    assert _items(editor) == [
        f"nose_in_left (top): circle 160 240 60, nose, {PULSE} 1, on entry",
        f"nose_in_right (side): circle 480 240 60, nose, {PULSE} 2, on entry",
        "region_1 (top): circle 150 120 40, nose, no action",
        "region_4 (side): polygon 10,400 60,400 70,460 10,450, nose, no action",
    ]

    with qtbot.waitSignal(editor.saved) as saved:
        qtbot.mouseClick(_button(editor, "region_save"), Qt.LeftButton)
    assert saved.args == [config]
    assert not editor.dirty
    assert config.with_name("ExampleExperiment.ini.bak").is_file()
    loaded = load_experiment_config(config)
    params = {name: spec.params for name, spec in loaded.triggers.items()}
    assert params["nose_in_left"]["camera"] == "top"
    assert params["nose_in_right"]["camera"] == "side"
    assert params["region_1"] == {
        "shape": "circle 150 120 40",
        "camera": "top",
        "keypoint": "nose",
        "mode": "inside",
    }
    assert params["region_4"]["shape"] == "polygon 10,400 60,400 70,460 10,450"
    assert set(params) == {"nose_in_left", "nose_in_right", "region_1", "region_4"}
    assert config.read_text().startswith("# DeepLabStream's example experiment")


def test_revert_drops_changes_and_a_failed_save_says_why(
    qtbot, editor: RegionEditor, tiles: dict[str, CameraView], config: Path
) -> None:
    _drag(tiles["top"], (160, 240), (200, 240))  # move nose_in_left (on every tile)
    assert _region(editor, "nose_in_left").shape == Circle(200, 240, 60)
    assert editor.dirty
    qtbot.mouseClick(_button(editor, "region_revert"), Qt.LeftButton)
    assert _region(editor, "nose_in_left").shape == Circle(160, 240, 60)
    assert not editor.dirty

    _region(editor, "nose_in_left").keypoint = "has space"  # not from the window: a bad file
    _region(editor, "nose_in_left").camera = "top"
    text = config.read_text()
    config.write_text(text.replace("KEYPOINT = nose\n", "KEYPOINT = has space\n", 1))
    with qtbot.waitSignal(editor.failed) as failed:
        editor.save()
    assert "would not load" in failed.args[0]
    assert "would not load" in editor.findChild(QLabel, "region_status").text()


def test_a_python_experiment_is_shown_read_only(
    qtbot, tiles: dict[str, CameraView], config: Path
) -> None:
    editor = RegionEditor()
    qtbot.addWidget(editor)
    editor.attach(tiles)
    editor.load(None, ["top", "side"], ["nose"])
    assert "Python" in editor.findChild(QLabel, "region_status").text()
    assert not _button(editor, "region_circle").isEnabled()
    assert not _button(editor, "region_save").isEnabled()
    assert _items(editor) == []
    _drag(tiles["top"], (10, 10), (50, 50))
    assert editor.regions == []
    editor.detach()
    assert tiles["top"].overlay is None


def test_qtest_clicks_work_and_deleted_tiles_are_let_go(
    qtbot, editor: RegionEditor, tiles: dict[str, CameraView]
) -> None:
    """qtbot's own mouse functions: a drag counts where the button is released."""
    top = tiles["top"]

    def at(x: float, y: float) -> QPoint:
        return top.to_widget(x, y).toPoint()

    qtbot.mouseClick(_button(editor, "region_circle"), Qt.LeftButton)
    qtbot.mouseClick(top, Qt.LeftButton, pos=at(100, 100))  # a click: a default-size circle
    assert _region(editor, "region_1").shape == Circle(100, 100, 48)  # a tenth of 480
    qtbot.mousePress(top, Qt.LeftButton, pos=at(100, 100))
    qtbot.mouseRelease(top, Qt.LeftButton, pos=at(150, 100))
    assert _region(editor, "region_1").shape == Circle(150, 100, 48)
    qtbot.mouseClick(_button(editor, "region_polygon"), Qt.LeftButton)
    for x, y in ((400, 50), (500, 50)):
        qtbot.mouseClick(top, Qt.LeftButton, pos=at(x, y))
    qtbot.mouseDClick(top, Qt.LeftButton, pos=at(450, 150))
    assert _region(editor, "region_2").shape == Polygon(((400, 50), (500, 50), (450, 150)))
    qtbot.keyClick(top, Qt.Key_Escape)  # nothing to cancel: not used

    top.setParent(None)
    top.deleteLater()
    qtbot.waitUntil(lambda: sip.isdeleted(top))
    editor.select("region_1")  # repaints the tiles: the deleted one is skipped
    editor.detach()
    assert tiles["side"].overlay is None


def test_shape_handles_move_resize_and_round() -> None:
    from deeplabstream.app.gui.region_drawing import handles, moved, resized, rounded
    from deeplabstream.app.gui.region_editor import unique_name

    rectangle = Rectangle(10, 20, 110, 220)
    assert resized(rectangle, 0, 200, 300) == Rectangle(110, 220, 200, 300)  # crossed over
    assert resized(rectangle, 2, 10, 20) == Rectangle(10, 20, 11, 21)  # never empty
    ellipse = Ellipse(100, 100, 40, 20, 90)
    assert handles(ellipse)[0] == pytest.approx((100, 140))
    assert resized(ellipse, 0, 100, 160).rx == pytest.approx(60)
    assert resized(ellipse, 1, 70, 100).ry == pytest.approx(30)
    assert moved(ellipse, 5, -5) == Ellipse(105, 95, 40, 20, 90)
    assert rounded(Ellipse(1.4, 1.6, 0.2, 9.7, 12.345)) == Ellipse(1, 2, 1, 10, 12.3)
    assert rounded(Circle(1.4, 1.6, 0.3)) == Circle(1, 2, 1)
    assert rounded(Polygon(((0.4, 0.6), (10.5, 0), (5, 9.9)))) == Polygon(
        ((0, 1), (10, 0), (5, 10))
    )
    assert unique_name(["region_1", "region_3"]) == "region_2"


def test_a_running_python_experiments_regions_are_shown(
    qtbot, tiles: dict[str, CameraView]
) -> None:
    from deeplabstream.app.gui.region_editor import regions_of_status
    from deeplabstream.live.processes.messages import ExperimentStatus, TriggerView

    status = ExperimentStatus(
        "examples:Zone", "running", 0, None, 0, "",
        (
            TriggerView("zone", False, (Circle(5, 5, 5), Rectangle(0, 0, 4, 4)), "top"),
            TriggerView("speed", False, ()),
        ),
    )  # fmt: skip
    regions = regions_of_status(status)
    assert [(r.trigger, r.camera) for r in regions] == [("zone", "top"), ("zone_2", "top")]
    editor = RegionEditor()
    qtbot.addWidget(editor)
    editor.attach(tiles)
    editor.load(None, ["top", "side"], [], running=regions)
    assert _items(editor) == ["zone (top): circle 5 5 5", "zone_2 (top): rect 0 0 4 4"]
    assert editor.read_only and not editor.save()
