"""deeplabstream-verify puts each difference down to its cause: skipped frames, prediction, H.264.

Real sessions of the simulated arena (tests/support/verify_sessions.py), then the command, both
as processes. The arena's ``truth.csv`` (where the animal really was) checks the attributions.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.support.verify_sessions import inside, make_session, run_verify, truth_nose

pytestmark = pytest.mark.slow  # a session and its verification: tens of seconds each


def test_frames_skipped_live_are_counted_and_late_actions_put_down_to_them(
    tmp_path: Path,
) -> None:
    session = make_session(tmp_path, stall=True)
    code, summary, output = run_verify(session)
    camera = summary["cameras"]["arena"]
    assert camera["frames_skipped_live"] >= 40, output  # ~4 per stall, 26 stalls
    # The bundled model reads one frame: skipping changes no analysed frame's keypoints.
    assert camera["frames_equal_to_the_bit"] == camera["frames_compared"]
    assert code == 0, output
    truth = truth_nose(session)
    matched = summary["events"]["matched"]
    late = [a for a in matched if a["frames_late"] > 0]
    assert late, output  # a stall of 150 ms in every 500 ms must hold up some decision
    for event in late:  # late only where live skipped (a busy recorder may lose frames too)
        assert event["explained_by"] in ("skipped", "not recorded"), event
    for action in summary["actions"]:  # the offline decision is where the animal entered
        region = "left" if "left" in action["detail"] else "right"
        offline_frame = action["frame"] - action["frames_late"]
        assert inside(truth[offline_frame], region, margin=4.0), action
    skipped_decisions = summary["events"]["offline_decisions_on_frames_skipped_live"]
    assert skipped_decisions == sum(e["offline_frame_skipped_live"] for e in matched) + sum(
        e["explained_by"] == "skipped" for e in summary["events"]["offline_only"]
    )
    assert skipped_decisions > 0
    report = (session / "verify" / "report.html").read_text(encoding="utf-8")
    assert f"fell on frames live skipped: {skipped_decisions}" in report


def test_forward_prediction_shows_as_live_actions_early_within_the_lead(tmp_path: Path) -> None:
    session = make_session(tmp_path, predict=True)
    _code, summary, output = run_verify(session)
    assert summary["offline"][0]["forward_prediction_removed"] is True
    assert any("forward" in note for note in summary["notes"])
    truth = truth_nose(session)
    early = [a for a in summary["actions"] if a["frames_late"] < 0]
    assert early, output  # a 150 ms lead at 30 fps: entries decided frames before they happen
    for action in early:
        assert action["explained_by"] == "prediction"
        assert -action["frames_late"] <= math.ceil(150 / (1000 / 30)) + 1
        region = "left" if "left" in action["detail"] else "right"
        # Where the animal really was: outside when live acted, inside at the offline decision.
        assert not inside(truth[action["frame"]], region), action
        assert inside(truth[action["frame"] - action["frames_late"]], region, margin=4.0)
    camera = summary["cameras"]["arena"]
    assert camera["frames_equal_to_the_bit"] == camera["frames_compared"]  # keypoints unmoved


def test_an_h264_session_says_compression_is_part_of_the_difference(tmp_path: Path) -> None:
    session = make_session(tmp_path, codec="h264", frames=150)
    _code, summary, _output = run_verify(session, "--tolerance-px", "50")
    camera = summary["cameras"]["arena"]
    assert set(camera["by_cause"]) == {"lossy_codec"}
    assert any("lossy codec (H.264)" in note for note in summary["notes"])
    assert camera["codec_p99_px"] is not None
    code_strict, summary_strict, _ = run_verify(session, "--tolerance-px", "0")
    if camera["codec_p99_px"] > 0:  # compression moved a keypoint: 0 px cannot hold
        assert code_strict == 1
        assert any("lossy recording" in reason for reason in summary_strict["reasons"])
