"""Experiments against ground truth: the simulated arena's true keypoints, scripted or random.

Every expected frame here is computed independently of ``experiments.base`` / ``config``: plain
geometry on the simulation's true keypoints, then plain loops for the trial timing, compared with
the actions the experiment returns when fed one observation per frame (stamped T0 + frame / FPS).
"""

from __future__ import annotations

import configparser
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment, Trial
from deeplabstream.experiments.config.parse import (
    ExperimentConfigError,
    load_experiment_config,
    parse_experiment_config,
)
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.events import EVENT_COLUMNS, EventCsvWriter, EventLog
from deeplabstream.experiments.examples import AlternatingReward
from deeplabstream.experiments.observation import Observation, Observations, pair_nearest
from deeplabstream.experiments.registry import (
    CONFIG_FOLDER,
    ExperimentNotFoundError,
    available_experiments,
    config_names,
    load_experiment,
)
from deeplabstream.experiments.triggers import COMBINATOR_KINDS, TRIGGER_KINDS, Circle, Region
from deeplabstream.hardware.simulator.arena import KEYPOINT_NAMES, ArenaParams, simulate_keypoints
from tests.support.paths import shared_data

FPS = 30.0
T0 = 1000.0  # camera clocks do not start at zero
NOSE, NECK, CENTER = (KEYPOINT_NAMES.index(n) for n in ("nose", "neck", "body_center"))
SHIPPED = (
    "ExampleExperiment",
    "head_direction_opto",
    "reward_on_dwell",
    "freezing_opto",
    "ibl_paw_two_cameras",
    "zone_wall_freeze_laser",
    "social_example",
)


@dataclass(frozen=True, slots=True)
class HostStampedObservation(Observation):
    """An observation that also carries its frame's host arrival time."""

    host_time_s: float | None = None


def scripted(waypoints: list[tuple[int, float, float]], n: int) -> np.ndarray:
    """True keypoints (n, 6, 2) of a scripted path."""
    return simulate_keypoints(ArenaParams(motion="waypoints", waypoints=tuple(waypoints)), n)


def random_walk(seconds: float, seed: int = 3) -> np.ndarray:
    """True keypoints of the seeded random walk."""
    return simulate_keypoints(ArenaParams(seed=seed), int(seconds * FPS))


def observations(
    keypoints: np.ndarray, likelihood: np.ndarray | None = None, camera: str = "top"
) -> list[HostStampedObservation]:
    """One observation per frame, stamped T0 + frame / FPS (host time 0.5 ms later)."""
    made = []
    for frame, points in enumerate(keypoints):
        rows = np.ones((points.shape[0], 3))
        rows[:, :2] = points
        if likelihood is not None:
            rows[:, 2] = likelihood[frame]
        t = T0 + frame / FPS
        made.append(HostStampedObservation(t, camera, frame, rows, KEYPOINT_NAMES, None, t + 5e-4))
    return made


def run(
    runtime: ExperimentRuntime, stream: Sequence[Observation | Observations], start: bool = True
) -> dict[int, list[Action]]:
    """Feed every observation; frame (position in the stream) -> the actions it returned."""
    if start:
        runtime.start()
    got: dict[int, list[Action]] = {}
    for index, obs in enumerate(stream):
        actions = runtime.update(obs)
        if actions:
            got[index] = actions
    return got


def runtime_of(name: str) -> ExperimentRuntime:
    """The runtime of the shipped experiment ``name``, as the loop holds it."""
    return ExperimentRuntime(load_experiment(name))


def variant(name: str, changes: dict[tuple[str, str], str]) -> ExperimentRuntime:
    """The runtime of a shipped config with some keys changed (section, KEY) -> value."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(CONFIG_FOLDER / f"{name}.ini", encoding="utf-8")
    for (section, key), value in changes.items():
        parser[section][key] = value
    text = io.StringIO()
    parser.write(text)
    return ExperimentRuntime(parse_experiment_config(text.getvalue(), Path(f"{name}.ini")).build())


def inside_circle(points: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    return np.hypot(points[:, 0] - cx, points[:, 1] - cy) <= r


def rising_frames(state: np.ndarray) -> list[int]:
    """Frames where a boolean series becomes True (True at frame 0 counts)."""
    before = np.concatenate(([False], state[:-1]))
    return np.flatnonzero(state & ~before).tolist()


def example_entries(keypoints: np.ndarray) -> dict[int, int]:
    """Entry frame -> channel (1 left, 2 right), from the nose's true position."""
    nose = keypoints[:, NOSE]
    entries = {f: 1 for f in rising_frames(inside_circle(nose, 160, 240, 60))}
    entries.update({f: 2 for f in rising_frames(inside_circle(nose, 480, 240, 60))})
    return dict(sorted(entries.items()))


def apply_iti(frames: list[int], iti_s: float, max_trials: int | None = None) -> list[int]:
    """Instant trials: a frame starts one if iti_s has passed since the previous one."""
    kept: list[int] = []
    for frame in frames:
        if max_trials is not None and len(kept) >= max_trials:
            break
        if not kept or (frame - kept[-1]) / FPS >= iti_s - 1e-9:
            kept.append(frame)
    return kept


# A path through both regions of ExampleExperiment (left circle 160,240 r60; right 480,240 r60).
EXAMPLE_PATH = [
    (0, 320, 80),
    (40, 160, 240),
    (80, 320, 240),
    (120, 480, 240),
    (160, 320, 80),
    (200, 160, 240),
    (240, 160, 240),
    (260, 160, 80),
]


