"""Issue 71, the window: the camera table's "recorded" cell, what moves while Verify runs, the
previous session's verdict at the next start, the cut labels.

Real widgets offscreen (pytest-qt); one shared main window for the tests that start nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QApplication, QWidget

from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.preferences import STATE_ENV
from deeplabstream.app.gui.session import Part
from deeplabstream.app.gui.status_panel import CAMERA_COLUMNS
from deeplabstream.core.device_lock import LOCK_ENV
from deeplabstream.live.session.cameras import recorded_and_lost
from deeplabstream.live.session.runner import CameraFigures
from tests.support.files import write_settings
from tests.support.open_window import module_window

ARENA = "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\n"
START_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def shared_window(qapp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MainWindow]:
    """One window for the tests that start nothing (opening one takes seconds)."""
    yield from module_window(tmp_path_factory, "window_round8", ARENA, (1366, 696))


@pytest.fixture
def window(qtbot, shared_window: MainWindow) -> Iterator[MainWindow]:
    """The shared window with no message and nothing waiting."""
    yield shared_window
    shared_window.controller.final_recorded = {}
    shared_window.forget_last_session()
    shared_window.controller.changed.emit()


# -- 5: the "recorded" cell: the whole session's, and at Stop as session.json says -----------


def _recording(frames: int, lost: int) -> SimpleNamespace:
    return SimpleNamespace(frames_recorded=frames, frames_lost=lost)


def test_the_recorded_figures_add_every_part_of_the_session() -> None:
    """Plain data stands in for a camera's branch (its recordings and its recorder)."""
    part_one = _recording(167, 695)
    recording_now = SimpleNamespace(finished=None)
    branch = SimpleNamespace(recordings=[part_one], recorder=recording_now)
    assert recorded_and_lost(branch, {"recorded": 15, "record_lost": 61}) == (182, 756)
    branch.recorder = SimpleNamespace(finished=object())  # stopped: its part is in recordings
    branch.recordings.append(_recording(15, 61))
    assert recorded_and_lost(branch, {"recorded": 15, "record_lost": 61}) == (182, 756)


def test_at_the_stop_the_recorded_cell_says_what_session_json_says(window: MainWindow) -> None:
    figures = CameraFigures("arena", 30.0, 1200, 301, 0, None, 0, None, record_lost=0)
    window.status_panel.show_cameras([figures])
    window.controller.final_recorded = {"arena": (1069, 12)}
    window.controller.changed.emit()  # the stream stopped: no runner, the record's figures
    column = CAMERA_COLUMNS.index("recorded")
    item = window.status_panel.table.item(0, column)
    assert item is not None and item.text() == "1069 + 12 lost"


@pytest.mark.slow  # a real stream recorded in two parts in the window: tens of seconds
def test_two_recordings_in_one_stream_show_the_sessions_total_at_the_stop(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.open_window import close_window, open_window

    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "instance.lock"))
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "window.ini"))
    settings = ARENA + "WIDTH = 320\nHEIGHT = 240\nRECORD = true\n"
    window = open_window(qtbot, write_settings(tmp_path, settings), tmp_path / "out")
    controller = window.controller
    try:
        qtbot.mouseClick(window.buttons[Part.STREAM], Qt.LeftButton)
        qtbot.waitUntil(
            lambda: controller.streaming and controller.busy is None, timeout=START_TIMEOUT_MS
        )
        for part in (1, 2):
            qtbot.mouseClick(window.buttons[Part.RECORDING], Qt.LeftButton)
            qtbot.waitUntil(lambda: controller.running(Part.RECORDING), timeout=START_TIMEOUT_MS)
            qtbot.waitUntil(lambda: controller.busy is None, timeout=START_TIMEOUT_MS)
            stem = "arena" if part == 1 else "arena.part2"
            table = controller.session_dir / f"{stem}.frames.csv"
            qtbot.waitUntil(lambda t=table: _rows(t) >= 10, timeout=START_TIMEOUT_MS)
            qtbot.mouseClick(window.buttons[Part.RECORDING], Qt.LeftButton)  # Stop Recording
            qtbot.waitUntil(
                lambda: controller.busy is None and not controller.running(Part.RECORDING),
                timeout=START_TIMEOUT_MS,
            )
        folder = controller.session_dir
        qtbot.mouseClick(window.buttons[Part.STREAM], Qt.LeftButton)  # Stop Stream
        qtbot.waitUntil(
            lambda: not controller.streaming and controller.busy is None, timeout=START_TIMEOUT_MS
        )
        record = json.loads((folder / "session.json").read_text(encoding="utf-8"))
        camera = record["cameras"]["arena"]
        recorded, lost = camera["frames_recorded"], camera["frames_lost_in_recording"]
        assert recorded >= 20  # both parts
        expected = f"{recorded} + {lost} lost" if lost else str(recorded)
        item = window.status_panel.table.item(0, CAMERA_COLUMNS.index("recorded"))
        assert item is not None and item.text() == expected
    finally:
        close_window(qtbot, window)


