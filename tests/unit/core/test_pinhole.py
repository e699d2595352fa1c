"""The pinhole camera model and Anipose's calibration.toml."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from deeplabstream.core.pinhole import (
    CalibrationError,
    PinholeCamera,
    matrix_to_rodrigues,
    read_calibration,
    rodrigues_to_matrix,
    write_calibration,
)


def _tilted(distortions=(0.0,) * 5) -> PinholeCamera:
    camera = PinholeCamera.looking_at(
        "side", (640, 480), 600.0, (-250.0, 150.0, 450.0), (200.0, 150.0, 0.0), up=(0, 0, 1)
    )
    return PinholeCamera(camera.name, camera.size, camera.matrix, np.array(distortions),
                         camera.rotation, camera.translation)  # fmt: skip


def test_projection_equals_opencvs_with_and_without_distortion():
    points = np.random.default_rng(1).uniform((0, 0, 0), (400, 300, 80), (50, 3))
    for distortions in ((0.0,) * 5, (-0.12, 0.05, 0.001, -0.002, 0.01)):
        camera = _tilted(distortions)
        theirs, _ = cv2.projectPoints(
            points, camera.rotation, camera.translation, camera.matrix, camera.distortions
        )
        assert np.allclose(camera.project(points), theirs.reshape(-1, 2), atol=1e-6)


def test_a_camera_looking_at_a_point_sees_it_at_its_centre_and_knows_where_it_stands():
    camera = PinholeCamera.looking_at("top", (640, 480), 500.0, (200, 150, 600), (200, 150, 0),
                                      up=(0, 1, 0))  # fmt: skip
    assert np.allclose(camera.project(np.array([200.0, 150.0, 0.0])), (319.5, 239.5))
    assert np.allclose(camera.center, (200, 150, 600))
    # World +y is up in the image, +x to the right: a top view of a z-up floor.
    right, further = camera.project(np.array([[210.0, 150, 0], [200.0, 160, 0]]))
    assert right[0] > 319.5 and further[1] < 239.5
    assert np.isnan(camera.project(np.array([200.0, 150.0, 700.0]))).all()  # behind it


def test_rodrigues_round_trips_as_opencvs():
    for vector in (np.zeros(3), np.array([0.3, -0.2, 1.1]), np.array([np.pi, 0, 0])):
        matrix = rodrigues_to_matrix(vector)
        assert np.allclose(matrix, cv2.Rodrigues(vector)[0], atol=1e-9)
        assert np.allclose(rodrigues_to_matrix(matrix_to_rodrigues(matrix)), matrix, atol=1e-9)


def test_calibration_toml_round_trips_in_anipose_layout(tmp_path):
    cameras = [_tilted((-0.1, 0.02, 0, 0, 0)),
               PinholeCamera.looking_at("top", (640, 480), 500.0, (200, 150, 600),
                                        (200, 150, 0), up=(0, 1, 0))]  # fmt: skip
    path = tmp_path / "calibration.toml"
    write_calibration(path, cameras, {"adjusted": True, "error": 0.21})
    text = path.read_text()
    assert "[cam_0]" in text and 'name = "side"' in text and "[metadata]" in text
    back = read_calibration(path)
    assert list(back) == ["side", "top"]
    for camera in cameras:
        again = back[camera.name]
        assert again.size == camera.size
        assert np.allclose(again.projection, camera.projection)
        assert np.allclose(again.distortions, camera.distortions)


def test_a_bad_calibration_file_names_itself_and_the_table(tmp_path):
    with pytest.raises(CalibrationError, match="not found"):
        read_calibration(tmp_path / "none.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text('[cam_0]\nname = "a"\nsize = [640, 480]\n')
    with pytest.raises(CalibrationError, match=r"\[cam_0\] has no matrix"):
        read_calibration(broken)