# --------------------------------------------------------------------------------------------------
# ExampleExperiment: entries and stimuli exactly where the geometry says
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["scripted", "random"])
def test_example_experiment_acts_on_the_frames_of_each_entry(path: str) -> None:
    keypoints = scripted(EXAMPLE_PATH, 280) if path == "scripted" else random_walk(120)
    expected = example_entries(keypoints)
    fewest = 1 if path == "scripted" else 5
    assert sum(ch == 1 for ch in expected.values()) >= max(fewest, 2)
    assert sum(ch == 2 for ch in expected.values()) >= fewest

    runtime = runtime_of("ExampleExperiment")
    got = run(runtime, observations(keypoints))

    assert sorted(got) == list(expected)
    for frame, channel in expected.items():
        (action,) = got[frame]
        assert action == Action.pulse(
            "stimulus_box", channel, 1.0, reason="left_entry" if channel == 1 else "right_entry"
        )
    summary = runtime.summary()
    assert summary["trials"]["count"] == len(expected)
    counts = {name: t["times_true"] for name, t in summary["triggers"].items()}
    assert counts == {
        "nose_in_left": sum(ch == 1 for ch in expected.values()),
        "nose_in_right": sum(ch == 2 for ch in expected.values()),
    }
    # Trial starts and the action events name the frame that caused them.
    starts = runtime.events.of_kind("trial_start")
    assert [e.frame_index for e in starts] == list(expected)
    assert [e.time_s for e in starts] == [T0 + f / FPS for f in expected]
    stop = runtime.stop()
    assert {a.output for a in stop} == {("stimulus_box", 1), ("stimulus_box", 2)}
    assert all(a.command == "off" and a.reason == "stop" for a in stop)
    assert runtime.stop() == []


def test_max_trials_caps_the_actions_and_finishes() -> None:
    keypoints = random_walk(120)
    entries = list(example_entries(keypoints))
    runtime = variant("ExampleExperiment", {("Experiment", "MAX_TRIALS"): "3"})
    got = run(runtime, observations(keypoints))
    assert sorted(got) == entries[:3]
    assert runtime.state == "finished"
    assert runtime.machine.finish_reason == "3 trials done"
    assert runtime.session_end_requested is None  # the experiment ended, not the session
    (finish,) = runtime.events.of_kind("finish")
    assert finish.frame_index == entries[2]
    # Nothing is evaluated after the finish: no trigger events later than it.
    assert max(e.frame_index for e in runtime.events.of_kind("trigger")) <= entries[2]


def test_inter_trial_interval_blocks_new_trials_for_exactly_the_interval() -> None:
    # EDGE = while: a trial starts whenever one can, so with the nose parked in the left region
    # the trials come exactly one interval apart.
    keypoints = scripted([(0, 320, 80), (40, 160, 240), (200, 160, 240), (240, 320, 80)], 260)
    inside = inside_circle(keypoints[:, NOSE], 160, 240, 60)
    first = int(np.argmax(inside))
    last = int(np.flatnonzero(inside)[-1])
    runtime = variant(
        "ExampleExperiment",
        {("Experiment", "INTER_TRIAL_INTERVAL"): "1", ("Rule left_entry", "EDGE"): "while"},
    )
    got = run(runtime, observations(keypoints))
    assert sorted(got) == list(range(first, last + 1, 30))
    assert len(got) >= 4

    # Rising edges within the interval are lost, not postponed.
    keypoints = random_walk(120)
    entries = list(example_entries(keypoints))
    runtime = variant("ExampleExperiment", {("Experiment", "INTER_TRIAL_INTERVAL"): "5"})
    got = run(runtime, observations(keypoints))
    expected = apply_iti(entries, 5.0)
    assert len(expected) < len(entries)
    assert sorted(got) == expected


def test_session_duration_ends_the_experiment_and_the_session() -> None:
    keypoints = random_walk(30)
    entries = list(example_entries(keypoints))
    runtime = variant("ExampleExperiment", {("Experiment", "SESSION_DURATION"): "12.5"})
    got = run(runtime, observations(keypoints))
    end = int(12.5 * FPS)
    assert sorted(got) == [f for f in entries if f < end]
    assert any(f >= end for f in entries)  # entries after the end were ignored
    (finish,) = runtime.events.of_kind("finish")
    assert finish.frame_index == end and finish.detail == "session duration of 12.5 s reached"
    assert runtime.state == "finished"
    assert runtime.events.events[-1] is finish
    # the loop is asked to end the whole session, for the same reason (issue 55)
    assert runtime.session_end_requested == "session duration of 12.5 s reached"


def test_pause_stops_actions_until_resume() -> None:
    keypoints = random_walk(120)
    entries = list(example_entries(keypoints))
    pause_at, resume_at = entries[2] - 5, entries[5] - 5
    runtime = runtime_of("ExampleExperiment")
    runtime.start()
    got: dict[int, list[Action]] = {}
    for frame, obs in enumerate(observations(keypoints)):
        if frame == pause_at:
            assert runtime.pause() == []
            assert runtime.state == "paused"
        if frame == resume_at:
            runtime.resume()
        actions = runtime.update(obs)
        if actions:
            got[frame] = actions
    assert sorted(got) == [f for f in entries if f < pause_at or f >= resume_at]
    (pause,) = runtime.events.of_kind("pause")
    (resume,) = runtime.events.of_kind("resume")
    assert pause.frame_index == pause_at - 1 and resume.frame_index == resume_at - 1
    # Triggers kept updating while paused: their entries were still counted.
    counts = runtime.summary()["triggers"]
    assert sum(t["times_true"] for t in counts.values()) == len(entries)


def test_pause_switches_held_outputs_off_and_ends_the_trial() -> None:
    experiment = load_experiment("head_direction_opto")
    runtime = ExperimentRuntime(experiment)
    keypoints = random_walk(120)
    runtime.start()
    for obs in observations(keypoints):
        runtime.update(obs)
        if experiment.is_held("laser", 0):
            break
    assert experiment.in_trial
    trial = experiment.trial.index
    assert runtime.pause() == [Action.off("laser", 0, reason=f"trial {trial} ended")]
    assert experiment.trials[-1].end_reason == "paused"
    assert runtime.pause() == []  # already paused
    assert runtime.resume() == []
    assert experiment.state == "inter_trial"