def _rows(table: Path) -> int:
    return max(0, len(table.read_text().splitlines()) - 1) if table.is_file() else 0


# -- 7: the next start says the previous session's verdict, printed only in the terminal -------


def test_the_next_start_says_the_previous_sessions_verdict(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.open_window import close_window, open_window

    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "instance.lock"))
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "window.ini"))
    out = tmp_path / "out"
    older, newer = out / "2026-11-26_09-00-00", out / "2026-11-26_10-15-02"
    for folder, reason in ((older, "older"), (newer, "Stopped by the user")):
        (folder / "verify").mkdir(parents=True)
        record = {"status": "finished", "stop_reason": reason}
        (folder / "session.json").write_text(json.dumps(record), encoding="utf-8")
    line = "differs: 230 of 240 analysed frames checked (96 %)"
    (newer / "verify" / "summary.json").write_text(
        json.dumps({"verdict": "differs", "verdict_line": line}), encoding="utf-8"
    )
    window = open_window(qtbot, write_settings(tmp_path, ARENA), out)
    try:
        qtbot.waitUntil(lambda: "Previous session" in window.info.full_text(), timeout=30_000)
        text = window.info.full_text()
        assert "Previous session 2026-11-26_10-15-02: finished (Stopped by the user)" in text
        assert f"verify: {line}" in text
    finally:
        close_window(qtbot, window)


# -- 9: cut labels: the Log tab's detail, the Plots tab's titles and axis ----------------------


def test_the_log_tabs_detail_column_shows_a_commands_detail_whole(window: MainWindow) -> None:
    from deeplabstream.live.processes.messages import EventView, ExperimentStatus

    detail = "pulse channel=0 for 0.50 s"
    event = EventView(2.0, "action", "water_valve", detail, 1, animal="2")
    status = ExperimentStatus(
        name="reward_on_dwell", state="in_trial", trials=1, trial=1, actions=1, last_event="",
        triggers=(), error=None, new_events=(event,), events_total=1, elapsed_s=2.0,
    )  # fmt: skip
    window.tabs.setCurrentWidget(window.event_log)
    window.event_log.show_status(status)
    QApplication.processEvents()
    table = window.event_log.events
    item = table.item(table.rowCount() - 1, 3)
    assert item is not None and item.text() == detail and item.toolTip() == detail
    needed = table.fontMetrics().horizontalAdvance(detail)
    assert table.columnWidth(3) >= needed + 6, (table.columnWidth(3), needed)  # not "pulse ch..."
    window.event_log.clear()


def test_every_plot_title_and_axis_fit_their_plot(window: MainWindow) -> None:
    window.tabs.setCurrentWidget(window.plots)
    for second in range(62):
        figures = CameraFigures("arena", 30.0, second * 30, 0, 0, 30.0, 0, (5.0, 9.0))
        window.plots.add([figures], float(second))
    for _ in range(3):
        QApplication.processEvents()
    for name, plot in window.plots.plots.items():
        item = plot.getPlotItem()
        title = item.titleLabel.item.boundingRect().width()
        assert title <= plot.width(), (name, title, plot.width())
        # A title wider than its cell widened the plot past it: its right part, the axis's
        # last 10 s, was cut off.
        assert item.geometry().width() <= plot.width() + 1, (name, item.geometry().width())
        assert plot.toolTip()
    window.plots.clear()


