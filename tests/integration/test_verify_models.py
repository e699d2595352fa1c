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

The reference analyses the recording on the live schedule: exactly the frames the live loop
analysed, in order, so the tracker's identities and the context model's past frames are the ones
they were live, and every frame the recording holds is equal to the bit (or the same animals in
another order, the appearance learner's doing: ``identity_order``). Each check recomputes from
the session's own files what verify must say. The tests skip when the shared data or the
fixtures are absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deeplabstream.pose.formats.conversion import CACHE_ENV
from tests.support.files import write_settings
from tests.support.in_process import run_main_here
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli
from tests.support.verify_sessions import STALL_RULE, STALL_TRIGGER, verify_here

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
    """``deeplabstream-verify``'s exit code, summary.json and output.

    The command's ``main`` in the test's process (``verify_here``): the verdict on these models'
    sessions is the point here, not a new interpreter importing the package again.
    """
    code, summary, output = verify_here(session)
    summary_file = session / "verify" / "summary.json"
    assert summary_file.is_file(), output[-3000:]
    return code, summary, output


def _analysed_and_skipped(pose_times: Path) -> tuple[list[int], set[int]]:
    """The live frames analysed (in order) and those captured but skipped (pose_times.csv)."""
    rows = np.genfromtxt(pose_times, delimiter=",", skip_header=1, usecols=(0, 3), ndmin=2)
    analysed = [int(frame) for frame, done in rows if done == 1]
    skipped = {int(frame) for frame, done in rows if done == 0}
    return analysed, skipped


def _figures(camera: dict[str, Any]) -> str:
    """The camera's figures in one line (printed: the issue's note quotes them)."""
    return (
        f"{camera['frames_analysed_live']} analysed live; by category {camera['frames']}; "
        f"explained by {camera['by_cause']}; not verifiable {camera['not_verifiable']}; "
        f"{camera['identity_swaps']} frames in another animal order; px {camera['stats']}"
    )


@pytest.mark.slow
def test_a_sleap_top_down_two_animal_session_with_skipped_frames_agrees(tmp_path: Path) -> None:
    if not SLEAP_FIXTURE.is_dir():
        pytest.skip(f"{SLEAP_FIXTURE} is absent")
    clip = shared_data(FLIES_CLIP)
    lab = tmp_path / "lab"
    (lab / "experiments").mkdir(parents=True)
    # Frames are skipped on purpose, whatever the machine's speed: a lab trigger stalls the
    # loop 150 ms on every 15th frame (it never fires), so the clip's frames meanwhile go.
    stalling = FLY_ENTRY + STALL_RULE.replace("DO = left_stimulus", "DO = light")
    (lab / "experiments" / "fly_entry.ini").write_text(stalling, encoding="utf-8")
    (lab / "triggers").mkdir()
    (lab / "triggers" / "stall.py").write_text(STALL_TRIGGER, encoding="utf-8")
    # A ring of 5 s holds the whole clip: the FFV1 recorder may lag the 2-core machine's model
    # without losing a frame (a lost frame is counted, not verifiable, and said).
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
    analysed, skipped = _analysed_and_skipped(session / "flies.pose_times.csv")
    assert skipped, "the stalls skip frames live"

    code, summary, output = _verify(session)
    print(output)
    camera = summary["keypoints"]["flies"]
    print(f"SLEAP top-down, 2 flies: {_figures(camera)}")
    assert summary["reasons"] == [], output
    table = np.loadtxt(session / "flies.frames.csv", delimiter=",", skiprows=1, usecols=(0,),
                       ndmin=1).astype(int).tolist()  # fmt: skip
    recorded = set(analysed) & set(table)
    assert camera["frames_analysed_live"] == record["pose"]["cameras"]["flies"]["frames_analysed"]
    assert camera["frames"]["not_verifiable"] == len(set(analysed) - set(table))
    # The live schedule repeated: every recorded frame equal to the bit, or the same whole
    # animals in another order; none differs.
    assert camera["frames"]["to_the_bit"] + camera["by_cause"]["identity_order"] == len(recorded)
    assert camera["frames"]["differs"] == 0 and len(recorded) >= 2
    (run,) = summary["decisions"]
    assert run["rows_equal"] == run["rows_live"] > 0, output  # the decisions, exactly
    assert code in (0, 3), output  # 3: a decision on a frame the recorder lost, said


@pytest.mark.slow
def test_a_lightning_pose_context_replay_with_skipped_frames_agrees_to_the_bit(
    tmp_path: Path, monkeypatch
) -> None:
    if not LP_FIXTURE.is_dir():
        pytest.skip(f"{LP_FIXTURE} is absent")
    from tests.unit.pose.test_pose_lightning_context import compose_checkpoint

    clip = shared_data(MOUSE_CLIP)
    checkpoint = compose_checkpoint(tmp_path / "model")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "converted"))  # the replay and verify share it
    settings = write_settings(tmp_path, "[Camera arena]\nSOURCE = synthetic\n")
    from deeplabstream.offline.replay.command import main

    # utils/VideoAnalyzer.py's command, its main in this process (which already imported torch
    # for the checkpoint): the frames it skipped and their verdict are the point here.
    code, said, complained = run_main_here(
        main,
        [str(clip), "--realtime", "--no-experiment", "--model", str(checkpoint), "--settings",
         str(settings), "--output-dir", str(tmp_path / "out")],
    )  # fmt: skip
    assert code == 0, said[-3000:] + complained[-3000:]
    session = only_session(tmp_path / "out")
    record = json.loads((session / "session.json").read_text(encoding="utf-8"))
    assert record["replay"]["video"] == str(clip) and record["replay"]["mode"] == "realtime"
    (name,) = record["pose"]["cameras"]
    analysed, skipped = _analysed_and_skipped(session / f"{name}.pose_times.csv")
    if not skipped:
        pytest.skip("this machine analysed every frame of the 250 fps clip: nothing was skipped")

    code, summary, output = _verify(session)
    print(output)
    camera = summary["keypoints"][name]
    print(f"Lightning Pose context, realtime replay: {_figures(camera)}")
    assert code == 0 and summary["verdict"] == "agrees", output
    assert summary["offline"][0]["videos"] == [str(clip)]
    assert not any("lossy" in note for note in summary["notes"]), summary["notes"]
    # The context of each frame is the two frames analysed before it, live and offline alike:
    # every analysed frame, the ones right after a skip too, equal to the bit.
    assert summary["offline"][0]["frames_analysed"] == len(analysed)
    assert camera["frames"]["to_the_bit"] == camera["frames_analysed_live"] == len(analysed)