# --------------------------------------------------------------------------------------------------
# The other shipped protocols
# --------------------------------------------------------------------------------------------------


def test_freezing_protocol_fires_when_the_true_stop_has_lasted_the_duration() -> None:
    # Body centre at 150 px/s, stopping dead at frame 60. With WINDOW_S = 0.2 and THRESHOLD = 20
    # px/s the freeze is dated 0.2 * 20 / 150 = 27 ms before the true stop, less than a frame,
    # so it fires on the first frame at which the stop has lasted DURATION_S = 2 s.
    stop = 60
    keypoints = scripted([(0, 100, 240), (stop, 400, 240)], 300)
    assert np.allclose(keypoints[stop:, CENTER], keypoints[stop, CENTER])
    assert not np.allclose(keypoints[stop - 1, CENTER], keypoints[stop, CENTER])
    got = run(runtime_of("freezing_opto"), observations(keypoints))
    assert list(got) == [stop + int(2 * FPS)]
    (action,) = got[stop + 60]
    assert action == Action.pattern("laser", 0, 0.01, 0.04, 20, reason="stimulate")
    assert action.total_s == pytest.approx(1.0)


def test_reward_on_dwell_rewards_after_two_seconds_inside_and_holds_brief_dropouts() -> None:
    # In, a tracking dropout of 0.1 s while dwelling (hold 0.2 s bridges it), out, back in.
    keypoints = scripted(
        [(0, 560, 200), (30, 560, 400), (150, 560, 400), (180, 560, 200), (210, 560, 400)], 330
    )
    nose = keypoints[:, NOSE]
    inside = (nose[:, 0] >= 500) & (nose[:, 0] <= 620) & (nose[:, 1] >= 340) & (nose[:, 1] <= 460)
    likelihood = np.ones((len(keypoints), len(KEYPOINT_NAMES)))
    entries = rising_frames(inside)
    assert len(entries) == 2
    likelihood[entries[0] + 25 : entries[0] + 28, NOSE] = 0.1
    got = run(runtime_of("reward_on_dwell"), observations(keypoints, likelihood))
    assert sorted(got) == [entries[0] + 60, entries[1] + 60]
    assert all(a == [Action.pulse("water_valve", 0, 0.05, reason="reward")] for a in got.values())

    # With POLICY = missing the dropout restarts the dwell timer: the first reward comes later.
    runtime = variant(
        "reward_on_dwell", {("Experiment", "POLICY"): "missing", ("Experiment", "HOLD"): "0"}
    )
    got = run(runtime, observations(keypoints, likelihood))
    assert sorted(got)[0] == entries[0] + 28 + 60


@pytest.mark.parametrize("trial_duration", [5.0, 1.0])
def test_head_direction_opto_follows_the_true_head_direction(trial_duration: float) -> None:
    keypoints = random_walk(240)
    neck, nose = keypoints[:, NECK], keypoints[:, NOSE]
    head = np.arctan2(nose[:, 1] - neck[:, 1], nose[:, 0] - neck[:, 0])
    target = np.arctan2(240 - neck[:, 1], 10 - neck[:, 0])
    bearing = np.degrees(np.angle(np.exp(1j * (target - head))))
    facing = np.abs(bearing) <= 30

    # The protocol in plain words: on when facing starts and a trial may start (10 s after the
    # last trial ended, fewer than 30 trials); off when facing ends or when the trial times out.
    expected: dict[int, str] = {}
    trial_start, last_end, trials, timeouts = None, -math.inf, 0, 0
    for frame in range(len(facing)):
        t = frame / FPS
        if trial_start is not None and t - trial_start >= trial_duration - 1e-9:
            expected[frame], trial_start, last_end = "off", None, t
            timeouts += 1
        rose = facing[frame] and (frame == 0 or not facing[frame - 1])
        fell = not facing[frame] and frame > 0 and facing[frame - 1]
        if trial_start is None and rose and t - last_end >= 10 - 1e-9 and trials < 30:
            expected[frame], trial_start, trials = "on", t, trials + 1
        elif trial_start is not None and fell:
            expected[frame], trial_start, last_end = "off", None, t
    assert list(expected.values()).count("on") >= 5
    assert timeouts >= 1 or trial_duration == 5.0

    if trial_duration == 5.0:
        runtime = runtime_of("head_direction_opto")
    else:
        changes = {("Experiment", "TRIAL_DURATION"): str(trial_duration)}
        runtime = variant("head_direction_opto", changes)
    got = run(runtime, observations(keypoints))
    assert {f: [a.command for a in actions] for f, actions in got.items()} == {
        f: [command] for f, command in expected.items()
    }
    reasons = [a.reason for actions in got.values() for a in actions]
    assert sum(r.endswith(" ended") for r in reasons) == timeouts
    assert set(reasons) - {"head_turns_to_wall", "head_turns_away"} == {
        r for r in reasons if r.endswith(" ended")
    }


