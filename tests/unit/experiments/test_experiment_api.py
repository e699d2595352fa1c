"""Issue 43: the small Experiment API, as a lab uses it.

A staircase with memory, written only against the documented surface (``on_start``,
``on_update``, ``on_trial_end``; ``add_trigger``, ``rose``, ``start_trial``, ``end_trial``,
``end_session``, ``log``; ``in_trial``), is fed synthetic observations: it ends itself after N
reversals, and ``events.csv`` (a real :class:`EventCsvWriter` file, read back) logs exactly the
actions it returned, every one of them sent when a real dispatcher (:class:`ExperimentRun` with a
real log device) performs them. Ending early from an update (``end_session``, or ``stop()``
inside ``on_update``, the bug of the issue) sends the update's actions, then the switch-offs.
A lab's attribute cannot shadow the machinery; the shipped examples still run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment, Trial
from deeplabstream.experiments.events import EventCsvWriter
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.registry import load_experiment
from deeplabstream.experiments.triggers import Circle, Region
from deeplabstream.hardware.stimulation.log_device import LogStimulator
from deeplabstream.live.processes.dispatch import ExperimentRun

NAMES = ("nose", "tail_base")
FPS = 30
CENTRE, CUE, TARGET = (320.0, 240.0), (160.0, 240.0), (480.0, 240.0)
DOCS = Path(__file__).resolve().parents[3] / "docs" / "experiments.md"


class Staircase(Experiment):
    """A 1-up/1-down staircase on a cue's duration; the session ends after N reversals."""

    def __init__(self, reversals: int = 4) -> None:
        super().__init__(inter_trial_interval_s=1.0, trial_duration_s=5.0)
        self.add_trigger("cue", Region(Circle(*CUE, 60), "inside", "nose", **self.likelihood))
        self.add_trigger("target", Region(Circle(*TARGET, 60), "inside", "nose"))
        self.level_s = 0.4  # the memory: the next cue's duration
        self.direction = 0  # -1 after a success, +1 after a failure
        self.reversals = 0
        self.reversals_wanted = reversals

    def on_start(self, t: float) -> list[Action]:
        return [Action.on("light", 1, reason="house light")]

    def on_update(self, obs: object, t: float) -> list[Action]:
        if self.in_trial and self.rose("target"):
            self.end_trial("success")
            return []
        if self.rose("cue") and self.start_trial("cue"):
            return [Action.pulse("light", 0, self.level_s, reason=f"cue {self.level_s:g} s")]
        return []

    def on_trial_end(self, trial: Trial) -> list[Action]:
        direction = -1 if trial.end_reason == "success" else +1
        if self.direction and direction != self.direction:
            self.reversals += 1
        self.direction = direction
        self.level_s = round(min(1.0, max(0.1, self.level_s + 0.1 * direction)), 6)
        self.log("staircase", f"next cue {self.level_s:g} s, {self.reversals} reversals")
        if self.reversals >= self.reversals_wanted:
            self.end_session(f"{self.reversals} reversals")
        return []


# success, success, failure (reversal 1), success (2), failure (3), failure, success (4): the
# session ends with the 7th trial; the two trials planned after it never happen.
OUTCOMES = "SSFSFFSSS"
CUES_SENT = [0.4, 0.3, 0.2, 0.3, 0.2, 0.3, 0.4]


def _observation(frame: int, where: tuple[float, float]) -> Observation:
    keypoints = np.array([[where[0], where[1], 0.95], [where[0] - 40, where[1], 0.95]])
    return Observation(frame / FPS, "top", frame, keypoints, NAMES, host_time_s=time.perf_counter())


def _visits(outcomes: str) -> list[Observation]:
    """The nose's path: centre, cue zone, then the target (S) or back to the centre (F)."""
    places: list[tuple[float, float]] = []
    for outcome in outcomes:
        places += [CENTRE] * round(1.5 * FPS) + [CUE] * round(0.3 * FPS)
        places += [TARGET] * round(0.5 * FPS) if outcome == "S" else [CENTRE] * round(5.5 * FPS)
    places += [CENTRE] * FPS
    return [_observation(frame, where) for frame, where in enumerate(places)]