def test_a_frame_the_recording_lost_explains_the_context_after_it() -> None:
    """A context model's frames after one the recorder lost had another context offline.

    Live analysed every frame 0 to 5; the recording lacks frame 2, so the reference's context of
    frames 3 and 4 held other frames: they are explained (``history_not_recorded``), frame 2
    is not verifiable, frame 5 (whose context, 3 and 4, was the same) must be equal.
    """
    from deeplabstream.offline.verify.frames import PoseSeries
    from deeplabstream.offline.verify.keypoints import CameraFacts, compare_keypoints

    values = np.random.default_rng(1).random((6, 1, 2, 3)) * 100
    moved = values.copy()
    moved[[3, 4], 0, 0, 0] += 0.5
    recorded = [0, 1, 3, 4, 5]
    live = PoseSeries(np.arange(6), values, ("nose", "tail"), exact=True)
    offline = PoseSeries(np.array(recorded), moved[recorded], ("nose", "tail"), exact=True)
    context = CameraFacts(True, True, False, False, 1, False, 0.0, None)
    result = compare_keypoints("mouse", live, offline, set(recorded), 0, context)
    assert result.reasons() == []
    assert result.frames == {
        "to_the_bit": 3, "within_bound": 0, "explained": 2, "differs": 0, "not_verifiable": 1
    }  # fmt: skip
    assert result.by_cause["history_not_recorded"] == 2
    assert result.not_verifiable == {"not in the recording": 1}
    moved[5, 0, 0, 0] += 0.5  # frame 5's context was whole: a difference there is one
    offline = PoseSeries(np.array(recorded), moved[recorded], ("nose", "tail"), exact=True)
    assert (
        compare_keypoints("mouse", live, offline, set(recorded), 0, context).frames["differs"] == 1
    )
