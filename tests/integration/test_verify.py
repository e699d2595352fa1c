"""deeplabstream-verify on real sessions of the simulated arena, the whole check.

Each session runs ``DeepLabStream.py`` (the bundled model, a two-region experiment) or, for the
window's button order, a ``LiveSession`` driven as the window drives it; then
``deeplabstream-verify`` runs on its folder (tests/support/verify_sessions.py): its ``main`` in
the test's process where a verdict read from the files is the point (its offline analysis starts
its replay worker as the command does), as a process where which code runs is (a lab class or
trigger changed since the session). The fast checks of a changed session are in
test_verify_tampering.py; the H.264 session's, on the signed H.264 session that
test_verify_record.py makes (one session and one whole check for both).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from deeplabstream.live.session.live import LiveSession
from deeplabstream.settings import load_settings
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT
from tests.support.verify_sessions import (
    EXPERIMENT,
    WAYPOINTS,
    assert_agrees,
    make_session,
    redigest,
    run_verify,
    verify_here,
)

pytestmark = pytest.mark.slow  # a session and its verification: tens of seconds each


@pytest.fixture(scope="module")
def skipping_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FFV1, a lab trigger that stalls the loop on every 15th frame, forward prediction on."""
    return make_session(tmp_path_factory.mktemp("skipping"), stall=True, predict=True)


def _copy(session: Path, tmp_path: Path) -> Path:
    copy = tmp_path / session.name
    shutil.copytree(session, copy, ignore=shutil.ignore_patterns("verify"))
    return copy


def _record(session: Path) -> dict:
    return json.loads((session / "session.json").read_text(encoding="utf-8"))


def test_frames_skipped_live_are_skipped_again_and_every_frame_agrees_to_the_bit(
    skipping_session: Path,
) -> None:
    code, summary, output = verify_here(skipping_session)
    assert summary["reasons"] == [], output
    camera = summary["keypoints"]["arena"]
    record = _record(skipping_session)
    assert record["pose"]["cameras"]["arena"]["frames_skipped"] >= 40, output  # 26 stalls
    # A loaded machine's recorder may lose frames: those are not verifiable, said so.
    lost = camera["not_verifiable"].get("not in the recording", 0)
    assert lost <= record["cameras"]["arena"]["frames_lost_in_recording"]
    # The reference analysed exactly the live schedule: the frames analysed live, no other.
    in_recording = camera["frames_analysed_live"] - lost
    assert summary["offline"][0]["frames_scheduled"]["arena"] == in_recording
    assert summary["offline"][0]["frames_analysed"] == in_recording
    assert camera["frames"]["to_the_bit"] == in_recording > 50  # a loaded recorder loses some
    assert_agrees(code, summary, skipping_session, output)
    (run,) = summary["decisions"]
    # Prediction's lead and the skipped frames repeated: every decision row, exactly.
    assert run["rows_equal"] == run["rows_live"] == run["rows_re_derived"] >= 8
    assert any(row for row in run["differences"]) is False
    report = (skipping_session / "verify" / "report.html").read_text(encoding="utf-8")
    assert f"Verdict: {summary['verdict_line']}." in report and "Provenance" in report
    assert (skipping_session / "verify" / "keypoints.png").stat().st_size > 0
    assert f"verdict: {summary['verdict']}" in output


def test_frames_the_recorder_lost_are_not_verifiable_and_said(
    skipping_session: Path, tmp_path: Path
) -> None:
    session = _copy(skipping_session, tmp_path)
    video = session / "arena.mkv"
    lost = range(100, 112)
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
    recorded = _record(session)["cameras"]["arena"]["frames_recorded"]
    redigest(session, "arena.mkv", "arena.frames.csv", frames_recorded=recorded - len(lost))
    code, summary, output = verify_here(session)
    camera = summary["keypoints"]["arena"]
    analysed = _column(session / "arena.pose_exact.csv")
    in_table = _column(session / "arena.frames.csv")
    expected = len(analysed - in_table)  # with any frames the recorder itself lost under load
    not_recorded = camera["not_verifiable"].get("not in the recording", 0)
    before = camera["not_verifiable"].get("before the recording started", 0)
    assert not_recorded + before == expected > 0, output
    assert camera["frames"]["to_the_bit"] == len(analysed) - expected
    assert camera["frames"]["differs"] == 0
    assert summary["reasons"] == [], output
    assert code in (0, 3), output  # 3 when a decision fell on a lost frame: said, not hidden
    if code == 3:
        assert any("rest on frames the recording" in item for item in summary["not_checked"])


