"""The desktop GUI (``app.py``) in a real Qt window, offscreen, on the simulated arena.

Every test drives the real window: real camera, inference and recorder processes, real shared
memory, files read back. The pictures of docs/gui.md are taken on a real X display by
``scripts/gui_screenshots.py``; the grabs here are checked, then left beside the test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QImage

from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.session import Part
from deeplabstream.core.device_lock import DeviceClaim, DeviceLocks
from deeplabstream.outputs.video import recorded_video_bytes
from tests.support.arena import back_and_forth
from tests.support.files import read_video, write_settings
from tests.support.paths import PROJECT_ROOT
from tests.support.processes import only_session, run_cli

START_TIMEOUT_MS = 90_000  # spawning processes and loading the model on a busy 2-core machine


ARENA = (
    "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nSEED = 3\nMOTION = waypoints\n"
    f"WAYPOINTS = {back_and_forth()}\n"
    "[Experiment]\nNAME = ExampleExperiment\n"
)


@pytest.fixture
def window(qtbot, tmp_path: Path) -> Iterator[MainWindow]:
    """The main window on the arena settings, shown offscreen; closed (files finalised) after."""
    settings = write_settings(tmp_path, ARENA + "[Device stimulus_box]\nTYPE = log\n")
    main = MainWindow(settings, tmp_path / "out")
    # Not qtbot.addWidget: pytest-qt would close and delete the window before this fixture's
    # teardown, while its stream is still stopping (closing is not instant: see closeEvent).
    main.show()
    yield main
    close_and_wait(qtbot, main)
    main.deleteLater()


def close_and_wait(qtbot, window: MainWindow) -> None:
    """Close the window as a user does; it goes once every part stopped and files are final."""
    window.close()
    qtbot.waitUntil(lambda: window.closed_down, timeout=START_TIMEOUT_MS)
    assert not window.controller.streaming


def _button(window: MainWindow, part: Part):
    return window.buttons[part]


def _click(qtbot, window: MainWindow, part: Part) -> None:
    button = _button(window, part)
    assert button.isEnabled(), f"{button.text()} is disabled"
    qtbot.mouseClick(button, Qt.LeftButton)


def _wait_refused(qtbot, window: MainWindow) -> None:
    """Wait until a start's checks (a background thread, issue 53) have refused it."""
    qtbot.waitUntil(
        lambda: window.banner.isVisible() and not window.controller.working,
        timeout=START_TIMEOUT_MS,
    )


def _wait_running(qtbot, window: MainWindow, part: Part, running: bool = True) -> None:
    controller = window.controller

    def done() -> None:
        assert controller.busy is None
        assert controller.running(part) is running

    qtbot.waitUntil(done, timeout=START_TIMEOUT_MS)


def _enabled(window: MainWindow) -> dict[str, bool]:
    return {part.value: button.isEnabled() for part, button in window.buttons.items()}


def _table_column(window: MainWindow, column: str) -> list[str]:
    from deeplabstream.app.gui.status_panel import CAMERA_COLUMNS

    table = window.status_panel.table
    index = CAMERA_COLUMNS.index(column)
    return [table.item(row, index).text() for row in range(table.rowCount())]


def _first_number(window: MainWindow, column: str) -> float:
    """The first camera's figure in ``column`` (-1 while it shows "-")."""
    cells = _table_column(window, column)
    return -1.0 if not cells or cells[0] == "-" else float(cells[0].split("/")[0])


def _save_screenshot(window: MainWindow, name: str, tmp_path: Path) -> Path:
    """Grab the window beside the test (docs/gui.md's pictures: scripts/gui_screenshots.py)."""
    target = tmp_path / name
    assert window.grab().save(str(target)), target
    return target


def _as_array(image: QImage) -> np.ndarray:
    """RGB pixels of a QImage."""
    image = image.convertToFormat(QImage.Format_RGB888)
    pointer = image.bits()
    pointer.setsize(image.byteCount())
    rows = np.frombuffer(pointer, np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, : image.width() * 3].reshape(image.height(), image.width(), 3).copy()


