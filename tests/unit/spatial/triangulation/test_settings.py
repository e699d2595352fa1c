"""[Triangulation] in the settings and the checks before a start."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deeplabstream.core.pinhole import write_calibration
from deeplabstream.live.session.preflight import check_before_start
from deeplabstream.settings import SettingsError, load_settings
from deeplabstream.settings.sections import Settings
from tests.unit.spatial.triangulation.conftest import rig_cameras

CAMERAS = """
[Camera front]
SOURCE = synthetic
WIDTH = 640
HEIGHT = 480
[Camera side]
SOURCE = synthetic
WIDTH = 640
HEIGHT = {side_height}
[Device laser]
TYPE = log
"""


def _settings(tmp_path: Path, triangulation: str, side_height: int = 480) -> Settings:
    write_calibration(tmp_path / "rig.toml", rig_cameras(3))
    path = tmp_path / "settings.ini"
    path.write_text(CAMERAS.format(side_height=side_height) + triangulation, encoding="utf-8")
    return load_settings(path)


def _problems(settings: Settings, experiment: bool = False) -> list[str]:
    return check_before_start(settings, pose=True, experiment=experiment)


def test_defaults_mean_no_triangulation(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "")
    assert settings.triangulation.calibration is None
    assert settings.triangulation.spec(["front", "side"], "settings.ini") is None
    assert _problems(settings) == []


def test_the_calibration_is_relative_to_the_settings_file(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "[Triangulation]\nCALIBRATION = rig.toml\nMAX_PAIRING_MS = 8\n")
    spec = settings.triangulation.spec(["front", "side"], "settings.ini")
    assert spec is not None
    assert spec.calibration == tmp_path / "rig.toml"
    assert spec.cameras == ("front", "side")  # the declared cameras the calibration names
    assert spec.max_pairing_ms == 8.0 and spec.min_likelihood == 0.5
    assert _problems(settings) == []


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("CALIBRATION = missing.toml", "CALIBRATION in .*missing.toml: calibration file not found"),
        (
            "CALIBRATION = rig.toml\nCAMERAS = front, back",
            "names 'back', which the settings do not",
        ),
        ("CALIBRATION = rig.toml\nCAMERAS = front", "needs two calibrated cameras"),
    ],
)
def test_bad_calibration_or_cameras_are_refused_before_the_start(
    tmp_path: Path, section: str, expected: str
) -> None:
    settings = _settings(tmp_path, f"[Triangulation]\n{section}\n")
    problems = _problems(settings)
    assert len(problems) == 1
    assert re.search(expected, problems[0]), problems[0]


def test_a_camera_the_calibration_does_not_know_is_named(tmp_path: Path) -> None:
    write_calibration(tmp_path / "two.toml", rig_cameras(3)[::2])  # front and top
    settings = _settings(
        tmp_path, "[Triangulation]\nCALIBRATION = two.toml\nCAMERAS = front, side\n"
    )
    (problem,) = _problems(settings)
    assert "names 'side', which" in problem and "two.toml does not calibrate" in problem


def test_a_frame_size_other_than_the_calibrations_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "[Triangulation]\nCALIBRATION = rig.toml\n", side_height=512)
    (problem,) = _problems(settings)
    assert problem.startswith("[Camera side]") and "640 x 512 px" in problem
    assert "at 640 x 480 px" in problem


def test_a_bad_value_names_section_and_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="MIN_LIKELIHOOD"):
        _settings(tmp_path, "[Triangulation]\nMIN_LIKELIHOOD = 2\n")


def test_a_3d_experiment_without_a_calibration_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "[Experiment]\nNAME = rearing_3d\n")
    problems = _problems(settings, experiment=True)
    assert any(
        "trigger 'rearing' reads 3D keypoints" in p and "[Triangulation] CALIBRATION" in p
        for p in problems
    ), problems
    with_calibration = _settings(
        tmp_path, "[Experiment]\nNAME = rearing_3d\n[Triangulation]\nCALIBRATION = rig.toml\n"
    )
    assert _problems(with_calibration, experiment=True) == []
