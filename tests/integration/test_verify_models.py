"""``deeplabstream-verify`` on SLEAP top-down and Lightning Pose context-model sessions.

Two sessions made as a lab makes them, then verified by the command:

- a live session of the project's sleap-nn top-down export of two flies
  (``tests/fixtures/sleap_topdown_flies``, centroid + centered instance) on the shared fly clip
  played as a camera at its own rate, recorded with FFV1, with an experiment (a light when a
  fly enters a region): the model is slower than the camera, so frames are skipped and the
  tracker's identities follow only the frames analysed;
- a ``--realtime`` replay of the shared 250 fps mirror-mouse clip with the Lightning Pose
  context model (``heatmap_mhcrnn``, ``tests/fixtures/lp_context_mirror_mouse``): live, its
  causal context is the last two frames *analysed*, offline the two frames before.

Each check recomputes from the session's own files what verify must say: which frames were
analysed and skipped, the cause that applies to each (``tracking_history`` after the first
skip, ``skipped_before`` right after a skip), and which frames are equal to the bit (the live
``pose_exact.csv`` against the reference's). The frames with no cause must be equal to the bit.
The tests skip when the shared data or the fixtures are absent.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deeplabstream.offline.verify.keypoints import CAUSES
from deeplabstream.pose.formats.conversion import CACHE_ENV
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli

SLEAP_FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "sleap_topdown_flies" / "export_topdown"
FLIES_CLIP = "sleap-flies/inference/flies_clip_first100.mp4"  # 100 frames, 1024 x 1024, 25 fps
LP_FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "lp_context_mirror_mouse"
MOUSE_CLIP = "lp-mirror-mouse-resnet18/clip/test_vid_first100.mp4"  # 100 frames at 250 fps
CONTEXT_FRAMES_BEFORE = 2  # the causal context: the two frames before (t-2, t-1)
# A light when a fly's thorax enters a region: one fly of the clip walks through it (frames 38
# to 70), so the live and offline decisions are compared too. The tiny model's thorax
# likelihoods hover about 0.5, the triggers' default MIN_LIKELIHOOD: there the trigger's loss
# hold (HOLD_S, from the last frame the thorax was seen) depends on which frames live skipped
# (seen once: live decided "false" at frame 69, 4 frames before the reference, having skipped
# frames 64 and 65 where the thorax was seen; verify gives it as "skipped earlier"). With
# MIN_LIKELIHOOD = 0.1, the pose threshold, every frame reads the thorax, and the decisions
# move only by the frames skipped right before them.
FLY_ENTRY = """
[Experiment]
DESCRIPTION = a fly's thorax entering a region
MAX_TRIALS =
INTER_TRIAL_INTERVAL = 0
TRIAL_DURATION = 0

[Trigger thorax_in_region]
KIND = region
SHAPE = circle 860 400 40
MODE = inside
KEYPOINT = thorax
ANIMAL = any
MIN_LIKELIHOOD = 0.1

[Stimulation light]
DEVICE = stimulus_box
COMMAND = pulse
CHANNEL = 1
DURATION = 0.1

[Rule entry]
WHEN = thorax_in_region
EDGE = rising
DO = light
"""


def _verify(session: Path) -> tuple[int, dict[str, Any], str]:
    """Run ``deeplabstream-verify`` as a user would; its exit code, summary.json and output."""
    result = subprocess.run(
        [sys.executable, "-m", "deeplabstream.offline.verify", str(session)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    output = result.stdout + result.stderr
    summary_file = session / "verify" / "summary.json"
    assert summary_file.is_file(), output[-3000:]
    return result.returncode, json.loads(summary_file.read_text(encoding="utf-8")), output


def _exact_poses(path: Path) -> dict[int, np.ndarray]:
    """``<camera>.pose_exact.csv``: each analysed frame's values, as written (full precision)."""
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    return {int(row[0]): row[1:] for row in data}


