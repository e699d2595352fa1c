"""Issue 44: a killed session is judged, counted and exported from what its files hold.

A session killed hard (SIGKILL of its process group, as a power cut) leaves ``session.json`` as
of its last update: ``running``, its analysis's figures empty (the worker reports them at its
end) and no experiment summary, while its pose files and ``events.csv`` hold what was written
until the kill. The next start marks it interrupted; the record must then say what the files
hold (its verdict, its counts, each camera's analysis, the experiment's events), and its NWB
export must hold every pose row and event, or name what it left out and exit non-zero.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.support.files import write_settings
from tests.support.lazy_modules import installed, lazy
from tests.support.paths import PROJECT_ROOT

# Imported by the first test that reads it, not while every worker collects (lazy_modules).
pytestmark = installed("pynwb")
pynwb = lazy("pynwb")

SETTINGS = (
    "[Camera arena]\nSOURCE = synthetic\nWIDTH = 320\nHEIGHT = 240\nFRAMERATE = 30\n"
    "[Recording]\nCODEC = h264\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\nFLUSH_INTERVAL = 0.5\n"
    "[Experiment]\nNAME = ExampleExperiment\n[Device stimulus_box]\nTYPE = log\n"
)
POSE_ROWS_BEFORE_KILL = 60  # the pose file's rows the session has written when it is killed


def _command(settings: Path, output: Path, *args: str) -> list[str]:
    return [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
            str(settings), "--output-dir", str(output), *args]  # fmt: skip


def _data_rows(path: Path, header_rows: int) -> int:
    """Whole data rows of a text table (a row cut by the kill has no line end)."""
    return max(0, path.read_bytes().count(b"\n") - header_rows)


def _is_killable(folder: Path | None) -> bool:
    """The session is analysing, its record names the analysis, its files have rows."""
    if folder is None:
        return False
    try:
        record = json.loads((folder / "session.json").read_text())
    except (OSError, ValueError):
        return False
    pose_csv, events = folder / "arena.pose.csv", folder / "events.csv"
    return (
        "pose" in record["processes"]
        and bool(record["pose_runs"])
        and pose_csv.exists()
        and _data_rows(pose_csv, 3) >= POSE_ROWS_BEFORE_KILL
        and events.exists()
        and _data_rows(events, 1) >= 1
    )


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session folder left by a session killed while it analysed, recorded and experimented.

    The folder is never repaired here: each test copies it into its own output folder.
    """
    base = tmp_path_factory.mktemp("killed")
    settings = write_settings(base, SETTINGS)
    process = subprocess.Popen(
        _command(settings, base / "out", "--recording-enabled", "--experiment-enabled",
                 "--frames", "9000"),
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    folder = None
    while not _is_killable(folder):
        if time.monotonic() > deadline or process.poll() is not None:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            _, stderr = process.communicate()
            pytest.fail(f"the session did not reach its analysis ({process.returncode}): {stderr}")
        folders = [p for p in (base / "out").glob("*") if p.is_dir()]
        folder = folders[0] if folders else None
        time.sleep(0.1)
    pids = [process.pid, *(p.pid for p in psutil.Process(process.pid).children(recursive=True))]
    os.killpg(process.pid, signal.SIGKILL)  # the whole session, as a power cut of its group
    process.communicate(timeout=30)
    psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=10)
    assert folder is not None
    left = json.loads((folder / "session.json").read_text())
    assert left["status"] == "running" and left["pose"]["cameras"] == {}  # as issue 44 found it
    return folder


def _copy(killed: Path, output: Path) -> Path:
    """A copy of the killed session's folder in ``output`` (so each test repairs its own)."""
    target = output / killed.name
    shutil.copytree(killed, target)
    return target


def _pose_rows(folder: Path, name: str = "arena.pose.csv") -> tuple[int, int]:
    """The pose file's rows, and those with keypoints."""
    pose = pd.read_csv(folder / name, header=[0, 1, 2], index_col=0)
    return len(pose), int(pose.notna().any(axis=1).sum())


