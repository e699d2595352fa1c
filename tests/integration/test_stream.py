"""Whole streams with real processes: cameras, rings, recorders, session folders, stop paths."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from deeplabstream.live.session.live import LiveSession
from deeplabstream.live.session.runner import SessionRunner
from deeplabstream.settings import load_settings
from tests.support.files import make_ffv1_video, read_video, write_settings
from tests.support.in_process import headless_here
from tests.support.paths import PROJECT_ROOT
from tests.support.processes import only_session, run_cli, shared_memory_of


def _session_json(folder: Path) -> dict:
    return json.loads((folder / "session.json").read_text(encoding="utf-8"))


def _run_stream(
    settings_path: Path,
    output: Path,
    *,
    frames: int | None = None,
    duration: float | None = None,
    record: bool = True,
) -> LiveSession:
    stream = LiveSession(load_settings(settings_path), output_dir=output, max_frames=frames)
    runner = SessionRunner(stream, duration_s=duration, status_out=None)
    try:
        stream.open()
        if record:
            stream.start_recording()
        stream.start()
        runner.run_headless()
    finally:
        stream.stop(runner.stop_reason or "test over")
    return stream


def test_recorded_frames_equal_captured_frames_pixel_for_pixel(
    tmp_path: Path, no_leftovers
) -> None:
    source = make_ffv1_video(tmp_path / "source.mkv", 60, width=320, height=240)
    settings = write_settings(
        tmp_path,
        "[Camera cam]\nSOURCE = video\nPATH = source.mkv\nPACING = native\n"
        "[Recording]\nCODEC = ffv1\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
    )
    stream = _run_stream(settings, tmp_path / "out")
    session = stream.session_dir
    assert session is not None
    recorded = read_video(session / "cam.mkv")
    assert len(recorded) == len(source) == 60
    assert all(np.array_equal(a, b) for a, b in zip(source, recorded, strict=True))
    table = pd.read_csv(session / "cam.frames.csv")
    assert table["frame_index"].tolist() == list(range(60))
    assert np.allclose(table["camera_timestamp"], np.arange(60) / 30, atol=1e-3)
    assert np.all(np.diff(table["host_timestamp"]) > 0)
    info = _session_json(session)
    camera = info["cameras"]["cam"]
    assert info["status"] == "finished"
    assert camera["frames_captured"] == camera["frames_recorded"] == 60
    assert camera["frames_dropped"] == 0
    assert "end of source" in info["stop_reason"]


def test_two_cameras_at_their_own_rates_are_both_recorded_whole(
    tmp_path: Path, no_leftovers
) -> None:
    settings = write_settings(
        tmp_path,
        """