def _analysed_and_skipped(pose_times: Path) -> tuple[list[int], set[int]]:
    """The live frames analysed (in order) and those captured but skipped (pose_times.csv)."""
    rows = np.genfromtxt(pose_times, delimiter=",", skip_header=1, usecols=(0, 3), ndmin=2)
    analysed = [int(frame) for frame, done in rows if done == 1]
    skipped = {int(frame) for frame, done in rows if done == 0}
    return analysed, skipped


def _frames_equal_to_the_bit(
    live: dict[int, np.ndarray], offline: dict[int, np.ndarray]
) -> set[int]:
    """The live frames whose values the reference has, every bit the same (NaN where NaN)."""
    return {
        frame
        for frame, values in live.items()
        if frame in offline and np.array_equal(values, offline[frame], equal_nan=True)
    }


def _figures(camera: dict[str, Any]) -> str:
    """The camera's figures in one line (printed: the issue's note quotes them)."""
    causes = ", ".join(
        f"{cause}: {c['frames']} frames ({c['frames_equal_to_the_bit']} equal), median "
        f"{c['median_px']} px, p99 {c['p99_px']} px, max {c['max_px']} px"
        for cause, c in camera["by_cause"].items()
    )
    return (
        f"{camera['frames_analysed_live']} analysed live, {camera['frames_skipped_live']} "
        f"skipped, {camera['frames_not_in_recording']} not in the recording, "
        f"{camera['frames_compared']} compared, {camera['frames_equal_to_the_bit']} equal to the "
        f"bit, {camera['identity_swaps']} identity swaps, keypoints seen only live "
        f"{camera['seen_only_live']}, only offline {camera['seen_only_offline']}, likelihood "
        f"difference {camera['likelihood_difference']}; {causes}"
    )


def _check_causes(camera: dict[str, Any], expected: dict[int, str], equal: set[int]) -> None:
    """Verify's split by cause is the one recomputed, and frames with no cause are equal."""
    counts: dict[str, int] = {}
    for cause in expected.values():
        counts[cause] = counts.get(cause, 0) + 1
    assert {cause: c["frames"] for cause, c in camera["by_cause"].items()} == counts
    assert set(camera["by_cause"]) <= {*CAUSES, "none"}
    for cause, figures in camera["by_cause"].items():
        mine = [frame for frame, named in expected.items() if named == cause]
        assert figures["frames_equal_to_the_bit"] == len(equal.intersection(mine)), cause
    without_cause = [frame for frame, named in expected.items() if named == "none"]
    assert set(without_cause) <= equal, sorted(set(without_cause) - equal)
    assert camera["frames_without_cause"] == len(without_cause)
    assert camera["unexplained_frames"] == 0 and camera["first_unexplained_frame"] is None


