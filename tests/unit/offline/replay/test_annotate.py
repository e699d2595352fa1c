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

from deeplabstream.offline.replay.annotate import write_annotated_video
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
