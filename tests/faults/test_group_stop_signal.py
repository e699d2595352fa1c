"""SIGTERM to the whole process group mid-session stops it in order, losing nothing.

``timeout``, ``kill -TERM -<group>`` and service managers signal every process of the program's
group, children included. Each child must leave the signal to the main process, which stops the
cameras, then the analysis, then the recordings: before, the capture process, the recorder and
the pose worker ended on the spot, and frames captured were missing from the recording.

The program runs in its own group, recording and tracking a paced simulated camera; the signal
goes once its frames table has rows (a condition, not a sleep), so the test does not depend on
the machine's speed.
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

from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

pytestmark = [
    pytest.mark.slow,  # a whole recorded, tracked session (about 20 s): the default suite's budget
    pytest.mark.skipif(
        not hasattr(os, "killpg"), reason="process groups are POSIX (Windows has no group SIGTERM)"
    ),
]

SETTINGS = "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\n[Device stimulus_box]\nTYPE = log\n"
STREAM_TIMEOUT_S = 180.0  # spawning, loading and opening on a busy machine; never a speed bound
ROWS_BEFORE_THE_SIGNAL = 20
EXIT_DONE = 0  # a stop once streaming is the normal end of a headless run (as Ctrl-C is)


def _frames_table_rows(out: Path) -> int:
    """Rows written so far to the session's frames table (0 before the session folder exists)."""
    tables = list(out.glob("*/arena.frames.csv"))
    if not tables:
        return 0
    return max(0, len(tables[0].read_text(errors="replace").splitlines()) - 1)


def _run_then_signal_the_group(tmp_path: Path) -> tuple[int, str, str, list[psutil.Process]]:
    out = tmp_path / "out"
    settings = write_settings(tmp_path, SETTINGS)
    command = [
        sys.executable,
        str(PROJECT_ROOT / "DeepLabStream.py"),
        "--settings",
        str(settings),
        "--headless",
        "--pose-enabled",
        "--recording-enabled",
        "--output-dir",
        str(out),
    ]
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, as `timeout` or a service manager makes
        env={**os.environ, "DEEPLABSTREAM_LOCK_FILE": str(tmp_path / "lock")},
    )
    try:
        deadline = time.monotonic() + STREAM_TIMEOUT_S
        while _frames_table_rows(out) < ROWS_BEFORE_THE_SIGNAL:
            if process.poll() is not None or time.monotonic() > deadline:
                stdout, stderr = process.communicate()
                pytest.fail(f"never streamed: exit {process.returncode}\n{stdout}\n{stderr}")
            time.sleep(0.05)
        children = psutil.Process(process.pid).children(recursive=True)
        os.killpg(process.pid, signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=STREAM_TIMEOUT_S)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    return process.returncode, stdout, stderr, children


def test_sigterm_to_the_group_mid_session_stops_in_order_and_keeps_every_frame(
    tmp_path: Path,
) -> None:
    code, stdout, stderr, children = _run_then_signal_the_group(tmp_path)
    assert code == EXIT_DONE, (code, stdout, stderr)
    assert "Traceback" not in stdout + stderr, stdout + stderr
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left running: {alive}"
    [session] = sorted(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    info = json.loads((session / "session.json").read_text())
    assert info["stop_reason"] == "SIGTERM received"
    assert info["errors"] == [], info["errors"]
    camera = info["cameras"]["arena"]
    assert camera["frames_captured"] >= ROWS_BEFORE_THE_SIGNAL
    assert camera["frames_recorded"] == camera["frames_captured"]
    assert camera["frames_lost_in_recording"] == 0
