"""Issue 43: the small Experiment API, as a lab uses it.

A staircase with memory, written only against the documented surface (``on_start``,
``on_update``, ``on_trial_end``; ``add_trigger``, ``rose``, ``start_trial``, ``end_trial``,
``end_session``, ``log``; ``in_trial``), is run by its :class:`ExperimentRuntime` on synthetic
observations: it ends itself after N reversals, and ``events.csv`` (a real :class:`EventCsvWriter`
file, read back) logs exactly the actions it returned, every one of them sent when a real
dispatcher (:class:`ExperimentRun` with a real log device) performs them. Ending early from an
update (``end_experiment``, ``end_session``, or ``stop()`` inside ``on_update``, the bug of the
issue) sends the update's actions, then the switch-offs; ``end_session`` (and ``stop()``, its
deprecated alias) also asks the loop to end the whole session. Issue 55: the runtime holds the
lab's experiment, so a lab may name its attributes freely (``events``, ``update``...); the loop's
calls on the lab's object say to use the runtime; the shipped examples still run.
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
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.events import EventCsvWriter
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.registry import load_experiment
from deeplabstream.experiments.triggers import AnyOf, Circle, Region
from deeplabstream.experiments.triggers.base import Trigger
from deeplabstream.experiments.triggers.combinators import All
from deeplabstream.hardware.simulator.arena import KEYPOINT_NAMES
from deeplabstream.hardware.stimulation.log_device import LogStimulator
from deeplabstream.live.processes.analysis.dispatch import ExperimentRun
from deeplabstream.live.processes.analysis.experiment_report import run_summary

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
    runtime = ExperimentRuntime(experiment)
    runtime.events.attach(EventCsvWriter(events_path))
    run = ExperimentRun(runtime, {name: device for name in ("light", "box")}, events_path)
    runtime.start()
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
    runtime = ExperimentRuntime(experiment)
    path = tmp_path / "events.csv"
    runtime.events.attach(EventCsvWriter(path))
    runtime.start()
    returned: list[Action] = []
    for observation in _visits(OUTCOMES):
        returned += runtime.update(observation)
    returned += runtime.stop()
    runtime.events.close()

    assert runtime.state == "finished" and runtime.machine.finish_reason == "4 reversals"
    assert experiment.state == "finished"  # the lab's read-only view is the runtime's
    # end_session (issue 55): the whole session is asked to end, for the same reason
    assert runtime.session_end_requested == "4 reversals"
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
    summary = run_summary(run)
    assert summary["actions_not_sent"] == 0
    assert summary["session_end_requested"] == "4 reversals"


class _StopsInsideUpdate(Experiment):
    """The issue's bug: ``self.stop()`` (or an end call) inside on_update, with actions."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.updates = 0

    def on_start(self, t: float) -> Iterable[Action]:
        return [Action.on("box", 1)]  # held: the end must switch it off

    def on_update(self, obs: object, t: float) -> Iterable[Action]:
        self.updates += 1
        if self.updates == 5:
            if self.how == "stop":  # the previous release's way: end_session's alias now
                self.stop()
            elif self.how == "end_experiment":
                self.end_experiment("enough")
            else:
                self.end_session("enough")
            return [Action.pulse("box", 0, 0.1, reason="last pulse")]
        return []


@pytest.mark.parametrize("how", ["stop", "end_experiment", "end_session"])
def test_ending_inside_on_update_sends_its_actions_then_the_switch_offs(
    how: str, tmp_path: Path
) -> None:
    experiment = _StopsInsideUpdate(how)
    observations = [_observation(frame, CENTRE) for frame in range(12)]
    run, device, events = _run_live(experiment, observations, tmp_path)
    runtime = run.runtime

    assert experiment.updates == 5  # it acted no more after ending
    assert runtime.machine.finish_reason == ("stopped" if how == "stop" else "enough")
    # end_experiment ends the experiment alone; end_session (and stop, its alias) the session too
    session_end = {"stop": "stopped", "end_experiment": None, "end_session": "enough"}[how]
    assert runtime.session_end_requested == session_end
    _assert_every_action_row_was_sent(events, device)
    rows = list(zip(events["kind"], events["detail"], events["frame_index"], strict=True))
    finish = next(i for i, (kind, *_) in enumerate(rows) if kind == "finish")
    in_the_update = [(kind, detail) for kind, detail, frame in rows[: finish + 1] if frame == "4"]
    assert in_the_update == [
        ("action", "pulse channel=0 duration_s=0.1 reason=last pulse"),  # the update's own
        ("action", "off channel=1 reason=finish"),  # then the held output's switch-off
        ("finish", runtime.machine.finish_reason),
    ]
    # the live loop's stop at the end switches every output used off, and sends it
    assert _action_rows(events)[-2:] == ["off channel=1 reason=stop", "off channel=0 reason=stop"]


