"""Issue 53 (6-8): child processes held where no message comes out, and one killed early.

A recorder stopped with SIGSTOP, an experiment's update inside a C call that keeps Python's
interpreter lock (the worker's own watchdog cannot run), a capture process killed while the model
loads: each is named as the part that is stuck or gone, the stop stays bounded (the app ends
what cannot end itself, within seconds, whatever it does), and every frame is counted.

The sessions run the real command with real signals; the rules that decide when the app ends a
child are tested as the functions they are (``held_reason``, ``cause_to_end``), and the
recorder's bounded wait on real processes (one stopped, one that never answers).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deeplabstream.core.fault_hooks import HOLD_DIR_VARIABLE, HOLD_VARIABLE, RELEASE_FILE
from deeplabstream.core.heartbeat import Heartbeat
from deeplabstream.core.timing import host_now_ns
from deeplabstream.live.processes.recording.recorder import (
    HURRY_GRACE_S,
    SILENT_LIMIT_S,
    RecorderJob,
    RecorderProcess,
    cause_to_end,
)
from deeplabstream.live.session.analysis import HELD_AFTER_S, TAKE_STOP_S, held_reason
from deeplabstream.live.session.cameras import CameraBranch
from deeplabstream.live.session.report.recorders import SILENT_WARN_S, RecorderWatch
from deeplabstream.outputs.frames_table import count_table_rows
from deeplabstream.outputs.video import count_decodable_frames
from deeplabstream.settings.sections import CameraSettings
from tests.faults.test_loop_health import assert_summary_is_session_json, session_of
from tests.faults.test_session_faults import SETTINGS, start, wait_for_session
from tests.faults.test_worker_rows import assert_events_finished, assert_every_analysed_row_kept
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

WAIT_LIMIT_S = 120.0  # spawning and loading on a busy machine; never a bound on speed
S = 1_000_000_000  # ns


# -- a recorder stopped with SIGSTOP (issue 53, 6) -----------------------------------------------


def test_a_stopped_recorder_is_named_live_and_ended_by_the_app_counting_its_losses(tmp_path):
    frames = 240  # 8 s at 30 fps: the recorder is stopped at frame 60 and never continued
    process = start(tmp_path, "--recording-enabled", "--frames", str(frames))
    session, running = wait_for_session(
        tmp_path,
        lambda d: (
            d["cameras"]["arena"]["frames_captured"] >= 60 and "recorder:arena" in d["processes"]
        ),
    )
    recorder = running["processes"]["recorder:arena"]
    os.kill(recorder, signal.SIGSTOP)
    try:
        out, err = process.communicate(timeout=WAIT_LIMIT_S)
    finally:
        if process.poll() is None:
            os.kill(recorder, signal.SIGCONT)
    assert process.returncode == 1, out[-3000:] + err[-3000:]
    # Live: the silence is said, and the status line never keeps the last figures as if well.
    assert "its recorder has given no sign of life for" in out, out
    assert "RECORDER SILENT for" in out, out
    info = json.loads((session / "session.json").read_text())
    (stopped,) = [e for e in info["errors"] if "the recorder did not answer for" in e]
    assert "it was stopped by the app" in stopped
    assert not any("ended unexpectedly" in e for e in info["errors"]), info["errors"]
    camera = info["cameras"]["arena"]
    decodable = count_decodable_frames(session / "arena.mp4")
    assert camera["frames_captured"] == frames
    assert camera["frames_recorded"] + camera["frames_lost_in_recording"] == frames
    assert camera["frames_recorded"] == decodable == count_table_rows(session / "arena.frames.csv")
    assert 0 < decodable < frames
    assert any("are not in the recording" in e for e in info["errors"])
    assert_summary_is_session_json(out, session, info)


def _never_answers(job: RecorderJob) -> None:
    """A recorder that beats (it lives) but never records nor answers: it writes for ever."""
    assert job.heartbeat is not None
    while True:
        job.heartbeat.beat()
        time.sleep(0.05)


def _recorder(tmp_path: Path, target) -> RecorderProcess:
    context = multiprocessing.get_context("spawn")

    def job_for(control, heartbeat):
        return RecorderJob(
            0, "cam", None, None, control, tmp_path, None, None, None, heartbeat=heartbeat
        )

    return RecorderProcess.start(context, job_for, "recorder:cam", target=target)


def test_a_recorder_is_ended_when_silent_or_when_the_stop_is_asked_again(tmp_path):
    # One that lives but never finishes: a second stop request ends it after the grace.
    busy = _recorder(tmp_path, _never_answers)
    finished = busy.collect(time.monotonic() + WAIT_LIMIT_S, hurry=lambda: True)
    assert "when the stop was asked for again; it was stopped by the app" in finished.error
    assert not busy.process.is_alive()
    # One stopped (SIGSTOP): it gives no sign of life, and is ended without any request.
    held = _recorder(tmp_path, _never_answers)
    os.kill(held.process.pid, signal.SIGSTOP)
    finished = held.collect(time.monotonic() + WAIT_LIMIT_S)
    assert "the recorder did not answer for" in finished.error
    assert "it was stopped by the app" in finished.error
    assert not held.process.is_alive()


def test_a_recorder_silent_then_answering_again_is_said_live_and_kept_as_a_warning(tmp_path):
    recorder = _recorder(tmp_path, _never_answers)
    branch = CameraBranch(0, CameraSettings("cam", "synthetic", None), None, None, ())
    branch.recorder = recorder
    watch = RecorderWatch(host_now_ns())
    try:
        assert watch.check([branch]) == []  # it beats
        os.kill(recorder.process.pid, signal.SIGSTOP)
        deadline = time.monotonic() + WAIT_LIMIT_S
        while not (news := watch.check([branch])) and time.monotonic() < deadline:
            time.sleep(0.05)  # until its silence passes SILENT_WARN_S
        ((event, kept),) = news
        assert event.message.startswith("camera 'cam': its recorder has given no sign of life")
        assert kept is None  # said live; not a warning of the session (yet)
        assert watch.silent_s("cam", [branch]) >= SILENT_WARN_S
        os.kill(recorder.process.pid, signal.SIGCONT)
        while not (news := watch.check([branch])) and time.monotonic() < deadline:
            time.sleep(0.05)  # until it beats again
        ((event, kept),) = news
        assert kept == event.message and "its recorder gave no sign of life for" in kept
        assert "counted in frames_lost_in_recording" in kept
        assert watch.silent_s("cam", [branch]) is None
    finally:
        recorder.process.kill()
        recorder.process.join()


def test_the_rules_that_end_a_recorder():
    now = 1000.0
    assert cause_to_end(0.2, now, now + 60, None) is None  # it writes: waited for
    assert "did not answer for" in cause_to_end(SILENT_LIMIT_S, now, now + 60, None)
    assert cause_to_end(0.2, now, now + 60, now - HURRY_GRACE_S / 2) is None
    assert "asked for again" in cause_to_end(0.2, now, now + 60, now - HURRY_GRACE_S)
    assert "did not finish in time" in cause_to_end(0.2, now, now, None)


# -- an update holding the GIL (issue 53, 7) -----------------------------------------------------

HOLDS_THE_GIL = '''
import ctypes
import signal
import sys
from pathlib import Path

from deeplabstream.experiments.base import Experiment


def wait_in_c_holding_the_gil(seconds):
    """A C call that keeps Python's interpreter lock: no other thread of the process runs."""
    if sys.platform == "win32":
        ctypes.PyDLL("kernel32").Sleep(seconds * 1000)
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    ctypes.PyDLL(None).sleep(seconds)


