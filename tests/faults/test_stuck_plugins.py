"""A lab's plugin call on the inference worker's loop that never returns (issue 44, 7 and 2).

Every call of a lab's code on the loop is guarded by the worker's watchdog
(core/call_watchdog.py): an output's ``write``, a device's ``perform``, the experiment's update
(whose trigger kinds' ``step`` runs inside it). One that hangs is interrupted after its limit,
named in the error, stopped (no more calls to it), and pose estimation goes on: the stop is the
ordinary one, every analysed frame keeps its row, the worker is not blamed.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.core.call_watchdog import CallStalled, CallStuck, time_limit, when_stuck
from deeplabstream.experiments.base import Experiment
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.events import EventCsvWriter
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.triggers.base import Trigger
from deeplabstream.live.processes.analysis.dispatch import PERFORM_LIMIT_S, ExperimentRun
from deeplabstream.live.processes.analysis.sinks import WRITE_LIMIT_S
from tests.faults.test_loop_health import assert_summary_is_session_json, session_of
from tests.faults.test_session_faults import SETTINGS
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

FRAMES = 150  # 5 s at 30 fps
HANG_AT = 15  # the plugin's call that hangs: early, so the stall ends well before the frames do

HANGING_OUTPUT = '''
"""[Output hang_csv]: a row per analysed frame; its 15th write never returns."""

import time

from deeplabstream.outputs.interface import Output, PoseSink


class HangCsv(Output):
    def camera_sink(self, camera):
        return HangRows(camera)


class HangRows(PoseSink):
    def __init__(self, camera):
        self.file = (camera.session_dir / f"{camera.stem}.hang.csv").open("w", encoding="utf-8")
        self.rows = 0

    def write(self, frame):
        self.rows += 1
        if self.rows == 15:
            time.sleep(3600)
        self.file.write(f"{frame.record.frame_index}\\n")

    def close(self, last_index):
        self.file.close()
        return {"hang_rows": self.rows}
'''


def run_session(tmp_path: Path, extra: str, *args: str) -> subprocess.CompletedProcess[str]:
    settings = write_settings(tmp_path, SETTINGS + extra)
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(tmp_path / "out"), "--frames", str(FRAMES), *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def finished_session(tmp_path: Path, result: subprocess.CompletedProcess[str]) -> tuple[Path, dict]:
    """The session's folder and session.json, after an exit 1 (a refusal makes no folder)."""
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "out").is_dir(), result.stdout[-3000:] + result.stderr[-3000:]
    return session_of(tmp_path / "out")


def assert_every_analysed_row_kept(folder: Path, info: dict) -> dict:
    """Every captured frame counted, every analysed frame's row in the pose file."""
    figures = info["pose"]["cameras"]["arena"]
    captured = info["cameras"]["arena"]["frames_captured"]
    assert captured == FRAMES
    assert (
        figures["frames_analysed"] + figures["frames_skipped"] + figures["frames_lost"]
        + figures["frames_not_analysed_worker_gone"]
    ) == captured  # fmt: skip
    pose = pd.read_csv(folder / "arena.pose.csv", header=[0, 1, 2], index_col=0)
    assert len(pose) == captured
    assert int(pose.notna().all(axis=1).sum()) == figures["frames_analysed"]
    return figures


@pytest.mark.slow  # a whole session: the slow step (the default suite keeps under 15 min)
def test_an_output_whose_write_hangs_is_stopped_and_named_and_no_row_is_lost(tmp_path: Path):
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "hang_csv.py").write_text(HANGING_OUTPUT, encoding="utf-8")
    result = run_session(tmp_path, "[Output hang_csv]\n", "--pose-enabled")
    folder, info = finished_session(tmp_path, result)
    (error,) = [e for e in info["errors"] if "output 'hang_csv'" in e]
    assert f"its write did not return within {WRITE_LIMIT_S:g} s" in error, error
    assert not any("pose worker" in e or "SIGTERM" in e for e in info["errors"]), info["errors"]
    figures = assert_every_analysed_row_kept(folder, info)
    assert figures["frames_analysed"] > HANG_AT + 10  # pose estimation went on after it
    # The output got no frame after the hung one: 14 rows written, then stopped.
    assert len((folder / "arena.hang.csv").read_text().splitlines()) == HANG_AT - 1
    assert_summary_is_session_json(result.stdout, folder, info)


