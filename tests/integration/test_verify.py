"""deeplabstream-verify on real sessions of the simulated arena: live against offline.

Each test runs ``DeepLabStream.py`` (recording in FFV1, the bundled model, an experiment) and
then ``deeplabstream-verify`` on its folder, both as processes (tests/support/
verify_sessions.py). One default session serves the tests that only read it or change a copy;
the causes of differences are tested in test_verify_causes.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT
from tests.support.verify_sessions import EXPERIMENT, make_session, run_verify

pytestmark = pytest.mark.slow  # a session and its verification: tens of seconds each


@pytest.fixture(scope="module")
def default_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One default session (390 frames, FFV1, the two-region experiment), made once."""
    return make_session(tmp_path_factory.mktemp("default"))


def _copy(session: Path, tmp_path: Path) -> Path:
    copy = tmp_path / session.name
    shutil.copytree(session, copy, ignore=shutil.ignore_patterns("verify"))
    return copy


def test_a_default_session_verifies_to_the_bit_with_every_action_matched(
    default_session: Path,
) -> None:
    session = default_session
    code, summary, output = run_verify(session)
    assert code == 0, output
    assert summary["verdict"] == "agrees" and summary["reasons"] == []
    camera = summary["cameras"]["arena"]
    assert camera["exact_live_file"] is True
    compared = camera["frames_compared"]
    assert compared == camera["frames_analysed_live"] - camera["frames_not_in_recording"]
    assert compared > 100  # a loaded machine's recorder may lose frames: counted, not compared
    assert camera["frames_equal_to_the_bit"] == compared  # every analysed frame, to the bit
    actions = summary["actions"]
    assert len(actions) >= 4  # the path enters the regions four times
    # On an idle machine every action is on its offline frame; a busy one may skip a frame
    # live or lose one from the recording, and the report must say so for that action.
    for action in actions:
        assert action["explained_by"] in ("same frame", "skipped", "not recorded"), action
        assert (action["frames_late"] == 0) == (action["explained_by"] == "same frame")
    assert all(a["latency_ms"] is not None and a["latency_ms"] > 0 for a in actions)
    events = summary["events"]
    assert all(e["explained_by"] for e in events["live_only"] + events["offline_only"])
    skipped = events["offline_decisions_on_frames_skipped_live"]
    report = (session / "verify" / "report.html").read_text(encoding="utf-8")
    assert "agrees with the offline analysis" in report
    assert f"Offline decisions that fell on frames live skipped: {skipped}." in report
    assert (session / "verify" / "keypoints.png").stat().st_size > 0
    assert (session / "verify" / "events.png").stat().st_size > 0
    assert "verdict: agrees" in output


def test_a_session_without_a_recording_is_refused_saying_how_to_record(
    default_session: Path, tmp_path: Path
) -> None:
    session = _copy(default_session, tmp_path)
    record = json.loads((session / "session.json").read_text())
    for camera in record["cameras"].values():
        camera["recordings"] = []
    (session / "session.json").write_text(json.dumps(record))
    code, summary, output = run_verify(session)
    assert code == 2
    assert "--recording-enabled" in output and str(session) in output
    assert summary == {}


def _drop_recorded_frames(session: Path, lost: range) -> None:
    """Take frames out of the recording and its frames table, as a recorder that lost them."""
    import av

    video = session / "arena.mkv"
    kept = session / "kept.mkv"
    with av.open(str(video)) as source, av.open(str(kept), "w") as target:
        stream_in = source.streams.video[0]
        stream = target.add_stream("ffv1", rate=stream_in.average_rate)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "bgr0"
        stream.time_base = stream_in.time_base
        for index, frame in enumerate(source.decode(stream_in)):
            if index in lost:
                continue
            out = frame.reformat(format="bgr0")
            out.pts, out.time_base = frame.pts, frame.time_base
            target.mux(stream.encode(out))
        target.mux(stream.encode(None))
    kept.replace(video)
    table = session / "arena.frames.csv"
    lines = table.read_text().splitlines(keepends=True)
    table.write_text("".join(line for i, line in enumerate(lines) if i - 1 not in lost))


def test_frames_the_recording_lost_are_counted_and_never_compared(
    default_session: Path, tmp_path: Path
) -> None:
    session = _copy(default_session, tmp_path)
    record = json.loads((session / "session.json").read_text())
    recorded = record["cameras"]["arena"]["frames_recorded"]
    _drop_recorded_frames(session, range(100, 112))
    code, summary, output = run_verify(session)
    camera = summary["cameras"]["arena"]
    assert camera["frames_not_in_recording"] == camera["frames_analysed_live"] - recorded + 12
    assert camera["frames_compared"] == recorded - 12
    assert camera["frames_equal_to_the_bit"] == camera["frames_compared"]
    assert any("not in the recording" in note for note in summary["notes"])
    assert "truncated" not in output  # the frames table says how many frames the file holds
    for item in summary["events"]["matched"] + summary["events"]["live_only"]:
        assert item["explained_by"] is not None, item
    assert code == 0, output


TWO_CAMERAS = """
[Camera top]
SOURCE = synthetic
FRAMERATE = 30
SEED = 1
WIDTH = 320
HEIGHT = 240
[Camera side]
SOURCE = synthetic
FRAMERATE = 15
SEED = 2
WIDTH = 320
HEIGHT = 240
MOTION = waypoints
WAYPOINTS = 0: 160 120; 15: 160 120; 45: 60 120; 60: 160 120; 90: 260 120; 105: 160 120
[Recording]
CODEC = ffv1
MIN_FREE_SPACE = 0
WARN_FREE_SPACE = 0
[Experiment]
NAME = side_entries
[Device stimulus_box]
TYPE = log
"""


def test_two_cameras_at_their_own_rates_verify_each_on_its_own_frames(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    (lab / "experiments").mkdir(parents=True)
    config = EXPERIMENT.format(experiment_keys="", extra="")
    config = config.replace("KEYPOINT = nose", "KEYPOINT = nose\nCAMERA = side")
    config = config.replace("circle 160 240 60", "circle 60 120 30")
    config = config.replace("circle 480 240 60", "circle 260 120 30")
    (lab / "experiments" / "side_entries.ini").write_text(config, encoding="utf-8")
    settings = write_settings(lab, TWO_CAMERAS)
    out = tmp_path / "out"
    subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--settings", str(settings),
         "--headless", "--recording-enabled", "--experiment-enabled", "--duration", "8",
         "--output-dir", str(out)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (session,) = (path.parent for path in out.glob("*/session.json"))
    code, summary, output = run_verify(session)
    assert set(summary["cameras"]) == {"top", "side"}, output
    for camera in summary["cameras"].values():
        assert camera["frames_compared"] > 0
        assert camera["frames_equal_to_the_bit"] == camera["frames_compared"]
    actions = summary["actions"]
    assert len(actions) >= 2, output  # the side camera's animal enters both regions
    # Live logs an action at whichever camera's update came next; it is compared at the frame
    # of the side camera's trigger that decided it.
    assert all(action["explained_by"] is not None for action in actions)
    assert code == 0, output
