"""An acknowledgement that comes updates after its command still reaches its row of events.csv.

A screen acknowledges once it has painted, often after the next frame's update (on a busy
machine, several); the row used to go to the file at the next update, without it. The device
here is a lab's device written against the documented interface (it returns its own
``ActionRecord`` and answers when told), so the answer comes exactly as late as each test says.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.core.timing import host_now_ns
from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.events import EventCsvWriter, EventLog, ExperimentEvent
from deeplabstream.experiments.observation import Observation
from deeplabstream.hardware.stimulation.base import ActionRecord, StimulationDevice
from deeplabstream.live.processes.analysis import dispatch
from deeplabstream.live.processes.analysis.dispatch import ExperimentRun

NAMES = ("nose", "tail_base")


class _AnsweredWhenTold(StimulationDevice):
    """Two channels whose commands are acknowledged only when the test calls :meth:`answer`."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[ActionRecord] = []

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def channel_count(self) -> int:
        return 2

    def perform(self, action: Action) -> ActionRecord:
        record = ActionRecord(action.describe(), host_now_ns())
        self.waiting.append(record)
        return record

    def answer(self) -> int:
        """Acknowledge every command so far, now; return the time given."""
        now = host_now_ns()
        for record in self.waiting:
            record.acknowledge(now)
        self.waiting = []
        return now


class _PulseAtFrameTwo(Experiment):
    """Pulses channel 0 at frame 2 and switches channel 1 on at frame 5 (a later row)."""

    def on_update(self, obs: object, t: float) -> Iterable[Action]:
        frame = round(t * 30)
        if frame == 2:
            return [Action.pulse("box", 0, 0.5)]
        if frame == 5:
            return [Action.on("box", 1)]
        return []


def _observation(frame: int) -> Observation:
    keypoints = np.array([[100.0, 100.0, 0.9], [50.0, 50.0, 0.9]])
    return Observation(frame / 30, "top", frame, keypoints, NAMES, host_time_s=time.perf_counter())


def _session(tmp_path: Path) -> tuple[ExperimentRuntime, ExperimentRun, _AnsweredWhenTold, Path]:
    device = _AnsweredWhenTold()
    device.open()
    runtime = ExperimentRuntime(_PulseAtFrameTwo())
    events_path = tmp_path / "events.csv"
    runtime.events.attach(EventCsvWriter(events_path))
    run = ExperimentRun(runtime, {"box": device}, events_path)
    runtime.start()
    return runtime, run, device, events_path


def _actions(events_path: Path) -> pd.DataFrame:
    events = pd.read_csv(events_path, keep_default_na=False)
    return events[events["kind"] == "action"]


def test_an_acknowledgement_four_updates_late_is_in_the_row(tmp_path: Path) -> None:
    runtime, run, device, events_path = _session(tmp_path)
    for frame in range(3):  # the pulse goes at frame 2
        run.on_poses([_observation(frame)], time.perf_counter_ns())
    pulse = runtime.events.of_kind("action")[0]
    for frame in range(3, 7):  # four more updates, no answer yet: the row stays out of the file
        run.on_poses([_observation(frame)], time.perf_counter_ns())
        assert pulse in runtime.events.pending
    acknowledged_ns = device.answer()  # the answer: the on at frame 5 is answered with it
    for frame in range(7, 9):
        run.on_poses([_observation(frame)], time.perf_counter_ns())
    assert runtime.events.pending == []  # answered: everything went to the file
    run.stop()

    actions = _actions(events_path)
    kinds = actions["detail"].str.split().str[0].tolist()
    assert kinds == ["pulse", "on", "off", "off"]  # the stop switches both off
    first, second = actions.iloc[0], actions.iloc[1]
    assert float(first["acknowledged"]) == pytest.approx(acknowledged_ns / 1e9, abs=1e-6)
    assert float(second["acknowledged"]) == pytest.approx(acknowledged_ns / 1e9, abs=1e-6)
    assert float(first["written"]) <= float(first["acknowledged"])
    # The file keeps the order the events happened in, held rows or not.
    events = pd.read_csv(events_path, keep_default_na=False)
    assert events["time_s"].is_monotonic_increasing


def test_a_command_never_acknowledged_lets_its_row_go_after_the_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "ACK_HOLD_S", 0.2)
    runtime, run, device, events_path = _session(tmp_path)
    for frame in range(3):
        run.on_poses([_observation(frame)], time.perf_counter_ns())
    pulse = runtime.events.of_kind("action")[0]
    run.on_poses([_observation(3)], time.perf_counter_ns())
    assert pulse in runtime.events.pending  # waiting for the answer
    time.sleep(0.3)  # longer than the hold: the device never answers
    run.on_poses([_observation(4)], time.perf_counter_ns())
    assert pulse not in runtime.events.pending  # gone to the file without it
    device.answer()  # an answer after the row left is still timed, not rewritten
    run.on_poses([_observation(5)], time.perf_counter_ns())
    run.stop()

    actions = _actions(events_path)
    assert actions.iloc[0]["detail"].startswith("pulse")
    assert actions.iloc[0]["acknowledged"] == ""
    assert actions.iloc[0]["written"] != ""
    assert run.ack_ns.count == 1  # the pulse's late answer, in session.json's latency figures


def test_the_event_log_commits_up_to_the_first_held_action_and_all_at_close(tmp_path: Path) -> None:
    log = EventLog(EventCsvWriter(tmp_path / "events.csv"))
    held, later = Action.on("box", 0), Action.on("box", 1)

    def event(time_s: float, action: Action | None = None) -> ExperimentEvent:
        kind = "action" if action is not None else "trigger"
        return ExperimentEvent(time_s, kind, "rule", "detail", action=action)

    log.record(event(0.0))
    log.record(event(0.1, held))
    log.hold(held)
    log.record(event(0.2, later))
    log.record(event(0.3))
    assert log.commit() == 1  # only the row before the held action
    assert [e.time_s for e in log.pending] == [0.1, 0.2, 0.3]
    log.fill_times(held, acknowledged=12.5)  # its answer releases it
    assert log.commit() == 3
    log.record(event(0.4, later))
    log.hold(later)
    log.close()  # the end writes held rows too
    written = pd.read_csv(tmp_path / "events.csv", keep_default_na=False)
    assert written["time_s"].tolist() == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert float(written["acknowledged"].tolist()[1]) == 12.5
