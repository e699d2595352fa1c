"""A model that finds no animal is counted and warned about (issue 44, a partly case).

A SLEAP top-down export of this project (``tests/fixtures/sleap_topdown_flies``) is fed a black
video through ``utils/VideoAnalyzer.py`` (the real replay: video camera process, shared memory,
the inference worker with both of the model's stages): its centroid stage finds nothing to
crop in any frame. ``session.json`` must count those frames per camera and warn, naming the
camera, and the summary must say it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from tests.support.paths import PROJECT_ROOT

MODEL = PROJECT_ROOT / "tests" / "fixtures" / "sleap_topdown_flies" / "export_topdown"
FRAMES = 12


def _black_video(path: Path, frames: int, size: int = 1024) -> None:
    """Write ``frames`` black frames (the fly clip's size) as a lossless video."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width = stream.height = size
        stream.pix_fmt = "gray"
        black = np.zeros((size, size), np.uint8)
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(black, format="gray")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.mark.slow  # a replay with a two-stage model: the slow step
def test_a_top_down_model_that_finds_no_animal_in_any_frame_is_counted_and_warned(tmp_path):
    if not (MODEL / "model.onnx").is_file():
        pytest.skip(f"the top-down export {MODEL} is absent")
    clip = tmp_path / "empty_arena.mkv"
    _black_video(clip, FRAMES)
    settings = tmp_path / "settings.ini"
    settings.write_text("[Camera arena]\nSOURCE = synthetic\n[Pose]\nMAX_ANIMALS = 2\n")
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "utils" / "VideoAnalyzer.py"), str(clip), "--fast",
         "--no-experiment", "--model", str(MODEL), "--settings", str(settings),
         "--output-dir", str(tmp_path / "out")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = (tmp_path / "out").glob("*/session.json")
    info = json.loads(path.read_text(encoding="utf-8"))
    (camera,) = info["pose_runs"][0]["cameras"]
    figures = info["pose_runs"][0]["cameras"][camera]
    assert figures["frames_analysed"] == FRAMES
    assert figures["frames_no_animal"] == FRAMES
    (warning,) = [w for w in info["warnings"] if "no animal" in w]
    assert f"camera {camera!r}" in warning and f"{FRAMES} of {FRAMES} analysed frames" in warning
    assert info["health"]["verdict"] == "warning"
    assert f"warning: {warning}" in result.stdout
