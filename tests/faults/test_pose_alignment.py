"""Issue 44: a live session's pose rows line up with its recorded video by the frame index.

From the window, a lab starts the stream, then the analysis, then the recording, each when it
chooses: the pose table then starts at the frame the analysis started at, the video at the
frame the recording started at (395 and 540 in the issue), so row i of one is not row i of
the other. ``docs/outputs.md`` documents the one way to align them, which this test runs on a
real session started that way: ``<camera>.frames.csv``'s row k is video frame k and names its
camera frame index, which is the pose table's index (``frame_index``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.live.session.live import LiveSession
from deeplabstream.live.session.runner import SessionRunner
from deeplabstream.outputs.video import count_decodable_frames
from deeplabstream.settings import load_settings
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

SETTINGS = (
    "[Camera arena]\nSOURCE = synthetic\nWIDTH = 320\nHEIGHT = 240\nFRAMERATE = 30\n"
    "[Recording]\nCODEC = h264\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n"
)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _run_until(runner: SessionRunner, done: Callable[[], bool], what: str) -> None:
    """Service the session until ``done()``; fail naming ``what`` when it never comes."""
    deadline = time.monotonic() + 120
    while not done():
        if time.monotonic() > deadline or not runner.tick(0.1):
            pytest.fail(f"the session never reached: {what}")


def _session_started_in_steps(output: Path, settings: Path) -> Path:
    """Stream, then analyse, then record (as from the window); return the session folder."""
    stream = LiveSession(load_settings(settings), output_dir=output)
    runner = SessionRunner(stream, status_out=None)
    try:
        folder = stream.open()
        stream.start()
        captured = lambda: stream.camera_stats()["arena"]["captured"]  # noqa: E731
        _run_until(runner, lambda: captured() >= 15, "15 frames before the analysis")
        stream.pose.start_analysis()
        pose_csv = folder / "arena.pose.csv"
        _run_until(runner, lambda: _lines(pose_csv) >= 3 + 20, "20 pose rows")
        stream.start_recording()
        frames_csv = folder / "arena.frames.csv"
        _run_until(runner, lambda: _lines(frames_csv) >= 1 + 30, "30 recorded frames")
    finally:
        stream.stop("test over")
    return folder


def _documented_join() -> str:
    """The code of docs/outputs.md's "Aligning pose rows with the recorded video"."""
    text = (PROJECT_ROOT / "docs" / "outputs.md").read_text(encoding="utf-8")
    heading = "### Aligning pose rows with the recorded video\n"
    assert heading in text, "docs/outputs.md documents no way to align pose rows and video"
    section = text.split(heading, 1)[1].split("\n#", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.slow  # a whole session with a model (about 20 s)
def test_pose_rows_join_the_recorded_video_by_the_cameras_frame_index(
    tmp_path, no_leftovers, monkeypatch
):
    folder = _session_started_in_steps(tmp_path / "out", write_settings(tmp_path, SETTINGS))
    monkeypatch.chdir(folder)
    names: dict = {}
    exec(_documented_join(), names)  # the documented join, as a lab would run it
    frames, pose = names["frames"], names["pose"]
    video_pose, joined = names["video_pose"], names["video_pose_table"]

    first_pose, first_video = int(pose.index[0]), int(frames["frame_index"].iloc[0])
    assert 0 < first_pose < first_video  # analysis began after the stream, recording after it
    assert len(frames) == count_decodable_frames(folder / "arena.mp4")  # row k is frame k
    # Every video frame has its pose row (analysed, or an empty row if passed over) ...
    assert frames["frame_index"].isin(pose.index).all()
    assert len(video_pose) == len(joined) == len(frames)
    assert video_pose.notna().any(axis=1).sum() > 0
    # ... and it is that frame's: the same arrival time in both files.
    timed = joined["host_timestamp_pose"].notna()
    assert timed.sum() > 0
    assert np.allclose(
        joined.loc[timed, "host_timestamp"], joined.loc[timed, "host_timestamp_pose"]
    )
    scorer = pose.columns.get_level_values(0)[0]
    nose_x = video_pose[scorer, "nose", "x"].to_numpy()
    assert np.allclose(nose_x, joined["nose_x"].to_numpy(), equal_nan=True)
