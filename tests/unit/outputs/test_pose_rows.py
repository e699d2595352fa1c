"""One pose row per frame index (outputs.pose.files): empty rows, times beside it, IBL, recovery."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.outputs.pose.files import (
    PoseCsvWriter,
    PoseTimesWriter,
    write_ibl_pose_files,
    write_pose_parquet,
)
from deeplabstream.outputs.pose.recovery import rebuild_camera_figures

POSE = np.array([[1.0, 2.0, 0.9], [3.0, 4.0, 0.8]], np.float32)
FPS = 250.0


def _write(folder: Path) -> tuple[Path, Path]:
    """Frames 3..9 of a stream: 3 and 7 analysed, 4-6 and 8 passed over, 9 never delivered."""
    pose = PoseCsvWriter(folder / "cam.pose.csv", "dls", ("nose", "tail"))
    times = PoseTimesWriter(folder / "cam.pose_times.csv")
    for index in range(3, 9):
        host_ns = 1_000_000_000 + index * 4_000_000
        analysed = index in (3, 7)
        if analysed:
            pose.write(index, POSE)
        else:
            pose.write_missing(index)
        times.write(index, host_ns, index / FPS, analysed)
    pose.end_at(9)
    times.end_at(9)
    assert (pose.rows, pose.analysed) == (7, 2)
    pose.close()
    times.close()
    return pose.path, times.path


def test_every_frame_index_gets_a_row_empty_where_not_analysed(tmp_path: Path) -> None:
    pose_path, times_path = _write(tmp_path)
    table = pd.read_csv(pose_path, header=[0, 1, 2], index_col=0)
    assert table.index.tolist() == list(range(3, 10))
    analysed = table.notna().all(axis=1)
    assert analysed.tolist() == [True, False, False, False, True, False, False]
    assert table.isna().all(axis=1).tolist() == (~analysed).tolist()
    times = pd.read_csv(times_path)
    assert times["frame_index"].tolist() == list(range(3, 10))
    assert times["analysed"].tolist() == [1, 0, 0, 0, 1, 0, 0]
    assert np.isnan(times["host_timestamp"].iloc[-1])  # never delivered: time unknown
    np.testing.assert_allclose(times["host_timestamp"].iloc[:-1], 1 + np.arange(3, 9) * 0.004)


def test_a_dropped_index_is_an_empty_row_and_a_counter_going_back_is_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pose = PoseCsvWriter(tmp_path / "cam.pose.csv", "dls", ("nose", "tail"))
    pose.write(0, POSE)
    pose.write(3, POSE)  # the camera dropped 1 and 2
    with caplog.at_level(logging.WARNING):
        pose.write(2, POSE)  # a counter that went back: written, with a warning
    pose.close()
    table = pd.read_csv(pose.path, header=[0, 1, 2], index_col=0)
    assert table.index.tolist() == [0, 1, 2, 3, 2]
    assert table.notna().all(axis=1).tolist() == [True, False, False, True, True]
    assert "went back" in caplog.text


def test_movement_reads_row_i_as_frame_i(tmp_path: Path) -> None:
    from movement.io import load_poses

    pose_path, _ = _write(tmp_path)
    dataset = load_poses.from_dlc_file(pose_path, fps=FPS)
    np.testing.assert_allclose(dataset["time"], np.arange(7) / FPS)  # frames 3.. from the first
    position = dataset["position"].to_numpy()
    assert np.isfinite(position[[0, 4]]).all() and np.isnan(position[[1, 2, 3, 5, 6]]).all()


def test_the_parquet_and_ibl_files_have_every_row_and_its_times(tmp_path: Path) -> None:
    pose_path, times_path = _write(tmp_path)
    parquet = tmp_path / "cam.pose.pqt"
    assert write_pose_parquet(pose_path, parquet, times_path) == 7
    table = pd.read_parquet(parquet)
    assert table["frame_index"].tolist() == list(range(3, 10))
    np.testing.assert_allclose(table["camera_timestamp"].iloc[:-1], np.arange(3, 9) / FPS)
    assert table[["host_timestamp", "camera_timestamp"]].iloc[-1].isna().all()
    assert table["nose_x"].notna().tolist() == [True, False, False, False, True, False, False]
    names = write_ibl_pose_files(parquet, tmp_path / "cam.pose_timing.csv", tmp_path / "_ibl_c")
    ibl_times = np.load(tmp_path / names[1])
    assert len(ibl_times) == len(pd.read_parquet(tmp_path / names[0])) == 7
    np.testing.assert_array_equal(ibl_times, table["host_timestamp"].to_numpy())
    without = tmp_path / "bare.pose.pqt"  # no times file: the columns are there, NaN
    write_pose_parquet(pose_path, without)
    assert pd.read_parquet(without)["host_timestamp"].isna().all()


def test_a_rebuilt_summary_counts_analysed_rows_not_empty_ones(tmp_path: Path) -> None:
    _write(tmp_path)
    with (tmp_path / "cam.pose.csv").open("a") as file:
        file.write("10,1.0,2")  # the cut row a killed worker leaves
    figures = rebuild_camera_figures(tmp_path, "cam", "")
    assert figures["frames_analysed"] == 2
    assert figures["pose_rows"] == 7
    table = pd.read_parquet(tmp_path / figures["pose_table"])
    assert table["host_timestamp"].notna().sum() == 6
