"""Label readers: our frame,behaviour CSV, BORIS tabular events, SiMBA annotations."""

from __future__ import annotations

from pathlib import Path

import pytest

from deeplabstream.behaviour.labels import (
    NO_BEHAVIOUR,
    LabelsError,
    label_format,
    read_boris,
    read_frame_csv,
    read_labels,
    read_simba,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_frame_csv(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "arena.behaviour.csv", "frame,behaviour\n0,walking\n1,walking\n3,still\n"
    )
    labels = read_labels(path)
    assert label_format(path) == "csv"
    assert labels.for_frames([0, 1, 2, 3]) == ["walking", "walking", None, "still"]
    assert labels.behaviours() == ("still", "walking")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("frame,label\n0,walking\n", "expected the columns 'frame' and 'behaviour'"),
        ("frame,behaviour\nzero,walking\n", "line 2, column 'frame'"),
        ("frame,behaviour\n-1,walking\n", "whole number"),
        ("frame,behaviour\n0,\n", "empty"),
        ("frame,behaviour\n0,walking\n0,still\n", "labelled both"),
    ],
)
def test_frame_csv_errors_name_file_and_place(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(LabelsError, match=message) as error:
        read_frame_csv(path)
    assert str(path) in str(error.value)


BORIS_HEADER = (
    "Observation id,Observation date,Media file,Total length,FPS,Subject,Behavior,"
    "Behavioral category,Comment,Status,Time\n"
)


def _boris_row(behaviour: str, status: str, time: float, fps: str = "10") -> str:
    return f"obs1,2024-01-01,video.mp4,60,{fps},No focal subject,{behaviour},,,{status},{time}\n"


def test_boris_state_and_point_events(tmp_path: Path) -> None:
    text = (
        BORIS_HEADER
        + _boris_row("walking", "START", 1.0)
        + _boris_row("walking", "STOP", 1.5)
        + _boris_row("rearing", "START", 1.4)
        + _boris_row("rearing", "STOP", 2.0)
        + _boris_row("jump", "POINT", 3.0)
    )
    path = _write(tmp_path / "events.csv", text)
    assert label_format(path) == "boris"
    labels = read_labels(path)
    frames = [*range(8, 22), 30, 31]
    got = dict(zip(frames, labels.for_frames(frames), strict=True))
    assert got[9] == NO_BEHAVIOUR  # before the first event
    assert [got[f] for f in (10, 11, 12, 13)] == ["walking"] * 4
    assert got[14] is None  # walking and rearing at once: ambiguous, unlabelled
    assert labels.ambiguous == frozenset({14})
    assert [got[f] for f in (15, 19)] == ["rearing", "rearing"]
    assert got[20] == NO_BEHAVIOUR  # the STOP frame is excluded
    assert (got[30], got[31]) == ("jump", NO_BEHAVIOUR)


def test_boris_tsv_newer_layout_and_fps_fallback(tmp_path: Path) -> None:
    # Newer BORIS: metadata rows above the table, "Behavior type" for the status, FPS "NA".
    rows = [
        "Observation id\tlive1",
        "",
        "Time\tSubject\tBehavior\tBehavior type\tFPS",
        "0.5\tm1\tgrooming\tSTART\tNA",
        "1.0\tm1\tgrooming\tSTOP\tNA",
    ]
    path = _write(tmp_path / "events.tsv", "\n".join(rows) + "\n")
    with pytest.raises(LabelsError, match="--fps"):
        read_boris(path)
    labels = read_boris(path, fps=20.0)
    assert labels.for_frames([9, 10, 19, 20]) == [
        NO_BEHAVIOUR,
        "grooming",
        "grooming",
        NO_BEHAVIOUR,
    ]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (_boris_row("walking", "START", 1.0), "without a STOP"),
        (_boris_row("walking", "STOP", 1.0), "without a START"),
        (_boris_row("walking", "BEGIN", 1.0), "START, STOP or POINT"),
        (_boris_row("walking", "POINT", -2), "column 'Time'"),
        (_boris_row("a", "POINT", 1) + _boris_row("b", "POINT", 2, fps="25"), "several frame"),
    ],
)
def test_boris_errors(tmp_path: Path, rows: str, message: str) -> None:
    path = _write(tmp_path / "events.csv", BORIS_HEADER + rows)
    with pytest.raises(LabelsError, match=message) as error:
        read_boris(path)
    assert str(path) in str(error.value)


def test_boris_without_status_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "events.csv", "Time,Behavior\n1.0,walking\n")
    with pytest.raises(LabelsError, match="no 'Status' column"):
        read_boris(path)


SIMBA = (
    ",Nose_1_x,Nose_1_y,Nose_1_p,Movement_mouse_1,attack,sniffing\n"
    "0,10.0,20.0,0.9,1.5,0,0\n"
    "1,11.0,21.0,1.0,0.0,1,0\n"
    "2,12.0,22.0,0.9,1.0,0,1\n"
    "3,12.0,22.0,0.9,1.0,1,1\n"
)


def test_simba_annotations(tmp_path: Path) -> None:
    path = _write(tmp_path / "video1.csv", SIMBA)
    assert label_format(path) == "simba"
    labels = read_labels(path)
    assert labels.for_frames([0, 1, 2, 3, 4]) == [NO_BEHAVIOUR, "attack", "sniffing", None, None]
    assert labels.ambiguous == frozenset({3})
    only_attack = read_simba(path, behaviours=["attack"])
    assert only_attack.for_frames([2, 3]) == [NO_BEHAVIOUR, "attack"]


def test_simba_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "video1.csv", SIMBA.replace("0,1\n3", "0,2\n3"))
    with pytest.raises(LabelsError, match="column 'sniffing': expected 0 or 1"):
        read_simba(path, behaviours=["attack", "sniffing"])
    with pytest.raises(LabelsError, match=r"no column \['freezing'\]"):
        read_simba(path, behaviours=["freezing"])
    pose_only = _write(tmp_path / "pose_only.csv", ",Nose_1_x,Nose_1_y\n0,1.5,2.5\n")
    with pytest.raises(LabelsError, match="no behaviour column"):
        read_simba(pose_only)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LabelsError, match="no such labels file"):
        read_labels(tmp_path / "absent.csv")