def _read_lp_csv(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    table = pd.read_csv(path, header=[0, 1, 2], index_col=0)
    names = tuple(dict.fromkeys(table.columns.get_level_values(1)))
    return names, table.to_numpy(dtype=np.float64).reshape(len(table), len(names), 3)


def test_ibl_two_camera_config_on_real_paw_data() -> None:
    folder = shared_data("ibl-paw")
    streams, data, times = {}, {}, {}
    for side in ("left", "right"):
        names, values = _read_lp_csv(next(folder.glob(f"*.{side}.rng=0.csv")))
        stamps = np.load(next(folder.glob(f"*.timestamps.{side}.npy")))
        data[side], times[side] = values, stamps
        streams[side] = [
            Observation(float(t), side, i, frame, names)
            for i, (t, frame) in enumerate(zip(stamps, values, strict=True))
        ]
    paired = [pair_nearest(streams, obs.time_s) for obs in streams["right"]]

    # The config in plain numpy: left camera's right paw in circle (66, 68, 6), right camera's
    # paws closer than 22 px, both seen (likelihood >= 0.5); rising edges, 1 s apart.
    left = np.array([p["left"].frame_index for p in paired])
    paw_l, paw_r = names.index("paw_l"), names.index("paw_r")
    left_paw = data["left"][left, paw_r]
    on_spot = inside_circle(left_paw[:, :2], 66, 68, 6) & (left_paw[:, 2] >= 0.5)
    right = data["right"]
    gap = np.hypot(*(right[:, paw_l, :2] - right[:, paw_r, :2]).T)
    together = (right[:, paw_l, 2] >= 0.5) & (right[:, paw_r, 2] >= 0.5) & (gap < 22)
    both = on_spot & together
    expected = []
    for frame in rising_frames(both):
        if not expected or times["right"][frame] - times["right"][expected[-1]] >= 1 - 1e-9:
            expected.append(frame)
    assert len(expected) >= 3

    runtime = runtime_of("ibl_paw_two_cameras")
    got = run(runtime, paired)
    assert sorted(got) == expected
    assert all(a == [Action.pulse("sound", 0, 0.1, reason="tone_when_both")] for a in got.values())
    starts = runtime.events.of_kind("trial_start")
    assert [(e.camera, e.frame_index) for e in starts] == [("right", f) for f in expected]


def test_ibl_two_camera_config_runs_on_two_unequal_synthetic_streams() -> None:
    names = ("paw_l", "paw_r")

    def obs(camera: str, rate: float, i: int, paw_r: tuple[float, float], gap: float):
        points = np.array([[paw_r[0] - gap, paw_r[1], 1.0], [paw_r[0], paw_r[1], 1.0]])
        return Observation(T0 + i / rate, camera, i, points, names)

    streams = {
        "left": [
            obs("left", 60, i, (66, 68) if 1 <= i / 60 < 2 else (20, 20), 40) for i in range(240)
        ],
        "right": [obs("right", 150, i, (50, 50), 10 if i / 150 >= 1.5 else 40) for i in range(600)],
    }
    paired = [pair_nearest(streams, o.time_s) for o in streams["right"]]
    on = [
        p["left"].time_s - T0 >= 1 and p["left"].time_s - T0 < 2 and p["right"].time_s - T0 >= 1.5
        for p in paired
    ]
    got = run(runtime_of("ibl_paw_two_cameras"), paired)
    assert list(got) == [on.index(True)]


def test_every_shipped_config_loads_runs_and_leaves_nothing_on() -> None:
    assert set(SHIPPED) <= set(config_names())
    keypoints = random_walk(90, seed=7)
    stream = observations(keypoints)
    for name in config_names():
        config = load_experiment_config(CONFIG_FOLDER / f"{name}.ini")
        assert config.experiment.description
        experiment = config.build()
        # IBL keypoint names on two cameras; two animals (test_social_triggers runs it)
        if name in ("ibl_paw_two_cameras", "social_example"):
            continue
        runtime = ExperimentRuntime(experiment)
        got = run(runtime, stream)
        actions = [a for frame in got.values() for a in frame] + runtime.stop()
        devices = {s.device for s in config.stimulations.values()}
        assert {a.device for a in actions} <= devices
        assert not any(experiment.is_held(*output) for output in runtime.machine.outputs)
        assert runtime.state == "finished"
        summary = runtime.summary()
        json.dumps(summary)  # session.json takes it as it is
        assert summary["events"]["count"] == len(runtime.events)
        assert summary["actions"]["count"] == len(actions)


# --------------------------------------------------------------------------------------------------
# The base class: trials, Python subclasses, likelihood policy, shared triggers
# --------------------------------------------------------------------------------------------------


def test_alternating_reward_example_rewards_only_alternations() -> None:
    # Left, left again, right, right again, left: rewards at the 1st, 3rd and 5th entries.
    path = [(0, 320, 80)]
    frame = 0
    for x in (160, 160, 480, 480, 160):
        frame += 60
        path.append((frame, x, 240))
        frame += 60
        path.append((frame, 320, 80))
    keypoints = scripted(path, frame + 10)
    entries = example_entries(keypoints)
    assert list(entries.values()) == [1, 1, 2, 2, 1]
    experiment = load_experiment("AlternatingReward")
    assert isinstance(experiment, AlternatingReward)
    got = run(ExperimentRuntime(experiment), observations(keypoints))
    frames = list(entries)
    assert sorted(got) == [frames[0], frames[2], frames[4]]
    assert [got[f][0].channel for f in sorted(got)] == [0, 1, 0]
    assert got[frames[2]][0].reason == "right entry, alternating"


class HoldWhileInside(Experiment):
    """Light on while the nose is in a circle; trials of at most 1 s, 0.5 s apart."""

    def __init__(self) -> None:
        super().__init__(max_trials=4, inter_trial_interval_s=0.5, trial_duration_s=1.0)
        self.add_trigger("inside", Region(Circle(160, 240, 60), "inside", **self.likelihood))
        self.ended: list[Trial] = []

    def on_update(self, obs, t):
        if self.rose("inside") and self.start_trial("inside"):
            return [Action.on("light", 3)]
        if self.fell("inside") and self.end_trial("left the circle"):
            return [Action.pulse("tone", 0, 0.2)]
        return []

    def on_trial_end(self, trial: Trial):
        self.ended.append(trial)
        return [Action.pulse("click", 1, 0.01)]


def test_python_subclass_trials_hold_and_switch_off() -> None:
    keypoints = scripted(
        [
            (0, 320, 80),
            (30, 160, 240),
            (100, 160, 240),
            (130, 320, 80),
            (160, 160, 240),
            (175, 320, 80),
        ],
        200,
    )
    inside = inside_circle(keypoints[:, NOSE], 160, 240, 60)
    first_in, rises = rising_frames(inside)[0], rising_frames(inside)
    falls = rising_frames(~inside & np.concatenate(([False], inside[:-1])))
    assert len(rises) == 2 and falls[1] - rises[1] < 30
    experiment = HoldWhileInside()
    runtime = ExperimentRuntime(experiment)
    got = run(runtime, observations(keypoints))
    timeout = first_in + 30  # 1 s after the trial started
    assert [a.command for a in got[first_in]] == ["on"]
    assert got[timeout] == [
        Action.off("light", 3, reason="trial 1 ended"),
        Action.pulse("click", 1, 0.01, reason="trial 1 ended"),
    ]
    assert got[rises[1]] == [Action.on("light", 3, reason="trial 2")]
    assert got[falls[1]] == [
        Action.pulse("tone", 0, 0.2, reason="trial 2"),
        Action.off("light", 3, reason="trial 2 ended"),
        Action.pulse("click", 1, 0.01, reason="trial 2 ended"),
    ]
    assert [t.end_reason for t in experiment.ended] == [
        "trial duration of 1 s reached",
        "left the circle",
    ]
    assert experiment.state in ("waiting", "inter_trial")
    stop = runtime.stop()
    assert {a.output for a in stop} == {("light", 3), ("tone", 0), ("click", 1)}


class Minimal(Experiment):
    """Returns what it is told to."""

    def __init__(self, returns: list | None = None, **timing) -> None:
        super().__init__(**timing)
        self.returns = returns or []

    def on_update(self, obs, t):
        return self.returns


def test_lifecycle_errors_and_clock() -> None:
    runtime = ExperimentRuntime(HoldWhileInside())
    obs = observations(scripted([(0, 320, 80)], 3))
    with pytest.raises(RuntimeError, match="start"):
        runtime.update(obs[0])
    assert runtime.stop() == []
    experiment = HoldWhileInside()
    runtime = ExperimentRuntime(experiment)
    runtime.start(T0 - 1)
    with pytest.raises(RuntimeError, match="started already"):
        runtime.start()
    with pytest.raises(RuntimeError, match="add triggers in __init__, before the experiment runs"):
        experiment.add_trigger("late", Region(Circle(1, 1, 1)))
    runtime.update(obs[2])
    runtime.update(obs[1])  # an older frame (another camera's) does not turn the clock back
    assert experiment.now_s == runtime.now_s == obs[2].time_s
    with pytest.raises(KeyError, match="triggers: inside"):
        experiment.rose("outside")
    with pytest.raises(ValueError, match="max_trials"):
        Minimal(max_trials=0)
    with pytest.raises(ValueError, match="inter_trial_interval_s"):
        Minimal(inter_trial_interval_s=-1)
    with pytest.raises(ValueError, match="session_duration_s must be > 0"):
        Minimal(session_duration_s=0)
    with pytest.raises(TypeError, match="not an Action"):
        bad = ExperimentRuntime(Minimal(returns=["laser on"]))
        bad.start()
        bad.update(obs[0])


def test_likelihood_policy_of_the_experiment_and_per_trigger_override() -> None:
    # The nose sits in the left region from ~frame 40 to 200, unseen for 0.2 s at 100..105.
    keypoints = scripted([(0, 320, 80), (40, 160, 240), (200, 160, 240), (240, 320, 80)], 250)
    likelihood = np.ones((len(keypoints), len(KEYPOINT_NAMES)))
    likelihood[100:106, NOSE] = 0.3
    entry = rising_frames(inside_circle(keypoints[:, NOSE], 160, 240, 60))[0]
    stream = observations(keypoints, likelihood)
    # By default a loss of 0.2 s is bridged (HOLD = 0.5 s): the nose never left.
    default = runtime_of("ExampleExperiment")
    assert sorted(run(default, stream)) == [entry]
    every_frame = variant("ExampleExperiment", {("Experiment", "HOLD"): "0"})
    assert sorted(run(every_frame, stream)) == [entry, 106]  # unseen, then "entered" again
    short = variant("ExampleExperiment", {("Experiment", "HOLD"): "0.1"})
    assert sorted(run(short, stream)) == [entry, 106]  # 0.2 s is longer than the hold
    hold = variant(
        "ExampleExperiment", {("Experiment", "POLICY"): "hold", ("Experiment", "HOLD"): "0.5"}
    )
    assert sorted(run(hold, stream)) == [entry]
    override = variant(
        "ExampleExperiment",
        {
            ("Experiment", "POLICY"): "hold",
            ("Experiment", "HOLD"): "0.5",
            ("Trigger nose_in_left", "POLICY"): "missing",
            ("Trigger nose_in_left", "HOLD_S"): "0",
        },
    )
    assert sorted(run(override, stream)) == [entry, 106]
    strict = variant("ExampleExperiment", {("Experiment", "MIN_LIKELIHOOD"): "0.2"})
    assert sorted(run(strict, stream)) == [entry]  # 0.3 counts as seen


def test_a_trigger_shared_by_two_combinators_is_updated_once_per_frame() -> None:
    text = """
[Trigger entered]
KIND = region
SHAPE = circle 160 240 60
MODE = entered

[Trigger anywhere]
KIND = after
SECONDS = 0

[Trigger a]
KIND = all
OF = entered, anywhere

[Trigger b]
KIND = any
OF = entered, a

[Stimulation tick]
DEVICE = box
COMMAND = pulse
DURATION = 0.01

[Rule on_a]
WHEN = a
DO = tick

[Rule on_b]
WHEN = b
DO = tick
"""
    keypoints = scripted(EXAMPLE_PATH, 280)
    entries = [f for f, ch in example_entries(keypoints).items() if ch == 1]
    runtime = ExperimentRuntime(parse_experiment_config(text, Path("shared.ini")).build())
    got = run(runtime, observations(keypoints))
    assert sorted(got) == entries
    assert all(len(actions) == 2 for actions in got.values())
    assert runtime.trigger_counts["entered"] == len(entries)


# --------------------------------------------------------------------------------------------------
# Event log and events.csv
# --------------------------------------------------------------------------------------------------


def test_events_csv_is_written_incrementally_and_read_by_pandas(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    keypoints = scripted(EXAMPLE_PATH, 280)
    entries = list(example_entries(keypoints))
    runtime = runtime_of("ExampleExperiment")
    writer = EventCsvWriter(path)
    runtime.events.attach(writer)
    runtime.start()
    stream = observations(keypoints)
    middle = (entries[1] + entries[2]) // 2
    for frame, obs in enumerate(stream):
        actions = runtime.update(obs)
        for action in actions:  # the dispatcher fills in what it knows
            runtime.events.fill_times(action, written=frame + 0.25, acknowledged=frame + 0.5)
        if actions:
            runtime.events.fill_times(pose_ready=frame + 0.0625, decided=frame + 0.125)
        if frame == middle:
            writer.flush()  # as the worker does at the end of each turn
            partial = pd.read_csv(path)
            assert list(partial.columns) == list(EVENT_COLUMNS)
            assert len(partial) == len(runtime.events) - len(runtime.events.pending)
            assert (partial["kind"] == "action").sum() == 2
    runtime.stop()
    runtime.events.close()
    table = pd.read_csv(path)
    assert len(table) == len(runtime.events)
    assert set(table["kind"]) == {
        "start",
        "trigger",
        "trial_start",
        "trial_end",
        "action",
        "finish",
    }
    actions = table[table["kind"] == "action"]
    on_entries = actions[actions["detail"].str.contains("duration_s")]
    assert on_entries["frame_index"].tolist() == entries
    assert (on_entries["camera"] == "top").all()
    assert on_entries["camera_timestamp"].tolist() == pytest.approx([T0 + f / FPS for f in entries])
    assert on_entries["host_timestamp"].tolist() == pytest.approx(
        [T0 + f / FPS + 5e-4 for f in entries]
    )
    assert on_entries["written"].tolist() == [f + 0.25 for f in entries]
    assert on_entries["acknowledged"].tolist() == [f + 0.5 for f in entries]
    assert on_entries["pose_ready"].tolist() == [f + 0.0625 for f in entries]
    stop_offs = actions[actions["detail"].str.endswith("reason=stop")]
    assert len(stop_offs) == 2 and stop_offs["written"].isna().all()
    assert table["trial"].dropna().astype(int).tolist() == sorted(
        table["trial"].dropna().astype(int)
    )
    triggers = table[table["kind"] == "trigger"]
    assert set(triggers["detail"].astype(str).str.lower()) == {"true", "false"}


def test_events_csv_flushes_at_least_once_a_second(tmp_path: Path, monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("deeplabstream.core.whole_rows.time.monotonic", lambda: clock[0])
    path = tmp_path / "events.csv"
    log = EventLog(EventCsvWriter(path))
    runtime = ExperimentRuntime(load_experiment("ExampleExperiment"), events=log)
    assert runtime.events is log
    runtime.start(T0)
    stream = observations(scripted(EXAMPLE_PATH, 60))
    for obs in stream[:10]:
        runtime.update(obs)
    assert len(pd.read_csv(path)) == 0  # the header alone: less than a second has passed
    clock[0] += 1.0
    runtime.update(stream[10])
    assert len(pd.read_csv(path)) == len(log) - len(log.pending)
    with pytest.raises(FileExistsError):
        EventCsvWriter(path)  # a session's file is never overwritten
    log.close()


def test_action_checks() -> None:
    assert Action.pulse("laser", 2, 0.5).describe() == "pulse channel=2 duration_s=0.5"
    assert Action.pattern("laser", 0, 0.01, 0.04).holds
    assert not Action.pattern("laser", 0, 0.01, 0.04, 3).holds
    for bad, message in [
        (lambda: Action("laser box", "on"), "without spaces"),
        (lambda: Action("laser", "blink"), "one of on, off, pulse, pattern"),
        (lambda: Action("laser", "on", -1), "channel"),
        (lambda: Action("laser", "pulse", 0), "duration_s must be a number"),
        (lambda: Action("laser", "pulse", 0, duration_s=0), "> 0 s"),
        (lambda: Action("laser", "on", 0, duration_s=1.0), "on takes no timing, not duration_s"),
        (lambda: Action("laser", "pattern", 0, on_s=1, off_s=1, count=0), "count"),
    ]:
        with pytest.raises(ValueError, match=message):
            bad()


# --------------------------------------------------------------------------------------------------
# Config errors and the registry
# --------------------------------------------------------------------------------------------------

GOOD = """
[Experiment]
MAX_TRIALS = 5

[Trigger zone]
KIND = region
SHAPE = circle 100 100 20

[Trigger frozen]
KIND = freezing
THRESHOLD = 5
DURATION_S = 1

[Trigger either]
KIND = any
OF = zone, frozen

[Stimulation laser]
DEVICE = laser
COMMAND = pulse
DURATION = 0.5

[Rule go]
WHEN = either
DO = laser
STARTS_TRIAL = true
"""


def _edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


CONFIG_ERRORS = [
    (
        "unknown kind",
        ("KIND = region", "KIND = regoin"),
        ["[Trigger zone] KIND = 'regoin': unknown trigger kind", "region, rising"],
    ),
    (
        "unknown key",
        ("SHAPE = circle", "RADIUS = 3\nSHAPE = circle"),
        ["[Trigger zone] RADIUS: unknown key for KIND = region", "KIND, SHAPE, MODE"],
    ),
    (
        "missing parameter",
        ("SHAPE = circle 100 100 20", "MODE = inside"),
        ["[Trigger zone] SHAPE: missing; expected 'circle CX CY R'"],
    ),
    (
        "bad geometry",
        ("circle 100 100 20", "circle 100 100 -20"),
        ["[Trigger zone] SHAPE = 'circle 100 100 -20' is not valid", "radius"],
    ),
    (
        "bad parameter value",
        ("DURATION_S = 1", "DURATION_S = soon"),
        ["[Trigger frozen] DURATION_S = 'soon' is not valid", "a number >= 0"],
    ),
    (
        "unknown child",
        ("OF = zone, frozen", "OF = zone, frozn"),
        [
            "[Trigger either] OF = 'zone, frozn': no trigger named 'frozn'",
            "triggers in this file: either, frozen, zone",
        ],
    ),
    (
        "combinator without OF",
        ("OF = zone, frozen", ""),
        ["[Trigger either] OF: missing; expected the names of the triggers"],
    ),
    (
        "OF on a plain trigger",
        ("KIND = region", "KIND = region\nOF = frozen"),
        ["[Trigger zone] OF: unknown key for KIND = region"],
    ),
    (
        "cycle",
        ("OF = zone, frozen", "OF = zone, loop\n\n[Trigger loop]\nKIND = not\nOF = either"),
        [
            "[Trigger either] OF: combinators refer to each other in a cycle: "
            "either -> loop -> either"
        ],
    ),
    ("self reference", ("OF = zone, frozen", "OF = either"), ["cycle: either -> either"]),
    (
        "unknown WHEN",
        ("WHEN = either", "WHEN = eihter"),
        ["[Rule go] WHEN = 'eihter': no trigger named 'eihter'"],
    ),
    (
        "unknown DO",
        ("DO = laser", "DO = laser, lazer"),
        [
            "[Rule go] DO = 'laser, lazer': no stimulation named 'lazer'; "
            "stimulations in this file: laser"
        ],
    ),
    (
        "bad edge",
        ("DO = laser", "DO = laser\nEDGE = up"),
        ["[Rule go] EDGE = 'up': expected one of rising, while, falling"],
    ),
    (
        "starts and ends",
        ("STARTS_TRIAL = true", "STARTS_TRIAL = true\nENDS_TRIAL = yes"),
        ["[Rule go]: a rule cannot both start (STARTS_TRIAL) and end (ENDS_TRIAL) trials"],
    ),
    (
        "bad experiment value",
        ("MAX_TRIALS = 5", "MAX_TRIALS = many"),
        ["[Experiment] MAX_TRIALS = 'many': expected a whole number >= 1, or empty for none"],
    ),
    (
        "unknown experiment key",
        ("MAX_TRIALS = 5", "MAX_TRIAL = 5"),
        ["[Experiment] MAX_TRIAL: unknown key. Allowed in this section:", "MAX_TRIALS"],
    ),
    (
        "negative hold",
        ("MAX_TRIALS = 5", "HOLD = -0.2"),
        ["[Experiment] HOLD = '-0.2'"],
    ),
    (
        "pulse without duration",
        ("DURATION = 0.5", "CHANNEL = 1"),
        ["[Stimulation laser]: COMMAND = pulse needs DURATION"],
    ),
    (
        "on with a duration",
        ("COMMAND = pulse", "COMMAND = on"),
        ["[Stimulation laser]: COMMAND = on takes no DURATION"],
    ),
    (
        "bad command",
        ("COMMAND = pulse", "COMMAND = flash"),
        ["[Stimulation laser] COMMAND = 'flash': expected one of on, off, pulse, pattern"],
    ),
    (
        "holding in an instant trial",
        ("COMMAND = pulse\nDURATION = 0.5", "COMMAND = on"),
        ["[Rule go] DO = 'laser': stimulation 'laser' switches its output on", "TRIAL_DURATION"],
    ),
    (
        "unknown section",
        ("[Rule go]", "[Protocol go]"),
        ["[Protocol go]: unknown section. Allowed sections: [Experiment], [Trigger NAME]"],
    ),
    (
        "bad name",
        ("[Trigger zone]", "[Trigger my zone]"),
        ["[Trigger my zone]: name 'my zone' is not allowed"],
    ),
    (
        "duplicate section",
        ("[Trigger frozen]", "[Trigger zone]"),
        ["cannot be read as an ini file", "already exists"],
    ),
]


@pytest.mark.parametrize("label, edit, messages", CONFIG_ERRORS, ids=[c[0] for c in CONFIG_ERRORS])
def test_config_errors_name_file_section_key_value_and_what_is_allowed(
    label: str, edit: tuple[str, str], messages: list[str]
) -> None:
    parse_experiment_config(GOOD, Path("/lab/good.ini"))  # the unedited file is fine
    with pytest.raises(ExperimentConfigError) as info:
        parse_experiment_config(_edit(GOOD, *edit), Path("/lab/bad.ini"))
    text = str(info.value)
    assert "/lab/bad.ini" in text
    for message in messages:
        assert message in text, f"{message!r} not in:\n{text}"


def test_all_config_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = _edit(_edit(GOOD, "KIND = region", "KIND = regoin"), "DO = laser", "DO = lazer")
    path = tmp_path / "two.ini"
    path.write_text(text)
    with pytest.raises(ExperimentConfigError) as info:
        load_experiment_config(path)
    assert len(info.value.problems) == 2
    assert str(info.value).startswith("Invalid settings:")
    with pytest.raises(ExperimentConfigError, match="not found"):
        load_experiment_config(tmp_path / "absent.ini")


def test_combinator_kinds_are_the_factorys() -> None:
    assert set(COMBINATOR_KINDS) <= set(TRIGGER_KINDS)


def test_registry_loads_by_name_class_and_path(tmp_path: Path) -> None:
    assert available_experiments()[: len(config_names())] == config_names()
    assert "examples:AlternatingReward" in available_experiments()
    assert isinstance(load_experiment("examples:AlternatingReward"), AlternatingReward)
    full_name = "deeplabstream.experiments.examples:AlternatingReward"
    assert isinstance(load_experiment(full_name), AlternatingReward)
    copy = tmp_path / "mine.ini"
    copy.write_text((CONFIG_FOLDER / "freezing_opto.ini").read_text())
    assert load_experiment(str(copy)).name == "mine"
    assert load_experiment(copy).name == "mine"
    assert load_experiment("freezing_opto.ini").name == "freezing_opto"
    module = tmp_path / "lab_experiments.py"
    module.write_text(
        "from deeplabstream.experiments.base import Experiment\n"
        "from deeplabstream.experiments.actions import Action\n"
        "class Blink(Experiment):\n"
        "    def on_update(self, obs, t):\n"
        "        return [Action.pulse('led', 0, 0.1)] if self.start_trial('blink') else []\n"
    )
    blink = load_experiment(str(module))
    assert type(blink).__name__ == "Blink"
    runtime = ExperimentRuntime(blink)
    runtime.start()
    assert runtime.update(observations(scripted([(0, 1, 1)], 1))[0]) == [
        Action.pulse("led", 0, 0.1, reason="trial 1")
    ]
    assert type(load_experiment(f"{module}:Blink")).__name__ == "Blink"


def test_registry_errors_list_what_exists(tmp_path: Path) -> None:
    with pytest.raises(ExperimentNotFoundError) as info:
        load_experiment("freezing")
    text = str(info.value)
    assert "unknown experiment 'freezing'" in text
    for name in (*SHIPPED, "examples:AlternatingReward", ".ini file; --experiment may also"):
        assert name in text
    with pytest.raises(
        ExperimentNotFoundError, match=r"unknown experiment 'examples:Nope'; known: .*Alternating"
    ):
        load_experiment("examples:Nope")
    with pytest.raises(
        ExperimentNotFoundError, match=r"unknown experiment 'nowhere:Thing'.*ExampleExperiment"
    ):
        load_experiment("nowhere:Thing")
    with pytest.raises(ExperimentNotFoundError, match="unknown experiment 'base:Experiment'"):
        load_experiment("base:Experiment")  # the package's other modules are not experiments
    with pytest.raises(ExperimentNotFoundError, match="is a module's import path"):
        load_experiment("deeplabstream.experiments.base:Experiment")  # never imported
    with pytest.raises(ExperimentNotFoundError, match="not found"):
        load_experiment(tmp_path / "absent.ini")
    with pytest.raises(ExperimentNotFoundError, match="not found"):
        load_experiment(str(tmp_path / "absent.py"))
    two = tmp_path / "two.py"
    two.write_text(
        "from deeplabstream.experiments.base import Experiment\n"
        "class A(Experiment):\n    def on_update(self, obs, t): return []\n"
        "class B(Experiment):\n    def on_update(self, obs, t): return []\n"
    )
    with pytest.raises(
        ExperimentNotFoundError, match=r"2 experiment classes \(A, B\); name one as two.py:Class"
    ):
        load_experiment(str(two))
    with pytest.raises(ExperimentNotFoundError, match="has no experiment class 'C'; it has: A, B"):
        load_experiment(f"{two}:C")
    with pytest.raises(ExperimentNotFoundError, match=r"must end in \.ini or \.py"):
        load_experiment("some/folder/thing")


def test_while_rule_switches_on_once_and_falling_rule_off() -> None:
    text = """
[Trigger inside]
KIND = region
SHAPE = circle 160 240 60

[Stimulation light_on]
DEVICE = box
COMMAND = on
CHANNEL = 4

[Stimulation light_off]
DEVICE = box
COMMAND = off
CHANNEL = 4

[Rule hold_on]
WHEN = inside
EDGE = while
DO = light_on

[Rule release]
WHEN = inside
EDGE = falling
DO = light_off
"""
    keypoints = scripted(EXAMPLE_PATH, 280)
    inside = inside_circle(keypoints[:, NOSE], 160, 240, 60)
    ins = rising_frames(inside)
    outs = rising_frames(~inside & np.concatenate(([False], inside[:-1])))
    experiment = parse_experiment_config(text, Path("hold.ini")).build()
    got = run(ExperimentRuntime(experiment), observations(keypoints))
    expected = {f: [Action.on("box", 4, reason="hold_on")] for f in ins}
    expected.update({f: [Action.off("box", 4, reason="release")] for f in outs})
    assert got == expected
    assert experiment.trials == []


def test_docs_reference_is_generated_from_the_code() -> None:
    from deeplabstream.offline.reference.experiments import DOC_FILE, TRIGGER_DESCRIPTIONS, render

    assert set(TRIGGER_DESCRIPTIONS) == set(TRIGGER_KINDS)
    current = DOC_FILE.read_text(encoding="utf-8")
    assert current == render(current), (
        "docs/experiments.md is out of date: run "
        "python -m deeplabstream.offline.reference.experiments"
    )
    for name in SHIPPED:
        assert f"`{name}`" in current
