"""Issue 28: an experiment that reads a keypoint the model lacks is refused before the start.

Real ``DeepLabStream.py`` and ``utils/VideoAnalyzer.py`` processes: exit code 2, a message naming
the keypoint, who reads it and the model's keypoints, and no session folder (the other models'
and experiments' cases ask the command's check in this process: ``test_preflight._refusal``).
Code that names a keypoint the check cannot see (a Python experiment reading it in
``on_update``) stops the experiment at run time with the same sentence, in ``session.log``
without a traceback, and the reason in ``events.csv``'s finish row.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.faults.test_preflight import (
    CAMERA,
    DEVICE,
    _assert_refused,
    _assert_says,
    _refusal,
    _run,
)
from tests.support.files import make_ffv1_video, write_settings
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session

BUNDLED_KEYPOINTS = "nose, left_ear, right_ear, neck, body_center, tail_base"
SNOUT_REGION = (
    "# a lab's experiment, for a model that calls the nose 'snout'\n"
    "[Trigger snout_in]\nKIND = region\nSHAPE = circle 320 240 80\nKEYPOINT = snout\n\n"
    "[Stimulation flash]\nDEVICE = stimulus_box\nCOMMAND = pulse\nDURATION = 0.1\n\n"
    "[Rule flash_on_entry]\nWHEN = snout_in\nDO = flash\n"
)


def _snout_experiment(tmp_path: Path) -> Path:
    path = tmp_path / "snout.ini"
    path.write_text(SNOUT_REGION)
    return path


def test_a_keypoint_the_bundled_model_lacks_is_refused_naming_its_keypoints(
    tmp_path: Path,
) -> None:
    config = _snout_experiment(tmp_path)
    text = f"{CAMERA}{DEVICE}[Experiment]\nNAME = {config}\n"
    result = _run(tmp_path, text, "--experiment-enabled")
    _assert_refused(
        tmp_path, result, "keypoint 'snout'", "trigger snout_in", BUNDLED_KEYPOINTS,
        "[Trigger snout_in]", str(config), "the bundled arena model",
    )  # fmt: skip


def test_the_example_experiment_on_a_deeplabcut_model_is_refused_before_the_start(
    tmp_path: Path,
) -> None:
    model = next(shared_data("dlc3-openfield-cspnext_s/model").glob("*.pt"))
    text = f"{CAMERA}{DEVICE}[Pose]\nMODEL_PATH = {model}\n[Experiment]\nNAME = ExampleExperiment\n"
    _assert_says(
        _refusal(tmp_path, text, "--experiment-enabled"), "keypoint 'nose'",
        "triggers nose_in_left, nose_in_right", "snout, leftear, rightear, tailbase",
        "Map the experiment's keypoints",
    )  # fmt: skip


def test_a_python_experiments_keypoint_is_refused_with_what_to_do_in_code(
    tmp_path: Path,
) -> None:
    (tmp_path / "experiments").mkdir()
    code = tmp_path / "experiments" / "paw_zone.py"
    code.write_text(
        "from deeplabstream.experiments.base import Experiment\n"
        "from deeplabstream.experiments.triggers import Circle, Region\n\n\n"
        "class PawZone(Experiment):\n"
        "    def __init__(self) -> None:\n"
        "        super().__init__()\n"
        "        self.add_trigger('paw_in', Region(Circle(10, 10, 5), keypoint='paw'))\n\n"
        "    def on_update(self, obs, t):\n"
        "        return []\n"
    )
    text = f"{CAMERA}{DEVICE}[Experiment]\nNAME = {code.stem}\n"
    refusal = _refusal(tmp_path, text, "--experiment-enabled")
    _assert_says(refusal, "keypoint 'paw'", "Python code", BUNDLED_KEYPOINTS)


def test_a_replay_of_an_experiment_reading_a_missing_keypoint_is_refused(
    tmp_path: Path,
) -> None:
    config = _snout_experiment(tmp_path)
    settings = write_settings(tmp_path, f"{CAMERA}{DEVICE}[Experiment]\nNAME = {config}\n")
    video = tmp_path / "clip.mkv"
    make_ffv1_video(video, frames=10)
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "utils" / "VideoAnalyzer.py"), str(video),
         "--settings", str(settings), "--output-dir", str(tmp_path / "out")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    _assert_refused(tmp_path, result, "keypoint 'snout'", BUNDLED_KEYPOINTS)
    assert not (tmp_path / "out").exists()


def test_a_keypoint_named_only_in_code_stops_the_experiment_without_a_traceback(
    tmp_path: Path,
) -> None:
    (tmp_path / "experiments").mkdir()
    code = tmp_path / "experiments" / "reads_paw.py"
    code.write_text(
        "from deeplabstream.experiments.base import Experiment\n\n\n"
        "class ReadsPaw(Experiment):\n"
        "    def on_update(self, obs, t):\n"
        "        obs.point('paw')  # not declared by any trigger: only the run finds it\n"
        "        return []\n"
    )
    text = f"{CAMERA}{DEVICE}[Experiment]\nNAME = {code.stem}\n"
    result = _run(tmp_path, text, "--experiment-enabled")
    session = only_session(tmp_path / "out")
    log = (session / "session.log").read_text()
    assert "Traceback" not in log and "Traceback" not in result.stderr
    assert "has no keypoint 'paw'; its keypoints are nose, left_ear" in log
    events = pd.read_csv(session / "events.csv")
    finish = events[events["kind"] == "finish"]["detail"].tolist()
    assert len(finish) == 1 and finish[0].startswith("failed: experiment"), finish
    assert "has no keypoint 'paw'" in finish[0]