@pytest.mark.slow
def test_a_sleap_top_down_two_animal_session_verifies(tmp_path: Path) -> None:
    if not SLEAP_FIXTURE.is_dir():
        pytest.skip(f"{SLEAP_FIXTURE} is absent")
    clip = shared_data(FLIES_CLIP)
    lab = tmp_path / "lab"
    (lab / "experiments").mkdir(parents=True)
    (lab / "experiments" / "fly_entry.ini").write_text(FLY_ENTRY, encoding="utf-8")
    # A ring of 5 s holds the whole clip: the FFV1 recorder may lag the 2-core machine's model
    # without losing a frame (a lost frame is counted and not compared: the last test below).
    settings = write_settings(
        lab,
        f"[Camera flies]\nSOURCE = video\nPATH = {clip}\nPACING = native\n"
        "[Pose]\nMAX_ANIMALS = 2\nLIKELIHOOD_THRESHOLD = 0.1\n"
        "[Streaming]\nBUFFER_SECONDS = 5\n"
        "[Recording]\nCODEC = ffv1\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n"
        "[Experiment]\nNAME = fly_entry\n[Device stimulus_box]\nTYPE = log\n",
    )
    result = run_cli(
        "--settings", str(settings), "--headless", "--experiment-enabled", "--recording-enabled",
        "--model", str(SLEAP_FIXTURE), "--output-dir", str(tmp_path / "out"), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    session = only_session(tmp_path / "out")
    record = json.loads((session / "session.json").read_text(encoding="utf-8"))
    live_figures = record["pose"]["cameras"]["flies"]

    code, summary, output = _verify(session)
    print(output)
    camera = summary["cameras"]["flies"]
    print(f"SLEAP top-down, 2 flies: {_figures(camera)}")
    assert code == 0 and summary["verdict"] == "agrees", summary["reasons"]
    assert list(summary["cameras"]) == list(record["pose"]["cameras"]) == ["flies"]

    # Every frame analysed live is compared, but those the recorder lost (counted, not guessed).
    analysed, skipped = _analysed_and_skipped(session / "flies.pose_times.csv")
    table = np.loadtxt(session / "flies.frames.csv", delimiter=",", skiprows=1, usecols=(0,),
                       ndmin=1).astype(int).tolist()  # fmt: skip
    recorded = set(table)  # row i: the live index of video frame i
    assert camera["frames_analysed_live"] == live_figures["frames_analysed"] == len(analysed)
    assert camera["frames_skipped_live"] == live_figures["frames_skipped"] == len(skipped)
    assert camera["frames_not_in_recording"] == len(set(analysed) - recorded)
    assert camera["frames_compared"] == len(set(analysed) & recorded) >= 2

    # The reference's poses are on the recording's frames: frames.csv puts them on the live index.
    live = _exact_poses(session / "flies.pose_exact.csv")
    by_video_frame = _exact_poses(session / "verify" / "offline" / "flies.pose_exact.csv")
    offline = {table[row]: values for row, values in by_video_frame.items() if row < len(table)}
    equal = _frames_equal_to_the_bit(live, offline)
    assert camera["frames_equal_to_the_bit"] == len(equal)

    # CPU, lossless, whole frames, one camera: the one cause is the tracker's history, which
    # differs once live skipped a frame; before that the frames must be equal to the bit.
    first_skip = min(skipped) if skipped else None
    expected = {
        frame: "tracking_history" if first_skip is not None and first_skip < frame else "none"
        for frame in analysed
        if frame in recorded
    }
    _check_causes(camera, expected, equal)
    # Identity swaps are counted; a frame equal to the bit cannot hold one, nor may one come
    # without the skipped frames that explain it.
    assert 0 <= camera["identity_swaps"] <= camera["frames_compared"] - len(equal)
    assert camera["identity_swaps_unexplained"] == 0
    assert (session / "verify" / "report.html").is_file()

    # Every live decision (but the switch-off at the end) is matched or has its cause.
    events = summary["events"]
    late = [(m["kind"], m["frames_late"], m["explained_by"]) for m in events["matched"]]
    print(f"SLEAP top-down events: {events['counts']}, matched (kind, frames late, why): {late}, "
          f"offline decisions on frames skipped live "
          f"{events['offline_decisions_on_frames_skipped_live']}")  # fmt: skip
    with (session / "events.csv").open(encoding="utf-8", newline="") as file:
        rows = [row for row in csv.DictReader(file) if "reason=stop" not in row["detail"]]
    for kind in ("trigger", "action"):
        live_count = sum(row["kind"] == kind for row in rows)
        counts = events["counts"].get(kind, {"matched": 0, "live_only": 0})
        assert counts["matched"] + counts["live_only"] == live_count, kind
    assert all(item["explained_by"] for item in events["matched"] + events["live_only"])


@pytest.mark.slow
def test_a_lightning_pose_context_replay_verifies(tmp_path: Path, monkeypatch) -> None:
    if not LP_FIXTURE.is_dir():
        pytest.skip(f"{LP_FIXTURE} is absent")
    from tests.unit.pose.test_pose_lightning_context import compose_checkpoint

    clip = shared_data(MOUSE_CLIP)
    checkpoint = compose_checkpoint(tmp_path / "model")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "converted"))  # the replay and verify share it
    settings = write_settings(tmp_path, "[Camera arena]\nSOURCE = synthetic\n")
    replay = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "utils" / "VideoAnalyzer.py"), str(clip),
         "--realtime", "--no-experiment", "--model", str(checkpoint), "--settings",
         str(settings), "--output-dir", str(tmp_path / "out")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stdout[-3000:] + replay.stderr[-3000:]
    session = only_session(tmp_path / "out")
    record = json.loads((session / "session.json").read_text(encoding="utf-8"))
    assert record["replay"]["video"] == str(clip) and record["replay"]["mode"] == "realtime"
    (name,) = record["pose"]["cameras"]
    analysed, skipped = _analysed_and_skipped(session / f"{name}.pose_times.csv")
    if not skipped:
        pytest.skip("this machine analysed every frame of the 250 fps clip: nothing was skipped")

    code, summary, output = _verify(session)
    print(output)
    camera = summary["cameras"][name]
    print(f"Lightning Pose context, realtime replay: {_figures(camera)}")
    assert code == 0 and summary["verdict"] == "agrees", summary["reasons"]
    assert list(summary["cameras"]) == [name]
    # The reference played the replay's own video, decoded as the replay decoded it: no codec
    # stands between them (no lossy-recording note, no lossy_codec cause).
    assert summary["offline"][0]["videos"] == [str(clip)]
    assert not any("lossy" in note for note in summary["notes"]), summary["notes"]
    assert summary["offline"][0]["frames_analysed"] == record["replay"]["frames_in_video"]
    assert camera["frames_analysed_live"] == camera["frames_compared"] == len(analysed)
    assert camera["frames_skipped_live"] == len(skipped)

    live = _exact_poses(session / f"{name}.pose_exact.csv")
    offline = _exact_poses(session / "verify" / "offline" / f"{name}.pose_exact.csv")
    equal = _frames_equal_to_the_bit(live, offline)
    assert camera["frames_equal_to_the_bit"] == len(equal)
    # Right after a skip the live context held other frames: skipped_before; else no cause.
    expected = {
        frame: "skipped_before"
        if any(frame - step in skipped for step in range(1, CONTEXT_FRAMES_BEFORE + 1))
        else "none"
        for frame in analysed
    }
    assert "skipped_before" in expected.values()
    _check_causes(camera, expected, equal)


