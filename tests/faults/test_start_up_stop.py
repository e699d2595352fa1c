"""Issue 25: Ctrl-C (or SIGTERM) at any moment of the start-up stops cleanly.

Each test runs a real program in its own process group and sends SIGINT to the whole group, as
a terminal's Ctrl-C does (SIGTERM to the main process alone, as ``kill PID`` does), at a moment
chosen on purpose: the process to catch waits there (``core/fault_hooks.py``:
``DEEPLABSTREAM_TEST_HOLD``) until the signal has been sent, so no test depends on the
machine's speed. Every stop must give exit code 130 (143 for SIGTERM), no traceback from any
process, no child left running, and no session folder whose stop was an error: a folder with
nothing recorded is removed (as the app removes a preview's), one with a recording is finalised.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from deeplabstream.core.fault_hooks import HOLD_DIR_VARIABLE, HOLD_VARIABLE, RELEASE_FILE
from tests.support.files import make_ffv1_video, write_settings
from tests.support.paths import PROJECT_ROOT

SETTINGS = "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\n[Device stimulus_box]\nTYPE = log\n"
HOLD_TIMEOUT_S = 120.0  # spawning and importing on a busy machine; never a bound on speed
EXIT_CTRL_C = 130
EXIT_SIGTERM = 143


def _run_until_held(
    tmp_path: Path,
    moment: str,
    command: list[str],
    release: bool = True,
    sigterm: bool = False,
    **env: str,
) -> tuple[int, str, str, list[psutil.Process]]:
    """Run ``command`` until it holds at ``moment``; Ctrl-C its group; return what it left.

    With ``release``, the held process goes on as soon as the signal is sent; without, it stays
    held (a camera or a model that takes minutes) and the program must end it itself. With
    ``sigterm``, SIGTERM goes to the main process alone (``kill PID``, a process manager's stop).
    """
    holds = tmp_path / "holds"
    holds.mkdir()
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, as a terminal's foreground job
        env={**os.environ, HOLD_VARIABLE: moment, HOLD_DIR_VARIABLE: str(holds), **env},
    )
    try:
        deadline = time.monotonic() + HOLD_TIMEOUT_S
        while not any(holds.glob(f"{moment}.*")):
            if process.poll() is not None or time.monotonic() > deadline:
                out, err = process.communicate()
                pytest.fail(f"never held at {moment}: exit {process.returncode}\n{out}\n{err}")
            time.sleep(0.02)
        children = psutil.Process(process.pid).children(recursive=True)
        if sigterm:
            os.kill(process.pid, signal.SIGTERM)
        else:
            os.killpg(process.pid, signal.SIGINT)
        if release:
            (holds / RELEASE_FILE).write_text("go\n")
        out, err = process.communicate(timeout=HOLD_TIMEOUT_S)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    return process.returncode, out, err, children


def _deeplabstream(tmp_path: Path, *options: str) -> list[str]:
    settings = write_settings(tmp_path, SETTINGS)
    return [
        sys.executable,
        str(PROJECT_ROOT / "DeepLabStream.py"),
        "--settings",
        str(settings),
        "--headless",
        "--output-dir",
        str(tmp_path / "out"),
        *options,
    ]


def _assert_stopped_cleanly(
    code: int, out: str, err: str, children: list[psutil.Process], expected: int = EXIT_CTRL_C
) -> None:
    assert code == expected, (code, out, err)
    assert "Traceback" not in out + err, out + err
    assert "KeyboardInterrupt" not in out + err, out + err
    assert "ended before" not in err, err  # not "its capture process ended before opening"
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left running: {alive}"


def _sessions(tmp_path: Path) -> list[Path]:
    out = tmp_path / "out"
    return sorted(p for p in out.iterdir() if p.is_dir()) if out.exists() else []


def test_ctrl_c_before_anything_started_exits_130_and_makes_nothing(tmp_path: Path) -> None:
    command = _deeplabstream(tmp_path, "--pose-enabled")
    code, out, err, children = _run_until_held(tmp_path, "main-before-start", command)
    _assert_stopped_cleanly(code, out, err, children)
    assert "Stopped before the start: Ctrl-C received; nothing was started" in out
    assert _sessions(tmp_path) == []


def test_ctrl_c_while_a_capture_process_imports_exits_130_without_a_traceback(
    tmp_path: Path,
) -> None:
    command = _deeplabstream(tmp_path, "--pose-enabled")
    code, out, err, children = _run_until_held(tmp_path, "capture-import", command)
    _assert_stopped_cleanly(code, out, err, children)
    assert "Stopped: Ctrl-C received during start-up" in out
    assert _sessions(tmp_path) == []  # the cameras never opened: no folder


@pytest.mark.parametrize("release", [True, False], ids=["worker-ends-itself", "worker-ended"])
def test_ctrl_c_while_the_model_loads_exits_130_and_removes_the_empty_folder(
    tmp_path: Path, release: bool
) -> None:
    # Released, the worker finishes loading and stops by itself; held, it is still loading
    # (a model that takes minutes) and the session ends it.
    command = _deeplabstream(tmp_path, "--pose-enabled")
    code, out, err, children = _run_until_held(tmp_path, "pose-load", command, release)
    _assert_stopped_cleanly(code, out, err, children)
    assert "Stopped: Ctrl-C received during start-up" in out
    assert "Nothing was recorded or analysed: its session folder" in out and "was removed" in out
    assert _sessions(tmp_path) == []


@pytest.mark.parametrize(
    ("moment", "release", "said"),
    [
        ("main-before-start", True, "Stopped before the start: SIGTERM received; nothing was"),
        ("capture-import", True, "Stopped: SIGTERM received during start-up"),
        # the model still loading: as its Ctrl-C case above, in the slow step
        pytest.param(
            "pose-load",
            False,
            "Stopped: SIGTERM received during start-up",
            marks=pytest.mark.slow,
        ),
    ],
    ids=["before-anything", "capture-importing", "model-loading"],
)
def test_sigterm_during_start_up_exits_143_and_makes_nothing(
    tmp_path: Path, moment: str, release: bool, said: str
) -> None:
    # SIGTERM to the main process alone: it stops every child itself (none gets the signal).
    command = _deeplabstream(tmp_path, "--pose-enabled")
    code, out, err, children = _run_until_held(tmp_path, moment, command, release, sigterm=True)
    _assert_stopped_cleanly(code, out, err, children, expected=EXIT_SIGTERM)
    assert said in out
    assert _sessions(tmp_path) == []


def test_ctrl_c_after_the_recording_started_keeps_a_finalised_folder(tmp_path: Path) -> None:
    # Steps: open the cameras, start the analysis, start the recording, then (4) the stream.
    command = _deeplabstream(tmp_path, "--pose-enabled", "--recording-enabled")
    code, out, err, children = _run_until_held(tmp_path, "start-up-step-4", command)
    _assert_stopped_cleanly(code, out, err, children)
    [session] = _sessions(tmp_path)
    info = json.loads((session / "session.json").read_text())
    assert info["status"] == "finished" and info["errors"] == []
    assert info["stop_reason"] == "Ctrl-C received during start-up"
    camera = info["cameras"]["arena"]
    assert camera["frames_captured"] == camera["frames_recorded"] == 0
    assert camera["frames_lost_in_recording"] == 0
    assert f"Session folder (finalised): {session}" in out


def test_ctrl_c_while_a_replay_starts_exits_130_without_a_traceback(tmp_path: Path) -> None:
    video = tmp_path / "clip.mkv"
    make_ffv1_video(video, 30, 320, 240)
    settings = write_settings(tmp_path, SETTINGS)
    command = [
        sys.executable,
        str(PROJECT_ROOT / "utils" / "VideoAnalyzer.py"),
        str(video),
        "--settings",
        str(settings),
        "--no-experiment",
        "--output-dir",
        str(tmp_path / "out"),
    ]
    code, out, err, children = _run_until_held(tmp_path, "capture-import", command)
    _assert_stopped_cleanly(code, out, err, children)
    assert "Interrupted by Ctrl-C" in err
    assert "not replayed: Ctrl-C received before its stream started" in out
    assert _sessions(tmp_path) == []


def test_ctrl_c_while_the_app_opens_its_stream_exits_130_without_a_traceback(
    tmp_path: Path,
) -> None:
    settings = write_settings(tmp_path, SETTINGS)
    command = [
        sys.executable,
        str(PROJECT_ROOT / "app.py"),
        "--settings",
        str(settings),
        "--output-dir",
        str(tmp_path / "out"),
    ]
    code, out, err, children = _run_until_held(
        tmp_path, "capture-import", command, QT_QPA_PLATFORM="offscreen"
    )
    _assert_stopped_cleanly(code, out, err, children)
    assert _sessions(tmp_path) == []


@pytest.mark.slow
def test_ctrl_c_while_the_app_loads_its_model_exits_130_once_without_repeating_its_status(
    tmp_path: Path,
) -> None:
    """Issue 63 #10: Ctrl-C while the window's model loads (offscreen, the parts it starts by
    itself still starting) is a stop during the start-up, as DeepLabStream.py's: 130, as
    docs/gui.md says; the last status line was printed 2-3 times while the stream stopped."""
    settings = write_settings(tmp_path, SETTINGS)
    command = [
        sys.executable, str(PROJECT_ROOT / "app.py"), "--settings", str(settings),
        "--output-dir", str(tmp_path / "out"),
    ]  # fmt: skip
    code, out, err, children = _run_until_held(
        tmp_path, "pose-load", command, QT_QPA_PLATFORM="offscreen"
    )
    _assert_stopped_cleanly(code, out, err, children)
    status = [line for line in out.splitlines() if " fps, " in line]
    assert len(status) == len(set(status)), out  # each refresh printed once
    assert _sessions(tmp_path) == []  # nothing recorded or analysed: no folder kept
