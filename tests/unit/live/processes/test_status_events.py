"""The experiment's status carries its new events and each trigger's entries and active time.

The status is made by the run's :class:`StatusReporter`
(live/processes/analysis/experiment_report.py); the slot (experiment_slot.py) sends it after a loop
turn, and passes an experiment's wish to end the session on, once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.registry import CONFIG_FOLDER
from deeplabstream.hardware.simulator.arena import KEYPOINT_NAMES
from deeplabstream.live.processes.analysis import experiment_report
from deeplabstream.live.processes.analysis.dispatch import ExperimentRun
from deeplabstream.live.processes.analysis.experiment_slot import ExperimentSlot, OpenRun, open_run
from deeplabstream.live.processes.messages import (
    ExperimentEndsSession,
    ExperimentSpec,
    ExperimentStatus,
)
from deeplabstream.settings.experiment_plan import resolve_experiment
from deeplabstream.settings.sections import DeviceSettings

FPS = 30.0
INSIDE = (560.0, 400.0)  # in reward_on_dwell's zone (rect 500 340 620 460)
OUTSIDE = (100.0, 100.0)


def _observation(frame: int, point: tuple[float, float]) -> Observation:
    rows = np.tile([point[0], point[1], 1.0], (len(KEYPOINT_NAMES), 1))
    return Observation(frame / FPS, "top", frame, rows, KEYPOINT_NAMES)


def _feed(run: ExperimentRun, start: int, seconds: float, point: tuple[float, float]) -> int:
    """Feed ``seconds`` of frames at ``point`` from frame ``start``; return the next frame."""
    end = start + round(seconds * FPS)
    for frame in range(start, end):
        run.on_poses([_observation(frame, point)], 0)
    return end


def _open(session_dir: Path, name: str = "reward_on_dwell") -> OpenRun:
    """Open experiment ``name`` as the worker does, its valve a log device."""
    devices = {"water_valve": DeviceSettings("log")}
    return open_run(ExperimentSpec(resolve_experiment(name, None, name), devices), session_dir)


@pytest.fixture
def opened(tmp_path: Path):
    opened = _open(tmp_path)
    yield opened
    opened.stop()


@pytest.fixture
def run(opened: OpenRun) -> ExperimentRun:
    return opened.run


def test_each_status_carries_the_events_since_the_previous_one(opened: OpenRun) -> None:
    run = opened.run
    frame = _feed(run, 0, 1.0, OUTSIDE)
    first = opened.status.status()
    assert [e.kind for e in first.new_events] == ["start"]
    assert first.events_total == 1
    assert opened.status.status().new_events == ()  # nothing new: nothing sent twice
    frame = _feed(run, frame, 3.0, INSIDE)  # dwell 2 s: trigger, trial, water
    second = opened.status.status()
    kinds = [e.kind for e in second.new_events]
    assert kinds[0] == "trigger" and "trial_start" in kinds and "action" in kinds
    assert second.events_total == 1 + len(kinds)
    trigger = second.new_events[0]
    assert trigger.name == "dwelling" and trigger.detail.startswith("true")
    assert trigger.time_s == pytest.approx(3.0, abs=0.05)  # 1 s outside + 2 s dwell
    action = next(e for e in second.new_events if e.kind == "action")
    assert action.trial == 1 and action.name == "water_valve"
    assert second.elapsed_s == pytest.approx(4.0 - 1 / FPS)


def test_trigger_entries_and_seconds_active(opened: OpenRun, run: ExperimentRun) -> None:
    frame = _feed(run, 0, 1.0, OUTSIDE)
    frame = _feed(run, frame, 3.0, INSIDE)  # true from t = 3 s (2 s dwell) to 4 s
    frame = _feed(run, frame, 1.0, OUTSIDE)
    frame = _feed(run, frame, 2.5, INSIDE)  # true again for the last 0.5 s
    view = opened.status.status().triggers[0]
    assert view.name == "dwelling"
    assert view.entries == 2
    # Time while true: from the update it rose in to the update it fell in (frame time).
    assert view.seconds_active == pytest.approx(1.0 + 0.5 - 1 / FPS, abs=1.5 / FPS)
    assert view.active
    assert view.seconds_active == run.runtime.trigger_states.seconds_active["dwelling"]  # its count


def test_a_status_carries_only_the_newest_events_and_counts_them_all(
    opened: OpenRun, run: ExperimentRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(experiment_report, "STATUS_EVENTS", 3)
    frame = 0
    for _ in range(4):  # each entry and exit: a trigger event (plus the trial and the water)
        frame = _feed(run, frame, 2.2, INSIDE)
        frame = _feed(run, frame, 0.3, OUTSIDE)
    status = opened.status.status()
    assert len(status.new_events) == 3
    assert status.events_total > 3
    assert status.events_total == len(run.runtime.events)
    newest = run.runtime.events.events[-3:]
    assert [(e.kind, e.name, e.time_s) for e in status.new_events] == [
        (e.kind, e.name, e.time_s) for e in newest
    ]


def test_the_slot_sends_a_last_status_with_the_finish_event(tmp_path: Path) -> None:
    sent: list[object] = []

    class _Control:
        def send(self, message: object) -> None:
            sent.append(message)

    slot = ExperimentSlot(_Control(), tmp_path)  # type: ignore[arg-type]
    slot.open_run = _open(tmp_path)
    assert slot.run is slot.open_run.run
    _feed(slot.run, 0, 0.5, OUTSIDE)
    slot.after_turn()
    summary = slot.finish()
    assert summary is not None
    statuses = [m for m in sent if isinstance(m, ExperimentStatus)]
    assert len(statuses) == 2
    assert [e.kind for e in statuses[0].new_events] == ["start"]
    last = statuses[-1].new_events  # the finish and the switch-off of the valve at the stop
    assert [e.kind for e in last] == ["finish", "action"]
    assert last[0].detail == "stopped" and last[1].detail.startswith("off")
    assert not [m for m in sent if isinstance(m, ExperimentEndsSession)]  # it never asked


def test_the_slot_passes_the_session_durations_end_on_once(tmp_path: Path) -> None:
    sent: list[object] = []

    class _Control:
        def send(self, message: object) -> None:
            sent.append(message)

    config = tmp_path / "short.ini"
    reward = (CONFIG_FOLDER / "reward_on_dwell.ini").read_text(encoding="utf-8")
    shorter = reward.replace("[Experiment]\n", "[Experiment]\nSESSION_DURATION = 0.5\n", 1)
    assert shorter != reward
    config.write_text(shorter, encoding="utf-8")
    slot = ExperimentSlot(_Control(), tmp_path)  # type: ignore[arg-type]
    slot.open_run = _open(tmp_path, str(config))
    for frame in range(30):  # 1 s of frames; the session's 0.5 s end in the 16th
        slot.run.on_poses([_observation(frame, OUTSIDE)], 0)
        slot.status_wanted = True  # the main process took each status
        slot.after_turn()
    runtime = slot.run.runtime
    assert (
        runtime.machine.finished
        and runtime.machine.finish_reason == "session duration of 0.5 s reached"
    )
    assert runtime.session_end_requested == runtime.machine.finish_reason
    ends = [m for m in sent if isinstance(m, ExperimentEndsSession)]
    assert ends == [ExperimentEndsSession("short", "session duration of 0.5 s reached")]
    summary = slot.finish()
    assert summary is not None
    assert summary["session_end_requested"] == "session duration of 0.5 s reached"
