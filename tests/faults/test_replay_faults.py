"""Faults of offline replay (utils/VideoAnalyzer.py): a truncated file, a renamed session folder,
a realtime replay that falls behind.

A video cut short (an interrupted copy) must not pass as replayed: the report and the session's
``session.json`` say it was truncated, and the exit code is 1, as for a broken file. The session
folder, renamed after the video once the replay ends, is named by its final name in its log. A
``--realtime`` replay whose frames go out late says how late, and warns.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from tests.support.files import make_ffv1_video
from tests.support.paths import PROJECT_ROOT
from tests.support.processes import only_session, run_cli

ANALYZER = "utils/VideoAnalyzer.py"
FRAMES = 60


def fragmented_mp4(path: Path, frames: int = FRAMES) -> Path:
    """An H.264 fragmented MP4 (``empty_moov``: no frame count up front), 64x48 at 30 fps."""
    noise = np.random.default_rng(7)  # noise: frames of some size, so a cut lands inside one
    with av.open(str(path), "w", options={"movflags": "frag_keyframe+empty_moov"}) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(frames):
            pixels = noise.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="bgr24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def analyse(*args: str) -> tuple[int, str]:
    result = run_cli(*args, "--fast", "--no-experiment", timeout=120, script=ANALYZER)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.slow  # a whole session: the slow step (the default suite's 15 minutes)
def test_a_truncated_fragmented_mp4_is_reported_as_truncated_with_exit_1(tmp_path: Path) -> None:
    whole = fragmented_mp4(tmp_path / "whole.mp4")
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.8)])  # an interrupted copy
    with av.open(str(cut)) as container:  # the case at hand: the container states no count
        assert container.streams.video[0].frames == 0

    code, output = analyse(str(whole), str(cut), "--output-dir", str(tmp_path / "out"))

    assert code == 1, output
    # (the test's folder has "truncated" in its name: the line's own words are matched)
    assert re.search(r"FAILED cut\.mp4: \S*cut\.mp4: truncated: ", output), output
    assert "done   cut.mp4" not in output, output
    assert "done   whole.mp4" in output, output  # the whole file is no truncated one
    assert "FAILED whole.mp4" not in output, output
    info = json.loads((tmp_path / "out" / "cut" / "session.json").read_text(encoding="utf-8"))
    assert any("truncated" in error for error in info["errors"]), info["errors"]
    assert info["replay"]["truncated"] is True
    assert 0 < info["cameras"]["cut"]["frames_captured"] < FRAMES
    info = json.loads((tmp_path / "out" / "whole" / "session.json").read_text(encoding="utf-8"))
    assert info["errors"] == [] and info["replay"]["truncated"] is False
    assert info["cameras"]["whole"]["frames_captured"] == FRAMES


def test_session_log_names_the_final_folder(tmp_path: Path) -> None:
    video = tmp_path / "mouse.mkv"
    make_ffv1_video(video, 30, width=64, height=48)
    output = tmp_path / "out"

    code, text = analyse(str(video), "--output-dir", str(output))

    assert code == 0, text
    session = only_session(output)
    assert session.name == "mouse"  # renamed after the video
    log = (session / "session.log").read_text(encoding="utf-8")
    named = set(re.findall(re.escape(str(output)) + r"/([^\s/'\"]+)", log))
    assert named == {"mouse"}, log  # every line names the folder as it is now
    assert f"session folder: {session}" in log, log


STALL_S = 1.0


@pytest.mark.slow
def test_a_realtime_replay_that_falls_behind_says_how_late_its_frames_were(tmp_path: Path) -> None:
    """The capture process is stopped (SIGSTOP) for a second mid-video, on purpose.

    Every frame due meanwhile goes out at least that late, whatever the machine's speed: the
    replay must report the lateness (p99, max) in session.json and warn in its log, its report
    and session.json's warnings.
    """
    video = tmp_path / "slow.mkv"
    make_ffv1_video(video, 450, width=64, height=48, fps=30)  # 15 s at its own rate
    output = tmp_path / "out"
    replay = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / ANALYZER), str(video), "--realtime",
         "--no-experiment", "--deadline", "off", "--output-dir", str(output)],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        capture = _capture_process_once_frames_flow(output, "slow", replay)
        os.kill(capture, signal.SIGSTOP)
        time.sleep(STALL_S)
        os.kill(capture, signal.SIGCONT)
        text, _ = replay.communicate(timeout=120)
    finally:
        if replay.poll() is None:
            replay.kill()
    assert replay.returncode == 0, text  # a warning, not a failure
    session = only_session(output)
    info = json.loads((session / "session.json").read_text(encoding="utf-8"))
    delivery = info["replay"]["delivery"]
    interval_ms = 1000 / 30
    assert delivery["frame_interval_ms"] == pytest.approx(interval_ms, abs=1e-3)
    assert delivery["late_ms"]["max"] >= STALL_S * 1000 - interval_ms - 1
    assert delivery["late_ms"]["p99"] > interval_ms  # a second's frames of 450: above the p99
    assert delivery["frames_late"] >= int(STALL_S * 30) - 2
    assert info["cameras"]["slow"]["device"]["delivery"] == delivery
    (warning,) = [w for w in info["warnings"] if "fell behind" in w]
    assert f"{delivery['frames_late']} of 449 frames" in warning, warning
    assert f"max {delivery['late_ms']['max']} ms" in warning, warning
    assert f"warning: {warning}" in text, text  # the batch's report
    assert warning in (session / "session.log").read_text(encoding="utf-8")


def _capture_process_once_frames_flow(output: Path, camera: str, replay: subprocess.Popen) -> int:
    """Return the replay's capture process id once session.json counts frames captured."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and replay.poll() is None:
        for path in output.glob("*/session.json"):
            try:
                info = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):  # being replaced: read it again
                continue
            pid = (info.get("processes") or {}).get(f"capture:{camera}")
            captured = ((info.get("cameras") or {}).get(camera) or {}).get("frames_captured", 0)
            if pid and captured > 10:
                return int(pid)
        time.sleep(0.1)
    raise AssertionError(f"the replay never got going: {replay.poll()=}")
