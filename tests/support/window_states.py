"""Put the window through the states that made it grow on a laptop, and measure it in each.

Run by ``tests/integration/test_window_fits_screen.py`` under ``xvfb-run`` (Qt's xcb plugin, a
real X server of a chosen size)::

    python -m tests.support.window_states SETTINGS OUT_DIR REPORT.json

The window is given the size a desktop leaves on that screen (a task bar and a title bar less),
then (issue 53, found at 1366x768): the Regions tab with a region selected whose rule is a pulse,
then a train (the rule form's longest), the longest messages the app writes shown at once (red
error, losses with their advice, news), the messages dismissed, the Rig tab again. After each
state the report says the window's frame and least size, where the tabs start, which of the
controls under the tabs (the settings file, Choose..., the Session line, Open folder, Verify)
lie off the screen, and whether the rule form's last row and the Rig tab's "What Start will
run" can be read whole.
Nothing is mocked: the regions come from the rig's own experiment config, the messages go
through the window's own banners and loss alarm.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QPoint, QRect
from PyQt5.QtWidgets import QAbstractScrollArea, QApplication, QComboBox, QWidget

from deeplabstream.app.gui.main_window import TABS_LEAST_WIDTH_PX, MainWindow
from tests.support.window_geometry import _settle, longest_messages

TASK_BAR_PX, TITLE_BAR_PX, BORDERS_PX = 40, 32, 16  # what a desktop takes from the screen


def _global(widget: QWidget) -> QRect:
    return QRect(widget.mapToGlobal(QPoint(0, 0)), widget.size())


def _inside_area(widget: QWidget, area: QAbstractScrollArea) -> bool:
    """Whether ``widget`` lies whole in ``area``'s viewport (once scrolled to)."""
    area.ensureWidgetVisible(widget, 0, 0)
    QApplication.processEvents()
    viewport = area.viewport()
    assert viewport is not None
    return _global(viewport).contains(_global(widget))


def _rect(widget: QWidget) -> list[int]:
    """Where ``widget`` is on the screen and how big: what a click aims at."""
    rect = _global(widget)
    return [rect.x(), rect.y(), rect.width(), rect.height()]


def state(window: MainWindow) -> dict[str, Any]:
    """Return the window's geometry and what of it can be seen, now."""
    screen = window.screen().availableGeometry()
    bottom = [
        window.session_row.settings_edit,
        window.session_row.browse_button,
        window.session_row.session_label,
        window.session_row.open_folder_button,
        window.session_row.verify_button,
    ]
    off_screen = [
        widget.objectName() or type(widget).__name__
        for widget in bottom
        if not screen.contains(_global(widget))
    ]
    pages = {
        window.tabs.tabText(index): window.tabs.widget(index).minimumSizeHint().width()
        for index in range(window.tabs.count())
    }
    hint = window.minimumSizeHint()
    cut = [
        f"{banner.objectName()}: {banner.label.height()} px of {banner.label.needed_height()}"
        for banner in window.messages.shown_banners()
        if not banner.label.shows_whole_lines()
        or banner.label.height() < min(banner.label.maximumHeight(), banner.label.needed_height())
    ]
    watched = {
        "live_view": window.view_side,
        "tabs": window.tabs,
        "camera_table": window.status_panel.table,
        "action": window.region_editor.rule_panel.action_box,
        "delete_rule": window.region_editor.rule_panel.delete_rule_button,
        "buttons": window.button_row,
    }
    return {
        "geometry": {name: _rect(widget) for name, widget in watched.items()},
        "banners_cut": cut,
        "frame": [window.frameGeometry().width(), window.frameGeometry().height()],
        "least": [hint.width(), hint.height()],
        "screen": [screen.width(), screen.height()],
        "tabs_x": window.tabs.mapToGlobal(QPoint(0, 0)).x(),
        "off_screen": off_screen,
        "pages_least_width": pages,
        "tabs_least_width": TABS_LEAST_WIDTH_PX,
    }


