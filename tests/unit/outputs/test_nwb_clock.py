"""``session.nwb``'s clock and paths, on their own: the host clock live, the video's in a replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deeplabstream.outputs.nwb import external_path
from deeplabstream.outputs.nwb_times import TimeBase, video_frame_times
from deeplabstream.outputs.session_record import SessionRecord


def test_live_times_are_host_seconds_from_the_start() -> None:
    clock = TimeBase(100.0)
    assert clock.column == "host_timestamp"
    np.testing.assert_allclose(clock.frame_times([100.5, 101.0]), [0.5, 1.0])
    np.testing.assert_allclose(clock.moments([102.25]), [2.25])


def test_a_replays_moments_are_placed_between_the_video_frames_around_them() -> None:
    # frames arrived at host 10.0, 10.1, 10.2 (a fast replay), video times 0, 1, 2 s (1 fps)
    clock = TimeBase(5.0, video=True, host_to_video=(np.array([10.0, 10.1, 10.2]), np.arange(3.0)))
    assert clock.column == "camera_timestamp"
    np.testing.assert_allclose(clock.frame_times([0.0, 1.0]), [0.0, 1.0])  # as they are
    # between frames: interpolated; before the first and after the last: offset from them
    np.testing.assert_allclose(clock.moments([10.05, 9.9, 10.3]), [0.5, -0.1, 2.1])


def test_a_video_frame_without_a_timestamp_is_at_its_index_over_the_rate() -> None:
    table = pd.DataFrame({"frame_index": [0, 1, 2], "camera_timestamp": [0.0, np.nan, 0.08]})
    np.testing.assert_allclose(video_frame_times(table, 25.0), [0.0, 0.04, 0.08])


def test_a_session_is_a_replay_when_every_camera_is_a_video_file() -> None:
    def is_replay(data: dict) -> bool:
        return SessionRecord.from_json(data).is_replay()

    assert is_replay({"cameras": {"a": {"source": "video"}}})
    assert not is_replay({"cameras": {"a": {"source": "video"}, "b": {"source": "basler"}}})
    assert not is_replay({"cameras": {}})


def test_a_video_inside_the_folder_is_relative_one_outside_absolute(tmp_path: Path) -> None:
    session = tmp_path / "session"
    session.mkdir()
    assert external_path(session / "arena.mp4", session, session) == ("arena.mp4", True)
    elsewhere = tmp_path / "copies"  # the NWB file written elsewhere (--output)
    assert external_path(session / "arena.mp4", session, elsewhere) == (
        "../session/arena.mp4",
        True,
    )
    outside = tmp_path / "videos" / "clip.avi"
    assert external_path(outside, session, session) == (outside.resolve().as_posix(), False)