def test_click_through_every_part_and_back(qtbot, window: MainWindow, tmp_path: Path) -> None:
    _save_screenshot(window, "gui-idle.png", tmp_path)
    assert _enabled(window) == {
        "stream": True,
        "analysis": False,
        "recording": False,
        "experiment": False,
    }

    _click(qtbot, window, Part.STREAM)
    _wait_running(qtbot, window, Part.STREAM)
    assert _enabled(window) == {
        "stream": True,
        "analysis": True,
        "recording": True,
        "experiment": False,  # needs analysis
    }
    assert _button(window, Part.STREAM).text() == "Stop Stream"
    assert not window.session_row.settings_edit.isEnabled()  # settings are fixed while streaming
    qtbot.waitUntil(lambda: window.status_panel.table.rowCount() == 1, timeout=10_000)
    qtbot.waitUntil(lambda: _first_number(window, "capture fps") > 5, timeout=10_000)
    assert _table_column(window, "analysed fps") == ["-"]

    _click(qtbot, window, Part.ANALYSIS)
    _wait_running(qtbot, window, Part.ANALYSIS)
    assert _button(window, Part.EXPERIMENT).isEnabled()
    qtbot.waitUntil(lambda: _first_number(window, "analysed fps") > 5, timeout=10_000)
    qtbot.waitUntil(lambda: _first_number(window, "latency p50/p99 ms") > 0, timeout=10_000)

    _click(qtbot, window, Part.RECORDING)
    _wait_running(qtbot, window, Part.RECORDING)
    qtbot.waitUntil(lambda: "MB" in window.status_panel.recording.text(), timeout=20_000)
    first_size = recorded_video_bytes(window.controller.session_dir)

    _click(qtbot, window, Part.EXPERIMENT)
    _wait_running(qtbot, window, Part.EXPERIMENT)
    assert _button(window, Part.EXPERIMENT).text() == "Stop Experiment"

    # The mouse enters the left circle every 5 s: trials start, the region lights up.
    def in_the_region_after_a_trial() -> bool:
        status = window.controller.stream.pose.analysis.experiment_status
        assert status is not None and status.trials >= 1
        assert any(trigger.active for trigger in status.triggers)

    qtbot.waitUntil(in_the_region_after_a_trial, timeout=30_000)
    qtbot.waitUntil(lambda: "trial(s)" in window.status_panel.experiment.text())
    assert "ExampleExperiment" in window.status_panel.experiment.text()
    assert window.status_panel.last_event.text() != "-"

    view = window.view_side.live_view.views["arena"]
    qtbot.waitUntil(lambda: view.pose_frame_index is not None, timeout=10_000)
    grabbed = [(view.pose_frame_index, _as_array(view.grab().toImage()))]
    for _ in range(3):  # three more frames' poses, each drawn after the one grabbed before
        last = grabbed[-1][0]
        qtbot.waitUntil(lambda last=last: view.pose_frame_index != last, timeout=10_000)
        grabbed.append((view.pose_frame_index, _as_array(view.grab().toImage())))
    mapping = [view.to_widget(0, 0), view.to_widget(639, 479)]
    _save_screenshot(window, "gui-live-tracking.png", tmp_path)
    # The recording grows (its writer flushes on its own schedule, not with each drawn pose).
    qtbot.waitUntil(
        lambda: recorded_video_bytes(window.controller.session_dir) > first_size, timeout=20_000
    )

    # Stop each part in turn; the buttons follow.
    _click(qtbot, window, Part.EXPERIMENT)
    _wait_running(qtbot, window, Part.EXPERIMENT, running=False)
    assert window.status_panel.experiment.text() == "not running"
    _click(qtbot, window, Part.RECORDING)
    _wait_running(qtbot, window, Part.RECORDING, running=False)
    _click(qtbot, window, Part.ANALYSIS)
    _wait_running(qtbot, window, Part.ANALYSIS, running=False)
    assert not _button(window, Part.EXPERIMENT).isEnabled()
    _click(qtbot, window, Part.STREAM)
    qtbot.waitUntil(lambda: not window.controller.streaming, timeout=START_TIMEOUT_MS)
    assert _enabled(window)["analysis"] is False
    assert window.session_row.settings_edit.isEnabled()

    session = only_session(tmp_path / "out")
    assert window.session_row.session_label.text() == str(session)
    _check_markers_on_truth(session, grabbed, mapping)
    _check_session_files(session)


