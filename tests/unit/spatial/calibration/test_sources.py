"""Pairing the frames of a session's cameras by their frames tables, and bad tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from deeplabstream.core.errors import CalibrationError
from deeplabstream.spatial.calibration.sources import plan_session


def _table(folder: Path, name: str, camera_s: list[float | None], host_s: list[float]) -> None:
    """Write ``<name>.frames.csv`` and an (unread) ``<name>.mkv`` beside it."""
    rows = ["frame_index,camera_timestamp,host_timestamp"]
    for index, (camera, host) in enumerate(zip(camera_s, host_s, strict=True)):
        rows.append(f"{index},{'' if camera is None else f'{camera:.9f}'},{host:.9f}")
    (folder / f"{name}.frames.csv").write_text("\n".join(rows) + "\n", encoding="ascii")
    (folder / f"{name}.mkv").write_bytes(b"")


def test_cameras_at_different_rates_pair_on_the_host_clock(tmp_path: Path) -> None:
    # 'slow' at 30 Hz from host time 10.0; 'fast' at 60 Hz from 10.004, its own clock counting
    # from 5 s: the camera clocks disagree with the host on the offset, so the host clock pairs.
    slow_host = [10.0 + i / 30 for i in range(60)]
    fast_host = [10.004 + i / 60 for i in range(120)]
    _table(tmp_path, "slow", [i / 30 for i in range(60)], slow_host)
    _table(tmp_path, "fast", [5 + i / 60 for i in range(120)], fast_host)
    plan = plan_session(tmp_path)
    assert plan.set_count == 60  # one set per frame of the slowest camera
    assert plan.frames["slow"] == list(range(60))
    assert plan.frames["fast"] == [2 * i for i in range(60)]  # 4 ms off: the nearest
    assert plan.floor_sets == list(range(30))
    assert "host timestamps" in plan.pairing


def test_shared_camera_clock_is_used_and_late_frames_are_left_out(tmp_path: Path) -> None:
    host = [50.0 + i / 30 for i in range(40)]
    _table(tmp_path, "a", [i / 30 for i in range(40)], host)
    # 'b' started 10 frames late and its camera clock is the same as 'a's (hardware-synced)
    _table(tmp_path, "b", [(i + 10) / 30 for i in range(30)], host[10:])
    plan = plan_session(tmp_path)
    assert "camera timestamps" in plan.pairing
    assert plan.frames["b"] == [None] * 10 + list(range(30))


def test_forced_camera_clock_without_camera_times_is_refused(tmp_path: Path) -> None:
    _table(tmp_path, "a", [None] * 10, [i / 30 for i in range(10)])
    _table(tmp_path, "b", [None] * 10, [i / 30 for i in range(10)])
    assert "host timestamps" in plan_session(tmp_path).pairing
    with pytest.raises(CalibrationError, match="lack camera timestamps; use --clock host"):
        plan_session(tmp_path, clock="camera")


def test_a_folder_with_one_camera_is_refused(tmp_path: Path) -> None:
    _table(tmp_path, "only", [None] * 10, [i / 30 for i in range(10)])
    (tmp_path / "orphan.frames.csv").write_text("frame_index,camera_timestamp,host_timestamp\n")
    with pytest.raises(CalibrationError, match=r"found 1 camera\(s\).*\(only\).*two or more"):
        plan_session(tmp_path)


def test_a_malformed_table_names_file_and_line(tmp_path: Path) -> None:
    _table(tmp_path, "a", [None] * 10, [i / 30 for i in range(10)])
    _table(tmp_path, "b", [None] * 10, [i / 30 for i in range(10)])
    table = tmp_path / "b.frames.csv"
    table.write_text(table.read_text() + "10,,not-a-time\n")
    with pytest.raises(CalibrationError, match=r"b\.frames\.csv, line 12"):
        plan_session(tmp_path)


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="not a session folder"):
        plan_session(tmp_path / "nowhere")