def _events(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, dtype=str)


def _action_rows(events: pd.DataFrame) -> list[str]:
    return events[events["kind"] == "action"]["detail"].tolist()


def _run_live(experiment: Experiment, observations: list[Observation], tmp_path: Path):
    """Run ``experiment`` as the live loop does: a real dispatcher and a real log device."""
    device = LogStimulator(channels=4)
    device.open()
    events_path = tmp_path / "events.csv"
    experiment.events.attach(EventCsvWriter(events_path))
    run = ExperimentRun(experiment, {name: device for name in ("light", "box")}, events_path)
    experiment.start()
    for observation in observations:
        run.on_poses([observation], time.perf_counter_ns())
    run.stop()
    return run, device, _events(events_path)


def _assert_every_action_row_was_sent(events: pd.DataFrame, device: LogStimulator) -> None:
    actions = events[events["kind"] == "action"]
    assert (actions["written"] != "").all(), actions[actions["written"] == ""]["detail"].tolist()
    assert (actions["not_sent"] == "").all()
    # one command performed per action row, in the same order, in the same words
    assert [record.command for record in device.records] == actions["detail"].tolist()


def test_a_staircase_ends_itself_after_n_reversals_and_logs_what_it_returned(
    tmp_path: Path,
) -> None:
    experiment = Staircase(reversals=4)
    path = tmp_path / "events.csv"
    experiment.events.attach(EventCsvWriter(path))
    experiment.start()
    returned: list[Action] = []
    for observation in _visits(OUTCOMES):
        returned += experiment.update(observation)
    returned += experiment.stop()
    experiment.events.close()

    assert experiment.state == "finished" and experiment.finish_reason == "4 reversals"
    assert len(experiment.trials) == 7
    assert [t.end_reason == "success" for t in experiment.trials] == [
        outcome == "S" for outcome in OUTCOMES[:7]
    ]
    pulses = [a for a in returned if a.command == "pulse"]
    assert [a.duration_s for a in pulses] == CUES_SENT
    events = _events(path)
    # exactly the actions returned, in their order, and nothing else
    assert _action_rows(events) == [a.describe() for a in returned]
    notes = events[events["kind"] == "note"]
    assert notes["name"].tolist() == ["staircase"] * 7
    assert notes["detail"].iloc[-1] == "next cue 0.3 s, 4 reversals"
    finish = events[events["kind"] == "finish"]
    assert finish["detail"].tolist() == ["4 reversals"]
    # the house light goes off in the update that ended the session, after the trial's end
    last_trial_end = float(experiment.trials[-1].end_s)  # type: ignore[arg-type]
    finish_offs = events[
        (events["kind"] == "action") & events["detail"].str.contains("reason=finish")
    ]
    assert finish_offs["detail"].tolist() == ["off channel=1 reason=finish"]
    assert float(finish_offs["time_s"].iloc[0]) == pytest.approx(last_trial_end)
    assert float(finish["time_s"].iloc[0]) == pytest.approx(last_trial_end)


def test_the_staircase_through_the_live_dispatcher_logs_only_what_was_sent(
    tmp_path: Path,
) -> None:
    run, device, events = _run_live(Staircase(reversals=4), _visits(OUTCOMES), tmp_path)
    assert run.error is None
    _assert_every_action_row_was_sent(events, device)
    pulses = [d for d in _action_rows(events) if d.startswith("pulse")]
    assert len(pulses) == len(CUES_SENT)
    assert run.summary()["actions_not_sent"] == 0


