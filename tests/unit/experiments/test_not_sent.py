"""Issue 37 point 10: after a board vanished, events.csv says which commands were never sent.

A real serial device (:class:`SerialStimulator`) talks to a stand-in board on a socat pty pair;
killing socat unplugs it. The experiment then decides a switch-off at the stop: events.csv keeps
the row (the decision), with no ``written`` time and ``not_sent`` saying why, and the summary
that goes into session.json counts it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.events import EVENT_COLUMNS, EventCsvWriter
from deeplabstream.experiments.observation import Observation
from deeplabstream.hardware.stimulation.base import DeviceLostError
from deeplabstream.live.processes.analysis.dispatch import ExperimentRun
from deeplabstream.live.processes.analysis.experiment_report import run_summary
from tests.unit.hardware.stimulation.test_stimulation import open_against, ptys  # noqa: F401 - fixture

NAMES = ("nose", "tail_base")


class _LightOnAtStart(Experiment):
    """Switches channel 0 on at its first update; the stop switches it off."""

    def on_update(self, obs: object, t: float) -> Iterable[Action]:
        return [Action.on("box", 0)] if not self.is_held("box", 0) else []


def _observation(frame: int) -> Observation:
    keypoints = np.array([[100.0, 100.0, 0.9], [50.0, 50.0, 0.9]])
    return Observation(frame / 30, "top", frame, keypoints, NAMES, host_time_s=time.perf_counter())


def test_a_switch_off_after_the_board_vanished_is_logged_as_not_sent(ptys, tmp_path: Path) -> None:  # noqa: F811
    box, device = open_against(ptys.box, ptys.host)
    runtime = ExperimentRuntime(_LightOnAtStart())
    events_path = tmp_path / "events.csv"
    runtime.events.attach(EventCsvWriter(events_path))
    run = ExperimentRun(runtime, {"box": device}, events_path)
    try:
        runtime.start()
        run.on_poses([_observation(0)], time.perf_counter_ns())
        switched_on = runtime.events.of_kind("action")[0]
        frame, deadline = 1, time.monotonic() + 10
        while runtime.events.of_kind("action")[0].acknowledged is None:  # the board answers
            assert time.monotonic() < deadline, "the board never acknowledged the on"
            time.sleep(0.01)
            run.on_poses([_observation(frame)], time.perf_counter_ns())
            frame += 1
        assert switched_on.detail.startswith("on channel=0")
        ptys.kill()  # the board is unplugged
        deadline = time.monotonic() + 10
        while device.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert isinstance(device.error, DeviceLostError)
        run.stop()  # decides "off channel=0 reason=finish", which cannot be sent
    finally:
        device.close()
        box.close()

    events = pd.read_csv(events_path, keep_default_na=False)
    assert list(events.columns) == list(EVENT_COLUMNS)
    # appended at the end, in the order they came
    assert list(events.columns[-3:]) == ["likelihood", "not_sent", "animal"]
    actions = events[events["kind"] == "action"]
    assert actions["detail"].tolist() == [
        "on channel=0 reason=_LightOnAtStart",
        "off channel=0 reason=finish",  # switched off by the stop
    ]
    on, off = actions.iloc[0], actions.iloc[1]
    assert on["written"] != "" and on["not_sent"] == ""
    assert off["written"] == "" and off["acknowledged"] == ""
    assert off["not_sent"].startswith("not sent: device gone (")
    assert ptys.host in off["not_sent"] and "vanished" in off["not_sent"]
    assert run.actions == 1 and run.not_sent == 1
    summary = run_summary(run)
    assert summary["actions"] == 1 and summary["actions_not_sent"] == 1