C_STUCK_EXPERIMENT = '''
import ctypes
import signal
import sys

from deeplabstream.experiments.base import Experiment


def sleep_in_c(seconds):
    """A wait inside C code that never returns to Python before its end.

    Windows' Sleep is never interrupted; elsewhere libc's sleep is, by a signal, so the
    thread first blocks every signal, as a C library that must not be disturbed does.
    """
    if sys.platform == "win32":
        ctypes.windll.kernel32.Sleep(seconds * 1000)
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    ctypes.CDLL(None).sleep(seconds)


class StuckInC(Experiment):
    """Its update at the 15th pose waits in C for an hour."""

    def __init__(self):
        super().__init__()
        self.updates = 0

    def on_update(self, obs, t):
        self.updates += 1
        if self.updates == 15:
            sleep_in_c(3600)
        return []
'''


def test_an_update_stuck_in_c_is_named_and_every_analysed_row_kept(tmp_path: Path):
    experiment = tmp_path / "stuck_in_c.py"
    experiment.write_text(C_STUCK_EXPERIMENT, encoding="utf-8")
    result = run_session(
        tmp_path, "[Device stimulus_box]\nTYPE = log\n", "--experiment-enabled",
        "--experiment", str(experiment),
    )  # fmt: skip
    folder, info = finished_session(tmp_path, result)
    named = [e for e in info["errors"] if "experiment 'StuckInC'" in e]
    assert named and "its update did not return within" in named[0], info["errors"]
    assert "could not be interrupted" in named[0]
    assert not any("ended unexpectedly" in e for e in info["errors"]), info["errors"]
    assert "experiment 'StuckInC'" in result.stdout
    assert_every_analysed_row_kept(folder, info)
    # Every pose analysed before the stuck update has its row (the 15th's was never written).
    assert info["pose"]["cameras"]["arena"]["frames_analysed"] == HANG_AT - 1
    pose = pd.read_csv(folder / "arena.pose.csv", header=[0, 1, 2], index_col=0)
    last_analysed = pose[pose.notna().all(axis=1)].index[-1]
    events = pd.read_csv(folder / "events.csv")
    finish = events.iloc[-1]
    assert finish["kind"] == "finish"
    # At the stuck update's frame (the synthetic camera's clock: frame index / 30), not 0.
    assert finish["time_s"] > last_analysed / 30
    assert_summary_is_session_json(result.stdout, folder, info)


HANGING_DEVICE = '''
"""TYPE = hang_box: a box whose third command never returns."""

import time

from deeplabstream.hardware.stimulation.base import StimulationDevice


class HangBox(StimulationDevice):
    def __init__(self):
        super().__init__()
        self.commands = 0

    @property
    def channel_count(self):
        return 2

    def open(self):
        pass

    def perform(self, command):
        self.commands += 1
        if self.commands == 3:
            time.sleep(3600)

    def close(self):
        pass
'''
PULSING_EXPERIMENT = '''
from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment


class Pulsing(Experiment):
    """A pulse on every 5th pose."""

    def __init__(self):
        super().__init__()
        self.updates = 0

    def on_update(self, obs, t):
        self.updates += 1
        return [Action.pulse("box", 0, 0.05)] if self.updates % 5 == 0 else []
'''


@pytest.mark.slow  # a whole session (about 15 s here); the output's test covers the default step
def test_a_device_whose_perform_hangs_is_stopped_and_named_and_no_row_is_lost(tmp_path: Path):
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "hang_box.py").write_text(HANGING_DEVICE, encoding="utf-8")
    experiment = tmp_path / "pulsing.py"
    experiment.write_text(PULSING_EXPERIMENT, encoding="utf-8")
    result = run_session(
        tmp_path, "[Device box]\nTYPE = hang_box\n", "--experiment-enabled",
        "--experiment", str(experiment),
    )  # fmt: skip
    folder, info = finished_session(tmp_path, result)
    (error,) = [e for e in info["errors"] if "device 'box'" in e]
    assert f"its pulse did not return within {PERFORM_LIMIT_S:g} s" in error, error
    assert not any("pose worker" in e or "SIGTERM" in e for e in info["errors"]), info["errors"]
    figures = assert_every_analysed_row_kept(folder, info)
    assert figures["frames_analysed"] > HANG_AT + 10  # pose estimation went on after it
    events = pd.read_csv(folder / "events.csv")
    assert events["not_sent"].astype(str).str.contains("not sent: device hung").any()
    (finish,) = events[events["kind"] == "finish"]["detail"]
    assert "failed: device 'box': its pulse did not return" in finish
    assert info["experiment"]["actions"] == 2  # the two commands that returned
    assert_summary_is_session_json(result.stdout, folder, info)


SWITCHING_EXPERIMENT = '''
from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment


class Switching(Experiment):
    """Channel 0 on at the 10th pose and off at the 20th; channel 1 on at the 30th, left on."""

    def __init__(self):
        super().__init__()
        self.updates = 0

    def on_update(self, obs, t):
        self.updates += 1
        if self.updates == 10:
            return [Action.on("stimulus_box", 0)]
        if self.updates == 20:
            return [Action.off("stimulus_box", 0)]
        if self.updates == 30:
            return [Action.on("stimulus_box", 1)]
        return []
'''


