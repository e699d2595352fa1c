"""Every pose file the app writes loads in movement with the right times (issue 17).

A live session and a ``--realtime`` replay skip frames (newest frame only). Their pose tables
keep one row per captured frame, empty (NaN) where a frame was not analysed, so movement's
``time = row / fps`` is each frame's time, and the times beside the table (``.pose_times.csv``,
the parquet's columns, IBL's ``times.npy``) match ``<camera>.frames.csv``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from tests.support.files import write_settings
from tests.support.processes import only_session, run_cli
from tests.unit.offline.replay.test_replay import analyse, arena_video


def _load_with_movement(path: Path, fps: float) -> list:
    """Load a DeepLabCut-layout pose CSV with each of movement's loaders that reads it."""
    from movement.io import load_poses

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # from_file -> load_dataset
        return [
            load_poses.from_dlc_file(path, fps=fps),
            load_poses.from_lp_file(path, fps=fps),
            load_poses.from_file(path, source_software="DeepLabCut", fps=fps),
        ]


def check_pose_files(
    session: Path, camera: str, fps: float, frames: pd.DataFrame, ibl: bool = False
) -> pd.DataFrame:
    """Check one camera's pose files against its frames table; return the pose table.

    ``frames`` is the frames table: ``<camera>.frames.csv`` of a recording session, or the
    video's own frames for a replay (which records nothing).
    """
    info = json.loads((session / "session.json").read_text())
    figures = info["pose"]["cameras"][camera]
    pose = pd.read_csv(session / f"{camera}.pose.csv", header=[0, 1, 2], index_col=0)
    analysed = pose.notna().any(axis=1).to_numpy()
    assert len(frames) == info["cameras"][camera]["frames_captured"]
    # A camera of hundreds of frames per second may publish a frame or two before pose
    # estimation has subscribed (a known defect, docs/outputs.md): the table starts at the
    # first frame it saw, and from there has one row per frame index to the last, in order.
    first = int(pose.index[0])
    assert first - int(frames["frame_index"].iloc[0]) <= 2
    frames = frames[frames["frame_index"] >= first].reset_index(drop=True)
    assert pose.index.tolist() == list(range(first, first + len(pose)))
    assert pose.index[-1] == frames["frame_index"].iloc[-1]
    assert len(pose) == len(frames)
    assert figures["frames_analysed"] == analysed.sum() < len(pose)  # some were skipped
    assert figures["pose_rows"] == len(pose)
    # NaN exactly on the frames not analysed: the analysed ones are the stage timings' rows.
    timing = pd.read_csv(session / f"{camera}.pose_timing.csv")
    assert pose.index[analysed].tolist() == timing["frame_index"].tolist()
    assert pose.notna().all(axis=1).sum() == analysed.sum()  # a row is all or nothing

    times = pd.read_csv(session / f"{camera}.pose_times.csv")
    assert times["frame_index"].tolist() == pose.index.tolist()
    assert (times["analysed"].to_numpy() == analysed).all()
    host = frames.set_index("frame_index")["host_timestamp"].reindex(pose.index).to_numpy()
    np.testing.assert_allclose(times["host_timestamp"], host, rtol=0, atol=1e-6)

    for dataset in _load_with_movement(session / f"{camera}.pose.csv", fps):
        time = dataset["time"].to_numpy()
        np.testing.assert_allclose(time, (pose.index - first) / fps, rtol=0, atol=1e-9)
        position = dataset["position"].to_numpy()  # (time, space, keypoints, individuals)
        assert np.isnan(position[~analysed]).all() and np.isfinite(position[analysed]).all()
        # movement's times are the frames' own: the camera's stamps since the first frame,
        # within the pacing's jitter, for the analysed frames.
        since_first = frames["camera_timestamp"] - frames["camera_timestamp"].iloc[0]
        np.testing.assert_allclose(time[analysed], since_first.to_numpy()[analysed], atol=2e-3)
        # The times instead of fps (a camera that fell behind its rate): the host times.
        by_times = dataset.assign_coords(time=host - host[0])
        assert by_times["time"].to_numpy()[analysed].tolist() == sorted(host[analysed] - host[0])

    table = pd.read_parquet(session / f"{camera}.pose.pqt")
    assert table["frame_index"].tolist() == pose.index.tolist()
    np.testing.assert_allclose(table["host_timestamp"], host, rtol=0, atol=1e-6)
    camera_times = frames.set_index("frame_index")["camera_timestamp"].reindex(pose.index)
    # (a video's times are its container's, Matroska's in milliseconds)
    np.testing.assert_allclose(table["camera_timestamp"], camera_times, rtol=0, atol=1e-3)
    if ibl:
        ibl_table = pd.read_parquet(session / f"_ibl_{camera}Camera.dlc.pqt")
        ibl_times = np.load(session / f"_ibl_{camera}Camera.times.npy")
        assert len(ibl_table) == len(ibl_times) == len(pose)
        np.testing.assert_allclose(ibl_times, host, rtol=0, atol=1e-6)
    return pose


def test_a_live_session_that_skips_frames_writes_a_row_per_captured_frame(tmp_path: Path) -> None:
    # Faster than any CPU runs the bundled model: frames are skipped. Small frames, so that the
    # simulated camera itself keeps its rate.
    fps = 400.0
    settings = write_settings(
        tmp_path,
        f"[Output]\nNAMING = ibl\n[Camera left]\nSOURCE = synthetic\nFRAMERATE = {fps:g}\n"
        "WIDTH = 320\nHEIGHT = 240\n"
        "[Recording]\nCODEC = ffv1\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
    )
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--pose-enabled",
        "--recording-enabled",
        "--frames",
        "200",
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert result.returncode == 0, result.stderr
    session = only_session(tmp_path / "out")
    frames = pd.read_csv(session / "left.frames.csv")
    pose = check_pose_files(session, "left", fps, frames, ibl=True)
    assert pose.index[0] <= 2  # the synthetic camera counts from 0 (see check_pose_files)


def test_every_pose_file_of_a_realtime_replay_loads_in_movement_with_its_times(
    tmp_path: Path,
) -> None:
    fps = 1000  # faster than any CPU runs the bundled model: frames are skipped
    video = arena_video(tmp_path / "walk.mkv", 180, fps=fps)
    code, output = analyse(
        str(video), "--realtime", "--no-experiment", "--output-dir", str(tmp_path / "live")
    )
    assert code == 0, output
    session = tmp_path / "live" / "walk"
    # A replay records nothing: its frames table is the video's. Frame i is shown at i / fps
    # (the camera's time); its host time is when the replay published it (paced, --realtime).
    times = pd.read_csv(session / "walk.pose_times.csv").set_index("frame_index")
    frames = pd.DataFrame(
        {
            "frame_index": range(180),
            "camera_timestamp": np.arange(180) / fps,
            "host_timestamp": times["host_timestamp"].reindex(range(180)).to_numpy(),
        }
    )
    seen = frames.dropna()  # from the first frame pose estimation saw (check_pose_files)
    since_first = seen["host_timestamp"] - seen["host_timestamp"].iloc[0]
    due = seen["camera_timestamp"] - seen["camera_timestamp"].iloc[0]
    assert (since_first >= due - 0.002).all()  # never before it was due
    pose = check_pose_files(session, "walk", fps, frames)
    assert pose.index.tolist() == list(range(pose.index[0], 180))  # one row per video frame
