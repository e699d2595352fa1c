"""The settings a session recorded in session.json read back as the same settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deeplabstream.settings.loader import load_settings, settings_as_dict
from deeplabstream.settings.recorded import settings_from_record
from tests.support.paths import PROJECT_ROOT

SIMULATED_RIG = """
[Camera arena]
SOURCE = synthetic
FRAMERATE = 60
MOTION = waypoints
WAYPOINTS = 0: 320 240; 30: 100.5 240; 90: 540 230
KEYPOINTS = nose, tail_base
ROTATE = 90
LIKELIHOOD_THRESHOLD = 0.7
[Camera side]
SOURCE = synthetic
ANIMALS = 2
VIEW_TARGET = 10, 20.5, 0
[Pose]
CROP_FROM = previous_frame
DYNAMIC_CROP = on
[Experiment]
NAME = ExampleExperiment
DEADLINE_MS = 25.5
DEADLINE_MISS_TOLERANCE = 2.5%
[Recording]
CODEC = ffv1
[Device stimulus_box]
TYPE = log
"""


def _recorded(settings_file: Path) -> dict:
    return json.loads(json.dumps(settings_as_dict(load_settings(settings_file))))


@pytest.mark.parametrize(
    "settings_file",
    [PROJECT_ROOT / "settings.ini", PROJECT_ROOT / "docs" / "ibl-rig.ini", None],
    ids=["default", "ibl-rig", "simulated-rig"],
)
def test_recorded_settings_read_back_to_the_same_values(
    settings_file: Path | None, tmp_path: Path
) -> None:
    if settings_file is None:
        settings_file = tmp_path / "rig.ini"
        settings_file.write_text(SIMULATED_RIG, encoding="utf-8")
    recorded = _recorded(settings_file)
    back = json.loads(json.dumps(settings_as_dict(settings_from_record(recorded, tmp_path / "s"))))
    recorded.pop("file"), back.pop("file")
    # A relative [Output] DIRECTORY is the settings file's folder's, wherever it is read back.
    directory = Path(recorded["Output"]["DIRECTORY"])
    if not directory.is_absolute():
        recorded["Output"]["DIRECTORY"] = str(settings_file.parent / directory)
    assert back == recorded


def test_a_recorded_value_that_no_longer_parses_is_named_with_its_key(tmp_path: Path) -> None:
    recorded = _recorded(PROJECT_ROOT / "settings.ini")
    recorded["Pose"]["CROP_FROM"] = "sideways"
    with pytest.raises(ValueError, match="CROP_FROM"):
        settings_from_record(recorded, tmp_path / "session.json")


def test_an_ensembles_model_paths_read_back_as_several_even_with_a_comma(tmp_path: Path) -> None:
    """An ensemble's MODEL_PATH is recorded as a list: read back as the same models, not one path
    "a, b" (verify's offline analysis of an ensemble session failed on it)."""
    members = [tmp_path / "models" / name for name in ("arena", "seed 2, split b", "seed 3")]
    settings_file = tmp_path / "rig.ini"
    settings_file.write_text(
        "[Camera arena]\nSOURCE = synthetic\n"
        f"MODEL_PATH = {members[0]}; {members[2]}\n"
        f"[Pose]\nMODEL_PATH = {'; '.join(str(m) for m in members)}\n",
        encoding="utf-8",
    )
    recorded = _recorded(settings_file)
    back = settings_from_record(recorded, tmp_path / "session.json")
    assert back.pose.model_path == tuple(members)
    assert back.cameras[0].common.model_path == (members[0], members[2])
