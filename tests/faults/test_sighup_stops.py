"""Issue 71 (partly): SIGHUP (a closed terminal, a dropped SSH session) stops a session as SIGTERM.

Before: SIGHUP killed every process of the session on the spot; session.json stayed ``running``
until the next start repaired it. Now the main process stops in order, and its children leave
SIGHUP to it as they leave SIGTERM. Windows has no SIGHUP: nothing to test there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP (Windows)")
CAMERA = "[Camera arena]\nSOURCE = synthetic\nWIDTH = 160\nHEIGHT = 120\nFRAMERATE = 30\n"


def test_a_command_takes_sighup_as_a_stop_request() -> None:
    code = (
        "import os, signal\n"
        "from deeplabstream.app.stop_requests import take_stop_signals\n"
        "stops = take_stop_signals()\n"
        "os.kill(os.getpid(), signal.SIGHUP)\n"
        "print(stops.reason, stops.exit_code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT
    )
    assert result.returncode == 0, result
    assert result.stdout.strip() == f"SIGHUP received {128 + signal.SIGHUP}"


@pytest.mark.slow  # a whole session
def test_sighup_to_the_group_stops_the_session_and_finishes_session_json(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, CAMERA)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(out), "--recording-enabled", "--pose-enabled",
         "--duration", "120"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        for line in process.stdout:  # until the stream runs: its first status line
            if line.startswith("arena:") and "fps" in line:
                break
        os.killpg(process.pid, signal.SIGHUP)  # a terminal's hang-up reaches the whole group
        output = process.communicate(timeout=120)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 0, output[-3000:]
    assert "Stopped: SIGHUP received" in output, output[-3000:]
    (record,) = out.glob("*/session.json")
    info = json.loads(record.read_text())
    assert info["status"] == "finished" and info["stop_reason"] == "SIGHUP received", info
    assert info["errors"] == [], info["errors"]
    camera = info["cameras"]["arena"]
    assert camera["frames_lost_in_recording"] == 0, camera
