"""The live triangulator: pairing, points3d.csv in Anipose's layout, and its figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.core.pinhole import CalibrationError, write_calibration
from deeplabstream.spatial.triangulation.files import read_points3d
from deeplabstream.spatial.triangulation.live import LiveTriangulator, TriangulationSpec
from tests.unit.spatial.triangulation.conftest import observe, random_points, rig_cameras

KEYPOINTS = ("nose", "left_ear", "right_ear", "body_center", "tail_base", "tail_tip")


def _triangulator(tmp_path: Path, max_pairing_ms: float = 20.0) -> LiveTriangulator:
    cameras = rig_cameras(3)
    write_calibration(tmp_path / "calibration.toml", cameras)
    spec = TriangulationSpec(
        tmp_path / "calibration.toml", ("front", "side", "top"), 0.5, max_pairing_ms
    )
    return LiveTriangulator(spec, KEYPOINTS, tmp_path)


def _feed(live: LiveTriangulator, points: np.ndarray, times: list[float], frame: int) -> None:
    seen = observe(rig_cameras(3), points)
    for camera, view, time_s in zip(live.cameras, seen, times, strict=True):
        live.add(camera, time_s, frame, view)


def test_sets_are_triangulated_written_and_counted(tmp_path: Path) -> None:
    live = _triangulator(tmp_path)
    truth = []
    for frame in range(5):
        points = random_points(len(KEYPOINTS), seed=frame)
        truth.append(points)
        _feed(live, points, [frame * 0.02, frame * 0.02 + 0.004, frame * 0.02 + 0.001], frame)
        found = live.triangulate()
        assert found is not None and found.names == KEYPOINTS
        np.testing.assert_allclose(found.xyz, points, atol=1e-3)
        assert found.pairing_s == pytest.approx(0.004)
        assert found.point("nose") == pytest.approx(tuple(points[0]), abs=1e-3)
    assert live.triangulate() is None  # nothing new since the last set
    live.close()
    table = pd.read_csv(tmp_path / "points3d.csv")
    expected_first = ["nose_x", "nose_y", "nose_z", "nose_error", "nose_ncams", "nose_score"]
    assert list(table.columns[:6]) == expected_first
    assert list(table.columns[-6:]) == [
        "fnum", "time_s", "pairing_ms", "front_fnum", "side_fnum", "top_fnum",
    ]  # fmt: skip
    assert list(table["fnum"]) == [0, 1, 2, 3, 4]
    assert (table["nose_ncams"] == 3).all()
    names, xyz = read_points3d(tmp_path / "points3d.csv")
    assert names == KEYPOINTS
    np.testing.assert_allclose(xyz, np.stack(truth), atol=1e-2)  # 3 decimals in the file
    figures = live.figures()
    assert figures["sets_triangulated"] == 5 and figures["sets_skipped_pairing"] == 0
    assert figures["median_pairing_ms"] == pytest.approx(4.0)
    assert figures["median_reprojection_error_px"] < 0.01


def test_a_set_paired_too_loosely_is_skipped_and_counted(tmp_path: Path) -> None:
    live = _triangulator(tmp_path, max_pairing_ms=10.0)
    _feed(live, random_points(len(KEYPOINTS)), [1.0, 1.0, 1.05], 7)
    assert live.triangulate() is None
    live.close()
    assert live.figures()["sets_skipped_pairing"] == 1
    assert len(pd.read_csv(tmp_path / "points3d.csv")) == 0


def test_a_set_waits_for_the_other_cameras_next_poses(tmp_path: Path) -> None:
    live = _triangulator(tmp_path, max_pairing_ms=10.0)
    points = random_points(len(KEYPOINTS))
    _feed(live, points, [1.0, 1.001, 1.002], 0)
    assert live.triangulate() is not None
    seen = observe(rig_cameras(3), points)
    live.add("front", 1.033, 1, seen[0])  # the next frame of one camera: the others come later
    assert live.triangulate() is None
    live.add("side", 1.034, 1, seen[1])
    live.add("top", 1.035, 1, seen[2])
    assert live.triangulate() is not None
    live.add("front", 1.066, 2, seen[0])
    live.add("front", 1.100, 3, seen[0])  # frame 2 never made it into a set
    live.close()
    figures = live.figures()
    assert figures["sets_triangulated"] == 2 and figures["sets_skipped_pairing"] == 0
    assert figures["poses_unpaired"] == 1


def test_no_set_until_every_camera_has_a_pose(tmp_path: Path) -> None:
    live = _triangulator(tmp_path)
    seen = observe(rig_cameras(3), random_points(len(KEYPOINTS)))
    live.add("front", 0.0, 0, seen[0])
    live.add("elsewhere", 0.0, 0, seen[1])  # not calibrated: ignored
    assert live.triangulate() is None
    live.close()


def test_a_missing_keypoint_is_an_empty_cell(tmp_path: Path) -> None:
    live = _triangulator(tmp_path)
    points = random_points(len(KEYPOINTS))
    seen = observe(rig_cameras(3), points)
    seen[1:, 0, 2] = 0.0  # the nose seen well by one camera only
    for camera, view in zip(live.cameras, seen, strict=True):
        live.add(camera, 0.0, 3, view)
    found = live.triangulate()
    assert found is not None and found.point("nose") is None
    live.close()
    row = pd.read_csv(tmp_path / "points3d.csv").iloc[0]
    assert np.isnan(row["nose_x"]) and row["nose_ncams"] == 0 and np.isnan(row["nose_score"])


def test_a_camera_the_calibration_lacks_is_named(tmp_path: Path) -> None:
    write_calibration(tmp_path / "calibration.toml", rig_cameras(2))
    spec = TriangulationSpec(tmp_path / "calibration.toml", ("front", "top"))
    with pytest.raises(CalibrationError, match=r"no camera 'top'.*fix \[Triangulation\] CAMERAS"):
        LiveTriangulator(spec, KEYPOINTS, tmp_path)


def test_the_experiment_reads_the_set_and_pulses_the_laser(tmp_path: Path) -> None:
    from deeplabstream.experiments.observation import Observation
    from deeplabstream.live.processes.analysis.experiment_slot import open_experiment_run
    from deeplabstream.settings.sections import DeviceSettings

    live = _triangulator(tmp_path)
    run = open_experiment_run("rearing_3d", {"laser": DeviceSettings("log")}, tmp_path)
    heights = [5.0, 10.0, 40.0, 45.0, 10.0]
    for frame, height in enumerate(heights):
        points = random_points(len(KEYPOINTS), seed=frame)
        points[0, 2] = height  # the nose
        t = 1.0 + frame * 0.02
        _feed(live, points, [t, t, t], frame)
        found = live.triangulate()
        observations = [
            Observation(t, camera, frame, np.zeros((len(KEYPOINTS), 3)), KEYPOINTS)
            for camera in live.cameras
        ]
        run.on_poses(observations, 0, found)
    run.stop()
    live.close()
    # one rising edge above 30 mm: one pulse; and the stop's switch-off, a command sent too
    assert run.error is None and run.actions == 2
    events = pd.read_csv(tmp_path / "events.csv")
    assert {"rearing", "laser"} <= set(events["name"].astype(str))