[Camera top]
SOURCE = synthetic
WIDTH = 640
HEIGHT = 480
FRAMERATE = 30
PIXEL_FORMAT = bgr8
[Camera side]
SOURCE = synthetic
WIDTH = 640
HEIGHT = 512
FRAMERATE = 150
PIXEL_FORMAT = mono8
SEED = 7
""",
    )
    stream = _run_stream(settings, tmp_path / "out", duration=2.5)
    session = stream.session_dir
    assert session is not None
    info = _session_json(session)
    for name, nominal, shape in (("top", 30, (480, 640, 3)), ("side", 150, (512, 640))):
        camera = info["cameras"][name]
        frames = read_video(session / f"{name}.mp4", gray=len(shape) == 2)
        table = pd.read_csv(session / f"{name}.frames.csv")
        truth = pd.read_csv(session / f"{name}.truth.csv", header=[0, 1, 2], index_col=0)
        assert camera["frames_captured"] > nominal  # it streamed for more than a second
        assert len(frames) == len(table) == camera["frames_recorded"] == camera["frames_captured"]
        assert camera["frames_dropped"] == 0
        assert frames[0].shape == shape
        assert table["frame_index"].tolist() == list(range(len(table)))
        assert np.all(np.diff(table["host_timestamp"]) > 0)
        assert np.all(np.diff(table["camera_timestamp"]) > 0)
        assert len(truth) >= len(table)  # ground truth of every captured frame
        assert camera["nominal_fps"] == nominal
        assert camera["measured_fps"] > nominal / 2  # paced near its own rate, not the other's


def test_a_recorder_that_falls_behind_is_counted_never_silent(tmp_path: Path, no_leftovers) -> None:
    # A fast camera (free-running, large frames) into a slow lossless encoder with a tiny ring.
    settings = write_settings(
        tmp_path,
        "[Streaming]\nBUFFER_SECONDS = 0.1\n"
        "[Camera fast]\nSOURCE = synthetic\nWIDTH = 1280\nHEIGHT = 1024\nFRAMERATE = 80\n"
        "PACING = free\nNOISE = 30\n"
        "[Recording]\nCODEC = ffv1\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
    )
    stream = _run_stream(settings, tmp_path / "out", frames=400)
    session = stream.session_dir
    assert session is not None
    camera = _session_json(session)["cameras"]["fast"]
    table = pd.read_csv(session / "fast.frames.csv")
    assert camera["frames_captured"] == 400
    assert camera["frames_recorded"] + camera["frames_lost_in_recording"] == 400
    assert camera["frames_lost_in_recording"] > 0
    assert len(table) == camera["frames_recorded"] == len(read_video(session / "fast.mkv"))
    assert camera["frames_dropped"] == camera["frames_lost_in_recording"]
    log = (session / "session.log").read_text(encoding="utf-8")
    assert "recorder fell behind" in log


@pytest.mark.slow  # tens of seconds: CI's second step
def test_done_when_command_records_300_frames(tmp_path: Path) -> None:
    result = run_cli(
        "--headless", "--frames", "300", "--recording-enabled", "--output-dir", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    session = only_session(tmp_path)
    info = _session_json(session)
    camera = info["cameras"]["arena"]
    assert camera["frames_captured"] == camera["frames_recorded"] == 300
    assert len(read_video(session / "arena.mp4")) == 300
    assert len(pd.read_csv(session / "arena.frames.csv")) == 300
    assert len(pd.read_csv(session / "arena.truth.csv", header=[0, 1, 2], index_col=0)) == 300
    assert "frame limit reached" in result.stdout
    assert "arena: 300 frames captured" in result.stdout


def _start_cli(tmp_path: Path, settings: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            str(PROJECT_ROOT / "DeepLabStream.py"),
            "--settings",
            str(settings),
            "--headless",
            "--recording-enabled",
            "--output-dir",
            str(tmp_path / "out"),
            *extra,
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_rows(table: Path, rows: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if table.exists() and table.read_text().count("\n") > rows:
            return
        time.sleep(0.1)
    raise AssertionError(f"{table} did not reach {rows} rows")


def _children(pid: int) -> list[psutil.Process]:
    return [
        c
        for c in psutil.Process(pid).children(recursive=True)
        if "resource_tracker" not in _command_line(c)
    ]


def _command_line(process: psutil.Process) -> str:
    """The command line, or "" for a child that has already ended (a zombie has none)."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _assert_gone(processes: list[psutil.Process], main_pid: int) -> None:
    _, alive = psutil.wait_procs(processes, timeout=5)
    assert not alive, f"left running: {alive}"
    assert shared_memory_of(main_pid) == []


def _session_files_agree(session: Path, camera: str) -> dict:
    info = _session_json(session)["cameras"][camera]
    frames = read_video(session / f"{camera}.mp4")
    table = pd.read_csv(session / f"{camera}.frames.csv")
    assert len(frames) == len(table) == info["frames_recorded"] > 0
    return info