class _StopsInsideUpdate(Experiment):
    """The issue's bug: ``self.stop()`` (or ``end_session``) inside on_update, with actions."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.updates = 0

    def on_start(self, t: float) -> Iterable[Action]:
        return [Action.on("box", 1)]  # held: the end must switch it off

    def on_update(self, obs: object, t: float) -> Iterable[Action]:
        self.updates += 1
        if self.updates == 5:
            if self.how == "stop":
                self.stop()
            else:
                self.end_session("enough")
            return [Action.pulse("box", 0, 0.1, reason="last pulse")]
        return []


@pytest.mark.parametrize("how", ["stop", "end_session"])
def test_ending_inside_on_update_sends_its_actions_then_the_switch_offs(
    how: str, tmp_path: Path
) -> None:
    experiment = _StopsInsideUpdate(how)
    observations = [_observation(frame, CENTRE) for frame in range(12)]
    _, device, events = _run_live(experiment, observations, tmp_path)

    assert experiment.updates == 5  # it acted no more after ending
    assert experiment.finish_reason == ("stopped" if how == "stop" else "enough")
    _assert_every_action_row_was_sent(events, device)
    rows = list(zip(events["kind"], events["detail"], events["frame_index"], strict=True))
    finish = next(i for i, (kind, *_) in enumerate(rows) if kind == "finish")
    in_the_update = [(kind, detail) for kind, detail, frame in rows[: finish + 1] if frame == "4"]
    assert in_the_update == [
        ("action", "pulse channel=0 duration_s=0.1 reason=last pulse"),  # the update's own
        ("action", "off channel=1 reason=finish"),  # then the held output's switch-off
        ("finish", experiment.finish_reason),
    ]
    # the live loop's stop at the end switches every output used off, and sends it
    assert _action_rows(events)[-2:] == ["off channel=1 reason=stop", "off channel=0 reason=stop"]


def test_end_session_outside_an_update_finishes_at_the_next_one() -> None:
    experiment = _StopsInsideUpdate("none")
    experiment.start()
    assert experiment.update(_observation(0, CENTRE)) == [
        Action.on("box", 1, reason="_StopsInsideUpdate")  # no reason given: the experiment's
    ]
    experiment.end_session("the window asked")
    assert experiment.state != "finished"
    assert experiment.update(_observation(1, CENTRE)) == [Action.off("box", 1, reason="finish")]
    assert experiment.finished and experiment.finish_reason == "the window asked"
    assert experiment.updates == 1


def test_log_and_end_trial_are_rows_of_the_event_log() -> None:
    class Notes(Experiment):
        def __init__(self) -> None:
            super().__init__(trial_duration_s=None)

        def on_update(self, obs: object, t: float) -> list[Action]:
            if self.start_trial("first frame"):
                self.log("block", "A")
            elif self.in_trial:
                self.end_trial("one frame is enough")
            return []

    experiment = Notes()
    with pytest.raises(RuntimeError, match="has not started"):
        experiment.log("early", "")
    experiment.start()
    for frame in range(3):
        experiment.update(_observation(frame, CENTRE))
    rows = [(e.kind, e.name, e.detail, e.trial) for e in experiment.events]
    assert ("note", "block", "A", 1) in rows
    assert ("trial_end", "first frame", "one frame is enough", 1) in rows
    with pytest.raises(ValueError, match="name must be a non-empty text"):
        experiment.log("", "x")


# --------------------------------------------------------------------------------------------------
# A lab's attribute cannot shadow the machinery
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "value", "advice"),
    [
        ("events", [], "self.log(name, detail)"),
        ("trials", 0, "len(self.trials)"),
        ("state", "left", "self.phase"),
        ("now_s", 3.0, "on_update's t"),
        ("update", None, "on_update"),
    ],
)
def test_assigning_a_machinery_name_is_refused_with_what_to_use(
    attribute: str, value: object, advice: str
) -> None:
    class Lab(Experiment):
        def __init__(self) -> None:
            super().__init__()
            setattr(self, attribute, value)

        def on_update(self, obs: object, t: float) -> list[Action]:
            return []

    with pytest.raises(AttributeError) as info:
        Lab()
    message = str(info.value)
    assert f"self.{attribute} cannot be assigned" in message and advice in message
    assert f"self.my_{attribute}" in message


@pytest.mark.parametrize(
    ("method", "advice"),
    [("update", "on_update"), ("stop", "end_session(reason)"), ("summary", "self.log")],
)
def test_a_subclass_defining_a_machinery_method_is_refused(method: str, advice: str) -> None:
    body = {"on_update": lambda self, obs, t: [], method: lambda self, *args: None}
    with pytest.raises(TypeError) as info:
        type("Lab", (Experiment,), body)
    message = str(info.value)
    assert f"Lab defines {method!r}, which Experiment reserves" in message
    assert advice in message and f"my_{method}" in message


def test_a_labs_own_attributes_and_the_hooks_are_free() -> None:
    class Lab(Experiment):
        description = "its own description"

        def __init__(self) -> None:
            super().__init__(max_trials=2)
            self.phase = "A"  # names of its own, private ones too
            self._state_of_my_own = {"count": 0}
            self.add_trigger("cue", Region(Circle(*CUE, 60), "inside", "nose"))

        def on_update(self, obs: object, t: float) -> list[Action]:
            if self.rose("cue") and self.start_trial("cue"):
                self._state_of_my_own["count"] += 1
                return [Action.pulse("box", 0, 0.1)]
            return []

        def deciding_trigger(self, action: Action) -> str | None:
            return "cue"

    experiment = Lab()
    experiment.start()
    for frame, observation in enumerate(_visits("FF")):
        experiment.update(observation)
        if frame == 3:
            with pytest.raises(AttributeError):
                experiment.trials = []  # type: ignore[misc]
    assert experiment._state_of_my_own == {"count": 2} and experiment.phase == "A"
    assert len(experiment.trials) == 2 and experiment.state == "finished"
    assert experiment.description == "its own description"


def test_forgetting_super_init_says_so() -> None:
    class Lab(Experiment):
        def __init__(self) -> None:
            self.add_trigger("cue", Region(Circle(*CUE, 60), "inside", "nose"))

        def on_update(self, obs: object, t: float) -> list[Action]:
            return []

    with pytest.raises(AttributeError, match=r"call super\(\)\.__init__\(\.\.\.\)"):
        Lab()


# --------------------------------------------------------------------------------------------------
# Existing experiments still run; the page's example is this staircase
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["AlternatingReward", "ExampleExperiment", "reward_on_dwell"])
def test_shipped_examples_still_run(name: str) -> None:
    experiment = load_experiment(name)
    experiment.start()
    actions = []
    for observation in _visits("SFS"):
        actions += experiment.update(observation)
    actions += experiment.stop()
    assert experiment.state == "finished"
    assert len(experiment.events.of_kind("action")) == len(actions)


def _docs_example() -> str:
    """The complete example of docs/experiments.md's "Writing an experiment class"."""
    if not DOCS.is_file():
        pytest.skip(f"{DOCS} is not in this checkout")
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Writing an experiment class", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    complete = [block for block in blocks if "class Staircase(Experiment)" in block]
    assert len(complete) == 1, "the section has one complete example, the staircase"
    return complete[0]


def test_the_documented_example_is_a_working_staircase(tmp_path: Path) -> None:
    namespace: dict[str, object] = {}
    exec(compile(_docs_example(), str(DOCS), "exec"), namespace)  # the page's own code
    documented = namespace["Staircase"]
    assert isinstance(documented, type) and issubclass(documented, Experiment)
    experiment = documented(
        cue=Circle(*CUE, 60), target=Circle(*TARGET, 60), light="light", reversals=4
    )
    _, device, events = _run_live(experiment, _visits(OUTCOMES), tmp_path)
    assert experiment.finish_reason == "4 reversals" and len(experiment.trials) == 7
    _assert_every_action_row_was_sent(events, device)
    pulses = [d for d in _action_rows(events) if d.startswith("pulse")]
    assert [float(re.search(r"duration_s=([\d.]+)", p)[1]) for p in pulses] == CUES_SENT  # type: ignore[index]