def _column(path: Path) -> set[int]:
    """The first column of a CSV file (frame indices), as a set."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return {int(line.split(",", 1)[0]) for line in lines if line}


def test_a_cut_video_is_named(skipping_session: Path, tmp_path: Path) -> None:
    session = _copy(skipping_session, tmp_path)
    video = session / "arena.mkv"
    cut = session / "cut.mkv"
    with av.open(str(video)) as source, av.open(str(cut), "w") as target:
        stream_in = source.streams.video[0]
        stream = target.add_stream("ffv1", rate=stream_in.average_rate)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "bgr0"
        stream.time_base = stream_in.time_base
        keep = source.streams.video[0].frames // 2 or 100  # half, however many were recorded
        for index, frame in enumerate(source.decode(stream_in)):
            if index >= keep:
                break
            out = frame.reformat(format="bgr0")
            out.pts, out.time_base = frame.pts, frame.time_base
            target.mux(stream.encode(out))
        target.mux(stream.encode(None))
    cut.replace(video)
    code, summary, output = verify_here(session)
    assert code == 1, output
    assert any("arena.mkv changed after the session" in r for r in summary["reasons"])
    assert any("the video was cut" in r for r in summary["reasons"]), summary["reasons"]


def test_the_windows_button_order_with_a_late_experiment_agrees(tmp_path: Path) -> None:
    """Analysis, then recording, then the experiment a second later: as the window's buttons."""
    lab = tmp_path / "lab"
    (lab / "experiments").mkdir(parents=True)
    config = EXPERIMENT.format(experiment_keys="", extra="")
    (lab / "experiments" / "entries.ini").write_text(config, encoding="utf-8")
    settings = load_settings(
        write_settings(
            lab,
            "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nSEED = 3\nMOTION = waypoints\n"
            f"WAYPOINTS = {WAYPOINTS}\n[Recording]\nCODEC = ffv1\nMIN_FREE_SPACE = 0\n"
            "WARN_FREE_SPACE = 0\n[Experiment]\nNAME = entries\n[Device stimulus_box]\n"
            "TYPE = log\n",
        )
    )
    stream = LiveSession(settings, output_dir=tmp_path / "out")
    try:
        stream.open()
        stream.pose.start_analysis()
        stream.start_recording()
        stream.start()
        _serve(stream, 1.0)
        stream.pose.start_experiment()
        _serve(stream, 9.0)
    finally:
        stream.stop("stop requested")
    session = stream.session_dir
    assert session is not None
    run = _record(session)["experiment_runs"][0]
    assert run["updates"]["first_batch"] > 1  # the experiment started after analysis did
    code, summary, output = verify_here(session)
    assert summary["decisions"][0]["rows_equal"] == summary["decisions"][0]["rows_live"], output
    assert summary["decisions"][0]["differences"] == []
    assert_agrees(code, summary, session, output)


