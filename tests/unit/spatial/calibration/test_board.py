"""The board's renderer and scripted poses (hardware.simulator.board), checked by the detector."""

from __future__ import annotations

import numpy as np
import pytest

from deeplabstream.core.pinhole import PinholeCamera, rodrigues_to_matrix
from deeplabstream.hardware.simulator.board import (
    BOARD,
    FLOOR_ORIGIN,
    board_poses,
    floor_pose,
    render_board,
)
from deeplabstream.spatial.calibration.detection import BoardDetection, BoardDetector


def _true_pixels(
    camera: PinholeCamera, rotation: np.ndarray, translation: np.ndarray, ids: np.ndarray
) -> np.ndarray:
    """Where the board's corners ``ids`` truly project at this pose."""
    world = BOARD.corner_points()[ids] @ rodrigues_to_matrix(rotation).T + translation
    return camera.project(world)


def test_poses_are_deterministic_and_start_flat_on_the_floor() -> None:
    rotations, translations = board_poses(seed=5, n_frames=90, fps=30)
    again = board_poses(seed=5, n_frames=90, fps=30)
    np.testing.assert_array_equal(rotations, again[0])
    np.testing.assert_array_equal(translations, again[1])
    flat_rotation, flat_origin = floor_pose()
    np.testing.assert_allclose(rotations[:30], np.tile(flat_rotation, (30, 1)), atol=1e-9)
    np.testing.assert_allclose(translations[:30], np.tile(FLOOR_ORIGIN, (30, 1)))
    corners = BOARD.corner_points() @ rodrigues_to_matrix(flat_rotation).T + flat_origin
    np.testing.assert_allclose(corners[:, 2], 0.0, atol=1e-9)  # on the floor
    assert corners[:, 0].min() > 0 and corners[:, 0].max() < 400  # inside the arena
    assert corners[:, 1].min() > 0 and corners[:, 1].max() < 300
    assert not np.allclose(translations[30:], translations[30])  # then it moves


def test_a_longer_script_begins_with_the_shorter_one() -> None:
    # The synthetic camera recomputes the script with more frames as it goes: frame i must not
    # change with the number of frames asked for.
    short = board_poses(seed=7, n_frames=100, fps=30)
    long = board_poses(seed=7, n_frames=700, fps=30)
    np.testing.assert_array_equal(long[0][:100], short[0])
    np.testing.assert_array_equal(long[1][:100], short[1])


def test_moving_board_stays_above_the_floor_and_tilts_at_most_40_degrees() -> None:
    rotations, translations = board_poses(seed=1, n_frames=300, fps=30)
    for rotation, translation in zip(rotations, translations, strict=True):
        matrix = rodrigues_to_matrix(rotation)
        corners = BOARD.corner_points() @ matrix.T + translation
        assert corners[:, 2].min() > -1e-6
        face_normal = -matrix[:, 2]  # the board's z points into it; its face points up
        assert np.degrees(np.arccos(np.clip(face_normal[2], -1, 1))) <= 40.0 + 1e-6


def test_rendered_board_is_detected_where_it_projects(cameras: list[PinholeCamera]) -> None:
    rotations, translations = board_poses(seed=2, n_frames=60, fps=30)
    detector = BoardDetector()
    for camera in cameras:
        for frame in (0, 45):
            image = render_board(
                camera, rotations[frame], translations[frame], np.empty((480, 640), np.uint8)
            )
            found = detector.detect(image)
            assert isinstance(found, BoardDetection), (camera.name, frame)
            truth = _true_pixels(camera, rotations[frame], translations[frame], found.ids)
            assert np.abs(found.pixels - truth).max() < 0.3


def test_rendering_keeps_the_lens_distortion() -> None:
    camera = PinholeCamera.looking_at("top", (640, 480), 600, (200, 150, 650), (200, 150, 0))
    bent = PinholeCamera(camera.name, camera.size, camera.matrix, np.array([-0.2, 0.05, 0, 0, 0]),
                         camera.rotation, camera.translation)  # fmt: skip
    rotation, origin = floor_pose()
    image = render_board(bent, rotation, origin, np.empty((480, 640, 3), np.uint8))
    found = BoardDetector().detect(image)
    assert found is not None
    truth = _true_pixels(bent, rotation, origin, found.ids)
    assert np.abs(found.pixels - truth).max() < 0.3


def test_board_seen_from_behind_is_not_drawn_and_background_is_kept() -> None:
    below = PinholeCamera.looking_at("below", (320, 240), 300, (200, 150, -600), (200, 150, 0))
    rotation, origin = floor_pose()
    background = np.full((240, 320), 17, np.uint8)
    image = render_board(below, rotation, origin, np.empty((240, 320), np.uint8), background)
    np.testing.assert_array_equal(image, background)


def test_wrong_frame_size_is_refused() -> None:
    camera = PinholeCamera.looking_at("top", (640, 480), 600, (200, 150, 650), (200, 150, 0))
    rotation, origin = floor_pose()
    with pytest.raises(ValueError, match="'top' is 640 x 480, but out is 320 x 240"):
        render_board(camera, rotation, origin, np.empty((240, 320), np.uint8))


def test_bad_frame_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="fps must be positive"):
        board_poses(seed=0, n_frames=10, fps=0)
