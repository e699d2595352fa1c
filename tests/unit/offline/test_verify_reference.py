"""deeplabstream-verify's reference experiment: the session's config without forward prediction."""

from __future__ import annotations

import configparser
from pathlib import Path

from deeplabstream.offline.verify.reanalysis import reference_experiment
from deeplabstream.offline.verify.session_files import SessionFiles
from deeplabstream.settings import load_settings

CONFIG = """
[Experiment]
PREDICT = kalman
PREDICT_LEAD = 40
[Trigger near]
KIND = region
SHAPE = circle 100 100 20
KEYPOINT = nose
PREDICTED = true
[Trigger classifier]
KIND = region
SHAPE = circle 10 10 5
REGIONS_FILE = shapes/regions.json
"""


def _session(tmp_path: Path, config: str) -> SessionFiles:
    (tmp_path / "experiments" / "shapes").mkdir(parents=True)
    (tmp_path / "experiments" / "shapes" / "regions.json").write_text("{}")
    (tmp_path / "experiments" / "entries.ini").write_text(config)
    settings = tmp_path / "settings.ini"
    settings.write_text("[Camera arena]\nSOURCE = synthetic\n[Experiment]\nNAME = entries\n")
    record = {"settings": {"file": str(settings)}}
    return SessionFiles(tmp_path, record, load_settings(settings), (), None, "entries")


def test_a_predicting_config_is_copied_without_prediction_and_with_its_files(
    tmp_path: Path,
) -> None:
    session = _session(tmp_path, CONFIG)
    name, removed = reference_experiment(session, tmp_path / "verify")
    assert removed and name is not None
    copy = configparser.ConfigParser(interpolation=None)
    copy.optionxform = str  # type: ignore[assignment, method-assign]
    copy.read(name)
    assert "PREDICT" not in copy["Experiment"] and "PREDICT_LEAD" not in copy["Experiment"]
    assert "PREDICTED" not in copy["Trigger near"]
    regions = Path(copy["Trigger classifier"]["REGIONS_FILE"])
    assert regions.is_absolute() and regions.is_file()  # the copy reads what the original read
    assert copy["Trigger near"]["SHAPE"] == "circle 100 100 20"


def test_a_config_without_prediction_runs_as_it_is(tmp_path: Path) -> None:
    session = _session(tmp_path, CONFIG.replace("PREDICT = kalman\nPREDICT_LEAD = 40\n", "")
                       .replace("PREDICTED = true\n", ""))  # fmt: skip
    assert reference_experiment(session, tmp_path / "verify") == ("entries", False)
    assert not (tmp_path / "verify").exists()
