"""How verify tells decision rows apart: equal, changed (moved), or on one side only."""

from __future__ import annotations

import numpy as np

from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.prediction import LeadEstimator
from deeplabstream.offline.verify.decisions import DECISION_COLUMNS, RunCheck, _compare, _without


def _row(kind: str, name: str, frame: int, detail: str = "", x: str = "") -> dict[str, str]:
    row = dict.fromkeys(DECISION_COLUMNS, "")
    row.update(
        kind=kind, name=name, detail=detail, frame_index=str(frame), time_s=f"{frame / 30:.6f}",
        measured_x=x,
    )  # fmt: skip
    return row


def _differences(live: list[dict[str, str]], again: list[dict[str, str]]) -> RunCheck:
    check = RunCheck("events.csv", "x", None)
    _compare(check, live, again)
    return check


def test_equal_rows_are_counted_and_nothing_differs() -> None:
    rows = [_row("start", "x", 0), _row("trigger", "in", 10, "true"), _row("action", "box", 10)]
    check = _differences(rows, [dict(r) for r in rows])
    assert check.rows_equal == 3 and check.differences == [] and check.agrees


def test_a_moved_event_is_one_change_and_an_added_one_is_on_its_side_only() -> None:
    again = [_row("start", "x", 0), _row("trigger", "in", 10, "true"), _row("action", "b", 10)]
    live = [
        _row("start", "x", 0),
        _row("action", "b", 7),  # added by hand
        _row("trigger", "in", 13, "true"),  # moved three frames
        _row("action", "b", 10),
    ]
    check = _differences(live, again)
    found = [(d["change"], d["frame_index"]) for d in check.differences]
    assert found == [("in events.csv, not re-derived", "7"), ("changed", "13")]
    changed = check.differences[1]
    assert {"frame_index", "time_s"} <= set(changed["columns_differing"])
    assert changed["re_derived"]["frame_index"] == "10"


def test_a_deleted_row_and_a_changed_position_are_named() -> None:
    again = [_row("trigger", "in", 10, "true", x="100.5"), _row("action", "b", 10)]
    live = [_row("trigger", "in", 10, "true", x="115.5")]
    check = _differences(live, again)
    assert [(d["change"], d["columns_differing"]) for d in check.differences] == [
        ("changed", ["measured_x"]),
        ("re-derived, not in events.csv", []),
    ]
    assert not check.agrees and "2 decision row(s) differ" in check.reasons()[0]


def test_a_replayed_lead_is_the_one_given_to_the_bit() -> None:
    lead = LeadEstimator(None)
    lead.add_latency(0.012)
    lead.replay(0.0123456789012345)
    assert lead.current_s() == 0.0123456789012345 and lead.source == "recorded"


def test_verify_gives_the_rules_the_unnamed_rows_as_live_does() -> None:
    # identity.csv's `unnamed` for a frame: animal 1 and animal 2 whole, animal 3's nose only.
    # The re-derivation blanks them as live did, and keeps the rows the two unnamed animals
    # may be (as found), from which a region decides while they are unnamed.
    found = np.arange(3 * 2 * 3, dtype=np.float64).reshape(3, 2, 3)
    observation = Observation(
        time_s=0.0, camera="top", frame_index=0, keypoints=found[0], names=("nose", "tail"),
        animals=found,
    )  # fmt: skip
    seen = _without(observation, [(0, None), (1, None), (2, "nose")])
    assert np.isnan(seen.animals[:2]).all() and np.isnan(seen.animals[2, 0]).all()
    assert seen.unnamed_rows is not None
    assert np.array_equal(seen.unnamed_rows, found[:2])
    assert np.array_equal(seen.candidates("tail"), found[:2, 1, :2])
    assert seen.for_animal(3).candidates("nose") is None  # a single keypoint: not unnamed