def test_a_frame_the_recording_lost_explains_the_context_after_it() -> None:
    """A context model's frames after one the recorder lost had another context offline.

    Live analysed every frame 0 to 5; the recording lacks frame 2, so the reference's context of
    frames 3 and 4 held other frames (seen on a real Lightning Pose context session with one
    recorded frame taken out: frames 3 and 4 after it moved by up to 96 px at likelihoods below
    the threshold): they are ``skipped_before``, not differences without a cause.
    """
    from deeplabstream.offline.verify.frames import PoseSeries
    from deeplabstream.offline.verify.keypoints import CameraFacts, compare_keypoints

    values = np.random.default_rng(1).random((6, 1, 2, 3)) * 100
    moved = values.copy()
    moved[[3, 4], 0, 0, 0] += 0.5
    recorded = [0, 1, 3, 4, 5]
    live = PoseSeries(np.arange(6), values, ("nose", "tail"), exact=True)
    offline = PoseSeries(np.array(recorded), moved[recorded], ("nose", "tail"), exact=True)
    every_frame = (np.arange(6), np.ones(6, dtype=bool))
    context = CameraFacts(True, True, False, False, 1, False, 0.0)
    result = compare_keypoints("mouse", live, offline, every_frame, context, 1.0)
    assert result.frames_not_in_recording == 1 and result.reasons() == []
    assert result.by_cause["skipped_before"]["frames"] == 2
    assert result.by_cause["none"] == {
        "frames": 3, "frames_equal_to_the_bit": 3, "median_px": 0.0, "p99_px": 0.0, "max_px": 0.0
    }  # fmt: skip
