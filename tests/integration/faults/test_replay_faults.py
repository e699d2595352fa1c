"""Faults of offline replay (utils/VideoAnalyzer.py): a truncated file, a renamed session folder.

A video cut short (an interrupted copy) must not pass as replayed: the report and the session's
``session.json`` say it was truncated, and the exit code is 1, as for a broken file. The session
folder, renamed after the video once the replay ends, is named by its final name in its log.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import av
import numpy as np

from tests.support.files import make_ffv1_video
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
