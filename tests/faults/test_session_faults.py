"""Faults of a running session: a killed recorder, a killed session, what the next start finds.

Every test runs ``DeepLabStream.py`` as a lab would, injects the fault with a real signal, and
checks the invariant on what is left: recorded + lost = captured, recorded = frames that decode
= rows of the frames table, and every loss is in ``session.json``'s errors and the exit code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from deeplabstream.outputs.folder import RESERVE_FILE
from deeplabstream.outputs.frames_table import count_table_rows
from deeplabstream.outputs.video import count_decodable_frames
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT
SETTINGS = (
    "[Camera arena]\nSOURCE = synthetic\nWIDTH = 320\nHEIGHT = 240\nFRAMERATE = 30\n"
    "[Recording]\nCODEC = h264\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\nFLUSH_INTERVAL = 0.5\n"
)


def start(
    tmp_path: Path, *args: str, new_session: bool = False, extra: str = ""
) -> subprocess.Popen[str]:
    """``DeepLabStream.py`` on :data:`SETTINGS` (plus ``extra`` sections), its output in out/."""
    settings = write_settings(tmp_path, SETTINGS + extra)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(tmp_path / "out"), *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=new_session,
    )  # fmt: skip


def wait_for_session(tmp_path: Path, what, timeout: float = 60.0) -> tuple[Path, dict]:
    """The running session's folder and session.json once ``what(data)`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in (tmp_path / "out").glob("*/session.json"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if what(data):
                return path.parent, data
        time.sleep(0.1)
    pytest.fail("the session did not reach the expected state")


def test_a_killed_recorder_counts_every_later_frame_lost_and_the_files_agree(tmp_path):
    process = start(tmp_path, "--recording-enabled", "--frames", "150")
    session, running = wait_for_session(
        tmp_path,
        lambda d: (
            d["cameras"]["arena"]["frames_captured"] >= 60 and "recorder:arena" in d["processes"]
        ),
    )
    os.kill(running["processes"]["recorder:arena"], signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr[-2000:]
    info = json.loads((session / "session.json").read_text())
    camera = info["cameras"]["arena"]
    video, table = session / "arena.mp4", session / "arena.frames.csv"
    decodable = count_decodable_frames(video)
    assert camera["frames_captured"] == 150
    assert camera["frames_recorded"] + camera["frames_lost_in_recording"] == 150
    assert camera["frames_recorded"] == decodable == count_table_rows(table)
    assert 0 < decodable < 150
    assert any("recorder process ended unexpectedly" in e for e in info["errors"])
    assert any("are not in the recording" in e for e in info["errors"])


@pytest.mark.slow  # a whole session: the slow step (the default suite's 15 minutes)
def test_session_json_is_current_while_running_and_a_killed_session_is_marked_by_the_next(
    tmp_path,
):
    process = start(tmp_path, "--recording-enabled", "--frames", "900", new_session=True)
    session, running = wait_for_session(
        tmp_path, lambda d: d["cameras"]["arena"]["frames_captured"] >= 90
    )
    assert running["status"] == "running"
    assert running["cameras"]["arena"]["frames_recorded"] > 0
    pids = [process.pid, *(p.pid for p in psutil.Process(process.pid).children(recursive=True))]
    # Its rings, read while it runs: once it is killed, any session that starts on this machine
    # (the other test process's) removes them as stale, so they are not looked for in between.
    rings = [p for p in Path("/dev/shm").glob(f"dls{process.pid}_*")]
    assert rings, "a running session's ring is in /dev/shm"
    os.killpg(process.pid, signal.SIGKILL)  # the whole session, as a power cut of its group
    process.communicate(timeout=30)
    psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=10)
    left = json.loads((session / "session.json").read_text())
    assert left["status"] == "running" and left["cameras"]["arena"]["frames_captured"] >= 90
    assert (session / RESERVE_FILE).exists()

    again = start(tmp_path, "--frames", "30")
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr[-2000:]
    marked = json.loads((session / "session.json").read_text())
    assert marked["status"] == "interrupted"
    assert any("interrupted" in error for error in marked["errors"])
    assert not (session / RESERVE_FILE).exists()
    assert not [p for p in rings if p.exists()]
    # The killed recording's table was cut to the frames its video holds.
    decodable = count_decodable_frames(session / "arena.mp4")
    assert decodable > 0 and count_table_rows(session / "arena.frames.csv") == decodable
    assert marked["cameras"]["arena"]["frames_recorded"] == decodable
    newest = max((tmp_path / "out").iterdir())
    cleanup = json.loads((newest / "session.json").read_text())["cleanup_at_start"]
    # (Which start removed the ring is not checked: any session started meanwhile on this
    # machine may have; that it is gone is.)
    assert isinstance(cleanup["stale_rings_removed"], list)
    assert str(session) in cleanup["interrupted_sessions_marked"]


