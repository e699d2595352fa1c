"""Issue 44: a polygon region with no area is refused where empty circles and rectangles are.

A collinear polygon (``polygon 0,0 10,10 20,20``) was accepted by the experiment config check
and drawn by the window's region editor, where ``circle 160 240 0`` and ``rect 5 5 5 9`` are
refused: a region nothing can be inside of. It is now refused in both places, naming the file,
the section and what to do; the editor keeps what it had and says why in its status line.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PyQt5.QtCore import QEvent, Qt
from PyQt5.QtGui import QMouseEvent
from PyQt5.QtWidgets import QApplication, QHBoxLayout, QLabel, QToolButton, QWidget

from deeplabstream.app.gui.live_view import CameraView
from deeplabstream.app.gui.region_editor import RegionEditor
from deeplabstream.experiments.config.parse import ExperimentConfigError, load_experiment_config
from deeplabstream.experiments.registry import CONFIG_FOLDER
from deeplabstream.experiments.triggers.geometry import Polygon

EXAMPLE_SHAPE = "SHAPE = circle 160 240 60"  # the example's first region: [Trigger nose_in_left]
FRAME = np.zeros((480, 640, 3), np.uint8)  # 640 x 480 frames on 320 x 240 tiles


@pytest.mark.parametrize(
    "shape",
    [
        "polygon 0,0 10,10 20,20",  # collinear
        "polygon 5,5 100,5 5,5 100,5",  # a segment, walked twice
        "polygon 7,7 7,7 7,7",  # one point, repeated
        "polygon 0,0 30,0 30,0",  # two distinct points
    ],
    ids=["collinear", "segment-twice", "one-point", "two-distinct-points"],
)
def test_a_polygon_without_area_is_refused_by_the_experiment_config_check(
    tmp_path: Path, shape: str
) -> None:
    config = tmp_path / "zero_area.ini"
    text = (CONFIG_FOLDER / "ExampleExperiment.ini").read_text()
    config.write_text(text.replace(EXAMPLE_SHAPE, f"SHAPE = {shape}", 1))
    with pytest.raises(ExperimentConfigError) as refused:
        load_experiment_config(config)
    message = str(refused.value)
    assert str(config) in message and "[Trigger nose_in_left] SHAPE" in message, message
    assert "has no area" in message, message
    assert "3 points not on one line" in message, message


def test_a_polygon_with_area_is_still_accepted(tmp_path: Path) -> None:
    config = tmp_path / "triangle.ini"
    text = (CONFIG_FOLDER / "ExampleExperiment.ini").read_text()
    config.write_text(text.replace(EXAMPLE_SHAPE, "SHAPE = polygon 0,0 10,10 20,20 0,20", 1))
    load_experiment_config(config)  # no error: a quadrilateral with a collinear vertex


@pytest.fixture
def tile(qtbot, tmp_path: Path) -> Iterator[CameraView]:
    holder = QWidget()
    qtbot.addWidget(holder)
    view = CameraView("top")
    view.setFixedSize(320, 240)
    view.show_frame(FRAME)
    QHBoxLayout(holder).addWidget(view)
    holder.show()
    qtbot.waitExposed(holder)
    yield view


@pytest.fixture
def editor(qtbot, tile: CameraView, tmp_path: Path) -> RegionEditor:
    config = tmp_path / "ExampleExperiment.ini"
    shutil.copy(CONFIG_FOLDER / "ExampleExperiment.ini", config)
    editor = RegionEditor()
    qtbot.addWidget(editor)
    editor.show()
    editor.attach({"top": tile})
    editor.load(config, ["top"], ["nose"])
    return editor


def _send(view: CameraView, kind: QEvent.Type, x: float, y: float) -> None:
    button = Qt.NoButton if kind == QEvent.MouseMove else Qt.LeftButton
    held = Qt.NoButton if kind == QEvent.MouseButtonRelease else Qt.LeftButton
    event = QMouseEvent(kind, view.to_widget(x, y), button, held, Qt.NoModifier)
    QApplication.sendEvent(view, event)


def _click(view: CameraView, x: float, y: float) -> None:
    _send(view, QEvent.MouseButtonPress, x, y)
    _send(view, QEvent.MouseButtonRelease, x, y)


def _double_click(view: CameraView, x: float, y: float) -> None:
    _click(view, x, y)
    _send(view, QEvent.MouseButtonDblClick, x, y)
    _send(view, QEvent.MouseButtonRelease, x, y)


def _polygon_tool(qtbot, editor: RegionEditor) -> None:
    button = editor.findChild(QToolButton, "region_polygon")
    assert button is not None
    qtbot.mouseClick(button, Qt.LeftButton)


def test_the_region_editor_refuses_a_polygon_drawn_on_one_line(
    qtbot, editor: RegionEditor, tile: CameraView
) -> None:
    status = editor.findChild(QLabel, "region_status")
    before = [region.name for region in editor.regions]
    _polygon_tool(qtbot, editor)
    _click(tile, 100, 100)
    _click(tile, 200, 200)
    _double_click(tile, 300, 300)  # the third vertex on the line of the first two
    assert [region.name for region in editor.regions] == before  # nothing was added
    assert not editor.dirty
    assert "no area" in status.text() and "not on one line" in status.text(), status.text()
    # The draft is still there: one more vertex off the line closes a real polygon.
    _double_click(tile, 100, 300)
    [added] = [region for region in editor.regions if region.name not in before]
    assert isinstance(added.shape, Polygon) and len(added.shape.points) == 4


def test_the_region_editor_keeps_a_polygon_whose_vertex_is_dragged_onto_the_line(
    qtbot, editor: RegionEditor, tile: CameraView
) -> None:
    status = editor.findChild(QLabel, "region_status")
    _polygon_tool(qtbot, editor)
    _click(tile, 100, 100)
    _click(tile, 300, 100)
    _double_click(tile, 200, 300)
    [triangle] = [region for region in editor.regions if isinstance(region.shape, Polygon)]
    drawn = triangle.shape
    # Drag the apex onto the base's line: the triangle would have no area.
    _send(tile, QEvent.MouseButtonPress, 200, 300)
    _send(tile, QEvent.MouseMove, 200, 200)
    _send(tile, QEvent.MouseMove, 200, 100)
    _send(tile, QEvent.MouseButtonRelease, 200, 100)
    assert triangle.shape.points != ((100, 100), (300, 100), (200, 100))
    assert isinstance(triangle.shape, Polygon) and triangle.shape.points[:2] == drawn.points[:2]
    assert "still has an area" in status.text(), status.text()
