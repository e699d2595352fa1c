"""Issue 37: the ``session.json`` of real sessions is what the published schema says.

Three sessions as a lab runs them: the checkout's default settings headless (the simulated
arena, its bundled model and the example experiment, recorded), a replay of a video, and a
session ended with an error (an experiment that raised). Each file validates against
``docs/session.schema.json``, reads as a :class:`SessionRecord` of the current version, and
round-trips through it unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from deeplabstream.outputs.session_record import SCHEMA_VERSION, SessionRecord
from tests.support.files import make_ffv1_video, write_settings
from tests.support.paths import PROJECT_ROOT
from tests.support.processes import run_cli

SCHEMA = json.loads((PROJECT_ROOT / "docs" / "session.schema.json").read_text(encoding="utf-8"))

RAISING_EXPERIMENT = '''
from deeplabstream.experiments.base import Experiment


class Raises(Experiment):
    """Raises at its 5th update: an experiment with a bug."""

    def __init__(self):
        super().__init__()
        self.updates = 0

    def on_update(self, obs, t):
        self.updates += 1
        if self.updates == 5:
            raise RuntimeError("a bug in the lab's experiment")
        return []
'''

CAMERA = (
    "[Camera arena]\nSOURCE = synthetic\nWIDTH = 320\nHEIGHT = 240\nFRAMERATE = 30\n"
    "[Device stimulus_box]\nTYPE = log\n[Experiment]\nDEADLINE_MS = off\n"
)


def only_record(out: Path) -> dict:
    (path,) = out.glob("*/session.json")
    return json.loads(path.read_text(encoding="utf-8"))


def check(data: dict) -> SessionRecord:
    """The file is valid by the schema, of this version, and round-trips unchanged."""
    jsonschema.validate(data, SCHEMA)
    record = SessionRecord.from_json(data)
    assert record.schema_version == SCHEMA_VERSION
    assert record.to_json() == data
    return record


def test_a_headless_session_of_the_default_settings_writes_a_valid_record(tmp_path: Path):
    result = run_cli(
        "--headless", "--recording-enabled", "--experiment-enabled", "--frames", "60",
        "--output-dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = check(only_record(tmp_path / "out"))
    assert record.status == "finished" and record.health.verdict in ("ok", "warning")
    (camera,) = record.cameras.values()
    assert camera.frames_recorded + camera.frames_lost_in_recording == camera.frames_captured
    assert record.pose is not None and record.pose_runs == (record.pose,)
    assert record.experiment is not None and record.experiment_runs == (record.experiment,)


def test_a_replay_writes_a_valid_record_with_its_replay(tmp_path: Path):
    settings = write_settings(tmp_path, "[Camera left]\nSOURCE = synthetic\n")
    video = tmp_path / "left.mkv"
    make_ffv1_video(video, 30, width=320, height=240, fps=30)
    result = run_cli(
        "--settings", str(settings), "--output-dir", str(tmp_path / "replay"), "--fast",
        "--no-experiment", str(video),
        script="utils/VideoAnalyzer.py", timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = check(only_record(tmp_path / "replay"))
    assert record.is_replay()
    assert record.replay is not None and record.replay.video == str(video)
    assert record.replay.mode == "fast"
    assert record.pose is not None and record.pose.cameras["left"].frames_analysed == 30


def test_a_session_ended_with_an_error_writes_a_valid_record(tmp_path: Path):
    experiment = tmp_path / "raises.py"
    experiment.write_text(RAISING_EXPERIMENT, encoding="utf-8")
    settings = write_settings(tmp_path, CAMERA)
    result = run_cli(
        "--headless", "--settings", str(settings), "--output-dir", str(tmp_path / "out"),
        "--experiment-enabled", "--experiment", str(experiment), "--frames", "60",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    record = check(only_record(tmp_path / "out"))
    assert any("a bug in the lab's experiment" in error for error in record.errors)
    assert record.health.verdict == "error"
    assert record.health.counted is not None
    assert record.health.counted.errors == len(record.errors)


@pytest.mark.parametrize("damage", ["cameras", "errors"])
def test_the_schema_refuses_what_the_record_refuses(tmp_path: Path, damage: str):
    """A real file made wrong fails both the schema and the typed reading."""
    data = {
        "schema_version": SCHEMA_VERSION,
        **SessionRecord().to_json(),
        damage: "not what a session writes",
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, SCHEMA)
    with pytest.raises(ValueError, match=damage):
        SessionRecord.from_json(data)