def _check_markers_on_truth(session: Path, grabbed: list, mapping: list) -> None:
    """Green keypoint markers lie on the simulated ground truth of the frame whose pose is drawn,
    and nowhere else."""
    truth = pd.read_csv(session / "arena.truth.csv", header=[0, 1, 2], index_col=0).sort_index(
        axis=1
    )
    top_left, bottom_right = mapping
    scale = (bottom_right.x() - top_left.x()) / 639
    keypoints = truth["simulation"].columns.get_level_values(0).unique()
    for frame_index, pixels in grabbed:
        row = truth.loc[frame_index, "simulation"]
        points = np.array(
            [
                (top_left.x() + row[(k, "x")] * scale, top_left.y() + row[(k, "y")] * scale)
                for k in keypoints
            ]
        )
        rgb = pixels.astype(int)
        # likelihood near 1 -> pure green marker (R and B low, G high); no other drawing is green
        green = (rgb[..., 1] > 170) & (rgb[..., 0] < 110) & (rgb[..., 2] < 110)
        found = 0
        for x, y in points[[list(keypoints).index(k) for k in ("nose", "left_ear", "tail_base")]]:
            near = green[max(0, round(y) - 4) : round(y) + 5, max(0, round(x) - 4) : round(x) + 5]
            found += bool(near.any())
        assert found >= 2, (frame_index, found)
        ys, xs = np.nonzero(green)
        assert len(xs) > 0
        distance = np.hypot(xs[:, None] - points[:, 0], ys[:, None] - points[:, 1]).min(axis=1)
        assert np.percentile(distance, 99) < 8, (frame_index, distance.max())


def _check_session_files(session: Path) -> None:
    info = json.loads((session / "session.json").read_text())
    assert info["status"] == "finished"
    assert info["experiment"]["name"] == "ExampleExperiment"
    assert info["experiment"]["events_file"] == "events.csv"
    frames = pd.read_csv(session / "arena.frames.csv")
    assert len(read_video(session / "arena.mp4")) == len(frames) > 0
    pose = pd.read_csv(session / "arena.pose.csv", header=[0, 1, 2], index_col=0)
    assert len(pose) > 30
    events = pd.read_csv(session / "events.csv")
    assert (events["kind"] == "trial_start").sum() >= 1