def test_ctrl_c_during_recording_stops_cleanly(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 60\n")
    process = _start_cli(tmp_path, settings)
    _wait_for_rows(next_table(tmp_path, "arena", process), 60, process)
    children = _children(process.pid)
    assert len(children) == 2  # capture + recorder
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "Ctrl-C received" in stdout
    _assert_gone(children, process.pid)
    session = only_session(tmp_path / "out")
    info = _session_files_agree(session, "arena")
    assert info["frames_recorded"] == info["frames_captured"]
    assert _session_json(session)["status"] == "finished"


def next_table(tmp_path: Path, camera: str, process: subprocess.Popen) -> Path:
    """The frames table of ``camera`` in the (single) session folder, once it exists."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        sessions = list((tmp_path / "out").glob("*/"))
        if sessions:
            return sessions[0] / f"{camera}.frames.csv"
        time.sleep(0.1)
    raise AssertionError("no session folder appeared")


def test_a_killed_camera_process_stops_its_branch_and_the_other_goes_on(tmp_path: Path) -> None:
    settings = write_settings(
        tmp_path,
        "[Camera doomed]\nSOURCE = synthetic\nFRAMERATE = 60\n"
        "[Camera survivor]\nSOURCE = synthetic\nFRAMERATE = 60\nSEED = 3\n",
    )
    process = _start_cli(tmp_path, settings, "--duration", "4")
    _wait_for_rows(next_table(tmp_path, "doomed", process), 40, process)
    session = only_session(tmp_path / "out")
    children = _children(process.pid)
    doomed_pid = _session_json(session)["processes"]["capture:doomed"]
    os.kill(doomed_pid, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "camera 'doomed': its capture process died" in stdout + stderr
    _assert_gone(children, process.pid)
    info = _session_json(session)
    assert info["cameras"]["doomed"]["status"] == "failed"
    assert info["cameras"]["survivor"]["status"] == "ended"
    assert "duration of 4 s reached" in info["stop_reason"]
    doomed = _session_files_agree(session, "doomed")
    survivor = _session_files_agree(session, "survivor")
    assert survivor["frames_recorded"] == survivor["frames_captured"] > 120  # half its 4 s
    assert doomed["frames_recorded"] >= 40


def test_end_of_video_stops_cleanly_with_every_frame(tmp_path: Path) -> None:
    make_ffv1_video(tmp_path / "clip.mkv", 45)
    settings = write_settings(tmp_path, "[Camera clip]\nSOURCE = video\nPATH = clip.mkv\n")
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--recording-enabled",
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert result.returncode == 0, result.stderr
    assert "end of source" in result.stdout
    session = only_session(tmp_path / "out")
    assert _session_files_agree(session, "clip")["frames_recorded"] == 45


def test_a_camera_that_cannot_open_starts_nothing(tmp_path: Path) -> None:
    # A device path that passes the settings check but that no camera answers: the failure
    # comes when the cameras open (a broken video file is refused before, by the check).
    missing = tmp_path / "video99"
    settings = write_settings(
        tmp_path,
        f"[Camera good]\nSOURCE = synthetic\n[Camera bad]\nSOURCE = opencv\nDEVICE = {missing}\n",
    )
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--recording-enabled",
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert result.returncode == 1, result.stderr
    assert "video99" in result.stderr and "'bad'" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_bad_settings_exit_2_before_anything_starts(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, "[Camera a]\nSOURCE = synthetic\nFRAMERATE = -3\n")
    result = headless_here(
        "--settings", str(settings), "--headless", "--output-dir", str(tmp_path / "o")
    )  # fmt: skip
    assert result.returncode == 2
    assert "[Camera a] FRAMERATE = '-3'" in result.stderr
    assert not (tmp_path / "o").exists()


def test_recording_refused_when_the_disk_is_too_full(tmp_path: Path) -> None:
    settings = write_settings(
        tmp_path,
        "[Camera a]\nSOURCE = synthetic\n"
        "[Recording]\nMIN_FREE_SPACE = 1000000\nWARN_FREE_SPACE = 1000000\n",
    )
    result = headless_here(
        "--settings",
        str(settings),
        "--headless",
        "--recording-enabled",
        "--frames",
        "30",
        "--output-dir",
        str(tmp_path / "out"),
    )
    # Refused before anything starts (issue 53): no camera opened, no session folder made.
    assert result.returncode == 2, result.stderr
    assert "cannot start; nothing was started" in result.stderr
    assert "[Recording] MIN_FREE_SPACE is 1000000 GB" in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_window_path_runs_offscreen(tmp_path: Path) -> None:
    result = run_cli(
        "--frames", "45", "--output-dir", str(tmp_path), env={"QT_QPA_PLATFORM": "offscreen"}
    )
    assert result.returncode == 0, result.stderr
    assert "arena: 45 frames captured" in result.stdout


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real, small file system (tmpfs), so that a disk really fills up; needs root."""

    def mount(megabytes: int) -> Path:
        folder = tmp_path / f"disk{megabytes}"
        folder.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here ({result.stderr.strip()}); needs root")
        mounted.append(folder)
        return folder

    mounted: list[Path] = []
    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.slow
def test_low_disk_space_warns_then_stops_recording_cleanly(tmp_path: Path, small_disk) -> None:
    """The disk is looked at every DISK_CHECK_INTERVAL_S (2 s): between the warning's threshold
    and the stop's lie 30 MB, five seconds of this camera's video (about 0.2 MB a frame at
    30 fps), so a look falls between them however the looks and the frames are timed; the
    thresholds are set from the free space the test measures, the stop about 6 s in."""
    disk = small_disk(200)
    free_mb = shutil.disk_usage(disk).free / 1e6
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\nNOISE = 20\nWIDTH = 320\nHEIGHT = 240\n"
        "[Recording]\nCODEC = ffv1\n"
        f"MIN_FREE_SPACE = {(free_mb - 36) / 1000:.3f}\n"
        f"WARN_FREE_SPACE = {(free_mb - 6) / 1000:.3f}\n",
    )
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--recording-enabled",
        "--duration",
        "12",
        "--output-dir",
        str(disk),
    )
    assert result.returncode == 1
    assert "disk space low" in result.stdout
    assert "recording stopped, files finalised" in result.stdout
    session = only_session(disk)
    info = _session_json(session)
    camera = info["cameras"]["arena"]
    frames = read_video(session / "arena.mkv")
    assert (
        len(frames) == len(pd.read_csv(session / "arena.frames.csv")) == camera["frames_recorded"]
    )
    assert camera["frames_captured"] > camera["frames_recorded"] > 0  # the stream went on
    assert "duration of 12 s reached" in info["stop_reason"]


