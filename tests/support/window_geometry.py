"""Open the main window on the X display it is given, fill it with the longest messages the app
writes, and report the geometry of the window and of every visible widget as JSON.

Run by ``tests/integration/test_window_fits_screen.py`` under ``xvfb-run`` (Qt's xcb plugin, a
real X server of a chosen size)::

    python -m tests.support.window_geometry SETTINGS OUT_DIR REPORT.json

Nothing is mocked: the messages go through the window's own methods and banners, the figures
through the loss alarm, as a running session would send them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QPoint, QRect
from PyQt5.QtWidgets import (
    QAbstractScrollArea,
    QApplication,
    QLabel,
    QWidget,
)

from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.session import Part
from deeplabstream.live.processes.messages import EventView, ExperimentStatus, TriggerView
from deeplabstream.live.session.runner import CameraFigures

LONG_CAMERA = "left_camera_of_the_open_field_rig"  # 33 characters: a name a lab may give
CAMERAS = [f"{LONG_CAMERA}_{n}" for n in range(1, 5)]
LONG_PATH = "/home/experimenter/DeepLabStream-sessions/" + "open_field_cohort_2026/" * 4


def _settle(seconds: float = 0.4) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def _rect(rect: QRect) -> list[int]:
    return [rect.x(), rect.y(), rect.width(), rect.height()]


def _global_rect(widget: QWidget) -> QRect:
    return QRect(widget.mapToGlobal(QPoint(0, 0)), widget.size())


def _clipped_by_scroll_area(widget: QWidget, window: QWidget) -> bool:
    """Whether ``widget`` lies inside a scroll area's viewport (it may be scrolled to)."""
    parent = widget.parentWidget()
    while parent is not None and parent is not window:
        if isinstance(parent, QAbstractScrollArea):
            return True
        parent = parent.parentWidget()
    return False


def _name(widget: QWidget) -> str:
    name = widget.objectName() or ""
    text = widget.text() if isinstance(widget, QLabel) else ""
    return f"{type(widget).__name__}:{name}:{text[:40]!r}"


def longest_messages(window: MainWindow) -> None:
    """Show every message the window has, each as long as the app makes it."""
    summary = [
        f"camera {camera!r}: 18000 captured, 17000 recorded + 500 lost, 500 dropped by the "
        f"camera (its driver's buffer was full), pose estimation skipped 9000 frames (50%)"
        for camera in CAMERAS
    ] + [
        "experiment ExampleExperiment: 230 of 9000 analysed frames missed the loop's deadline "
        "(100 ms): the closed loop was late, see session.json's health",
        "errors: the recorder of 'left_camera_of_the_open_field_rig_1' stopped: exit code -9",
        f"files: {LONG_PATH}",
        "the disk holding the session has 1.2 GB free: recording stops below 2 GB",
        "stop reason: stopped by the user",
    ]
    window.say.error("The session ended with errors:\n" + "\n".join(summary), "")
    figures = [CameraFigures(c, 30.0, 0, 0, 0, 30.0, 0, None, analysed=0) for c in CAMERAS]
    window.loss_banner.update_figures(figures, 0.0)
    lossy = [
        CameraFigures(c, 30.0, 300, 0, 40, 10.0, 200, None, record_lost=20, analysed=100, late=50)
        for c in CAMERAS
    ]
    window.loss_banner.update_figures(lossy, 10.0)
    window.say.stream_ended(
        "every camera has ended (" + ", ".join(f"{c}: end of the video file" for c in CAMERAS) + ")"
    )
    window.say.notice(
        "Warning: camera 'left_camera_of_the_open_field_rig_1' delivers frames of 1280x1024 "
        "but the model was trained on 640x512: poses are computed on frames resized to fit"
    )
    window.busy_label.setText(
        "starting analysis: converting the DeepLabCut 3.0 model "
        f"{LONG_PATH}snapshot-best-200.pt to ONNX (12 s)"
    )
    row = window.session_row
    row.session_label.setText(LONG_PATH + "2026-11-24_10-15-02_mouse_with_a_long_name")
    row.settings_edit.setText(LONG_PATH + "settings.ini")
    window.status_panel.show_cameras(lossy)
    window.status_panel.last_event.setText(
        "action stimulus_box: pulse channel=0 duration_s=0.5 reason=left_entry_of_the_arena "
        "(trial 12)"
    )
    window.status_panel.show_latency_test("done: " + LONG_PATH + "latency_test.json")
    window.plots.add(lossy, 1.0)
    window.plots.add(lossy, 2.0)
    events = tuple(
        EventView(77.0 + i, "action", "stimulus_box", "pulse channel=0 duration_s=0.5 "
                  "reason=left_entry_of_the_arena_region_long_name" * 2, i)
        for i in range(30)
    )  # fmt: skip
    triggers = (
        TriggerView("nose_in_the_left_corner_region_of_the_arena", True, (), CAMERAS[0], 3, 1.0),
    )
    window.event_log.show_status(
        ExperimentStatus(
            "ExampleExperiment", "running", 12, 12, 30, "action", triggers,
            "the device stimulus_box stopped answering on /dev/ttyACM0: " + "x" * 200,
            events, 30, 30.0,
        )
    )  # fmt: skip
    window.rig_panel.camera_box.detect_status.setText(
        "No camera found. pypylon is not installed (pip install pypylon). pyrealsense2 is not "
        "installed. No /dev/video* device: OpenCV found no camera at index 0-3. The simulated "
        "arena and video files can always be added."
    )
    window.rig_panel.camera_box.detect_status.show()