# -- 6: nothing moves while Verify runs; the summary stays; the line follows the button --------


def test_stop_verify_keeps_its_width_and_open_folder_stays(window: MainWindow) -> None:
    from deeplabstream.app.gui.verify_button import VERIFY_LABEL, running_label

    row = window.session_row
    button, open_folder = row.verify_button, row.open_folder_button
    QApplication.processEvents()
    width, place = button.width(), open_folder.mapTo(window, open_folder.rect().topLeft())
    for text in (running_label(5), running_label(43), running_label(1234), VERIFY_LABEL):
        button.setText(text)  # what each second of a run shows
        QApplication.processEvents()
        assert button.width() == width, text
        assert open_folder.mapTo(window, open_folder.rect().topLeft()) == place, text


def test_a_wrapped_save_message_does_not_move_the_region_rule_form(window: MainWindow) -> None:
    editor = window.region_editor
    window.tabs.setCurrentWidget(editor)
    area = editor.findChild(QWidget, "region_rule_area")
    editor.report("Saved")
    QApplication.processEvents()
    before = area.mapTo(window, area.rect().topLeft()), area.height()
    long_path = "/lab/rig3/experiments/configs/" + "reward_on_dwell_" * 8 + ".ini"
    editor.report(f"Saved to {long_path} (previous file: {Path(long_path).name}.bak)")
    QApplication.processEvents()
    assert (area.mapTo(window, area.rect().topLeft()), area.height()) == before
    assert long_path in editor.status.toolTip()


def test_after_verify_the_sessions_summary_stays_in_the_message_areas_lines(
    window: MainWindow,
) -> None:
    summary = "Stopped by the user: nothing lost\nSession folder: /lab/sessions/s1"
    window.say.summary(summary)
    reasons = "".join(f"\n  events.csv: row {n} differs" for n in range(6))
    for _ in range(2):  # verified twice: one verdict, never two
        window._show_verdict("Verify: the session differs from its recording: 230 of 240" + reasons)
        QApplication.processEvents()
    lines = window.info.full_text().split("\n")
    assert lines[0].startswith("Verify: the session differs")
    assert lines[1] == "Stopped by the user: nothing lost"  # in the two lines in sight
    assert sum(line.startswith("Verify: the session differs") for line in lines) == 1
    assert "  events.csv: row 5 differs" in lines  # the reasons, under the summary


def test_the_progress_line_follows_the_buttons_countdown(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in command (a real process) says one stage, then works on without a word."""
    import sys

    from deeplabstream.app.gui import verify_run
    from deeplabstream.app.gui.verify_button import VerifyButton

    (tmp_path / "arena.mkv").write_bytes(b"")
    record = {"cameras": {"arena": {"recordings": [{"video": "arena.mkv"}]}}}
    (tmp_path / "session.json").write_text(json.dumps(record), encoding="utf-8")
    says = "print('verify: replaying arena.mkv: 30 of 240 frames', flush=True)\n"
    script = says + "import time\ntime.sleep(30)\n"
    monkeypatch.setattr(
        verify_run, "verify_command", lambda folder, *_: [sys.executable, "-c", script, str(folder)]
    )
    button = VerifyButton()
    qtbot.addWidget(button)
    lines: list[str] = []
    button.progress.connect(lines.append)
    button.follow(tmp_path, busy=False)
    button.click()
    try:
        qtbot.waitUntil(lambda: any("replaying" in line for line in lines), timeout=30_000)
        qtbot.waitUntil(lambda: button.text() == "Stop verify (3 s)", timeout=30_000)
        assert lines[-1] == "Verify (3 s): replaying arena.mkv: 30 of 240 frames"
    finally:
        button.stop()
        qtbot.waitUntil(lambda: not button.run.running, timeout=30_000)
