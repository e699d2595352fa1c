"""What ``session.json`` says and what a start makes of old ones (issue 37, 5-6; issue 38, 4).

- The verdict is derived from every error and warning: a session that ended with errors (an
  experiment that raised) never reads ``ok``.
- Damaged ``session.json`` files in the output folder (not JSON, a list, a figure of the wrong
  type) never stop a start: each is moved aside (never deleted) and named in a warning.
- A session left ``running`` is repaired when its main process is gone, also when its pid now
  belongs to another process (its start time differs): liveness through ``psutil``, never
  ``os.kill(pid, 0)`` (Ctrl-C on Windows).
- A user's stop is no error; pose estimation alone is not failed by the experiment's (auto)
  deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from deeplabstream.core.liveness import (
    is_same_process_running,
    looks_like_python,
    process_start_time,
)
from deeplabstream.live.session.report.summary import summary_lines
from deeplabstream.outputs.folder import RESERVE_FILE
from tests.faults.test_loop_health import (
    assert_summary_is_session_json,
    cli,
    session_of,
)
from tests.faults.test_session_faults import SETTINGS, start, wait_for_session

RAISING_EXPERIMENT = '''
from deeplabstream.experiments.base import Experiment


class Raises(Experiment):
    """Raises at its 5th update: an experiment with a bug."""

    def __init__(self):
        super().__init__()
        self.updates = 0

    def on_update(self, obs, t):
        self.updates += 1
        if self.updates == 5:
            raise RuntimeError("a bug in the lab's experiment")
        return []
'''
DEVICE = "[Device stimulus_box]\nTYPE = log\n"


def test_the_verdict_of_a_session_with_an_error_is_error_not_ok(tmp_path):
    experiment = tmp_path / "raises.py"
    experiment.write_text(RAISING_EXPERIMENT, encoding="utf-8")
    result = cli(
        tmp_path, SETTINGS + DEVICE + "[Experiment]\nDEADLINE_MS = off\n", "--experiment-enabled",
        "--experiment", str(experiment), "--frames", "60",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    folder, info = session_of(tmp_path / "out")
    assert any("a bug in the lab's experiment" in error for error in info["errors"])
    health = info["health"]
    assert health["verdict"] == "error"  # the loop itself kept no deadline (off): still error
    assert health["counted"]["errors"] == len(info["errors"]) >= 1
    assert_summary_is_session_json(result.stdout, folder, info)


def running_record(pid: int, started: float | None, frames: object = 10) -> dict:
    """A session.json left ``running`` by a session of main process ``pid``."""
    record: dict = {
        "format": "deeplabstream-session/1",
        "status": "running",
        "errors": [],
        "processes": {"main": pid},
        "cameras": {
            "arena": {
                "frames_captured": 10,
                "recordings": [{"video": "arena.mp4", "frames_table": "arena.frames.csv",
                                "frames": frames, "lost": 0}],
            }
        },
    }  # fmt: skip
    if started is not None:
        record["main_process_started"] = started
    return record


def old_session(out: Path, name: str, content: str) -> Path:
    folder = out / name
    folder.mkdir(parents=True)
    (folder / "session.json").write_text(content, encoding="utf-8")
    (folder / RESERVE_FILE).write_bytes(b"\0" * 16)
    (folder / "arena.frames.csv").write_text("frame_index\n0\n", encoding="utf-8")
    return folder


def test_damaged_session_files_are_moved_aside_and_named_and_the_start_goes_on(tmp_path):
    out = tmp_path / "out"
    damaged = {
        "2020-01-01_00-00-01": json.dumps([1, 2, 3]),
        "2020-01-01_00-00-02": json.dumps(running_record(999_999_999, None, frames="x")),
        "2020-01-01_00-00-03": '{"status": "running", "processes": ',
        "2020-01-01_00-00-04": json.dumps({"status": "running", "processes": [4]}),
    }
    for name, content in damaged.items():
        old_session(out, name, content)
    result = cli(tmp_path, SETTINGS, "--frames", "10")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    new = [p for p in out.iterdir() if p.name.startswith("20") and p.name not in damaged]
    (folder,) = new
    info = json.loads((folder / "session.json").read_text())
    for name, content in damaged.items():
        kept = out / name / "session.json.damaged"
        assert kept.read_text(encoding="utf-8") == content  # moved aside, byte for byte
        assert not (out / name / "session.json").exists()
        assert (out / name / "arena.frames.csv").read_text() == "frame_index\n0\n"  # untouched
        (warning,) = [w for w in info["warnings"] if str(out / name / "session.json") in w]
        assert "damaged" in warning and "session.json.damaged" in warning
        assert f"warning: {warning}" in result.stdout
    moved = info["cleanup_at_start"]["damaged_session_files_moved"]
    assert sorted(moved) == sorted(str(out / name / "session.json.damaged") for name in damaged)
    assert info["health"]["verdict"] == "warning"
    # The next start finds nothing to say: the damaged files were moved aside once.
    again = cli(tmp_path, SETTINGS, "--frames", "10")
    assert again.returncode == 0 and "warning:" not in again.stdout


def test_a_running_session_whose_pid_now_belongs_to_another_process_is_repaired(tmp_path):
    out = tmp_path / "out"
    # Another Python process holds the pid the old session recorded (as after a reboot): its
    # start time is not the one the record holds.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        started = process_start_time(other.pid)
        assert started is not None
        reused = old_session(
            out, "2020-01-01_00-00-01", json.dumps(running_record(other.pid, started - 3600))
        )
        alive = old_session(
            out, "2020-01-01_00-00-02", json.dumps(running_record(other.pid, started))
        )
        result = cli(tmp_path, SETTINGS, "--frames", "10")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        repaired = json.loads((reused / "session.json").read_text())
        assert repaired["status"] == "interrupted"
        assert f"its main process ({other.pid}) ended" in repaired["errors"][0]
        assert not (reused / RESERVE_FILE).exists()
        # The same pid and start time: that session still runs, and is left alone.
        assert json.loads((alive / "session.json").read_text())["status"] == "running"
        assert (alive / RESERVE_FILE).exists()
    finally:
        other.kill()
        other.wait()


def test_liveness_compares_the_start_time_and_falls_back_to_a_python_process():
    me = os.getpid()
    started = process_start_time(me)
    assert started is not None
    assert is_same_process_running(me, started)
    assert not is_same_process_running(me, started - 100)  # a pid reused by a later process
    assert is_same_process_running(me, None)  # an older record: this process is Python
    assert looks_like_python(psutil.Process(me))
    sleeper = subprocess.Popen(["sleep", "60"])  # not Python: an old record's pid reused
    try:
        assert not is_same_process_running(sleeper.pid, None)
        assert is_same_process_running(sleeper.pid, process_start_time(sleeper.pid))
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not is_same_process_running(sleeper.pid, None)  # gone (reaped)
    assert process_start_time(sleeper.pid) is None


def test_a_new_session_records_its_main_process_start_time(tmp_path):
    process = start(tmp_path, "--frames", "600")
    try:
        _, running = wait_for_session(tmp_path, lambda d: d["cameras"]["arena"]["frames_captured"])
        assert running["processes"]["main"] == process.pid
        assert running["main_process_started"] == process_start_time(process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=120)


def test_a_users_stop_reads_as_one_and_is_no_error():
    record = {"stop_reason": "stopped by the user", "errors": [], "cameras": {}, "health": {}}
    assert summary_lines(record)[0] == "Stopped by the user"
    record["stop_reason"] = "Ctrl-C received"
    assert summary_lines(record)[0] == "Stopped by the user (Ctrl-C received)"
    assert not any("error" in line for line in summary_lines(record))


def test_ctrl_c_after_the_start_ends_a_healthy_run_with_exit_0_and_says_so(tmp_path):
    process = start(tmp_path, "--frames", "3000")
    folder, _ = wait_for_session(tmp_path, lambda d: d["cameras"]["arena"]["frames_captured"] > 30)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stdout[-2000:] + stderr[-2000:]
    info = json.loads((folder / "session.json").read_text())
    assert info["errors"] == [] and info["health"]["verdict"] == "ok"
    assert "Stopped by the user (Ctrl-C received)" in stdout.splitlines()


@pytest.mark.slow  # a whole session: the slow step (the default suite's 15 minutes)
def test_pose_alone_late_on_the_auto_deadline_is_a_warning_and_exit_0(tmp_path):
    """Issue 38: without an experiment, the experiment's auto deadline fails no session.

    The worker is paused (SIGSTOP) for 0.3 s while it runs (its state is "running" only while
    it works: between frames it sleeps in its wait), until session.json counts 3 misses: the
    frame it worked on is analysed > 100 ms (the auto deadline at 30 fps) after it arrived, a
    miss on purpose, shorter than a stall (2 s). Then the user stops it (Ctrl-C).
    """
    extra = "[Experiment]\nDEADLINE_MS = auto\nDEADLINE_MISS_TOLERANCE = 0\n"
    process = start(tmp_path, "--pose-enabled", "--frames", "3000", extra=extra)

    def misses(data: dict) -> int:
        return data["health"]["cameras"].get("arena", {}).get("misses", 0)

    try:
        folder, running = wait_for_session(
            tmp_path,
            lambda d: d["cameras"]["arena"]["frames_captured"] > 60 and "pose" in d["processes"],
        )
        worker = psutil.Process(running["processes"]["pose"])
        for _ in range(60):
            if misses(json.loads((folder / "session.json").read_text())) >= 3:
                break
            busy_within = time.monotonic() + 10
            while worker.status() != psutil.STATUS_RUNNING:  # wait until it works on a frame
                assert time.monotonic() < busy_within, "the worker never ran"
            worker.suspend()
            time.sleep(0.3)
            worker.resume()
            time.sleep(0.3)
        process.send_signal(signal.SIGINT)
    finally:
        stdout, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    (folder,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    info = json.loads((folder / "session.json").read_text())
    health = info["health"]
    assert health["cameras"]["arena"]["misses"] >= 3, health
    assert health["verdict"] == "warning" and info["errors"] == []
    (warning,) = health["loop_warnings"]
    assert "no experiment ran, so this is a warning" in warning
    assert f"warning: {warning}" in stdout
    assert "Stopped by the user (Ctrl-C received)" in stdout.splitlines()
    assert_summary_is_session_json(stdout, folder, info)
