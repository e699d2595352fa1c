"""deeplabstream-verify on real sessions of the simulated arena: live against offline.

Each test runs ``DeepLabStream.py`` (recording in FFV1, the bundled model, an experiment) and
then ``deeplabstream-verify`` on its folder, both as processes. Frames are skipped on purpose by
a lab trigger that stalls the experiment on chosen frames; forward prediction is made early on
purpose with a fixed lead. The simulated arena's ``truth.csv`` (where the animal really was)
checks that the report's attributions are right.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow  # a session and its verification: tens of seconds each

REGIONS = {"left": (160.0, 240.0, 60.0), "right": (480.0, 240.0, 60.0)}

EXPERIMENT = """
[Experiment]
DESCRIPTION = nose entries into two regions{experiment_keys}
MAX_TRIALS =
INTER_TRIAL_INTERVAL = 0
TRIAL_DURATION = 0

[Trigger nose_in_left]
KIND = region
SHAPE = circle 160 240 60
MODE = inside
KEYPOINT = nose

[Trigger nose_in_right]
KIND = region
SHAPE = circle 480 240 60
MODE = inside
KEYPOINT = nose

[Stimulation left_stimulus]
DEVICE = stimulus_box
COMMAND = pulse
CHANNEL = 1
DURATION = 0.1

[Stimulation right_stimulus]
DEVICE = stimulus_box
COMMAND = pulse
CHANNEL = 2
DURATION = 0.1

[Rule left_entry]
WHEN = nose_in_left
EDGE = rising
DO = left_stimulus

[Rule right_entry]
WHEN = nose_in_right
EDGE = rising
DO = right_stimulus
{extra}
"""

# A lab trigger that stalls the experiment (so the worker) on every 15th frame for 150 ms: at
# 30 fps the frames that arrive meanwhile are skipped, live only. It never fires.
STALL_TRIGGER = """
import time

from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.triggers.base import Trigger
from deeplabstream.experiments.triggers.kinds import TriggerKind


class Stall(Trigger):
    kind = "stall"

    def keypoints_read(self):
        return ()

    def step(self, obs: Observation) -> bool:
        if obs.frame_index % 15 == 7:
            time.sleep(0.15)
        return False

    def params(self):
        return {}


STALL = TriggerKind("stall", Stall, "Sleeps 150 ms on every 15th frame.", {})
"""

STALL_RULE = """
[Trigger stall]
KIND = stall