def _nwb(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deeplabstream.outputs.nwb", str(folder), *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def _nwb_contents(path: Path) -> tuple[int, int]:
    """The rows of the ``arena`` pose estimation and of the events table of an NWB file."""
    with pynwb.NWBHDF5IO(str(path), mode="r") as io:
        nwbfile = io.read()
        assert "behavior" in nwbfile.processing, "no behavior module: the poses were left out"
        series = nwbfile.processing["behavior"]["arena"].pose_estimation_series["nose"]
        assert "experiment_events" in nwbfile.events, "no events table: the events were left out"
        return len(series.data), len(nwbfile.events["experiment_events"])


@pytest.mark.slow  # a killed session and the next start (about 20 s)
def test_a_repaired_session_is_judged_and_counted_from_its_files(killed, tmp_path):
    folder = _copy(killed, tmp_path / "out")
    again = subprocess.run(
        _command(write_settings(tmp_path, SETTINGS), tmp_path / "out", "--frames", "10"),
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    record = json.loads((folder / "session.json").read_text())
    assert record["status"] == "interrupted"
    # Judged: an interruption is an error, and the verdict counts what the record holds.
    assert record["errors"] and any("interrupted" in e for e in record["errors"])
    assert record["health"]["verdict"] == "error"
    assert record["health"]["counted"] == {
        "errors": len(record["errors"]),
        "warnings": len(record["warnings"]),
    }
    # Counted: each camera's analysis from its pose files, as a finished session says it.
    rows, analysed = _pose_rows(folder)
    # Rows were written up to the kill; a busy machine may leave a frame of them unanalysed
    # (an empty row), so the figures are checked against the file, not against a number.
    assert rows >= POSE_ROWS_BEFORE_KILL and analysed > 0
    figures = record["pose"]["cameras"]["arena"]
    assert record["pose_runs"][-1]["cameras"]["arena"] == figures
    assert figures["frames_analysed"] == analysed and figures["pose_rows"] == rows
    assert figures["pose_file"] == "arena.pose.csv" and figures["rebuilt_from_files"] is True
    assert figures["latency_ms"]["p50"] > 0 and figures["analysed_fps"] > 0
    table = pd.read_parquet(folder / figures["pose_table"])
    assert len(table) == rows
    # The experiment's events from events.csv (ended with a finish row, as a dead worker's).
    events = pd.read_csv(folder / "events.csv")
    [run] = record["experiment_runs"]
    assert run["events_file"] == "events.csv" and run["events"] == len(events)
    assert run["name"] == "ExampleExperiment" and run["rebuilt_from_files"] is True
    assert events["kind"].iloc[-1] == "finish" and "interrupted" in events["detail"].iloc[-1]
    assert record["experiment"] == run
    # ... and its NWB export holds all of it.
    result = _nwb(folder)
    assert result.returncode == 0, result.stderr
    assert _nwb_contents(folder / "session.nwb") == (rows, len(events))


@pytest.mark.slow  # a killed session (about 15 s)
def test_the_nwb_export_of_a_killed_session_repairs_it_and_exports_it_whole(killed, tmp_path):
    folder = _copy(killed, tmp_path / "out")
    result = _nwb(folder)  # no start in between: the export finds it killed
    assert result.returncode == 0, result.stderr
    record = json.loads((folder / "session.json").read_text())
    assert record["status"] == "interrupted" and record["health"]["verdict"] == "error"
    rows, _ = _pose_rows(folder)
    events = pd.read_csv(folder / "events.csv")
    assert _nwb_contents(folder / "session.nwb") == (rows, len(events))
    # A pose file and an events file no run of the session wrote (of a camera it does not
    # have, under a name it never writes) are never left out silently.
    shutil.copy(folder / "arena.pose.csv", folder / "top.pose.csv")
    shutil.copy(folder / "events.csv", folder / "events.backup.csv")
    result = _nwb(folder)
    assert result.returncode == 1
    assert "top.pose.csv" in result.stderr and "events.backup.csv" in result.stderr
    assert "left out" in result.stderr
    assert _nwb_contents(folder / "session.nwb") == (rows, len(events))  # the rest is in it


@pytest.mark.slow  # a killed session (about 15 s)
def test_a_session_marked_interrupted_by_an_older_version_is_counted_at_its_export(
    killed, tmp_path
):
    folder = _copy(killed, tmp_path / "out")
    record = json.loads((folder / "session.json").read_text())
    note = "the session was interrupted: its main process ended without finalising it"
    record.update(status="interrupted", errors=[*record["errors"], note])  # as before issue 44
    (folder / "session.json").write_text(json.dumps(record))
    result = _nwb(folder)
    assert result.returncode == 0, result.stderr
    repaired = json.loads((folder / "session.json").read_text())
    assert repaired["health"]["verdict"] == "error"
    assert repaired["health"]["counted"]["errors"] == len(repaired["errors"]) == 1
    rows, analysed = _pose_rows(folder)
    assert repaired["pose"]["cameras"]["arena"]["frames_analysed"] == analysed
    events = pd.read_csv(folder / "events.csv")
    assert _nwb_contents(folder / "session.nwb") == (rows, len(events))
    assert _nwb(folder).returncode == 0  # exported again: nothing counted twice
    assert len(pd.read_csv(folder / "events.csv")) == len(events)
    assert json.loads((folder / "session.json").read_text()) == repaired


@pytest.mark.slow  # a killed session (about 15 s)
def test_a_bad_cell_in_a_frames_table_is_named_by_file_row_and_column(killed, tmp_path):
    folder = _copy(killed, tmp_path / "out")
    table = folder / "arena.frames.csv"
    lines = table.read_text().splitlines(keepends=True)
    index, camera_time, _ = lines[5].rstrip("\n").split(",")
    lines[5] = f"{index},{camera_time},abc\n"  # line 6 of the file: its 5th data row
    table.write_text("".join(lines))
    result = _nwb(folder)
    assert result.returncode == 1
    error = result.stderr
    assert "arena.frames.csv" in error and "line 6" in error and "host_timestamp" in error
    assert "'abc'" in error and "not a number" in error
    assert not (folder / "session.nwb").exists()  # nothing half-written


LAB_OUTPUT = '''
"""A lab's output whose export fails."""

from deeplabstream.outputs.interface import Output


class BrokenSummary(Output):
    export_files = "the summary"

    def export(self, context):
        raise RuntimeError("disk quota exceeded")
'''


@pytest.mark.slow  # a whole session: the slow step (the default suite keeps under 15 min)
def test_a_failing_export_is_reported_with_its_outputs_name(tmp_path):
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "broken_summary.py").write_text(LAB_OUTPUT)
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\nWIDTH = 160\nHEIGHT = 120\nFRAMERATE = 30\n"
        "[Output broken_summary]\n",
    )
    result = subprocess.run(
        _command(settings, tmp_path / "out", "--recording-enabled", "--frames", "20"),
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    [folder] = (tmp_path / "out").iterdir()
    errors = json.loads((folder / "session.json").read_text())["errors"]
    [error] = [e for e in errors if "disk quota exceeded" in e]
    assert "output 'broken_summary'" in error and "the summary" in error
