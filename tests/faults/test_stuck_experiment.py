"""An experiment whose update never returns (issue 37, 8).

The inference worker's watchdog interrupts the update after ``UPDATE_LIMIT_S``: the experiment
is named and blamed (not the worker), stopped with its outputs off, and pose estimation goes
on, so the stop is the ordinary one (the worker is never terminated), the stall is counted for
the time it really lasted, and every analysed frame has its row in the pose files.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from deeplabstream.core.call_watchdog import CallStalled, time_limit
from deeplabstream.live.processes.analysis.dispatch import UPDATE_LIMIT_S
from tests.faults.test_loop_health import assert_summary_is_session_json, session_of
from tests.faults.test_session_faults import SETTINGS
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

STUCK_EXPERIMENT = '''
import time
from deeplabstream.experiments.base import Experiment


class Stuck(Experiment):
    """Its update at the 45th pose never returns (an hour's sleep: a wait that never ends)."""

    def __init__(self):
        super().__init__()
        self.updates = 0

    def on_update(self, obs, t):
        self.updates += 1
        if self.updates == 45:
            time.sleep(3600)
        return []
'''
BUSY_EXPERIMENT = STUCK_EXPERIMENT.replace("time.sleep(3600)", "while True:\n                pass")
FRAMES = 240  # 8 s at 30 fps: the update sticks at about 1.5 s, for 3 s


@pytest.mark.parametrize(
    "body",
    # a busy loop is stopped by the same watchdog as a sleep: it runs in the slow step
    [STUCK_EXPERIMENT, pytest.param(BUSY_EXPERIMENT, marks=pytest.mark.slow)],
    ids=["sleep", "busy-loop"],
)
def test_a_stuck_update_is_stopped_blamed_and_every_analysed_row_kept(tmp_path: Path, body: str):
    experiment = tmp_path / "stuck.py"
    experiment.write_text(body, encoding="utf-8")
    settings = write_settings(
        tmp_path, SETTINGS + "[Device stimulus_box]\nTYPE = log\n[Experiment]\nDEADLINE_MS = auto\n"
    )
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(tmp_path / "out"), "--experiment-enabled",
         "--experiment", str(experiment), "--frames", str(FRAMES)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    folder, info = session_of(tmp_path / "out")
    (error,) = [e for e in info["errors"] if "experiment 'Stuck'" in e]
    assert f"its update did not return within {UPDATE_LIMIT_S:g} s" in error
    assert "at frame " in error and "of camera 'arena'" in error
    # The worker is not blamed: it ended as asked, with its figures.
    assert not any("pose worker" in e or "SIGTERM" in e for e in info["errors"]), info["errors"]
    figures = info["pose"]["cameras"]["arena"]
    assert figures["frames_analysed"] > 45  # pose estimation went on after the stuck update
    captured = info["cameras"]["arena"]["frames_captured"]
    assert captured == FRAMES
    assert (
        figures["frames_analysed"] + figures["frames_skipped"] + figures["frames_lost"]
        + figures["frames_not_analysed_worker_gone"]
    ) == captured  # fmt: skip
    # Every analysed frame has its row (none lost unflushed), every captured frame a row.
    pose = pd.read_csv(folder / "arena.pose.csv", header=[0, 1, 2], index_col=0)
    assert len(pose) == captured
    assert int(pose.notna().all(axis=1).sum()) == figures["frames_analysed"]
    # The stall is counted for as long as it lasted: once, within the session's own length.
    stalls = info["health"]["stalls"]
    assert stalls["count"] == 1
    started = pd.Timestamp(info["started"])
    ended = pd.Timestamp(info["ended"])
    assert UPDATE_LIMIT_S <= stalls["longest_s"] < (ended - started).total_seconds()
    assert info["health"]["verdict"] == "error"
    events = pd.read_csv(folder / "events.csv")
    assert "failed" in " ".join(map(str, events.iloc[-1].tolist()))
    assert_summary_is_session_json(result.stdout, folder, info)


def test_time_limit_interrupts_only_a_call_that_runs_past_it():
    with time_limit("a quick call", 5.0):
        time.sleep(0.01)
    with (
        pytest.raises(CallStalled, match=r"a stuck call did not return within 0\.2 s") as stall,
        time_limit("a stuck call", 0.2),
    ):
        threading.Event().wait()  # never set
    assert stall.value.elapsed_s >= 0.2
    time.sleep(0.3)  # no late interruption after the guarded call


def test_the_portable_way_interrupts_python_code(monkeypatch):
    """Without pthread_kill (Windows), the exception is set on the main thread by the API."""
    import deeplabstream.core.call_watchdog as watchdog

    monkeypatch.setattr(watchdog, "_WATCHDOG", None)
    monkeypatch.setattr(watchdog, "_SIGNAL", None)
    with (
        pytest.raises(CallStalled, match=r"a busy loop did not return within 0\.2 s"),
        time_limit("a busy loop", 0.2),
    ):
        while True:
            pass
