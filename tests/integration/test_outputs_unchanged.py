"""Every output of a replay, written through the output plugins, is what the code before them wrote.

tests/fixtures/outputs_before.json is the fingerprint (tests/support/output_fingerprint.py) of
this very replay written by the code before outputs were plugins (issue 37: each format a flag
threaded through the session and the worker). The replay is ``--fast`` (every frame analysed, in
order), so its poses, decisions and tables are the same in every run; what differs from run to run
(host times, measured durations, NWB's object ids, the session folder's name) is left out of the
fingerprint, column by column, and named there. Every output is on: the pose files and table,
``NAMING = ibl``, ``LSL = on``, ``NWB = on``, ``SLP = on`` and the annotated video.

The fixture was written once, from the code before the change; a deliberate change of a format
means writing it again (``outputs_fingerprint`` of this replay's folder, as JSON). Written again
since, each time for one deliberate change and checked to differ by it alone: the checkout's
folder left out of texts (the NWB pose description names the bundled model's path); the NWB
events table's ``likelihood`` column (events.csv's, issue 38); events.csv's ``animal`` column
(empty here: a single-animal model; issue 43); the stop's own switch-offs carry no keypoint,
position or likelihood (so the NWB events table has no measured columns here: every event of this
replay is the start, the finish or a stop's switch-off) and the annotated video draws the
experiment's regions (issue 44); ``left.pose_exact.csv`` added, every other file unchanged
(issue 46: the full-precision keypoints deeplabstream-verify compares); ``pose_exact.csv``'s
``batch``, ``time_s`` and ``lead_s`` columns (issue 52: the update each row was), its values
fingerprinted to 12 significant digits (a likelihood's last bits differ between CPUs), and
``[Output] DIRECTORY`` recorded as the folder it means, beside the settings file (issue 53). Each
time the replay of the code before the change (137629a) was fingerprinted too and differed from
the new one by these alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.files import make_ffv1_video, write_settings
from tests.support.lazy_modules import installed
from tests.support.output_fingerprint import differences, outputs_fingerprint
from tests.support.paths import PROJECT_ROOT
from tests.support.processes import run_cli

# Asked without importing them while every worker collects (lazy_modules).
pytestmark = installed("pynwb", "sleap_io", "pylsl")

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "outputs_before.json"

# As it was when the fixture was written: one camera named as IBL names one, every output on.
SETTINGS = """
[Camera left]
SOURCE = synthetic
WIDTH = 320
HEIGHT = 240
FRAMERATE = 30
SEED = 7
KEYPOINTS = nose, left_ear, right_ear, neck, body_center, tail_base
MOTION = random

[Output]
NAMING = ibl
NWB = on
SLP = on
LSL = on

[Session]
ANIMAL = mouse12
EXPERIMENTER = Doe, Jane

[Experiment]
NAME = ExampleExperiment

[Device stimulus_box]
TYPE = log
"""


@pytest.mark.slow
def test_a_replay_writes_the_same_outputs_as_before_they_were_plugins(tmp_path: Path) -> None:
    work = tmp_path / "work"  # the layout of the run the fixture was written from
    work.mkdir()
    settings = write_settings(work, SETTINGS)
    video = work / "left.mkv"
    make_ffv1_video(video, 60, width=320, height=240, fps=30)
    result = run_cli(
        "--settings", str(settings), "--output-dir", str(tmp_path / "replay"), "--fast",
        "--annotated-video", str(video),
        script="utils/VideoAnalyzer.py", timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    session = tmp_path / "replay" / "left"
    expected = json.loads(FIXTURE.read_text(encoding="utf-8"))
    found = outputs_fingerprint(session, tmp_path)
    assert sorted(found) == sorted(expected)  # the same files, none more, none fewer
    assert differences(expected, found) == []