def _serve(stream: LiveSession, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        stream.service(0.1)


LAB_CLASS = '''
from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment
from deeplabstream.experiments.triggers import Circle, Region


class Alternation(Experiment):
    """Water on an entry into the zone not rewarded last."""

    def __init__(self):
        super().__init__(inter_trial_interval_s=0.5)
        self.add_trigger("left", Region(Circle(160, 240, 60), "inside", "nose"))
        self.add_trigger("right", Region(Circle(480, 240, 60), "inside", "nose"))
        self.last = None

    def on_update(self, obs, t):
        for zone in ("left", "right"):
            if self.rose(zone) and zone != self.last and self.start_trial(zone):
                self.last = zone
                return [Action.pulse("stimulus_box", 1, 0.05)]
        return []
'''


def test_a_class_experiment_edited_after_the_session_is_not_run(tmp_path: Path) -> None:
    session = make_session(tmp_path, frames=240, lab_module=("alternation", LAB_CLASS))
    code, summary, output = verify_here(session, "--decisions-only")
    assert summary["decisions"][0]["rows_equal"] == summary["decisions"][0]["rows_live"], output
    assert code == 3, output
    module = tmp_path / "lab" / "experiments" / "alternation.py"
    module.write_text(LAB_CLASS.replace("0.05", "0.5"), encoding="utf-8")
    code, _, output = run_verify(session, "--decisions-only")
    assert code == 2, output  # the code that ran is not here: cannot verify, never other code
    assert "alternation" in output and "changed since the session" in output


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


def test_two_cameras_at_their_own_rates_pair_and_agree(tmp_path: Path) -> None:
    """Each update pairs the cameras' newest poses as live did: the decisions agree exactly."""
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
    code, summary, output = verify_here(session)
    assert set(summary["keypoints"]) == {"top", "side"}, output
    for camera in summary["keypoints"].values():
        lost = camera["frames"]["not_verifiable"]
        assert camera["frames"]["to_the_bit"] == camera["frames_analysed_live"] - lost > 0
    (run,) = summary["decisions"]
    assert run["rows_equal"] == run["rows_live"] >= 4, output  # the side animal enters twice
    assert_agrees(code, summary, session, output)


def test_a_lab_trigger_changed_since_the_session_is_not_run_again(
    skipping_session: Path,
) -> None:
    run = _record(skipping_session)["experiment_runs"][0]
    (stall,) = [entry for entry in run["plugin_files"] if entry["name"] == "stall"]
    module = Path(stall["file"])
    original = module.read_text(encoding="utf-8")
    marker = skipping_session.parent / "ran"
    try:
        module.write_text(original + f"\nopen({str(marker)!r}, 'w')\n", encoding="utf-8")
        code, _, output = run_verify(skipping_session, "--decisions-only")
    finally:
        module.write_text(original, encoding="utf-8")
    assert not marker.exists(), output  # the changed file was never imported
    assert code == 2, output  # cannot verify: what it did cannot be re-derived
    assert "the lab's trigger 'stall'" in output and "changed since the session" in output


FAILING_DEVICE = '''
from deeplabstream.core.errors import DeviceError
from deeplabstream.hardware.stimulation.base import StimulationDevice


class Flaky(StimulationDevice):
    """A device whose third command fails (a cable pulled out)."""

    def open(self):
        self.sent = 0

    def close(self):
        pass

    @property
    def channel_count(self):
        return 4

    def perform(self, action):
        self.sent += 1
        if self.sent == 3:
            raise DeviceError("device 'stimulus_box': the cable was pulled out")
'''


def test_a_device_that_failed_live_ends_the_re_derived_run_as_it_ended(tmp_path: Path) -> None:
    """The experiment stopped on the failure live; re-derived, it stops on the same update."""
    lab = tmp_path / "lab"
    (lab / "experiments").mkdir(parents=True)
    (lab / "devices").mkdir()
    (lab / "devices" / "flaky.py").write_text(FAILING_DEVICE, encoding="utf-8")
    config = EXPERIMENT.format(experiment_keys="", extra="")
    (lab / "experiments" / "entries.ini").write_text(config, encoding="utf-8")
    settings = write_settings(
        lab,
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nSEED = 3\nMOTION = waypoints\n"
        f"WAYPOINTS = {WAYPOINTS}\n[Recording]\nCODEC = ffv1\nMIN_FREE_SPACE = 0\n"
        "WARN_FREE_SPACE = 0\n[Experiment]\nNAME = entries\n[Device stimulus_box]\n"
        "TYPE = flaky\n",
    )
    subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--settings", str(settings),
         "--headless", "--recording-enabled", "--experiment-enabled", "--frames", "390",
         "--output-dir", str(tmp_path / "out")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (session,) = (path.parent for path in (tmp_path / "out").glob("*/session.json"))
    run = _record(session)["experiment_runs"][0]
    assert "cable was pulled out" in run["error"]
    code, summary, output = verify_here(session, "--decisions-only")
    assert code == 3, output  # nothing differs; the recording was not analysed again
    (checked,) = summary["decisions"]
    assert checked["commands_not_sent_live"] >= 1  # the failed command, marked not_sent
    assert checked["rows_equal"] == checked["rows_live"] == checked["rows_re_derived"], output
    assert summary["reasons"] == [], output
    finish = [
        line for line in (session / "events.csv").read_text().splitlines() if ",finish," in line
    ]
    assert "failed: device 'stimulus_box'" in finish[0] and "the cable was pulled out" in finish[0]
