"""What is found before the start, and what a live video camera cut short says (issue 37, 9).

Refused before anything starts (exit 2, no session folder): a serial board whose port does not
exist (the ports present are listed), cameras whose frame rings need more shared memory than
the machine has (the figure and each camera named). Accepted: a settings file with a UTF-8
byte-order mark. Said: a camera whose exposure allows fewer frames per second than its
FRAMERATE (a warning in ``session.json`` and the summary), and a fragmented video cut short
played as a live camera ("truncated", exit 1, as the replay says it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from deeplabstream.live.session.preflight import available_shared_memory
from tests.faults.test_replay_faults import fragmented_mp4
from tests.support.files import write_settings
from tests.support.in_process import headless_here
from tests.support.paths import PROJECT_ROOT

CAMERA = "[Camera arena]\nSOURCE = synthetic\nWIDTH = 320\nHEIGHT = 240\nFRAMERATE = 30\n"


def run(tmp_path: Path, settings: Path, *args: str, env: dict | None = None):
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(tmp_path / "out"), *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def refused_here(tmp_path: Path, settings: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """:func:`run` for a run refused before the start: the command's main in this process."""
    return headless_here(
        "--headless", "--settings", str(settings), "--output-dir", str(tmp_path / "out"), *args
    )


def test_a_serial_board_whose_port_does_not_exist_is_refused_before_the_start(tmp_path):
    port = tmp_path / "ttyACM-unplugged"
    settings = write_settings(
        tmp_path, CAMERA + f"[Device stimulus_box]\nTYPE = serial\nPORT = {port}\n"
    )
    result = refused_here(tmp_path, settings, "--experiment-enabled", "--frames", "10")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "nothing was started" in result.stderr
    assert f"[Device stimulus_box] PORT = {port}" in result.stderr
    assert "does not exist" in result.stderr
    # The platform's ports, by their platform names (none on this machine is fine: it says so).
    assert "serial ports present" in result.stderr or "no serial ports were found" in result.stderr
    assert not (tmp_path / "out").exists()


def test_rings_larger_than_the_shared_memory_are_refused_naming_figure_and_camera(tmp_path):
    # 8192 x 8192 colour frames at 1000 fps: 2 s of them are ~400 GiB, beyond any machine here.
    available = available_shared_memory()
    assert available is not None and available < 300 * 2**30
    settings = write_settings(
        tmp_path,
        "[Camera huge]\nSOURCE = synthetic\nWIDTH = 8192\nHEIGHT = 8192\nFRAMERATE = 1000\n",
    )
    result = refused_here(tmp_path, settings, "--frames", "10")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "GiB of shared memory" in result.stderr and "camera 'huge'" in result.stderr
    assert re.search(r"the machine has \d+\.\d\d GiB free", result.stderr)  # memory moves
    assert not (tmp_path / "out").exists()


def test_a_settings_file_with_a_byte_order_mark_is_read(tmp_path):
    settings = write_settings(tmp_path, CAMERA)
    settings.write_bytes(b"\xef\xbb\xbf" + settings.read_bytes())  # as Notepad saves UTF-8
    result = run(tmp_path, settings, "--frames", "10")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.slow  # a whole session: the slow step (the default suite's 15 minutes)
def test_a_truncated_video_as_a_live_camera_is_reported_truncated(tmp_path):
    whole = fragmented_mp4(tmp_path / "whole.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.8)])  # a copy cut short
    for video, code in ((whole, 0), (cut, 1)):
        out = tmp_path / video.stem
        settings = write_settings(
            out.parent, f"[Camera clip]\nSOURCE = video\nPATH = {video}\n", name=f"{video.stem}.ini"
        )
        result = run(out, settings)
        assert result.returncode == code, result.stdout[-2000:] + result.stderr[-2000:]
        (folder,) = (out / "out").iterdir()
        info = json.loads((folder / "session.json").read_text())
        truncated = [e for e in info["errors"] if f"{cut}: truncated: the video ended" in e]
        if video is whole:
            assert info["errors"] == [] and info["cameras"]["clip"]["frames_captured"] == 60
        else:
            (error,) = truncated
            captured = info["cameras"]["clip"]["frames_captured"]
            assert 0 < captured < 60 and f"after {captured} of the 60 frames" in error
            assert f"error: {error}" in result.stdout


def test_an_exposure_longer_than_the_frame_interval_is_a_warning_in_session_json(tmp_path):
    pytest.importorskip("pypylon", reason="pypylon is not installed (pip install pypylon)")
    settings = write_settings(
        tmp_path,
        "[Camera cam]\nSOURCE = basler\nWIDTH = 320\nHEIGHT = 256\nFRAMERATE = 30\n"
        "EXPOSURE = 50000\n",
    )
    result = run(tmp_path, settings, "--frames", "10", env={"PYLON_CAMEMU": "1"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (folder,) = (tmp_path / "out").iterdir()
    info = json.loads((folder / "session.json").read_text())
    (warning,) = [w for w in info["warnings"] if "EXPOSURE" in w]
    assert warning.startswith("camera 'cam': EXPOSURE 50000 µs allows at most 20.0 fps")
    assert "below its FRAMERATE 30" in warning
    assert f"warning: {warning}" in result.stdout
    assert info["health"]["verdict"] == "warning"
