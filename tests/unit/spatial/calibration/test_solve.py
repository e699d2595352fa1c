"""Solving a rig from in-memory detections: accuracy against the true cameras, and errors."""

from __future__ import annotations

import numpy as np
import pytest

from deeplabstream.core.errors import CalibrationError
from deeplabstream.core.pinhole import PinholeCamera, rodrigues_to_matrix
from deeplabstream.hardware.simulator.board import BOARD, floor_pose
from deeplabstream.spatial.calibration.detection import BoardDetection
from deeplabstream.spatial.calibration.solve import CalibrationResult, solve_calibration

FLOOR_SETS = list(range(30))  # the first second at 30 fps

Detections = dict[str, list[BoardDetection | None]]


def _sizes(cameras: list[PinholeCamera]) -> dict[str, tuple[int, int]]:
    return {camera.name: camera.size for camera in cameras}


@pytest.fixture(scope="module")
def result(cameras: list[PinholeCamera], detections: Detections) -> CalibrationResult:
    return solve_calibration(detections, _sizes(cameras), FLOOR_SETS)


def test_camera_centres_are_found_within_2_mm(
    result: CalibrationResult, cameras: list[PinholeCamera]
) -> None:
    assert [c.name for c in result.cameras] == [c.name for c in cameras]
    for solved, true in zip(result.cameras, cameras, strict=True):
        assert np.linalg.norm(solved.center - true.center) < 2.0, solved.name
        assert abs(solved.matrix[0, 0] - true.matrix[0, 0]) < 0.01 * true.matrix[0, 0]


def test_reprojection_error_is_below_half_a_pixel(result: CalibrationResult) -> None:
    assert result.error_mean_px < 0.5
    assert result.error_p95_px < 1.0
    for figures in result.figures.values():
        assert figures.detections > 40
        assert figures.error_mean_px < 0.5


def test_world_is_the_floor_frame(result: CalibrationResult, cameras: list[PinholeCamera]) -> None:
    rotation, origin = floor_pose()
    corners = BOARD.corner_points() @ rodrigues_to_matrix(rotation).T + origin  # on the floor
    for solved, true in zip(result.cameras, cameras, strict=True):
        assert np.abs(solved.project(corners) - true.project(corners)).max() < 0.5
    assert result.floor_sets == FLOOR_SETS


def test_a_camera_that_never_sees_the_board_is_named(
    cameras: list[PinholeCamera], detections: Detections
) -> None:
    blind = dict(detections)
    blind["left"] = [None] * len(detections["left"])
    with pytest.raises(CalibrationError, match="camera 'left': the board was not found"):
        solve_calibration(blind, _sizes(cameras), FLOOR_SETS)


def test_cameras_that_share_too_few_views_are_named(
    cameras: list[PinholeCamera], detections: Detections
) -> None:
    count = len(detections["top"])
    apart = {
        "top": [d if i < count // 2 else None for i, d in enumerate(detections["top"])],
        "right": [d if i >= count // 2 else None for i, d in enumerate(detections["right"])],
    }
    with pytest.raises(CalibrationError, match=r"too few shared views.*'right'"):
        solve_calibration(apart, _sizes(cameras), FLOOR_SETS)


def test_a_board_missing_from_the_floor_frames_is_reported(
    cameras: list[PinholeCamera], detections: Detections
) -> None:
    nothing: list[BoardDetection | None] = [None] * 30
    no_floor = {name: nothing + per_set[30:] for name, per_set in detections.items()}
    with pytest.raises(CalibrationError, match="--floor-frame"):
        solve_calibration(no_floor, _sizes(cameras), FLOOR_SETS)


def test_one_camera_is_not_enough(cameras: list[PinholeCamera], detections: Detections) -> None:
    with pytest.raises(CalibrationError, match="two cameras or more"):
        solve_calibration({"top": detections["top"]}, _sizes(cameras), FLOOR_SETS)