def test_a_full_disk_stops_the_recording_with_a_clear_message(tmp_path: Path, small_disk) -> None:
    disk = small_disk(12)
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\nNOISE = 30\n"
        "[Recording]\nCODEC = ffv1\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
    )
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--recording-enabled",
        "--frames",  # about 870 kB a frame: the disk is full after 12 of them
        "60",
        "--output-dir",
        str(disk),
    )
    assert result.returncode == 1
    assert "No space left on device" in result.stdout + result.stderr
    session = only_session(disk)
    info = _session_json(session)  # finalised in the space set aside for it
    assert info["status"] == "finished"
    assert info["cameras"]["arena"]["frames_captured"] > 0
    assert any("No space left on device" in error for error in info["errors"])
    assert not (session / ".space-reserve").exists()
    camera = info["cameras"]["arena"]
    table = pd.read_csv(session / "arena.frames.csv")  # flushed into the reserved space
    assert len(table) == camera["frames_recorded"] > 0
    assert camera["frames_captured"] > camera["frames_recorded"]  # the camera went on
    assert len(read_video(session / "arena.mkv")) > 0  # readable up to the failure


def test_recorded_synthetic_frames_are_exactly_the_rendered_frames(tmp_path: Path) -> None:
    from deeplabstream.hardware.simulator.arena import SimulatedArena

    settings_path = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 60\nSEED = 11\n"
        "[Recording]\nCODEC = ffv1\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
    )
    stream = _run_stream(settings_path, tmp_path / "out", frames=90)
    assert stream.session_dir is not None
    recorded = read_video(stream.session_dir / "arena.mkv")
    arena = SimulatedArena(load_settings(settings_path).cameras[0].options.arena_params())
    expected = np.empty(arena.frame_shape, np.uint8)
    assert len(recorded) == 90
    for frame in recorded:  # raw: nothing drawn on the frames, pixel for pixel
        arena.render_next(expected)
        assert np.array_equal(frame, expected)


def test_a_killed_main_process_leaves_playable_files_and_no_orphans(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 60\n")
    process = _start_cli(tmp_path, settings)
    table = next_table(tmp_path, "arena", process)
    _wait_for_rows(table, 90, process)
    children = _children(process.pid)
    process.kill()  # SIGKILL: no chance to clean up in the main process
    process.communicate(timeout=30)
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"orphans left streaming: {alive}"
    deadline = time.monotonic() + 10  # Python's resource tracker unlinks what the dead left
    while shared_memory_of(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert shared_memory_of(process.pid) == []
    session = table.parent
    assert _session_json(session)["status"] == "running"  # the last state it could write
    frames = read_video(session / "arena.mp4")
    rows = pd.read_csv(table)
    assert len(frames) >= 60 and len(rows) >= 60
    assert rows["frame_index"].tolist() == list(range(len(rows)))
