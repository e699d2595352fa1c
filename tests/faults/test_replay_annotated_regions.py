"""Issue 44: the annotated video of a replay shows the experiment's regions, as the live view.

``utils/VideoAnalyzer.py --annotated-video`` drew the keypoints but none of the experiment's
regions, which the live view draws on every tile: a reader of the video could not see where the
animal was judged to be in or out. The video is now drawn with the live view's own code
(``app.display.overlay``); the test replays a real video through the real pipeline and reads
the written H.264 file back with PyAV.
"""

from __future__ import annotations

import numpy as np
import pytest

from deeplabstream.app.display.overlay import IDLE_COLOUR
from tests.support.files import read_video
from tests.unit.offline.replay.test_replay import analyse, arena_video

# A rectangle of the 320 x 240 arena video, away from its middle where the mouse starts.
X_MIN, Y_MIN, X_MAX, Y_MAX = 30, 30, 110, 90
EXPERIMENT = f"""\
[Experiment]
DESCRIPTION = A region only: the replay's annotated video must show it

[Trigger corner]
KIND = region
SHAPE = rect {X_MIN} {Y_MIN} {X_MAX} {Y_MAX}
MODE = inside
KEYPOINT = nose
"""


def _outline(image: np.ndarray) -> np.ndarray:
    """The pixels of the rectangle's top and bottom edges (the middle of each, no corners)."""
    columns = slice(X_MIN + 5, X_MAX - 5)
    return np.concatenate([image[Y_MIN, columns], image[Y_MAX, columns]]).astype(int)


@pytest.mark.slow  # a whole replay with pose estimation and an experiment
def test_the_annotated_video_of_a_replay_draws_the_experiments_regions(tmp_path) -> None:
    video = arena_video(tmp_path / "walk.mkv", 20)
    experiment = tmp_path / "corner.ini"
    experiment.write_text(EXPERIMENT)
    code, output = analyse(
        str(video),
        "--fast",
        "--annotated-video",
        "--experiment",
        str(experiment),
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert code == 0, output
    annotated = read_video(tmp_path / "out" / "walk" / "walk.annotated.mp4")
    source = read_video(video)
    assert len(annotated) == len(source) == 20
    for drawn, plain in zip(annotated, source, strict=True):
        # The outline is there, in the live view's colour for a trigger that is not true
        # (H.264 4:2:0 blurs the colour of a one-pixel line: judged by distance, not equality).
        towards_idle = np.abs(_outline(drawn) - IDLE_COLOUR).sum(axis=1)
        before = np.abs(_outline(plain) - IDLE_COLOUR).sum(axis=1)
        assert np.median(towards_idle) < np.median(before) - 60, (towards_idle, before)
        # Inside the rectangle, away from its edges, the frame is the video's own.
        inside = (slice(Y_MIN + 10, Y_MAX - 10), slice(X_MIN + 10, X_MAX - 10))
        assert np.median(np.abs(drawn[inside].astype(int) - plain[inside])) < 12