@pytest.mark.parametrize("how", ["end_experiment", "end_session"])
def test_an_end_outside_an_update_finishes_at_the_next_one(how: str) -> None:
    experiment = _StopsInsideUpdate("none")
    runtime = ExperimentRuntime(experiment)
    runtime.start()
    assert runtime.update(_observation(0, CENTRE)) == [
        Action.on("box", 1, reason="_StopsInsideUpdate")  # no reason given: the experiment's
    ]
    getattr(experiment, how)("the window asked")
    assert runtime.state != "finished"
    assert runtime.update(_observation(1, CENTRE)) == [Action.off("box", 1, reason="finish")]
    assert runtime.machine.finished and runtime.machine.finish_reason == "the window asked"
    assert experiment.updates == 1
    expected = "the window asked" if how == "end_session" else None
    assert runtime.session_end_requested == expected


def test_end_experiment_before_the_start_says_to_end_from_a_hook() -> None:
    runtime = ExperimentRuntime(_StopsInsideUpdate("none"))
    with pytest.raises(RuntimeError, match="has not started; end it from a hook"):
        runtime.experiment.end_experiment("too early")
    assert runtime.state == "idle" and runtime.session_end_requested is None


def test_the_session_duration_ends_the_experiment_and_asks_for_the_sessions_end() -> None:
    class Timed(Experiment):
        def __init__(self) -> None:
            super().__init__(session_duration_s=1.0)
            self.updates = 0

        def on_update(self, obs: object, t: float) -> list[Action]:
            self.updates += 1
            return []

    experiment = Timed()
    runtime = ExperimentRuntime(experiment)
    runtime.start()
    for frame in range(2 * FPS):
        runtime.update(_observation(frame, CENTRE))
    assert (
        runtime.machine.finished and runtime.session_end_requested == runtime.machine.finish_reason
    )
    assert runtime.machine.finish_reason == "session duration of 1 s reached"
    assert experiment.updates == FPS  # frames 0..29: the update at 1.0 s ends it, unseen
    assert runtime.summary()["session_end_requested"] == runtime.machine.finish_reason


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
    runtime = ExperimentRuntime(experiment)
    with pytest.raises(RuntimeError, match="has not started"):
        experiment.log("early", "")
    runtime.start()
    for frame in range(3):
        runtime.update(_observation(frame, CENTRE))
    rows = [(e.kind, e.name, e.detail, e.trial) for e in runtime.events]
    assert ("note", "block", "A", 1) in rows
    assert ("trial_end", "first frame", "one frame is enough", 1) in rows
    with pytest.raises(ValueError, match="name must be a non-empty text"):
        experiment.log("", "x")


# --------------------------------------------------------------------------------------------------
# The runtime holds the lab's experiment: a lab's names are its own
# --------------------------------------------------------------------------------------------------


class _NamesLikeTheMachinery(Experiment):
    """A lab's experiment whose own names were the machinery's before issue 55 (then refused)."""

    def __init__(self) -> None:
        super().__init__(max_trials=2)
        self.events: list[float] = []  # its own record of update times
        self.finished = "not yet"
        self.trigger_counts = {"mine": 0}
        self.add_trigger("cue", Region(Circle(*CUE, 60), "inside", "nose"))

    def update(self, *args: object) -> None:  # helpers of its own: the runtime never calls them
        raise AssertionError("the runtime called the lab's own update")

    def start(self, *args: object) -> None:
        raise AssertionError("the runtime called the lab's own start")

    def pause(self, *args: object) -> None:
        raise AssertionError("the runtime called the lab's own pause")

    def summary(self) -> str:
        return "the lab's own summary"

    def on_update(self, obs: object, t: float) -> list[Action]:
        self.events.append(t)
        if self.rose("cue") and self.start_trial("cue"):
            self.trigger_counts["mine"] += 1
            return [Action.pulse("box", 0, 0.1)]
        return []


