"""What the Session form sets, carried out by a real run: folder name, metadata, record per camera.

Real camera and recorder processes (``DeepLabStream.py``), real files read back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.files import read_video, write_settings
from tests.support.in_process import headless_here
from tests.support.processes import only_session, run_cli

TWO_ARENAS = """
[Camera top]
SOURCE = synthetic
WIDTH = 160
HEIGHT = 120
[Camera spare]
SOURCE = synthetic
WIDTH = 160
HEIGHT = 120
RECORD = false
[Session]
ANIMAL = mouse 12/b
EXPERIMENTER = Lab, A.
SPECIES = Mus musculus
AGE = P12W
NOTES = first day on the rig
PLANNED_DURATION = 2
"""


@pytest.mark.slow
def test_session_metadata_names_the_folder_and_unrecorded_cameras_write_no_video(
    tmp_path: Path,
) -> None:
    settings = write_settings(tmp_path, TWO_ARENAS)
    result = run_cli(
        "--settings", str(settings), "--headless", "--recording-enabled",
        "--output-dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    session = only_session(tmp_path / "out")
    assert session.name.endswith("_mouse-12-b")
    info = json.loads((session / "session.json").read_text())
    assert info["stop_reason"] == "duration of 2 s reached"  # [Session] PLANNED_DURATION
    assert info["metadata"] == {
        "animal": "mouse 12/b",
        "experimenter": "Lab, A.",
        "notes": "first day on the rig",
        "planned_duration_s": 2.0,
        "recorded_cameras": ["top"],
        "subject": {
            "species": "Mus musculus",
            "age": "P12W",
            "date_of_birth": "",
            "sex": "U",
            "strain": "",
        },
        "institution": "",
        "lab": "",
        "experiment_description": "",
    }
    assert info["cameras"]["spare"]["record"] is False
    assert info["cameras"]["spare"]["frames_recorded"] == 0
    assert info["cameras"]["spare"]["frames_lost_in_recording"] == 0
    assert info["cameras"]["spare"]["frames_captured"] > 0
    assert not (session / "spare.mp4").exists() and not (session / "spare.frames.csv").exists()
    assert len(read_video(session / "top.mp4")) == info["cameras"]["top"]["frames_recorded"] > 0


def test_a_region_without_a_camera_on_a_two_camera_rig_is_refused_before_the_start(
    tmp_path: Path,
) -> None:
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\n[Camera side]\nSOURCE = synthetic\n"
        "[Experiment]\nNAME = ExampleExperiment\n[Device stimulus_box]\nTYPE = log\n",
    )
    result = headless_here(
        "--settings", str(settings), "--headless", "--experiment-enabled",
        "--output-dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "trigger 'nose_in_left' reads one camera" in result.stderr
    assert "CAMERA" in result.stderr
    assert not (tmp_path / "out").exists()
