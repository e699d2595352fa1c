"""deeplabstream-verify's matching of live and offline events, and its refusals, on made data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.offline.verify.events import FrameFacts, compare_events, compared_events
from deeplabstream.offline.verify.frames import PoseSeries
from deeplabstream.offline.verify.keypoints import CameraFacts, compare_keypoints
from deeplabstream.offline.verify.session_files import VerifyError, read_session


def _row(kind: str, frame: int, detail: str = "pulse reason=entry", **more: str) -> dict:
    return {"kind": kind, "name": "box", "detail": detail, "camera": "arena",
            "frame_index": str(frame), **more}  # fmt: skip


FACTS = {
    "arena": FrameFacts(skipped={10, 11, 12}, explained_difference={40}, frame_interval_ms=33.3)
}


def test_a_live_action_late_over_skipped_frames_is_put_down_to_them() -> None:
    live, _ = compared_events([_row("action", 13, written="1.02", host_timestamp="1.0")])
    offline, _ = compared_events([_row("action", 10)])
    result = compare_events(live, offline, FACTS, window=8)
    (match,) = result.matched
    assert match["frames_late"] == 3 and match["explained_by"] == "skipped"
    assert match["latency_ms"] == pytest.approx(20.0)
    assert result.offline_on_skipped_frames == 1 and result.reasons() == []


def test_an_early_action_within_the_prediction_lead_is_put_down_to_prediction() -> None:
    live, _ = compared_events([_row("action", 20, lead_ms="100")])
    offline, _ = compared_events([_row("action", 23)])
    result = compare_events(live, offline, FACTS, window=8)
    assert result.matched[0]["explained_by"] == "prediction"
    far, _ = compared_events([_row("action", 16, lead_ms="50")])
    nothing_skipped = {"arena": FrameFacts(set(), set(), frame_interval_ms=33.3)}
    result = compare_events(far, offline, nothing_skipped, window=8)
    assert result.matched[0]["explained_by"] is None  # 7 frames early, 50 ms lead: no cause
    assert "without a cause" in result.reasons()[0]


def test_unpartnered_events_are_explained_only_by_a_cause_that_applies() -> None:
    live, _ = compared_events([_row("trigger", 60, "true")])
    offline, _ = compared_events([_row("trigger", 11, "true"), _row("trigger", 41, "false")])
    result = compare_events(live, offline, FACTS, window=3)
    assert [e["explained_by"] for e in result.offline_only] == ["skipped", "keypoints"]
    assert result.live_only[0]["explained_by"] is None
    assert len(result.reasons()) == 1


def test_the_session_end_switch_offs_are_counted_apart() -> None:
    events, closing = compared_events(
        [_row("action", 5, "off channel=1 reason=stop"), _row("start", 0), _row("action", 7)]
    )
    assert closing == 1 and [e.frame for e in events] == [7]


def test_offline_events_are_placed_on_the_live_frame_index() -> None:
    placed = {"arena": np.array([0, 1, 5, 6, 7])}  # the recorder lost live frames 2 to 4
    events, _ = compared_events([_row("action", 3)], placed)
    assert events[0].frame == 6


def _series(frames: list[int], values: np.ndarray) -> PoseSeries:
    return PoseSeries(np.array(frames), values, ("nose", "tail"), exact=True)


def test_a_frame_with_no_cause_must_agree_to_the_bit_and_is_named() -> None:
    values = np.random.default_rng(0).random((5, 1, 2, 3)) * 100
    moved = values.copy()
    moved[3, 0, 1, 0] = np.nextafter(moved[3, 0, 1, 0], np.inf)  # one bit
    captured = (np.arange(5), np.ones(5, dtype=bool))
    facts = CameraFacts(True, False, False, False, 1, False, 0.0)
    result = compare_keypoints("arena", _series([0, 1, 2, 3, 4], values),
                               _series([0, 1, 2, 3, 4], moved), captured, facts, 1.0)  # fmt: skip
    assert result.frames_equal_to_the_bit == 4 and result.first_unexplained_frame == 3
    assert "frame 3" in result.reasons()[0]
    lossy = CameraFacts(False, False, False, False, 1, False, 0.0)
    result = compare_keypoints("arena", _series([0, 1, 2, 3, 4], values),
                               _series([0, 1, 2, 3, 4], moved), captured, lossy, 1.0)  # fmt: skip
    assert result.reasons() == [] and set(result.by_cause) == {"lossy_codec"}


def test_swapped_animals_are_counted_and_a_skip_before_explains_them() -> None:
    a = np.zeros((3, 2, 2, 3))
    a[:, 0, :, :2], a[:, 1, :, :2], a[..., 2] = 10.0, 200.0, 1.0
    b = a.copy()
    b[2] = a[2, ::-1]  # frame 2: the identities the other way round
    facts = CameraFacts(True, False, False, False, 2, False, 0.5)
    no_skip = (np.arange(3), np.ones(3, dtype=bool))
    result = compare_keypoints("arena", _series([0, 1, 2], a), _series([0, 1, 2], b),
                               no_skip, facts, 1.0)  # fmt: skip
    assert result.identity_swaps == 1 and result.identity_swaps_unexplained == 1
    skipped_first = (np.arange(4) - 1, np.array([False, True, True, True]))  # frame -1 skipped
    result = compare_keypoints("arena", _series([0, 1, 2], a), _series([0, 1, 2], b),
                               skipped_first, facts, 1.0)  # fmt: skip
    assert result.identity_swaps == 1 and result.identity_swaps_unexplained == 0
    assert "tracking_history" in result.by_cause


def test_folders_that_cannot_be_verified_are_refused_saying_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(VerifyError, match="no such folder"):
        read_session(tmp_path / "missing")
    with pytest.raises(VerifyError, match="not a session folder"):
        read_session(tmp_path)
    (tmp_path / "session.json").write_text(json.dumps({"settings": {}, "cameras": {}}))
    with pytest.raises(VerifyError, match="--pose-enabled"):
        read_session(tmp_path)


def test_a_session_from_before_pose_exact_is_compared_as_its_pose_csv_wrote() -> None:
    values = np.array([[[[100.12345678, 50.98765432, 0.8765432109876]]]])
    live = PoseSeries(np.array([0]), np.array([[[[100.123, 50.988, 0.876543211]]]]), ("nose",),
                      exact=False)  # fmt: skip
    offline = PoseSeries(np.array([0]), values, ("nose",), exact=True)
    facts = CameraFacts(True, False, False, False, 1, False, 0.0)
    captured = (np.arange(1), np.ones(1, dtype=bool))
    result = compare_keypoints("arena", live, offline, captured, facts, 1.0)
    assert result.frames_equal_to_the_bit == 1 and result.reasons() == []
    assert "0.001 px" in compare_keypoints(
        "arena", live, PoseSeries(np.array([0]), values + 0.01, ("nose",), True), captured,
        facts, 1.0,
    ).reasons()[0]  # fmt: skip


def test_a_decision_moved_by_frames_skipped_earlier_is_put_down_to_them() -> None:
    skipped_earlier = {"arena": FrameFacts(skipped={30, 31}, explained_difference=set(),
                                           frame_interval_ms=33.3)}  # fmt: skip
    live, _ = compared_events([_row("trigger", 50, "false")])
    offline, _ = compared_events([_row("trigger", 54, "false")])
    result = compare_events(live, offline, skipped_earlier, window=8)
    assert result.matched[0]["explained_by"] == "skipped earlier"  # a hold ran out sooner
    long_ago = {"arena": FrameFacts(skipped={3}, explained_difference=set(),
                                    frame_interval_ms=33.3)}  # fmt: skip
    result = compare_events(live, offline, long_ago, window=8)
    assert result.matched[0]["explained_by"] is None  # 1.7 s before: no trigger remembers it


def test_an_animal_seen_on_one_side_only_is_counted() -> None:
    a = np.ones((2, 2, 2, 3))
    b = a.copy()
    b[1, 1] = np.nan  # frame 1: the second animal not found offline
    facts = CameraFacts(True, False, False, False, 2, False, 0.5)
    captured = (np.arange(2), np.ones(2, dtype=bool))
    result = compare_keypoints("arena", _series([0, 1], a), _series([0, 1], b), captured,
                               facts, 1.0)  # fmt: skip
    assert result.frames_animal_only_live == 1 and result.frames_animal_only_offline == 0
