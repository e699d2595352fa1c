"""The annotated copy of a replayed video plays everywhere: H.264 4:2:0 at an even size.

An odd-sized source (a camera's 65 x 49 crop, say) used to give H.264 4:4:4, which browsers and
QuickTime do not play. The copy is read back with PyAV (FFmpeg), as a player would.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from deeplabstream.outputs.annotated_video import write_annotated_video
from tests.support.files import make_ffv1_video, read_video

FRAMES = 12


def _pose_csv(path: Path, frames: int) -> Path:
    """A single-animal pose CSV (DeepLabCut layout) with one keypoint at (20, 30)."""
    columns = pd.MultiIndex.from_tuples(
        [("scorer", "nose", c) for c in ("x", "y", "likelihood")],
        names=["scorer", "bodyparts", "coords"],
    )
    values = np.tile([20.0, 30.0, 0.99], (frames, 1))
    pd.DataFrame(values, index=range(frames), columns=columns).to_csv(path)
    return path


@pytest.mark.parametrize("size", [(65, 49), (64, 49), (65, 48), (64, 48)])
def test_annotated_video_is_yuv420p_at_an_even_size(tmp_path: Path, size: tuple[int, int]) -> None:
    width, height = size
    source = tmp_path / "odd.mkv"
    frames = make_ffv1_video(source, FRAMES, width=width, height=height)
    target = tmp_path / "odd.annotated.mp4"

    written = write_annotated_video(
        source, _pose_csv(tmp_path / "odd.pose.csv", FRAMES), target, threshold=0.5
    )

    assert written == FRAMES
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.codec_context.profile == "High"  # not "High 4:4:4 Predictive"
        assert (stream.codec_context.width, stream.codec_context.height) == (
            width + width % 2,
            height + height % 2,
        )
    copies = read_video(target)
    assert len(copies) == FRAMES
    for copy, original in zip(copies, frames, strict=True):
        # the source's pixels where no keypoint is drawn, to H.264's loss (a nose at x 20)
        far = (slice(None), slice(40, width))
        assert np.abs(copy[:height, :width][far].astype(int) - original[far]).mean() < 6
        assert copy[30, 20].tolist() != original[30, 20].tolist()  # the nose is drawn


def _black_video(path: Path, frames: int, width: int = 160, height: int = 64) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "bgr0"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), "bgr24")
            frame = frame.reformat(format="bgr0")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _drawn_x(image: np.ndarray) -> float:
    """Return the column of the drawn keypoint (the bright pixels on a black frame)."""
    columns = np.nonzero(image.max(axis=(0, 2)) > 100)[0]
    return float(columns.mean()) if len(columns) else float("nan")


def test_a_recording_is_drawn_frame_by_frame_through_its_frames_table(tmp_path: Path) -> None:
    """A recording that started at frame index 10 and lost every other frame: video frame i is
    frame index 10 + 2 i, and it shows that frame's pose (x = 5 + frame index), not row i's."""
    video = tmp_path / "cam.mp4"
    _black_video(video, 8)
    columns = pd.MultiIndex.from_tuples(
        [("scorer", "nose", c) for c in ("x", "y", "likelihood")],
        names=["scorer", "bodyparts", "coords"],
    )
    indices = np.arange(30)
    values = np.column_stack([5.0 + indices, np.full(30, 30.0), np.full(30, 0.99)])
    pd.DataFrame(values, index=indices, columns=columns).to_csv(tmp_path / "cam.pose.csv")
    frame_indices = 10 + 2 * np.arange(8)

    written = write_annotated_video(
        video, tmp_path / "cam.pose.csv", tmp_path / "out.mp4", threshold=0.5,
        frame_indices=frame_indices,
    )  # fmt: skip

    assert written == 8
    drawn = [_drawn_x(image) for image in read_video(tmp_path / "out.mp4")]
    assert drawn == pytest.approx([5.0 + i for i in frame_indices], abs=1.0)


def test_a_frame_before_the_first_pose_is_left_as_it_is(tmp_path: Path) -> None:
    video = tmp_path / "cam.mp4"
    _black_video(video, 4)
    columns = pd.MultiIndex.from_tuples(
        [("scorer", "nose", c) for c in ("x", "y", "likelihood")],
        names=["scorer", "bodyparts", "coords"],
    )
    pose = pd.DataFrame([[50.0, 30.0, 0.99]], index=[2], columns=columns)
    pose.to_csv(tmp_path / "cam.pose.csv")
    write_annotated_video(video, tmp_path / "cam.pose.csv", tmp_path / "out.mp4", threshold=0.5)
    drawn = [_drawn_x(image) for image in read_video(tmp_path / "out.mp4")]
    assert np.isnan(drawn[0]) and np.isnan(drawn[1])
    assert drawn[2] == pytest.approx(50.0, abs=1.0) and drawn[3] == pytest.approx(50.0, abs=1.0)