@pytest.mark.slow
def test_a_killed_pose_worker_leaves_finished_files_and_rebuilt_figures(tmp_path):
    settings = SETTINGS + "[Device stimulus_box]\nTYPE = log\n"
    path = write_settings(tmp_path, settings, name="pose.ini")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "DeepLabStream.py"), "--headless", "--settings", str(path),
         "--output-dir", str(tmp_path / "out"), "--experiment-enabled", "--frames", "450"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    session, running = wait_for_session(
        tmp_path,
        lambda d: d["cameras"]["arena"]["frames_captured"] >= 120 and "pose" in d["processes"],
    )
    os.kill(running["processes"]["pose"], signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr[-2000:]
    info = json.loads((session / "session.json").read_text())
    assert any("killed by signal 9 (SIGKILL)" in error for error in info["errors"])
    figures = info["pose"]["cameras"]["arena"]
    assert figures["rebuilt_from_files"] and figures["frames_analysed"] > 30
    assert figures["latency_ms"]["p50"] > 0
    table = pd.read_parquet(session / figures["pose_table"])
    analysed = table.filter(like="_likelihood").notna().any(axis=1)  # rows with a pose
    assert analysed.sum() == figures["frames_analysed"]
    assert len(table) == figures["pose_rows"]  # one row per frame, analysed or not
    events = pd.read_csv(session / "events.csv")
    assert events["kind"].iloc[-1] == "finish"
    assert "ended unexpectedly" in events["detail"].iloc[-1]
    assert info["experiment"]["rebuilt_from_files"]
    assert "killed by signal 9" in (session / "session.log").read_text()


def test_a_killed_ffv1_recording_keeps_all_but_its_last_flush_interval(tmp_path):
    settings = (
        SETTINGS.replace("WIDTH = 320\nHEIGHT = 240", "WIDTH = 640\nHEIGHT = 480")
        .replace("CODEC = h264", "CODEC = ffv1")
        .replace("FLUSH_INTERVAL = 0.5", "FLUSH_INTERVAL = 1.0")
    )
    path = write_settings(tmp_path, settings, name="ffv1.ini")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "DeepLabStream.py"), "--headless", "--settings", str(path),
         "--output-dir", str(tmp_path / "out"), "--recording-enabled", "--frames", "900"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    session, _ = wait_for_session(  # two flush intervals
        tmp_path, lambda d: d["cameras"]["arena"]["frames_captured"] >= 60
    )
    # Kill right after session.json was rewritten: its counts are then those of the kill.
    json_path = session / "session.json"
    written = json_path.stat().st_mtime_ns
    while json_path.stat().st_mtime_ns == written:
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    camera = json.loads(json_path.read_text())["cameras"]["arena"]
    # Frames the encoder had taken; on a loaded machine it may trail the camera, and the frames
    # still waiting in the ring at the kill were never written (not what this test is about).
    encoded = camera["frames_recorded"]
    decodable = count_decodable_frames(session / "arena.mkv")
    assert 0 < encoded <= camera["frames_captured"]
    # FLUSH_INTERVAL = 1 s at 30 fps: at most 30 frames unflushed, plus a few in the encoder's
    # threads and taken after session.json was written.
    assert encoded - decodable <= 30 + 5, (encoded, decodable, camera["frames_captured"])
    assert decodable <= camera["frames_captured"]
