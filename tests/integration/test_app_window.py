"""The desktop app on a real X display: Xvfb and Qt's own xcb plugin, not the offscreen one.

The set-up (scripts/setup.sh --tests) installs xvfb and the xcb libraries; a machine without
them skips with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deeplabstream.app.display.screen import missing_xcb_libraries
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT
from tests.support.processes import only_session, run_cli
from tests.support.xvfb import xvfb_run


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed")
def test_the_window_runs_a_session_on_a_real_display_started_from_another_folder(
    tmp_path: Path,
) -> None:
    assert missing_xcb_libraries() == [], "scripts/setup.sh installs every xcb library"
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb"}  # the real X11 plugin, on Xvfb's display
    result = subprocess.run(
        [
            *xvfb_run(),
            sys.executable,
            str(PROJECT_ROOT / "app.py"),
            "--start",
            "stream,recording,analysis",
            "--duration",
            "8",
            "--output-dir",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,  # not the project folder: the app finds its settings.ini itself
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "could not load the Qt platform plugin" not in result.stderr
    session = only_session(tmp_path / "out")
    info = json.loads((session / "session.json").read_text())
    assert info["status"] == "finished" and info["errors"] == []
    camera = info["cameras"]["arena"]
    # Recording starts after the stream: every frame from then on is in the file.
    assert camera["frames_lost_in_recording"] == 0 and camera["frames_recorded"] > 60
    assert (session / "arena.pose.csv").is_file()


def test_a_camera_that_is_not_there_is_one_clear_error_and_the_app_still_ends(
    tmp_path: Path,
) -> None:
    settings = write_settings(
        tmp_path, "[Camera cam]\nSOURCE = opencv\nDEVICE = 97\n[Device stimulus_box]\nTYPE = log\n"
    )
    result = run_cli(
        "--settings",
        str(settings),
        "--start",
        "stream",
        "--duration",
        "2",
        "--output-dir",
        str(tmp_path / "out"),
        script="app.py",
        env={"QT_QPA_PLATFORM": "offscreen"},
        timeout=90,  # it used to press Start Stream again and again, never closing
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("Error: Starting stream failed: camera 'cam'") == 1, result.stderr
    assert "could not be opened" in result.stderr


def test_an_unknown_experiment_stops_start_stream_before_any_folder_exists(
    tmp_path: Path,
) -> None:
    settings = write_settings(
        tmp_path, "[Camera arena]\nSOURCE = synthetic\n[Experiment]\nNAME = NoSuchExperiment\n"
    )
    result = run_cli(
        "--settings", str(settings), "--start", "stream", "--duration", "2",
        "--output-dir", str(tmp_path / "out"),
        script="app.py", env={"QT_QPA_PLATFORM": "offscreen"}, timeout=90,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("Error: Cannot start the stream") == 1, result.stderr
    assert "[Experiment] NAME" in result.stderr and "NoSuchExperiment" in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_window_without_a_screen_prints_a_warning_as_a_warning(tmp_path: Path) -> None:
    """Issue 53: the offscreen app printed the session's warnings (a disk filling, a camera
    below its rate) as "Error:", and the window showed them in the error's red.

    The disk is "low" on purpose: WARN_FREE_SPACE above what any disk has, MIN_FREE_SPACE 0.
    """
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\nWIDTH = 160\nHEIGHT = 120\n"
        "[Recording]\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 1000000000\n",
    )
    result = run_cli(
        "--settings", str(settings), "--start", "stream,recording", "--duration", "4",
        "--output-dir", str(tmp_path / "out"),
        script="app.py", env={"QT_QPA_PLATFORM": "offscreen"}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "disk space low" in line]
    assert warnings and all(line.startswith("Warning: disk space low") for line in warnings), (
        result.stderr[-3000:]
    )
    assert "Error:" not in result.stderr, result.stderr[-3000:]
    assert "  warning: disk space low" in result.stdout  # the report after the window closed