def test_analysis_and_experiment_can_run_again_in_one_session(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    for part in (Part.STREAM, Part.ANALYSIS, Part.EXPERIMENT):
        _click(qtbot, window, part)
        _wait_running(qtbot, window, part)
    view = window.view_side.live_view.views["arena"]
    _click(qtbot, window, Part.ANALYSIS)  # stops its experiment too
    _wait_running(qtbot, window, Part.ANALYSIS, running=False)
    assert not window.controller.running(Part.EXPERIMENT)
    first_run_upto = -1 if view.pose_frame_index is None else view.pose_frame_index
    for part in (Part.ANALYSIS, Part.EXPERIMENT):
        _click(qtbot, window, part)
        _wait_running(qtbot, window, part)
    # The second run's poses are drawn (frames after the first run's last) before the close.
    qtbot.waitUntil(
        lambda: (view.pose_frame_index or -1) > first_run_upto + 10, timeout=START_TIMEOUT_MS
    )
    close_and_wait(qtbot, window)
    session = only_session(tmp_path / "out")
    for name in ("arena.pose.csv", "arena.run2.pose.csv", "events.csv", "events.run2.csv"):
        assert (session / name).is_file(), name
    info = json.loads((session / "session.json").read_text())
    assert len(info["pose_runs"]) == 2
    assert [run["events_file"] for run in info["experiment_runs"]] == [
        "events.csv",
        "events.run2.csv",
    ]


def test_closing_the_window_mid_recording_leaves_a_valid_session(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    for part in (Part.STREAM, Part.RECORDING):
        _click(qtbot, window, part)
        _wait_running(qtbot, window, part)
    qtbot.waitUntil(lambda: recorded_video_bytes(window.controller.session_dir) > 0, timeout=20_000)
    window.close()
    # Stopping runs off the GUI thread: the window stays, says why, and takes no new clicks.
    assert window.isVisible() and "closing" in window.busy_label.text()
    assert not any(button.isEnabled() for button in window.buttons.values())
    qtbot.waitUntil(lambda: window.closed_down, timeout=START_TIMEOUT_MS)
    assert not window.isVisible()
    assert not window.controller.streaming
    session = only_session(tmp_path / "out")
    info = json.loads((session / "session.json").read_text())
    assert info["status"] == "finished"
    assert info["stop_reason"] == "window closed"
    frames = pd.read_csv(session / "arena.frames.csv")
    assert len(read_video(session / "arena.mp4")) == len(frames) > 0


def test_a_missing_serial_port_shows_the_banner_before_anything_starts(
    qtbot, tmp_path: Path
) -> None:
    """The port is checked before the start (issue 37): nothing starts, the window goes on."""
    settings = write_settings(
        tmp_path, ARENA + "[Device stimulus_box]\nTYPE = serial\nPORT = /dev/ttyDLS_unplugged\n"
    )
    window = MainWindow(settings, tmp_path / "out")
    qtbot.addWidget(window)
    window.show()
    _click(qtbot, window, Part.STREAM)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=START_TIMEOUT_MS)
    text = window.banner.label.text()
    assert "/dev/ttyDLS_unplugged" in text and "stimulus_box" in text
    _save_screenshot(window, "gui-error.png", tmp_path)
    assert not window.controller.streaming
    assert _button(window, Part.STREAM).text() == "Start Stream"
    assert _button(window, Part.STREAM).isEnabled()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    qtbot.mouseClick(
        window.findChild(type(_button(window, Part.STREAM)), "dismiss_error"), Qt.LeftButton
    )
    assert window.banner.isHidden()
    close_and_wait(qtbot, window)


def test_bad_settings_show_the_banner_naming_the_key(qtbot, tmp_path: Path) -> None:
    settings = write_settings(tmp_path, "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = fast\n")
    window = MainWindow(settings, tmp_path / "out")
    qtbot.addWidget(window)
    window.show()
    _click(qtbot, window, Part.STREAM)
    _wait_refused(qtbot, window)
    assert "FRAMERATE" in window.banner.label.text()
    assert str(settings) in window.banner.label.text()
    assert not window.controller.streaming
    assert _button(window, Part.STREAM).text() == "Start Stream"
    close_and_wait(qtbot, window)


def test_a_second_instance_does_not_take_the_rigs_board(qtbot, tmp_path: Path) -> None:
    port = tmp_path / "board-port"  # nothing opens it: the lock is taken before anything starts
    port.touch()  # it exists (the check before the start looks for it), as a real port would
    settings = write_settings(
        tmp_path, ARENA + f"[Device stimulus_box]\nTYPE = serial\nPORT = {port}\n"
    )
    window = MainWindow(settings, tmp_path / "out")
    window.show()
    board = DeviceClaim(f"serial-port:{port}", "device 'stimulus_box'")
    with DeviceLocks([board]):  # as another running DeepLabStream would hold it
        _click(qtbot, window, Part.STREAM)
        _wait_refused(qtbot, window)
        text = window.banner.label.text()
        assert f"device 'stimulus_box' (serial-port:{port}) is in use by another" in text
        assert f"process {os.getpid()}" in text and "second rig" in text
        assert not window.controller.streaming
    _click(qtbot, window, Part.STREAM)  # once the other has gone, this one may stream
    _wait_running(qtbot, window, Part.STREAM)
    close_and_wait(qtbot, window)
    window.deleteLater()


def test_overlay_colours_triggers_by_state_and_flashes_on_actions() -> None:
    from deeplabstream.app.display.overlay import (
        ACTIVE_COLOUR,
        FLASH_COLOUR,
        IDLE_COLOUR,
        draw_flash,
        draw_triggers,
    )
    from deeplabstream.experiments.triggers.geometry import Circle
    from deeplabstream.live.processes.messages import TriggerView

    canvas = np.zeros((480, 640, 3), np.uint8)
    draw_triggers(
        canvas,
        [
            TriggerView("left", True, (Circle(160, 240, 60),)),
            TriggerView("right", False, (Circle(480, 240, 60),)),
        ],
    )
    assert tuple(canvas[240, 100]) == ACTIVE_COLOUR  # the left circle's edge (x = 160 - 60)
    assert tuple(canvas[240, 420]) == IDLE_COLOUR
    assert not canvas[240, 160].any()  # inside is left as it was
    assert not canvas[:20, :20].any()
    draw_flash(canvas)
    assert tuple(canvas[0, 0]) == FLASH_COLOUR and tuple(canvas[479, 320]) == FLASH_COLOUR


def test_app_without_a_display_says_how_to_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "app.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "QT_QPA_PLATFORM=offscreen" in result.stderr and "xvfb-run" in result.stderr
    assert "Traceback" not in result.stderr


def test_done_when_app_runs_the_embedded_default_offscreen(tmp_path: Path) -> None:
    result = run_cli(
        "--duration",
        "6",
        "--output-dir",
        str(tmp_path / "out"),  # beside the test's device locks (tmp_path/instance.lock.d)
        script="app.py",
        env={"QT_QPA_PLATFORM": "offscreen"},
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "analysed" in result.stdout  # the status lines
    session = only_session(tmp_path / "out")
    info = json.loads((session / "session.json").read_text())
    assert info["status"] == "finished"
    assert info["pose"]["model"]["name"] == "arena"  # the bundled model
    assert info["experiment"]["name"] == "ExampleExperiment"
    assert (session / "arena.pose.csv").is_file() and (session / "events.csv").is_file()


def test_the_command_line_tool_does_not_take_the_cameras_of_a_running_app(
    tmp_path: Path,
) -> None:
    settings = write_settings(tmp_path, "[Camera left]\nSOURCE = basler\nSERIAL = 0815-0000\n")
    camera = DeviceClaim("basler:0815-0000", "camera 'left'")
    with DeviceLocks([camera]):  # as the app holds it while it streams
        result = run_cli(
            "--headless", "--frames", "10", "--settings", str(settings),
            "--output-dir", str(tmp_path / "out"),
        )  # fmt: skip
    assert result.returncode == 1
    assert "camera 'left' (basler:0815-0000) is in use by another DeepLabStream" in result.stderr
    assert f"process {os.getpid()}" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # nothing started, no session folder


def test_without_a_settings_file_the_window_writes_the_default_in_the_current_folder(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the README says (issue 71: installed editable, it took the checkout's settings.ini);
    ``python app.py`` names the one beside it (test_commands_help.py)."""
    monkeypatch.chdir(tmp_path)  # started from another folder: ./settings.ini does not exist
    main = MainWindow(None, tmp_path / "out")
    qtbot.addWidget(main)
    chosen = Path(main.session_row.settings_edit.text())
    assert chosen == tmp_path / "settings.ini" != PROJECT_ROOT / "settings.ini"
    assert chosen.is_file()
    close_and_wait(qtbot, main)


@pytest.mark.slow
def test_a_preview_leaves_no_folder_and_a_planned_duration_stops_the_stream(
    qtbot, tmp_path: Path
) -> None:
    settings = write_settings(tmp_path, ARENA + "[Device stimulus_box]\nTYPE = log\n")
    window = MainWindow(settings, tmp_path / "out")
    window.show()
    _click(qtbot, window, Part.STREAM)
    _wait_running(qtbot, window, Part.STREAM)
    preview = window.controller.session_dir
    assert preview is not None and preview.is_dir()
    _click(qtbot, window, Part.STREAM)  # Stop Stream: nothing was recorded or analysed
    qtbot.waitUntil(lambda: not window.controller.streaming, timeout=START_TIMEOUT_MS)
    assert not preview.exists()
    assert "Only a preview" in window.info.full_text()

    with settings.open("a") as file:  # the Session group's planned duration, as saved
        file.write("[Session]\nANIMAL = m1\nPLANNED_DURATION = 3\n")
    _click(qtbot, window, Part.STREAM)
    _wait_running(qtbot, window, Part.STREAM)
    _click(qtbot, window, Part.RECORDING)
    _wait_running(qtbot, window, Part.RECORDING)
    qtbot.waitUntil(lambda: not window.controller.streaming, timeout=START_TIMEOUT_MS)
    session = only_session(tmp_path / "out")
    assert session.name.endswith("_m1")
    info = json.loads((session / "session.json").read_text())
    assert info["stop_reason"] == "duration of 3 s reached"
    assert info["metadata"]["animal"] == "m1"
    close_and_wait(qtbot, window)


def test_start_analysis_reads_the_settings_again(qtbot, tmp_path: Path) -> None:
    settings = write_settings(tmp_path, ARENA + "[Device stimulus_box]\nTYPE = log\n")
    window = MainWindow(settings, tmp_path / "out")
    window.show()
    _click(qtbot, window, Part.STREAM)
    _wait_running(qtbot, window, Part.STREAM)
    good = settings.read_text()
    settings.write_text(good + "[Pose]\nMODEL_PATH = models/missing.onnx\n")
    _click(qtbot, window, Part.ANALYSIS)  # the file now names a missing model: refused
    _wait_refused(qtbot, window)
    banner = window.banner.label.text()
    assert "MODEL_PATH" in banner and "missing.onnx" in banner
    assert not window.controller.running(Part.ANALYSIS)
    settings.write_text(good + "[Camera spare]\nSOURCE = synthetic\n")  # fixed; a camera added
    _click(qtbot, window, Part.ANALYSIS)
    _wait_running(qtbot, window, Part.ANALYSIS)
    assert "cameras changes apply at the next Start Stream" in window.info.full_text()
    close_and_wait(qtbot, window)
