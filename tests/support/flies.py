"""The two-fly clip of ../shared/data/sleap-flies replayed with its sleap-nn export, cut short."""

from __future__ import annotations

from pathlib import Path

import av
import cv2

from tests.support.files import write_settings
from tests.support.paths import shared_data
from tests.support.processes import run_cli

FLIES = "sleap-flies"


def first_frames(source: Path, target: Path, frames: int, size: int | None = None) -> Path:
    """Write the first ``frames`` frames of ``source`` losslessly (FFV1), resized to ``size``."""
    with av.open(str(source)) as clip, av.open(str(target), "w") as copy:
        stream = copy.add_stream("ffv1", rate=clip.streams.video[0].average_rate)
        for index, frame in enumerate(clip.decode(video=0)):
            if index == frames:
                break
            pixels = frame.to_ndarray(format="bgr24")
            if size is not None:
                pixels = cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA)
            if index == 0:
                stream.height, stream.width = pixels.shape[:2]
                stream.pix_fmt = "bgr0"
            out = av.VideoFrame.from_ndarray(pixels, format="bgr24").reformat(format="bgr0")
            out.pts = index
            copy.mux(stream.encode(out))
        copy.mux(stream.encode(None))
    return target


def replay_flies(tmp_path: Path, frames: int, size: int | None = None) -> tuple[Path, str]:
    """Replay the first frames of the two-fly clip with the sleap-nn export.

    Returns the session folder and what the command printed.

    ``size``: the frames resized to ``size`` x ``size`` (the export was traced at 1024 x 1024).
    """
    folder = shared_data(FLIES)
    clip = first_frames(
        folder / "inference" / "flies_clip_first100.mp4", tmp_path / "flies.mkv", frames, size
    )
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\n[Pose]\nMAX_ANIMALS = 2\nLIKELIHOOD_THRESHOLD = 0.1\n"
        "[Output]\nNWB = on\n",
    )
    result = run_cli(
        "--settings", str(settings), "--output-dir", str(tmp_path / "out"), "--fast",
        "--no-experiment", "--model", str(folder / "onnx" / "flies_bottomup_tiny_onnx"), str(clip),
        script="utils/VideoAnalyzer.py", timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return tmp_path / "out" / "flies", output