def test_a_labs_attributes_and_methods_named_as_the_runtimes_break_nothing() -> None:
    experiment = _NamesLikeTheMachinery()
    runtime = ExperimentRuntime(experiment)
    runtime.start()
    visits = _visits("FF")
    returned: list[Action] = []
    for observation in visits:
        returned += runtime.update(observation)
        if observation.frame_index == 10:
            assert runtime.pause() == [] and runtime.resume() == []  # the runtime's, not the lab's
    returned += runtime.stop()

    # the lab's own names kept the lab's values
    assert experiment.finished == "not yet" and experiment.trigger_counts == {"mine": 2}
    assert experiment.summary() == "the lab's own summary"
    assert 0 < len(experiment.events) < len(visits)  # its updates until the second trial ended
    # the machinery's are the runtime's
    assert (
        runtime.machine.finished
        and len(runtime.trials) == 2
        and runtime.trigger_counts == {"cue": 2}
    )
    assert runtime.summary()["trials"]["count"] == 2
    assert [a.command for a in returned].count("pulse") == 2
    assert len(runtime.events.of_kind("action")) == len(returned)


@pytest.mark.parametrize(
    ("attribute", "value"),
    [("trials", 0), ("state", "left"), ("now_s", 3.0), ("in_trial", True), ("triggers", {})],
)
def test_assigning_over_a_read_only_property_is_pythons_own_error(
    attribute: str, value: object
) -> None:
    class Lab(Experiment):
        def __init__(self) -> None:
            super().__init__()
            setattr(self, attribute, value)

        def on_update(self, obs: object, t: float) -> list[Action]:
            return []

    with pytest.raises(AttributeError, match=attribute):
        Lab()


@pytest.mark.parametrize("call", ["start", "update", "pause", "resume", "summary", "events"])
def test_the_loops_calls_on_the_labs_object_say_to_use_the_runtime(call: str) -> None:
    experiment = _StopsInsideUpdate("none")
    with pytest.raises(AttributeError) as info:
        getattr(experiment, call)
    message = str(info.value)
    assert "runtime = ExperimentRuntime(experiment)" in message
    assert f"runtime.{call}(" in message and "_StopsInsideUpdate" in message
    with pytest.raises(AttributeError, match="has no attribute 'nothing_of_the_kind'"):
        experiment.nothing_of_the_kind  # noqa: B018 - a missing name is Python's plain error


def test_an_experiment_no_runtime_holds_says_how_to_run_it() -> None:
    experiment = _StopsInsideUpdate("none")
    for ask in (lambda: experiment.state, lambda: experiment.is_true("cue"), experiment.stop):
        with pytest.raises(RuntimeError, match=r"not running.*ExperimentRuntime\(experiment\)"):
            ask()


def test_a_runtime_takes_an_experiment_once_after_its_triggers() -> None:
    experiment = _StopsInsideUpdate("none")
    runtime = ExperimentRuntime(experiment)
    assert runtime.experiment is experiment and runtime.name == "_StopsInsideUpdate"
    with pytest.raises(RuntimeError, match="run by another runtime already"):
        ExperimentRuntime(experiment)
    with pytest.raises(RuntimeError, match="add triggers in __init__"):
        experiment.add_trigger("late", Region(Circle(*CUE, 60), "inside", "nose"))
    with pytest.raises(TypeError, match="runs an Experiment"):
        ExperimentRuntime(object())  # type: ignore[arg-type]


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
    runtime = ExperimentRuntime(experiment)
    runtime.start()
    for frame, observation in enumerate(_visits("FF")):
        runtime.update(observation)
        if frame == 3:
            with pytest.raises(AttributeError):
                experiment.trials = []  # type: ignore[misc]
    assert experiment._state_of_my_own == {"count": 2} and experiment.phase == "A"
    assert len(experiment.trials) == 2 and experiment.state == "finished"
    assert experiment.description == "its own description"


