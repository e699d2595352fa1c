"""Pose files of a multi-animal model: DeepLabCut's multi-animal CSV and the parquet table."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from deeplabstream.outputs.pose.files import PoseCsvWriter, individual_names, write_pose_parquet
from deeplabstream.outputs.pose.table import is_multi_animal_csv, read_pose_table
from tests.support.paths import shared_data

KEYPOINTS = ("nose", "tail_base")


def _write(path: Path) -> np.ndarray:
    writer = PoseCsvWriter(path, "deeplabstream_pair", KEYPOINTS, individual_names(2))
    frames = np.array(
        [
            [[[10, 20, 0.9], [30, 40, 0.8]], [[50, 60, 0.7], [70, 80, 0.6]]],
            [[[11, 21, 0.9], [31, 41, 0.8]], [[np.nan] * 3, [np.nan] * 3]],  # animal2 unseen
        ]
    )
    writer.write(0, frames[0])
    writer.write_missing(1)  # captured, not analysed
    writer.write(2, frames[1])
    writer.close()
    return frames


def test_the_pose_csv_has_deeplabcuts_multi_animal_header_and_a_row_per_frame(tmp_path):
    path = tmp_path / "arena.pose.csv"
    frames = _write(path)
    assert is_multi_animal_csv(path)
    table = pd.read_csv(path, header=[0, 1, 2, 3], index_col=0)
    assert list(table.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
    assert list(dict.fromkeys(table.columns.get_level_values(1))) == ["animal1", "animal2"]
    assert list(table.index) == [0, 1, 2]
    assert table.loc[1].isna().all()
    assert table.loc[2, ("deeplabstream_pair", "animal2", "nose", "x")] != table.loc[2].iloc[0]
    read = read_pose_table(path)
    assert read.individuals == ("animal1", "animal2") and read.keypoints == KEYPOINTS
    np.testing.assert_array_equal(read.points[[0, 2]], frames)


def test_the_parquet_table_has_a_row_per_frame_and_animal_with_its_times(tmp_path):
    csv = tmp_path / "arena.pose.csv"
    _write(csv)
    times = tmp_path / "arena.pose_times.csv"
    times.write_text(
        "frame_index,host_timestamp,camera_timestamp,analysed\n"
        "0,100.0,0.0,1\n1,100.1,0.1,0\n2,100.2,0.2,1\n"
    )
    parquet = tmp_path / "arena.pose.pqt"
    assert write_pose_parquet(csv, parquet, times) == 6
    table = pd.read_parquet(parquet)
    assert list(table.columns[:4]) == ["frame_index", "individual", "nose_x", "nose_y"]
    assert list(table["frame_index"]) == [0, 0, 1, 1, 2, 2]
    assert list(table["individual"]) == ["animal1", "animal2"] * 3
    assert table.loc[1, "nose_x"] == 50 and np.isnan(table.loc[5, "nose_x"])
    assert list(table["host_timestamp"]) == [100.0, 100.0, 100.1, 100.1, 100.2, 100.2]


def test_the_header_is_laid_out_as_deeplabcuts_own_multi_animal_files(tmp_path):
    ours = tmp_path / "arena.pose.csv"
    _write(ours)
    theirs = shared_data("dlc-format-fixtures") / "labeled-data" / "video" / "madlc_testdata.csv"
    assert is_multi_animal_csv(theirs)

    def header_layout(path: Path) -> list[str]:
        return [line.split(",")[0] for line in path.read_text().splitlines()[:4]]

    assert header_layout(ours) == header_layout(theirs)
    for path in (ours, theirs):  # individual after individual, each keypoint's coords together
        columns = pd.read_csv(path, header=[0, 1, 2, 3], index_col=0).columns
        individuals = list(columns.get_level_values(1))
        changes = sum(a != b for a, b in itertools.pairwise(individuals))
        assert changes == len(set(individuals)) - 1  # each individual's columns together
        assert list(columns.get_level_values(3)[:2]) == ["x", "y"]
