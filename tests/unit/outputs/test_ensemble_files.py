"""An ensemble's files: written row by row with the pose CSV, read back, finished after a crash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.outputs.pose.files import (
    EnsembleCsvWriter,
    ExactPoseWriter,
    PoseCsvWriter,
    PoseTimesWriter,
    read_ensemble_exact,
    write_pose_parquet,
)
from deeplabstream.outputs.pose.recovery import rebuild_camera_figures

KEYPOINTS = ("nose", "tail")


def _members(index: int) -> np.ndarray:
    rng = np.random.default_rng(index)
    members = np.empty((3, 2, 3))
    members[..., :2] = rng.normal(100.0, 3.0, (3, 2, 2))
    members[..., 2] = rng.uniform(0.5, 1.0, (3, 2))
    return members


def _write(folder: Path, frames: list[int], cut: bool = False) -> None:
    pose = PoseCsvWriter(folder / "top.pose.csv", "s", KEYPOINTS)
    times = PoseTimesWriter(folder / "top.pose_times.csv")
    exact = ExactPoseWriter(folder / "top.pose_exact.csv", KEYPOINTS, members=3)
    ensemble = EnsembleCsvWriter(folder / "top.ensemble.csv", "s", KEYPOINTS)
    for index in range(frames[0], frames[-1] + 1):
        times.write(index, index * 1_000_000, float("nan"), index in frames)
        if index not in frames:
            pose.write_missing(index)
            ensemble.write_missing(index)
            continue
        members = _members(index)
        median = np.median(members[..., :2], axis=0)
        keypoints = np.column_stack([median, members[..., 2].mean(axis=0)])
        pose.write(index, keypoints[None])
        exact.write(index, keypoints, members=members)
        ensemble.write(index, keypoints, median, np.var(members[..., :2], axis=0))
    for writer in (pose, times, exact, ensemble):
        writer.close()
    if cut:  # a killed worker: its last row half written
        with (folder / "top.ensemble.csv").open("a", encoding="utf-8") as file:
            file.write("99,1.0,2")


def test_the_files_read_back_and_the_table_takes_the_ensembles_columns(tmp_path: Path) -> None:
    _write(tmp_path, [3, 4, 6])
    exact = read_ensemble_exact(tmp_path / "top.pose_exact.csv")
    assert exact is not None and exact.keypoints == KEYPOINTS
    assert exact.frames.tolist() == [3, 4, 6]
    np.testing.assert_array_equal(exact.members[2], _members(6))  # every bit, read back
    table = pd.read_csv(tmp_path / "top.ensemble.csv", header=[0, 1, 2], index_col=0)
    assert list(table.index) == [3, 4, 5, 6] and table.loc[5].isna().all()
    rows = write_pose_parquet(
        tmp_path / "top.pose.csv", tmp_path / "top.pose.pqt",
        ensemble_path=tmp_path / "top.ensemble.csv",
    )  # fmt: skip
    flat = pd.read_parquet(tmp_path / "top.pose.pqt")
    assert rows == 4  # the variances to 9 significant digits, as written
    assert flat["tail_y_var"].iloc[3] == pytest.approx(np.var(_members(6)[:, 1, 1]), rel=1e-8)
    assert np.isnan(flat["nose_x_var"].iloc[2])  # frame 5 was not analysed
    # Not EKS's names, whose meanings differ (its x smoothed, its x_ens_var weighted)
    assert list(dict.fromkeys(table.columns.get_level_values(2))) == [
        "x", "y", "likelihood", "x_var", "y_var",
    ]  # fmt: skip
    one_model = ExactPoseWriter(tmp_path / "one.pose_exact.csv", KEYPOINTS)
    one_model.write(0, np.ones((2, 3)))
    one_model.close()
    assert read_ensemble_exact(tmp_path / "one.pose_exact.csv") is None


def test_a_dead_workers_ensemble_file_is_finished_with_the_pose_files(tmp_path: Path) -> None:
    _write(tmp_path, [0, 1, 2], cut=True)
    figures = rebuild_camera_figures(tmp_path, "top", "", last_index=5)
    assert figures["pose_rows"] == 6
    table = pd.read_csv(tmp_path / "top.ensemble.csv", header=[0, 1, 2], index_col=0)
    assert list(table.index) == list(range(6))  # the cut row dropped, frames 3-5 empty rows
    assert "nose_x_var" in pd.read_parquet(tmp_path / "top.pose.pqt").columns
