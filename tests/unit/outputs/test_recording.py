"""Video files and frames tables: counts, pixels, timestamps, and survival of a killed writer."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.core.frames import FrameGeometry
from deeplabstream.outputs.folder import create_session_folder
from deeplabstream.outputs.frames_table import FRAMES_TABLE_COLUMNS, FramesTable
from deeplabstream.outputs.video import VideoWriter
from tests.support.files import patterned_frame, read_video
from tests.support.paths import PROJECT_ROOT


def _frame_times(path: Path) -> list[float]:
    import av

    with av.open(str(path)) as container:
        return [frame.time for frame in container.decode(container.streams.video[0])]


@pytest.mark.parametrize("channels", [3, 1])
def test_ffv1_is_pixel_exact_with_real_timestamps(tmp_path: Path, channels: int) -> None:
    geometry = FrameGeometry(120, 160, channels)
    path = tmp_path / "cam.mkv"
    writer = VideoWriter(path, geometry, "ffv1", 150.0)
    frames = [patterned_frame(i, 120, 160, channels) for i in range(40)]
    # Irregular intervals, as a real camera delivers them: the file must keep them.
    times = np.cumsum([0.0] + [1 / 150 + (0.004 if i % 7 == 0 else 0) for i in range(39)])
    for frame, moment in zip(frames, times, strict=True):
        writer.encode(writer.frame_from(frame), 100.0 + moment)
    writer.close()
    back = read_video(path, gray=channels == 1)
    assert len(back) == len(frames)
    assert all(np.array_equal(a, b) for a, b in zip(frames, back, strict=True))
    decoded_times = _frame_times(path)
    assert np.all(np.diff(decoded_times) > 0)
    assert np.allclose(decoded_times, times, atol=0.0011)  # Matroska keeps milliseconds


def test_h264_keeps_every_frame_and_its_time(tmp_path: Path) -> None:
    geometry = FrameGeometry(240, 320, 3)
    path = tmp_path / "cam.mp4"
    writer = VideoWriter(path, geometry, "h264", 30.0, crf=18)
    frames = [patterned_frame(i, 240, 320, 3) for i in range(75)]
    for index, frame in enumerate(frames):
        writer.encode(writer.frame_from(frame), index / 30)
    writer.close()
    back = read_video(path)
    assert len(back) == 75
    assert np.abs(back[10].astype(int) - frames[10]).mean() < 3  # lossy, but close
    assert np.allclose(_frame_times(path), np.arange(75) / 30, atol=1e-4)


def test_frames_table_rows_and_units(tmp_path: Path) -> None:
    table = FramesTable(tmp_path / "cam.frames.csv")
    table.append(0, 0.0, 1_000_000_123)
    table.append(2, math.nan, 1_033_000_000)  # frame 1 dropped by the camera; no camera clock
    table.close()
    frame = pd.read_csv(tmp_path / "cam.frames.csv")
    assert tuple(frame.columns) == FRAMES_TABLE_COLUMNS
    assert frame["frame_index"].tolist() == [0, 2]
    assert frame["host_timestamp"].tolist() == [1.000000123, 1.033]
    assert math.isnan(frame["camera_timestamp"][1])
    with pytest.raises(FileExistsError):  # an existing table is never overwritten
        FramesTable(tmp_path / "cam.frames.csv")


def test_session_folders_never_clash(tmp_path: Path) -> None:
    from datetime import datetime

    moment = datetime(2026, 1, 2, 3, 4, 5)
    first = create_session_folder(tmp_path, moment)
    second = create_session_folder(tmp_path, moment)
    assert first.name == "2026-01-02_03-04-05"
    assert second.name == "2026-01-02_03-04-05-2"


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from deeplabstream.core.frames import FrameGeometry
    from deeplabstream.outputs.frames_table import FramesTable
    from deeplabstream.outputs.video import VideoWriter
    from tests.support.files import patterned_frame
    folder, codec = Path(sys.argv[1]), sys.argv[2]
    suffix = ".mp4" if codec == "h264" else ".mkv"
    writer = VideoWriter(folder / ("cam" + suffix), FrameGeometry(120, 160, 3), codec, 30.0,
                         flush_interval=0.2)
    table = FramesTable(folder / "cam.frames.csv")
    index = 0
    while True:
        writer.encode(writer.frame_from(patterned_frame(index, 120, 160, 3)), index / 30)
        table.append(index, index / 30, time.perf_counter_ns())
        index += 1
        if index == 60:
            print("ready", flush=True)
        time.sleep(0.005)
    """
)


@pytest.mark.parametrize("codec", ["h264", "ffv1"])
def test_a_killed_recorder_leaves_playable_files(tmp_path: Path, codec: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(tmp_path), codec],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == b"ready"
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    video = next(tmp_path.glob("cam.m*"))
    frames = read_video(video)
    table = pd.read_csv(tmp_path / "cam.frames.csv")
    assert len(frames) >= 30  # everything up to the last fragment / cluster
    assert len(table) >= len(frames)  # every decodable frame has its row (repair cuts the rest)
    assert table["frame_index"].tolist() == list(range(len(table)))
    for index in (0, len(frames) - 1):
        expected = patterned_frame(index, 120, 160, 3)
        assert np.abs(frames[index].astype(int) - expected).mean() < 6  # H.264 is lossy
