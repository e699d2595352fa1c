"""A disk that fills up during a pose and experiment run, or is full before it starts.

A small tmpfs stands for the disk (mounting one needs root: skipped otherwise). Watching free
space is off (`MIN_FREE_SPACE = 0`), as in the fault matrix, so that the files hit the full
disk themselves: the run must say so (errors, exit code 1), and every file left must be whole
(no cut row, no empty table).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.support.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode()[-200:]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(disk: Path, leave_bytes: int) -> None:
    """Fill ``disk`` until only about ``leave_bytes`` are free."""
    import shutil

    free = shutil.disk_usage(disk).free
    (disk / "filler").write_bytes(bytes(max(0, free - leave_bytes)))


def run(tmp_path: Path, disk: Path, *args: str) -> subprocess.CompletedProcess[str]:
    settings = tmp_path / "settings.ini"
    settings.write_text(
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 60\n"
        "[Recording]\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n"
        "[Device stimulus_box]\nTYPE = log\n",
        encoding="utf-8",
    )
    return subprocess.run(
        [sys.executable, str(ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(disk / "sessions"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


@pytest.mark.slow
def test_a_disk_full_during_pose_and_experiment_is_an_error_and_leaves_whole_files(
    tmp_path, small_disk
):
    # The session's 1 MiB reserve and about 250 kB for its tables: they fill within seconds.
    fill(small_disk, (1 << 20) + 250_000)
    result = run(tmp_path, small_disk, "--experiment-enabled", "--frames", "1500")
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    session = next((small_disk / "sessions").iterdir())
    info = json.loads((session / "session.json").read_text())
    assert info["status"] == "finished"
    errors = " ".join(info["errors"])
    assert "arena.pose.csv stopped at No space left on device" in errors
    # Every table left is whole: it parses, and its frame indices only increase.
    pose = pd.read_csv(session / "arena.pose.csv", header=[0, 1, 2], index_col=0)
    assert len(pose) > 0 and pose.index.is_monotonic_increasing
    # Frames not analysed are empty rows; an analysed row is whole.
    assert (pose.isna().all(axis=1) | pose.notna().all(axis=1)).all()
    assert pose.notna().all(axis=1).any()
    timing = pd.read_csv(session / "arena.pose_timing.csv")
    assert not timing["frame_index"].isna().any()
    truth = pd.read_csv(session / "arena.truth.csv", header=[0, 1, 2], index_col=0)
    assert not truth.isna().any().any()
    events = pd.read_csv(session / "events.csv")
    assert not events["kind"].isna().any()
    table = session / "arena.pose.pqt"
    assert not table.exists() or pd.read_parquet(table).shape[0] > 0  # never an empty file


def test_starting_on_a_full_disk_is_a_clear_error(tmp_path, small_disk):
    fill(small_disk, 100_000)  # not even room for the session's space reserve
    result = run(tmp_path, small_disk, "--frames", "30")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no space left" in result.stderr.lower() and str(small_disk) in result.stderr
    assert "free" in result.stderr.lower()


def test_a_read_only_output_folder_is_a_clear_error(tmp_path, small_disk):
    (small_disk / "sessions").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = run(tmp_path, small_disk, "--frames", "30")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "[Errno" not in result.stderr
    assert "cannot create a session folder" in result.stderr and "writable" in result.stderr


@pytest.mark.slow  # tens of seconds: CI's second step
def test_a_disk_full_during_recording_counts_what_the_video_holds(tmp_path, small_disk):
    from deeplabstream.outputs.frames_table import count_table_rows
    from deeplabstream.outputs.video import count_decodable_frames

    fill(small_disk, (1 << 20) + 1_500_000)  # the reserve and about 1.5 MB of video
    result = run(tmp_path, small_disk, "--recording-enabled", "--frames", "900")
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    session = next((small_disk / "sessions").iterdir())
    camera = json.loads((session / "session.json").read_text())["cameras"]["arena"]
    decodable = count_decodable_frames(session / "arena.mp4")
    assert 0 < decodable < 900
    assert camera["frames_recorded"] == decodable == count_table_rows(session / "arena.frames.csv")
    assert camera["frames_recorded"] + camera["frames_lost_in_recording"] == 900