class _CountsSteps(Trigger):
    """Always true; counts how often it is stepped."""

    kind = "counts_steps"

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0

    def step(self, obs: Observation) -> bool:
        self.steps += 1
        return True

    def params(self) -> dict[str, object]:
        return {}


class _SharedChild(Experiment):
    """A registered trigger read by two combinators, each registered too."""

    def __init__(self, share_the_named: bool) -> None:
        super().__init__()
        self.counted = _CountsSteps()
        named = self.add_trigger("seen", self.counted)
        child = named if share_the_named else self.counted  # the raw one: the documented mistake
        both = self.add_trigger("both", All(child, Region(Circle(*CUE, 60), "inside", "nose")))
        self.add_trigger("either", AnyOf(child, both))

    def on_update(self, obs: object, t: float) -> list[Action]:
        return []


@pytest.mark.parametrize(("share_the_named", "steps_per_update"), [(True, 1), (False, 3)])
def test_a_named_trigger_shared_by_two_combinators_is_updated_once_per_update(
    share_the_named: bool, steps_per_update: int
) -> None:
    experiment = _SharedChild(share_the_named)
    runtime = ExperimentRuntime(experiment)
    runtime.start()
    for frame in range(10):
        if frame == 4:
            runtime.pause()  # triggers keep updating while paused, still once per update
        if frame == 7:
            runtime.resume()
        runtime.update(_observation(frame, CENTRE))
    assert experiment.counted.steps == 10 * steps_per_update
    assert runtime.trigger_counts == {"seen": 1, "both": 0, "either": 1}
    assert experiment.is_true("seen") and experiment.is_true("either")


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
    runtime = ExperimentRuntime(load_experiment(name))
    runtime.start()
    actions = []
    for observation in _visits("SFS"):
        actions += runtime.update(observation)
    actions += runtime.stop()
    assert runtime.state == "finished"
    assert len(runtime.events.of_kind("action")) == len(actions)


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
    run, device, events = _run_live(experiment, _visits(OUTCOMES), tmp_path)
    assert run.runtime.machine.finish_reason == "4 reversals" and len(experiment.trials) == 7
    _assert_every_action_row_was_sent(events, device)
    pulses = [d for d in _action_rows(events) if d.startswith("pulse")]
    assert [float(re.search(r"duration_s=([\d.]+)", p)[1]) for p in pulses] == CUES_SENT  # type: ignore[index]


def test_the_pages_code_blocks_that_drive_a_runtime_run_as_written() -> None:
    """docs/experiments.md's first example and its offline test run as a lab copies them."""
    if not DOCS.is_file():
        pytest.skip(f"{DOCS} is not in this checkout")
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    offline = [block for block in blocks if "simulate_keypoints(" in block]
    first = next(block for block in blocks if "zone_wall_freeze_laser" in block)
    assert len(offline) == 1
    keypoints = np.tile([320.0, 240.0, 1.0], (len(KEYPOINT_NAMES), 1))
    observations = [Observation(i / 30, "top", i, keypoints, KEYPOINT_NAMES) for i in range(30)]
    namespace: dict[str, object] = {"observations": observations}
    exec(compile(first, str(DOCS), "exec"), namespace)  # the page's own code
    exec(compile(offline[0], str(DOCS), "exec"), {})
    runtime = namespace["runtime"]
    assert isinstance(runtime, ExperimentRuntime) and runtime.state == "finished"


def test_a_misspelt_option_is_refused_naming_it_and_every_option() -> None:
    """The options are ExperimentOptions' fields, declared once: a typo names them all."""

    class Typo(Experiment):
        def __init__(self) -> None:
            super().__init__(max_trial=3)

        def on_update(self, obs: Observation, t: float) -> list[Action]:
            return []

    with pytest.raises(TypeError, match=r"unknown experiment option\(s\) max_trial; .*max_trials"):
        Typo()
