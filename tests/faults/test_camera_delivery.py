"""A camera that does not deliver what it was set to is named (issue 44, cases 4, 2 and 3).

Each test runs ``DeepLabStream.py`` as a lab would and makes the condition on purpose:

- a lab camera plugin (``cameras/lab_paced.py`` beside the settings file) that sleeps so that it
  delivers 10 of its FRAMERATE 30 frames a second while stamping each frame on its schedule
  (``index / FRAMERATE``, as the simulated camera and a video file do): the status line must show
  the delivered rate, a live warning must say it, and ``session.json`` must carry it as a warning
  (verdict ``warning``, the summary);
- the same plugin configured at a frame size whose rings would need more than half of the shared
  memory free now (the figure is taken from this machine), but whose frames are small: the
  warning comes before the start, and nothing of that size is ever allocated;
- the simulated camera's capture process stopped (SIGSTOP) for 3 s and let go (SIGCONT): the
  stall is named live and in ``session.json`` (camera, how long, which frames), and the frames due
  meanwhile are counted as dropped by the camera instead of delivered late in a burst.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from deeplabstream.live.session.preflight import available_shared_memory
from tests.faults.test_session_faults import wait_for_session
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

#: A lab camera that promises FRAMERATE and delivers DELIVERS frames a second; its frames are
#: always 64 x 48, whatever WIDTH and HEIGHT declare (what the start's checks read).
LAB_PACED = '''
"""SOURCE = lab_paced: stamps frame k at k / FRAMERATE, delivers DELIVERS frames a second."""

import time
from dataclasses import dataclass

from deeplabstream.core.timing import host_now_ns
from deeplabstream.core.frames import FrameGeometry, FrameStamp
from deeplabstream.core.schema import setting
from deeplabstream.hardware.cameras.base import Camera


@dataclass(frozen=True)
class LabPacedSettings:
    framerate: float = setting(30.0, doc="The rate it is set to.", minimum=1, maximum=1000)
    delivers: float = setting(0.0, doc="The rate it delivers (0: FRAMERATE).", minimum=0,
                              maximum=1000)
    width: int = setting(64, doc="Declared frame width.", minimum=1, maximum=100000)
    height: int = setting(48, doc="Declared frame height.", minimum=1, maximum=100000)


class LabPaced(Camera):
    settings_class = LabPacedSettings

    @classmethod
    def lock_keys(cls, settings):
        return ()

    def open(self):
        self.index = 0
        self.next_ns = 0
        return FrameGeometry(height=48, width=64, channels=3)

    @property
    def nominal_fps(self):
        return self.settings.framerate

    def grab(self, out):
        rate = self.settings.delivers or self.settings.framerate
        wait_ns = self.next_ns - host_now_ns()
        if wait_ns > 0:
            time.sleep(wait_ns / 1e9)
        self.next_ns = max(self.next_ns, host_now_ns()) + round(1e9 / rate)
        out[...] = self.index % 256
        index, self.index = self.index, self.index + 1
        return FrameStamp(index, index / self.settings.framerate, host_now_ns())

    def close(self):
        pass
'''

STATUS_RATE = re.compile(r"^(\w+):\s+([0-9.]+) fps, \d+ frames", re.MULTILINE)


def _lab_settings(tmp_path: Path, text: str) -> Path:
    (tmp_path / "cameras").mkdir(exist_ok=True)
    (tmp_path / "cameras" / "lab_paced.py").write_text(LAB_PACED, encoding="utf-8")
    return write_settings(tmp_path, text)


def _run(tmp_path: Path, settings: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(tmp_path / "out"), *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _session(tmp_path: Path) -> tuple[Path, dict]:
    (path,) = (tmp_path / "out").glob("*/session.json")
    return path.parent, json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.slow  # a 9 s session: the slow step
def test_a_camera_delivering_below_its_framerate_is_warned_live_and_in_session_json(tmp_path):
    settings = _lab_settings(
        tmp_path, "[Camera slow]\nSOURCE = lab_paced\nFRAMERATE = 30\nDELIVERS = 10\n"
    )
    result = _run(tmp_path, settings, "--duration", "9")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    # The status line shows what the camera delivered, not its schedule's 30 fps.
    rates = [float(rate) for name, rate in STATUS_RATE.findall(result.stdout) if name == "slow"]
    assert rates and rates[-1] < 0.9 * 30, rates
    assert "BELOW FRAMERATE 30" in result.stdout
    # A live warning while it lasts, naming the camera and both rates.
    assert re.search(r"camera 'slow' delivers [0-9.]+ fps, below its FRAMERATE 30", output)
    _, info = _session(tmp_path)
    (warning,) = [w for w in info["warnings"] if "'slow'" in w and "FRAMERATE 30" in w]
    assert "delivered" in warning
    assert info["health"]["verdict"] == "warning"
    assert f"  warning: {warning}" in result.stdout.splitlines()  # the summary


def _ring_filling_settings(available: int) -> tuple[str, float] | None:
    """A camera whose rings (2 s at 30 fps, colour) need about 65 % of ``available`` bytes."""
    width, slots = 8192, math.ceil(30 * 2.0)
    height = int(0.65 * available / (slots * width * 3))
    if height < 64:
        return None
    text = f"[Camera big]\nSOURCE = lab_paced\nFRAMERATE = 30\nWIDTH = {width}\nHEIGHT = {height}\n"
    return text, slots * width * height * 3 / 2**30


@pytest.mark.slow  # a whole session: the slow step (the default suite keeps under 15 min)
def test_rings_needing_most_of_the_free_shared_memory_are_warned_before_the_start(tmp_path):
    available = available_shared_memory()
    planned = None if available is None else _ring_filling_settings(available)
    if planned is None:
        pytest.skip("this machine has too little shared memory to plan the rings on purpose")
    text, gib = planned
    # Its frames are 64 x 48 whatever WIDTH and HEIGHT declare: no gigabyte is allocated.
    result = _run(tmp_path, _lab_settings(tmp_path, text), "--frames", "5")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    start = [n for n, line in enumerate(lines) if line.startswith("Warning: camera 'big'")]
    assert start, result.stdout[-3000:]
    said = lines[start[0]]
    assert f"{gib:.2f} GiB" in said and "shared memory" in said
    assert start[0] < next(n for n, line in enumerate(lines) if line.startswith("Stopped"))
    _, info = _session(tmp_path)
    (warning,) = [w for w in info["warnings"] if "'big'" in w and "GiB" in w]
    assert said == f"Warning: {warning}"
    assert info["health"]["verdict"] == "warning"
    assert f"  warning: {warning}" in lines  # the summary


@pytest.mark.slow  # a 10 s session: the slow step
def test_a_stalled_capture_process_is_named_and_its_missed_frames_dropped_not_burst(tmp_path):
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\nWIDTH = 160\nHEIGHT = 120\nFRAMERATE = 30\n"
        "[Recording]\nCODEC = ffv1\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
    )
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(tmp_path / "out"), "--recording-enabled",
         "--duration", "10"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _, running = wait_for_session(
            tmp_path,
            lambda d: (
                d["cameras"]["arena"]["frames_captured"] >= 45 and "capture:arena" in d["processes"]
            ),
        )
        capture = running["processes"]["capture:arena"]
        os.kill(capture, signal.SIGSTOP)
        time.sleep(3.0)
        os.kill(capture, signal.SIGCONT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    # Named live, while it lasted.
    assert re.search(r"camera 'arena' delivered no frame for [0-9.]+ s after frame \d+", stdout)
    folder, info = _session(tmp_path)
    camera = info["cameras"]["arena"]
    # The frames due while it was stopped were not delivered late in a burst: dropped, counted.
    table = pd.read_csv(folder / "arena.frames.csv")
    jumps = table["frame_index"].diff().fillna(1).astype(int) - 1
    assert jumps.max() >= 0.8 * 3.0 * 30, jumps.max()
    assert camera["frames_dropped_by_camera"] == int(jumps.sum())
    before = int(table["frame_index"][jumps.idxmax() - 1])
    after = int(table["frame_index"][jumps.idxmax()])
    (warning,) = [w for w in info["warnings"] if "'arena'" in w and "no frame" in w]
    # The last frame before the stall (one grabbed just before SIGSTOP may come after it, late),
    # and exactly the frames skipped.
    assert int(re.search(r"after frame (\d+)", warning).group(1)) <= before
    assert f"frames {before + 1}-{after - 1}" in warning and "dropped by the camera" in warning
    seconds = float(re.search(r"no frame for ([0-9.]+) s", warning).group(1))
    assert seconds >= 2.5
    assert info["health"]["verdict"] == "warning"
    assert f"  warning: {warning}" in stdout.splitlines()  # the summary


@pytest.mark.slow  # a session
def test_a_camera_frozen_to_the_stop_is_kept_as_the_gap_it_was(tmp_path):
    """Issue 71: frozen to the stop, session.json kept the 2.1 s warning said when it began."""
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\nWIDTH = 160\nHEIGHT = 120\nFRAMERATE = 30\n",
    )
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(tmp_path / "out"), "--duration", "60"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    capture = None
    try:
        _, running = wait_for_session(
            tmp_path,
            lambda d: (
                d["cameras"]["arena"]["frames_captured"] >= 45 and "capture:arena" in d["processes"]
            ),
        )
        capture = running["processes"]["capture:arena"]
        os.kill(capture, signal.SIGSTOP)
        wait_for_session(tmp_path, lambda d: any("no frame for" in w for w in d["warnings"]))
        time.sleep(3.0)  # frozen on: seconds beyond the warning said when it began
        process.send_signal(signal.SIGTERM)  # stopped while the camera is frozen
        time.sleep(0.5)
        os.kill(capture, signal.SIGCONT)  # so that its process can end
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if capture is not None:
            try:
                os.kill(capture, signal.SIGCONT)
            except ProcessLookupError:
                pass
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    _, info = _session(tmp_path)
    (warning,) = [w for w in info["warnings"] if "'arena'" in w and "no frame" in w]
    seconds = float(re.search(r"no frame for ([0-9.]+) s", warning).group(1))
    assert seconds >= 5.0 and "to the session's stop" in warning, warning
    # Its rate over the session, the silence counted: not the 30 fps of the frames it delivered
    camera = info["cameras"]["arena"]
    assert camera["measured_fps"] < 0.8 * 30, camera
    assert f"({camera['measured_fps']:.2f} fps)" in stdout  # the summary
    assert info["health"]["verdict"] == "warning"
    assert f"  warning: {warning}" in stdout.splitlines()  # the summary