class HoldsTheGil(Experiment):
    """Its 30th update waits an hour in C, holding the interpreter (a marker file says when)."""

    def __init__(self):
        super().__init__()
        self.updates = 0

    def on_update(self, obs, t):
        self.updates += 1
        if self.updates == 30:
            Path(__file__).with_suffix(".held").write_text("held")
            wait_in_c_holding_the_gil(3600)
        return []
'''


def test_an_update_holding_the_gil_is_named_and_ctrl_c_ends_the_worker(tmp_path):
    experiment = tmp_path / "holds_the_gil.py"
    experiment.write_text(HOLDS_THE_GIL, encoding="utf-8")
    settings = write_settings(tmp_path, SETTINGS + "[Device stimulus_box]\nTYPE = log\n")
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(tmp_path / "out"), "--experiment-enabled",
         "--experiment", str(experiment), "--frames", "3000"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    marker = experiment.with_suffix(".held")
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # the stop must not wait on a worker that cannot answer
    out, err = process.communicate(timeout=WAIT_LIMIT_S)
    assert process.returncode == 1, out[-3000:] + err[-3000:]
    assert "Stopped by the user (Ctrl-C received)" in out, out
    folder, info = session_of(tmp_path / "out")
    (error,) = [e for e in info["errors"] if "experiment 'HoldsTheGil': its update" in e]
    assert "held the whole pose worker" in error and "the app ended the pose worker" in error
    assert "interpreter lock" in error
    assert not any("ended unexpectedly" in e for e in info["errors"]), info["errors"]
    figures = info["pose"]["cameras"]["arena"]
    assert figures["frames_not_analysed_worker_gone"] > 0
    # Every frame analysed before the held update has its rows (one per update), counted; the
    # events file starts with its start row and ends at the last update's frame time.
    exact = assert_every_analysed_row_kept(folder, info)
    assert figures["frames_analysed"] == 29
    assert_events_finished(folder, info, "HoldsTheGil", exact["time_s"].iloc[-1])
    assert_summary_is_session_json(out, folder, info)


def _heartbeat_inside(what: str, limit_s: float, started_ns: int, beat_ns: int) -> Heartbeat:
    """A worker's heartbeat as it would read: inside ``what`` since ``started_ns``."""
    heartbeat = Heartbeat(multiprocessing.get_context("spawn"))
    if what:
        heartbeat.enter(what, limit_s, started_ns)
    heartbeat._numbers[0] = beat_ns  # its last sign of life (the watchdog's thread's beat)
    return heartbeat


def test_the_rules_that_end_a_held_worker():
    now = 100 * S
    update = "experiment 'X': its update"
    # While it runs: a call held past its limit, its interruption and the grace, silent.
    held = _heartbeat_inside(update, 3.0, now - 10 * S, now - round(HELD_AFTER_S * S))
    reason = held_reason(held, now, None)
    assert reason.startswith(f"{update} did not return within 3 s and held the whole pose worker")
    # A worker stopped by SIGSTOP alone is a stall (said by the stall watch), not ended.
    stopped = _heartbeat_inside("", 0, 0, now - 10 * S)
    assert held_reason(stopped, now, None) is None
    # A call still beating (its watchdog runs and will interrupt it) is the worker's own.
    beating = _heartbeat_inside(update, 3.0, now - 10 * S, now)
    assert held_reason(beating, now, None) is None
    # After the stop was sent: silence alone ends it, a call inside named with its limit.
    sent = now - 1 * S
    assert "gave no sign of life" in held_reason(stopped, now, sent)
    early = _heartbeat_inside(update, 3.0, now - 2 * S, now - round(HELD_AFTER_S * S))
    assert "held the whole pose worker for 2.0 s (its limit: 3 s)" in held_reason(early, now, sent)
    # A loop that beats but never takes the stop: ended after TAKE_STOP_S, naming what it is in.
    late = now - round(TAKE_STOP_S * S)
    assert held_reason(beating, now, now - 1 * S) is None
    assert "did not take the stop" in held_reason(beating, now, late)
    assert f"inside {update}" in held_reason(beating, now, late)


def test_a_heartbeat_names_the_call_across_processes():
    """The parent reads the call the child entered (the name, its limit, its start)."""
    context = multiprocessing.get_context("spawn")
    heartbeat = Heartbeat(context)
    child = context.Process(target=_enter_and_wait, args=(heartbeat,))
    child.start()
    try:
        deadline = time.monotonic() + WAIT_LIMIT_S
        while heartbeat.call() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        call = heartbeat.call()
        assert call is not None and call.what == "device 'box': its pulse" and call.limit_s == 3
        assert call.elapsed_s(host_now_ns()) >= 0
    finally:
        child.kill()
        child.join()


def _enter_and_wait(heartbeat: Heartbeat) -> None:
    heartbeat.enter("device 'box': its pulse", 3.0, host_now_ns())
    time.sleep(3600)  # the parent reads, then ends this process


# -- a capture process killed while the model loads (issue 53, 8) ------------------------------


def test_a_capture_process_killed_while_the_model_loads_is_named_and_marked_failed(tmp_path):
    holds = tmp_path / "holds"
    holds.mkdir()
    settings = write_settings(tmp_path, SETTINGS)
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(tmp_path / "out"), "--pose-enabled",
         "--recording-enabled", "--frames", "60"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, HOLD_VARIABLE: "pose-load", HOLD_DIR_VARIABLE: str(holds)},
    )  # fmt: skip
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not any(holds.glob("pose-load.*")):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the worker never reached its model's loading: " + process.communicate()[1])
        time.sleep(0.02)
    folder, running = session_of(tmp_path / "out")
    os.kill(running["processes"]["capture:arena"], signal.SIGKILL)
    (holds / RELEASE_FILE).write_text("go\n")
    out, err = process.communicate(timeout=WAIT_LIMIT_S)
    assert process.returncode == 1, out[-3000:] + err[-3000:]
    assert "Broken pipe" not in out + err and "Traceback" not in out + err, out + err
    _, info = session_of(tmp_path / "out")
    camera = info["cameras"]["arena"]
    assert camera["status"] == "failed"
    expected = (
        "camera 'arena': its capture process ended before the stream started (killed by signal "
        "9 (SIGKILL))"
    )
    assert camera["end"].startswith(expected)
    assert any(e.startswith(expected) for e in info["errors"]), info["errors"]
    assert camera["frames_captured"] == 0
    assert camera["frames_recorded"] == camera["frames_lost_in_recording"] == 0
    assert info["status"] == "finished"
    assert expected in out
    assert_summary_is_session_json(out, folder, info)
