"""Whether a calibration can triangulate (spatial/triangulation/usable.py, core/pinhole.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from deeplabstream.core.pinhole import (
    CalibrationError,
    PinholeCamera,
    camera_problems,
    matrix_to_rodrigues,
    read_calibration,
    write_calibration,
)
from deeplabstream.spatial.triangulation.live import TriangulationSpec
from deeplabstream.spatial.triangulation.usable import check_calibration
from tests.unit.spatial.triangulation.conftest import rig_cameras

FILE = Path("rig.toml")


def _changed(camera: PinholeCamera, **changes: np.ndarray) -> PinholeCamera:
    values = {
        "matrix": camera.matrix,
        "distortions": camera.distortions,
        "rotation": camera.rotation,
        "translation": camera.translation,
        **changes,
    }
    return PinholeCamera(camera.name, camera.size, **values)


@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("distorted", [False, True])
def test_usable_rigs_pass(count: int, distorted: bool) -> None:
    check_calibration(FILE, rig_cameras(count, distorted))


def test_the_shipped_3d_rig_passes() -> None:
    from tests.support.paths import PROJECT_ROOT

    check_calibration(FILE, list(read_calibration(PROJECT_ROOT / "docs" / "rig-3d.toml").values()))


def test_a_zero_focal_length_names_the_camera() -> None:
    front, side = rig_cameras(2)
    matrix = side.matrix.copy()
    matrix[1, 1] = 0.0
    with pytest.raises(CalibrationError, match=r"rig.toml: camera 'side': focal lengths"):
        check_calibration(FILE, [front, _changed(side, matrix=matrix)])


def test_cameras_at_one_centre_are_refused() -> None:
    front, side = rig_cameras(2)
    moved = _changed(side, translation=-side.rotation_matrix @ front.center)
    with pytest.raises(CalibrationError, match="'front' and 'side' are at the same centre"):
        check_calibration(FILE, [front, moved])


def test_cameras_looking_apart_are_refused() -> None:
    front, side = rig_cameras(2)
    backwards = np.diag([-1.0, 1.0, -1.0]) @ side.rotation_matrix  # from where it is, away
    away = _changed(
        side, rotation=matrix_to_rodrigues(backwards), translation=-backwards @ side.center
    )
    with pytest.raises(CalibrationError, match="share no view"):
        check_calibration(FILE, [front, away])


def test_a_folding_lens_fails_the_round_trip() -> None:
    front, side = rig_cameras(2)
    folding = _changed(side, distortions=np.array([0.0, 0.0, 0.0, 0.0, -40.0]))
    with pytest.raises(CalibrationError, match="reprojection round trip"):
        check_calibration(FILE, [front, folding])


def test_camera_problems_lists_each_problem() -> None:
    camera = rig_cameras(1)[0]
    matrix = camera.matrix.copy()
    matrix[0, 0], matrix[2] = -5.0, (0.0, 0.0, 2.0)
    problems = camera_problems(_changed(camera, matrix=matrix))
    assert any("focal lengths fx = -5 px" in p for p in problems)
    assert any("row 3" in p for p in problems)
    assert camera_problems(_changed(camera, translation=np.array([np.inf, 0, 0]))) == [
        "non-finite numbers (nan or inf) in translation"
    ]


def test_a_rotation_matrix_in_the_file_is_read_and_a_wrong_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "rig.toml"
    cameras = rig_cameras(2)
    write_calibration(path, cameras)
    document = tomllib.loads(path.read_text())
    assert document["cam_0"]["rotation"] == cameras[0].rotation.tolist()  # written as a vector
    document["cam_0"]["rotation"] = cameras[0].rotation_matrix.tolist()
    path.write_text(tomli_w.dumps(document))
    read = read_calibration(path)["front"]
    np.testing.assert_allclose(read.rotation_matrix, cameras[0].rotation_matrix, atol=1e-9)
    document["cam_0"]["rotation"] = [[2.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]
    path.write_text(tomli_w.dumps(document))
    with pytest.raises(CalibrationError, match=r"\[cam_0\]: rotation is not a rotation matrix"):
        read_calibration(path)


def test_the_workers_loader_checks_the_calibration(tmp_path: Path) -> None:
    front, side = rig_cameras(2)
    matrix = side.matrix.copy()
    matrix[0, 0] = 0.0
    path = tmp_path / "rig.toml"
    write_calibration(path, [front, _changed(side, matrix=matrix)])
    with pytest.raises(CalibrationError, match="camera 'side': focal lengths"):
        TriangulationSpec(path, ("front", "side")).load_cameras()