def measure(window: MainWindow) -> dict[str, Any]:
    """Return the window's, the screen's and every visible widget's geometry (global pixels)."""
    screen = window.screen().availableGeometry()
    frame = window.frameGeometry()
    inside = window.geometry()
    outside: list[str] = []
    for widget in window.findChildren(QWidget):
        if not widget.isVisible() or widget.window() is not window:
            continue
        if _clipped_by_scroll_area(widget, window):
            continue
        rect = _global_rect(widget)
        if not inside.contains(rect):
            outside.append(f"{_name(widget)} at {_rect(rect)}")
    banners = {}
    area = window.messages
    viewport = area.viewport()
    assert viewport is not None
    view = _global_rect(viewport)
    area.verticalScrollBar().setValue(0)
    QApplication.processEvents()
    for banner in (window.banner, window.loss_banner, window.info):
        if banner.isHidden():
            continue
        label = banner.label
        needed = label.heightForWidth(label.width())
        in_sight = view.contains(_global_rect(banner.button))
        area.ensureWidgetVisible(banner.button)
        QApplication.processEvents()
        banners[banner.objectName()] = {
            "button_visible": in_sight,
            "button_visible_scrolled_to": view.contains(_global_rect(banner.button)),
            "whole_text_shown": needed <= label.height(),
            "show_all_offered": banner.show_all.isVisible()
            and view.contains(_global_rect(banner.show_all)),
            "tooltip_has_text": label.text().split("\n")[0][:30] in (banner.toolTip() or "")
            or label.text().split("\n")[0][:30] in (label.toolTip() or ""),
            "full_text": banner.full_text() if hasattr(banner, "full_text") else label.text(),
        }
    area.verticalScrollBar().setValue(0)
    settings_area = window.rig_panel.findChild(QAbstractScrollArea, "rig_settings_area")
    settings_view = settings_area.viewport()
    model_in_sight = window.tabs.currentWidget() is window.rig_panel and _global_rect(
        settings_view
    ).contains(_global_rect(window.rig_panel.model_box.model_edit))
    sideways = [
        f"{_name(area_)}: {area_.horizontalScrollBar().maximum()} px"
        for area_ in window.findChildren(QAbstractScrollArea)
        if area_.isVisible()
        and area_.objectName() in ("rig_settings_area", "message_area")
        and area_.horizontalScrollBar().maximum() > 0
    ]
    return {
        "scrolled_sideways": sideways,
        "model_in_sight": model_in_sight,
        "message_area_height": area.height(),
        "message_area_visible": area.isVisible(),
        "screen": _rect(screen),
        "frame": _rect(frame),
        "outside_window": outside,
        "banners": banners,
        "minimum_size_hint": [window.minimumSizeHint().width(), window.minimumSizeHint().height()],
    }


def main(settings: Path, out: Path, report: Path) -> int:
    """Open, fill and measure the window; write the report."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(settings, out)
    window.show()
    _settle(1.0)
    window.rig_panel.wait_checked()
    _settle()
    before = measure(window)
    longest_messages(window)
    _settle(1.0)
    after = measure(window)
    for tab in range(window.tabs.count()):  # every tab in turn: none may widen the window
        window.tabs.setCurrentIndex(tab)
        _settle(0.3)
        after.setdefault("tabs", {})[window.tabs.tabText(tab)] = measure(window)
    window.controller.stop(Part.STREAM) if window.controller.streaming else None
    report.write_text(json.dumps({"before": before, "after": after}, indent=1))
    window.tabs.setCurrentIndex(0)
    _settle(0.3)
    window.grab().save(str(report.with_suffix(".png")))  # to look at when a check fails
    window.close()
    _settle(0.5)
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