def select_rule(window: MainWindow, command: str) -> dict[str, Any]:
    """Select the config's first region, give it ``command`` (pulse or pattern), measure."""
    editor = window.region_editor
    window.tabs.setCurrentWidget(editor)
    editor.select(editor.regions[0].name)
    action = editor.rule_panel.action_box
    index = action.findData(command)
    action.setCurrentIndex(index)
    action.activated.emit(index)
    _settle(0.5)
    panel = editor.rule_panel
    rows = [w for w in panel.findChildren(QWidget) if w.parentWidget() is panel]
    shown = [w for w in rows if not w.isHidden()]
    last = max(shown, key=lambda w: w.y())
    area = editor.findChild(QAbstractScrollArea, "region_rule_area")
    measured = state(window)
    measured["rule_rows"] = len(shown)
    measured["last_rule_row_reachable"] = _inside_area(last, area)
    measured["rules_listed"] = panel.findChild(QComboBox, "region_rules").count()
    return measured


def summary_shown(window: MainWindow) -> dict[str, Any]:
    """Whether the Rig tab's "What Start will run" shows its whole text (no scrolling)."""
    window.tabs.setCurrentWidget(window.rig_panel)
    _settle(0.5)
    area = window.rig_panel.summary_box.findChild(QAbstractScrollArea)
    bar = area.verticalScrollBar()
    measured = state(window)
    text = window.rig_panel.summary_box.summary.text()
    measured["summary_text"] = text  # said when a line is hidden: which line took the room
    measured["summary_lines"] = text.count("\n") + 1
    measured["summary_hidden_px"] = bar.maximum() if bar is not None else 0
    measured["problems"] = list(window.rig_panel.problems)
    return measured


def camera_keys_in_sight(window: MainWindow) -> int:
    """Return how many rows of the Rig tab's camera key table can be seen at once."""
    window.tabs.setCurrentWidget(window.rig_panel)
    _settle(0.3)
    table = window.rig_panel.camera_box.camera_table
    area = window.rig_panel.findChild(QAbstractScrollArea, "rig_settings_area")
    area.ensureWidgetVisible(table, 0, 0)
    _settle(0.3)
    viewport = area.viewport()
    assert viewport is not None
    seen = _global(viewport).intersected(_global(table.viewport()))
    row = table.verticalHeader().defaultSectionSize()
    return min(table.rowCount(), max(0, seen.height()) // row)


def main(settings: Path, out: Path, report: Path) -> int:
    """Open the window at a desktop's size, go through the states, write the report."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(settings, out)
    window.show()
    _settle(1.0)
    screen = window.screen().geometry()
    window.resize(screen.width() - BORDERS_PX, screen.height() - TASK_BAR_PX - TITLE_BAR_PX)
    window.rig_panel.wait_checked()
    window.rig_panel.keypoint_map.wait()
    _settle(1.0)
    states = {"opened": summary_shown(window)}
    states["pulse_rule"] = select_rule(window, "pulse")
    states["train_rule"] = select_rule(window, "pattern")
    _settle(0.5)
    states["no_message"] = state(window)  # the rule form as left (scrolled to its last row)
    window.say.notice("Start Experiment: press Start Analysis first")  # a hint
    _settle(0.5)
    states["hint"] = state(window)
    for n in range(3):  # a warning that repeats, three times
        window.say.warning(f"camera 'arena' delivers {20 + n}.0 fps, below its FRAMERATE 30")
    _settle(0.5)
    states["three_warnings"] = state(window)
    longest_messages(window)
    _settle(1.0)
    states["messages"] = state(window)
    window.forget_last_session()
    _settle(0.5)
    states["messages_gone"] = state(window)
    window.region_editor.select(None)
    states["rig_again"] = summary_shown(window)
    states["rig_again"]["camera_keys_in_sight"] = camera_keys_in_sight(window)
    report.write_text(json.dumps(states, indent=1), encoding="utf-8")
    window.grab().save(str(report.with_suffix(".png")))  # to look at when a check fails
    window.region_editor.revert()  # nothing unsaved: the window closes at once
    window.close()
    _settle(0.5)
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