@pytest.mark.slow  # a whole session: the slow step (the default suite keeps under 15 min)
def test_the_stop_switch_offs_carry_no_pose_and_every_action_is_counted_once(tmp_path: Path):
    """Issue 44: the stop's ``off`` rows carried animal 1's keypoint; the summary said 0."""
    experiment = tmp_path / "switching.py"
    experiment.write_text(SWITCHING_EXPERIMENT, encoding="utf-8")
    result = run_session(
        tmp_path, "[Device stimulus_box]\nTYPE = log\n", "--experiment-enabled",
        "--experiment", str(experiment),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder, info = session_of(tmp_path / "out")
    events = pd.read_csv(folder / "events.csv", keep_default_na=False)
    actions = events[events["kind"] == "action"]
    made_by_the_stop = actions[actions["detail"].str.contains(r"reason=(?:stop|finish)")]
    assert len(made_by_the_stop) >= 2, actions["detail"].tolist()
    no_pose = ["keypoint", "measured_x", "measured_y", "likelihood", "animal"]
    assert (made_by_the_stop[no_pose] == "").all().all(), made_by_the_stop[no_pose]
    decided = actions[~actions.index.isin(made_by_the_stop.index)]
    assert (decided["keypoint"] != "").all()  # the experiment's own: the pose it decided on
    sent = int((actions["not_sent"] == "").sum())
    assert info["experiment"]["actions"] == sent == len(actions)
    assert f"experiment Switching: {sent} actions" in result.stdout
    assert_summary_is_session_json(result.stdout, folder, info)


def _sleep_in_c(seconds: int) -> None:
    """Wait in C code that no signal cuts short (every signal blocked; Windows' Sleep)."""
    if sys.platform == "win32":
        ctypes.windll.kernel32.Sleep(seconds * 1000)  # type: ignore[attr-defined]
        return
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        ctypes.CDLL(None).sleep(seconds)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # the pending interruption lands


def test_a_call_that_cannot_be_interrupted_is_handed_to_the_stuck_handler():
    """The watchdog's thread names a call stuck in C (the worker then flushes and ends)."""
    told: list[CallStuck] = []
    when_stuck(told.append)
    try:
        with pytest.raises(CallStalled), time_limit("a C wait", 0.2):
            _sleep_in_c(3)  # its interruption asked at about 0.25 s, named stuck 1 s later
    finally:
        when_stuck(None)
    assert len(told) == 1, told
    assert str(told[0]).startswith("a C wait did not return within 0.2 s and could not be")


def test_a_guarded_call_inside_another_is_the_one_named_and_the_outer_is_guarded_after():
    with (
        pytest.raises(CallStalled, match=r"^the outer call did not return within 0\.6 s"),
        time_limit("the outer call", 0.6),
    ):
        with (
            pytest.raises(CallStalled, match=r"^the inner call did not return within 0\.2 s"),
            time_limit("the inner call", 0.2),
        ):
            threading.Event().wait()
        time.sleep(5)  # the outer call goes on past its own limit


class _HangingKind(Trigger):
    """A lab's trigger kind whose step never returns."""

    kind = "hanging"

    def step(self, obs: Observation) -> bool:
        time.sleep(3600)
        return True


class _WithHangingTrigger(Experiment):
    def __init__(self) -> None:
        super().__init__()
        self.add_trigger("never_done", _HangingKind())

    def on_update(self, obs: object, t: float) -> list:
        return []


def test_a_trigger_kind_whose_step_hangs_is_named_with_the_experiment(tmp_path: Path):
    """A kind's step runs inside the experiment's update: its watchdog names both."""
    runtime = ExperimentRuntime(_WithHangingTrigger())
    events_path = tmp_path / "events.csv"
    runtime.events.attach(EventCsvWriter(events_path))
    run = ExperimentRun(runtime, {}, events_path)
    runtime.start()
    keypoints = np.array([[100.0, 100.0, 0.9]])
    run.on_poses([Observation(0.5, "arena", 15, keypoints, ("nose",))], time.perf_counter_ns())
    run.stop()
    assert run.error is not None
    assert "experiment '_WithHangingTrigger': its update did not return within" in run.error
    assert "at frame 15 of camera 'arena', in trigger kind 'hanging'" in run.error
    finish = pd.read_csv(events_path).iloc[-1]
    assert finish["kind"] == "finish" and "in trigger kind 'hanging'" in finish["detail"]