[Rule stall_rule]
WHEN = stall
EDGE = rising
DO = left_stimulus
"""

# A path that crosses both regions several times (waypoints: frame: x y, at 30 fps).
WAYPOINTS = (
    "0: 320 240; 30: 320 240; 90: 100 240; 120: 320 240; 180: 540 240; 210: 320 240; "
    "270: 100 250; 300: 320 240; 360: 540 230; 389: 320 240"
)


def _session(
    tmp_path: Path,
    codec: str = "ffv1",
    stall: bool = False,
    predict: bool = False,
    frames: int = 390,
) -> Path:
    lab = tmp_path / "lab"
    (lab / "experiments").mkdir(parents=True)
    experiment_keys = "\nPREDICT = constant-velocity\nPREDICT_LEAD = 150" if predict else ""
    config = EXPERIMENT.format(experiment_keys=experiment_keys, extra=STALL_RULE if stall else "")
    (lab / "experiments" / "entries.ini").write_text(config, encoding="utf-8")
    if stall:
        (lab / "triggers").mkdir()
        (lab / "triggers" / "stall.py").write_text(STALL_TRIGGER, encoding="utf-8")
    settings = write_settings(
        lab,
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nSEED = 3\nMOTION = waypoints\n"
        f"WAYPOINTS = {WAYPOINTS}\n"
        f"[Recording]\nCODEC = {codec}\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n"
        "[Experiment]\nNAME = entries\n[Device stimulus_box]\nTYPE = log\n",
    )
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--settings", str(settings),
         "--headless", "--recording-enabled", "--experiment-enabled", "--frames", str(frames),
         "--output-dir", str(out)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    sessions = sorted(out.glob("*/session.json"))
    assert sessions, result.stdout[-3000:] + result.stderr[-3000:]
    return sessions[0].parent


def _verify(session: Path, *options: str) -> tuple[int, dict, str]:
    result = subprocess.run(
        [sys.executable, "-m", "deeplabstream.offline.verify", str(session), *options],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    summary_file = session / "verify" / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    return result.returncode, summary, result.stdout + result.stderr


def _truth_nose(session: Path) -> dict[int, tuple[float, float]]:
    with (session / "arena.truth.csv").open(encoding="utf-8") as file:
        rows = list(csv.reader(file))[3:]
    return {int(row[0]): (float(row[1]), float(row[2])) for row in rows}


def _inside(point: tuple[float, float], region: str, margin: float = 0.0) -> bool:
    x, y, radius = REGIONS[region]
    return math.hypot(point[0] - x, point[1] - y) <= radius + margin


def test_a_default_session_verifies_to_the_bit_with_every_action_matched(tmp_path: Path) -> None:
    session = _session(tmp_path)
    code, summary, output = _verify(session)
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


def test_frames_skipped_live_are_counted_and_late_actions_put_down_to_them(
    tmp_path: Path,
) -> None:
    session = _session(tmp_path, stall=True)
    code, summary, output = _verify(session)
    camera = summary["cameras"]["arena"]
    assert camera["frames_skipped_live"] >= 40, output  # ~4 per stall, 26 stalls
    # The bundled model reads one frame: skipping changes no analysed frame's keypoints.
    assert camera["frames_equal_to_the_bit"] == camera["frames_compared"]
    assert code == 0, output
    truth = _truth_nose(session)
    matched = summary["events"]["matched"]
    late = [a for a in matched if a["frames_late"] > 0]
    assert late, output  # a stall of 150 ms in every 500 ms must hold up some decision
    for event in late:  # late only where live skipped (a busy recorder may lose frames too)
        assert event["explained_by"] in ("skipped", "not recorded"), event
    for action in summary["actions"]:  # the offline decision is where the animal entered
        region = "left" if "left" in action["detail"] else "right"
        offline_frame = action["frame"] - action["frames_late"]
        assert _inside(truth[offline_frame], region, margin=4.0), action
    skipped_decisions = summary["events"]["offline_decisions_on_frames_skipped_live"]
    assert skipped_decisions == sum(e["offline_frame_skipped_live"] for e in matched) + sum(
        e["explained_by"] == "skipped" for e in summary["events"]["offline_only"]
    )
    assert skipped_decisions > 0
    report = (session / "verify" / "report.html").read_text(encoding="utf-8")
    assert f"fell on frames live skipped: {skipped_decisions}" in report


def test_forward_prediction_shows_as_live_actions_early_within_the_lead(tmp_path: Path) -> None:
    session = _session(tmp_path, predict=True)
    _code, summary, output = _verify(session)
    assert summary["offline"][0]["forward_prediction_removed"] is True
    assert any("forward" in note for note in summary["notes"])
    truth = _truth_nose(session)
    early = [a for a in summary["actions"] if a["frames_late"] < 0]
    assert early, output  # a 150 ms lead at 30 fps: entries decided frames before they happen
    for action in early:
        assert action["explained_by"] == "prediction"
        assert -action["frames_late"] <= math.ceil(150 / (1000 / 30)) + 1
        region = "left" if "left" in action["detail"] else "right"
        # Where the animal really was: outside when live acted, inside at the offline decision.
        assert not _inside(truth[action["frame"]], region), action
        assert _inside(truth[action["frame"] - action["frames_late"]], region, margin=4.0)
    camera = summary["cameras"]["arena"]
    assert camera["frames_equal_to_the_bit"] == camera["frames_compared"]  # keypoints unmoved


def test_an_h264_session_says_compression_is_part_of_the_difference(tmp_path: Path) -> None:
    session = _session(tmp_path, codec="h264", frames=150)
    _code, summary, _output = _verify(session, "--tolerance-px", "50")
    camera = summary["cameras"]["arena"]
    assert set(camera["by_cause"]) == {"lossy_codec"}
    assert any("lossy codec (H.264)" in note for note in summary["notes"])
    assert camera["codec_p99_px"] is not None
    code_strict, summary_strict, _ = _verify(session, "--tolerance-px", "0")
    if camera["codec_p99_px"] > 0:  # compression moved a keypoint: 0 px cannot hold
        assert code_strict == 1
        assert any("lossy recording" in reason for reason in summary_strict["reasons"])


def test_a_session_without_a_recording_is_refused_saying_how_to_record(tmp_path: Path) -> None:
    session = _session(tmp_path, frames=30)
    record = json.loads((session / "session.json").read_text())
    for camera in record["cameras"].values():
        camera["recordings"] = []
    (session / "session.json").write_text(json.dumps(record))
    code, summary, output = _verify(session)
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


def test_frames_the_recording_lost_are_counted_and_never_compared(tmp_path: Path) -> None:
    session = _session(tmp_path, frames=240)
    record = json.loads((session / "session.json").read_text())
    recorded = record["cameras"]["arena"]["frames_recorded"]
    _drop_recorded_frames(session, range(100, 112))
    code, summary, output = _verify(session)
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
    code, summary, output = _verify(session)
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
