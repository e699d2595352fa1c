"""Several animals: per-animal triggers (``animal = N``) and the social triggers.

Observations are built by hand: two simulated mice (the simulator's keypoint names), each placed
by its nose and heading, over sequences of frame times. Every expectation is computed here from
the scripted positions, independently of ``experiments.triggers.social``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.experiments.config.parse import (
    ExperimentConfigError,
    load_experiment_config,
    parse_experiment_config,
)
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.observation import Observation, Observations
from deeplabstream.experiments.registry import CONFIG_FOLDER
from deeplabstream.experiments.triggers import Circle, Region, Trigger, make_trigger, parameters_of
from deeplabstream.experiments.triggers.base import animal_problems, keypoint_of
from deeplabstream.experiments.triggers.social import (
    AnimalDistance,
    Approach,
    ClosingSpeed,
    Contact,
    Following,
    ForAnimal,
)
from deeplabstream.hardware.simulator.arena import KEYPOINT_NAMES

FPS = 30.0
T0 = 500.0  # camera clocks do not start at zero
NOSE, TAIL = KEYPOINT_NAMES.index("nose"), KEYPOINT_NAMES.index("tail_base")
# Where each keypoint sits behind the nose, along the heading and to the animal's right (px).
BODY = {
    "nose": (0.0, 0.0),
    "left_ear": (-8.0, -5.0),
    "right_ear": (-8.0, 5.0),
    "neck": (-12.0, 0.0),
    "body_center": (-25.0, 0.0),
    "tail_base": (-40.0, 0.0),
}
UNSEEN = None


def mouse(nose_x: float, nose_y: float, heading_deg: float = 0.0) -> np.ndarray:
    """One mouse's keypoints (6, 3), nose at (nose_x, nose_y), facing ``heading_deg``."""
    h = math.radians(heading_deg)
    forward, right = (math.cos(h), math.sin(h)), (-math.sin(h), math.cos(h))
    rows = np.ones((len(KEYPOINT_NAMES), 3))
    for index, name in enumerate(KEYPOINT_NAMES):
        along, side = BODY[name]
        rows[index, 0] = nose_x + along * forward[0] + side * right[0]
        rows[index, 1] = nose_y + along * forward[1] + side * right[1]
    return rows


def frame(t: float, *animals: np.ndarray | None, camera: str = "top") -> Observation:
    """An observation of a multi-animal model; None: that animal is not seen (all NaN)."""
    rows = np.stack(
        [np.full((len(KEYPOINT_NAMES), 3), np.nan) if a is None else a for a in animals]
    )
    return Observation(t, camera, round((t - T0) * FPS), rows[0], KEYPOINT_NAMES, animals=rows)


def single(t: float, animal: np.ndarray) -> Observation:
    """An observation of a single-animal model."""
    return Observation(t, "top", 0, animal, KEYPOINT_NAMES)


def run(trigger: Trigger, stream: Sequence[Observation | Observations]) -> list[bool]:
    return [trigger.update(obs) for obs in stream]


# --------------------------------------------------------------------------------------------------
# distance
# --------------------------------------------------------------------------------------------------


def test_distance_turns_on_below_and_off_beyond_release() -> None:
    gaps = [100, 60, 45, 39, 45, 49.9, 50.1, 45, 39.5, 30]
    expected = [False, False, False, True, True, True, False, False, True, True]
    leader = mouse(300, 200, 180)
    stream = [frame(T0 + i / FPS, mouse(300 - g, 200), leader) for i, g in enumerate(gaps)]
    trigger = make_trigger("distance", {"below_px": "40", "release_px": "50"})
    assert run(trigger, stream) == expected
    assert trigger.measurement() == "distance 30.0 px"
    assert trigger.shapes()  # the segment between the noses

    above = AnimalDistance(above_px=50, release_px=40)
    assert run(above, stream) == [True, True, True, False, False, False, True, True, False, False]


def test_distance_is_off_and_forgets_its_hysteresis_while_a_keypoint_is_not_seen() -> None:
    leader = mouse(300, 200, 180)
    hidden_nose = mouse(255, 200)
    hidden_nose[NOSE, 2] = 0.1  # below min_likelihood
    stream = [
        frame(T0, mouse(265, 200), leader),  # 35 px: on
        frame(T0 + 0.1, mouse(255, 200), None),  # animal 2 not seen: off
        frame(T0 + 0.2, mouse(255, 200), leader),  # 45 px: within release, but hysteresis reset
        frame(T0 + 0.3, mouse(265, 200), leader),  # on again
        frame(T0 + 0.4, hidden_nose, leader),  # animal 1's nose below the likelihood: off
    ]
    trigger = AnimalDistance(below_px=40, release_px=50, hold_s=0)  # every frame decides
    assert run(trigger, stream) == [True, False, False, True, False]
    assert trigger.measurement() == ""

    # By default (HOLD_S = 0.5) the losses of 0.1 s keep the state and the hysteresis.
    bridged = AnimalDistance(below_px=40, release_px=50)
    assert run(bridged, stream) == [True, True, True, True, True]
    assert bridged.holding  # the last frame (animal 1's nose not seen) was bridged

    held = AnimalDistance(below_px=40, release_px=50, policy="hold", hold_s=0.15)
    assert run(held, stream) == [True, True, True, True, True]  # the gaps are bridged


def test_distance_between_other_keypoints_and_animals() -> None:
    # Animal 3's tail base 20 px from animal 1's nose; animal 2 far away.
    third = mouse(360, 200)  # tail base at 320,200
    obs = frame(T0, mouse(300, 200), mouse(100, 100), third)
    trigger = AnimalDistance(below_px=25, animals=(1, 3), keypoints=("nose", "tail_base"))
    assert trigger.update(obs) and trigger.last_distance == pytest.approx(20.0)
    assert not AnimalDistance(below_px=25).update(obs)


# --------------------------------------------------------------------------------------------------
# approach
# --------------------------------------------------------------------------------------------------


def nose_gap(t: float) -> float:
    """The scripted gap between the noses: 300 px, closing at 100 px/s from 0.5 s to 2 s, still
    until 3 s, opening at 100 px/s after."""
    s = t - T0
    if s < 0.5:
        return 300.0
    if s < 2.0:
        return 300.0 - 100.0 * (s - 0.5)
    if s < 3.0:
        return 150.0
    return 150.0 + 100.0 * (s - 3.0)


def expected_closing(t: float, t_first: float, window_s: float) -> float | None:
    """The closing speed from the true gap: over the window, or since the first frame."""
    if t <= t_first:
        return None
    start = max(t - window_s, t_first)
    return (nose_gap(start) - nose_gap(t)) / (t - start)


def test_approach_is_true_only_while_closing_fast_enough_with_skipped_frames() -> None:
    rng = np.random.default_rng(4)
    frames = [f for f in range(120) if f in (15, 60, 90) or rng.random() > 0.3]  # keep the kinks
    times = [T0 + f / FPS for f in frames]
    leader = mouse(500, 200, 180)
    stream = [frame(t, mouse(500 - nose_gap(t), 200), leader) for t in times]
    for within in (None, 200.0):
        trigger = Approach(speed=60, window_s=0.2, within_px=within)
        got = run(trigger, stream)
        expected = []
        for t in times:
            closing = expected_closing(t, times[0], 0.2)
            near = within is None or nose_gap(t) <= within
            expected.append(closing is not None and closing > 60 + 1e-9 and near)
        assert got == expected
        assert any(expected) and not all(expected)
    # Far enough into the closing phase it is on, while still, and while opening, it is off.
    assert got[frames.index(60) - 1] and not got[frames.index(90)] and not got[-1]


def test_closing_speed_window_and_replay() -> None:
    closing = ClosingSpeed(0.2)
    assert closing.add(0.0, 100.0) is None
    assert closing.add(0.1, 90.0) == pytest.approx(100.0)  # history shorter than the window
    assert closing.add(0.3, 70.0) == pytest.approx(100.0)  # (d(0.1) - d(0.3)) / 0.2
    # d(0.15) lies between the samples at 0.1 and 0.3: 85, so (85 - 70) / 0.2.
    assert closing.add(0.35, 70.0) == pytest.approx(75.0)
    assert closing.add(0.05, 50.0) is None  # time went backwards: a new replay


def test_approach_restarts_after_an_animal_is_not_seen() -> None:
    leader = mouse(500, 200, 180)
    trigger = Approach(speed=60, hold_s=0)  # every frame decides alone
    stream = [
        frame(T0, mouse(100, 200), leader),
        frame(T0 + 0.1, mouse(120, 200), leader),  # closing 200 px/s
        frame(T0 + 0.2, None, leader),  # not seen: off
        frame(T0 + 0.3, mouse(160, 200), leader),  # first sample of a new history: unknown
        frame(T0 + 0.4, mouse(180, 200), leader),
    ]
    assert run(trigger, stream) == [False, True, False, False, True]
    # By default the 0.1 s loss keeps the state and the history: closing all along.
    assert run(Approach(speed=60), stream) == [False, True, True, True, True]


# --------------------------------------------------------------------------------------------------
# following
# --------------------------------------------------------------------------------------------------


def following_stream(turn: tuple[float, float] | None = None) -> list[Observation]:
    """Animal 2 walks right at 60 px/s; animal 1 walks 10 px behind its tail base, same heading.

    ``turn``: between these seconds animal 1 faces 90 degrees (down) instead.
    """
    made = []
    for f in range(int(3 * FPS)):
        t = T0 + f / FPS
        leader_nose = 100 + 60.0 * (f / FPS)
        follower_nose = leader_nose - 40 - 10  # 10 px behind the leader's tail base
        heading = 90.0 if turn and turn[0] <= f / FPS < turn[1] else 0.0
        made.append(frame(t, mouse(follower_nose, 200, heading), mouse(leader_nose, 200)))
    return made


def test_following_fires_after_the_duration_and_resets_when_headings_differ() -> None:
    trigger = Following(distance_px=20, angle_deg=45, duration_s=1.0, min_speed=20)
    got = run(trigger, following_stream())
    # Speeds are known from the second frame on (frame 1): the condition holds from there.
    first = got.index(True)
    assert first == 1 + round(1.0 * FPS)
    assert all(got[first:])
    assert trigger.following_since == pytest.approx(T0 + 1 / FPS)

    turned = Following(distance_px=20, angle_deg=45, duration_s=1.0, min_speed=20)
    got = run(turned, following_stream(turn=(1.2, 1.5)))
    turn_start, turn_end = round(1.2 * FPS), round(1.5 * FPS)
    assert got[first:turn_start] == [True] * (turn_start - first)
    assert not any(got[turn_start:turn_end])
    # Aligned again at turn_end: the timer restarts there and needs another full second.
    assert got[turn_end:].index(True) == round(1.0 * FPS)


def test_following_needs_both_moving_and_close_behind() -> None:
    still = [frame(T0 + f / FPS, mouse(150, 200), mouse(200, 200)) for f in range(60)]
    assert not any(run(Following(distance_px=20, duration_s=0.0), still))
    far = [frame(T0 + f / FPS, mouse(100 + 2 * f, 200), mouse(300 + 2 * f, 200)) for f in range(60)]
    assert not any(run(Following(distance_px=20, duration_s=0.0), far))


def test_following_timer_resets_while_an_animal_is_not_seen() -> None:
    stream = following_stream()
    stream[40] = frame(stream[40].time_s, stream[40].animals[0], None)  # type: ignore[index]
    bridged = Following(distance_px=20, duration_s=1.0)  # HOLD_S = 0.5: one frame is bridged
    got = run(bridged, stream)
    assert got[39] is True and all(got[39:]) and bridged.following_since is not None

    trigger = Following(distance_px=20, duration_s=1.0, hold_s=0)  # every frame decides
    got = run(trigger, stream[:41])
    assert got[39] is True and got[40] is False and trigger.following_since is None
    got += run(trigger, stream[41:])
    # Frame 41 restarts the speed histories (unknown), frame 42 restarts the timer.
    assert got[41:].index(True) == 1 + round(1.0 * FPS)


# --------------------------------------------------------------------------------------------------
# contact
# --------------------------------------------------------------------------------------------------


def test_contact_between_any_or_listed_keypoints() -> None:
    leader = mouse(300, 200)  # tail base at 260,200
    touching_tail = mouse(252, 200)  # nose 8 px from the leader's tail base
    near_tail = mouse(245, 200)  # 15 px
    stream = [frame(T0, near_tail, leader), frame(T0 + 0.1, touching_tail, leader)]
    assert run(Contact(radius_px=10), stream) == [False, True]
    noses = Contact(radius_px=10, keypoints_a=("nose",), keypoints_b=("nose",))
    assert run(noses, stream) == [False, False]
    tail = make_trigger("contact", {"keypoints_a": "nose", "keypoints_b": "tail_base,neck"})
    assert run(tail, stream) == [False, True]
    assert tail.measurement() == "closest 8.0 px"


def test_contact_leaves_out_keypoints_not_seen() -> None:
    leader = mouse(300, 200)
    toucher = mouse(252, 200)
    toucher[NOSE, 2] = 0.2  # the touching nose is not seen; the rest is far
    assert not Contact(radius_px=10).update(frame(T0, toucher, leader))
    assert not Contact(radius_px=10).update(frame(T0, mouse(252, 200), None))


# --------------------------------------------------------------------------------------------------
# animal = N on every one-animal trigger
# --------------------------------------------------------------------------------------------------


def test_region_with_animal_2_sees_the_second_animal() -> None:
    zone = "circle 100 100 30"
    obs = frame(T0, mouse(400, 400), mouse(100, 100))
    assert not make_trigger("region", {"shape": zone}).update(obs)
    second = make_trigger("region", {"shape": zone, "animal": "2"})
    assert isinstance(second, ForAnimal) and second.update(obs)
    assert make_trigger("region", {"shape": zone, "animal": "1"}).update(obs) is False
    assert keypoint_of(second) == "nose" and second.shapes() == [Circle(100, 100, 30)]
    # Animal 2 not seen: for HOLD_S (0.5 s) the state holds, then the keypoint is missing.
    assert second.update(frame(T0 + 0.1, mouse(100, 100), None)) is True
    assert second.update(frame(T0 + 0.7, mouse(100, 100), None)) is False


def test_animal_applies_to_the_cameras_the_trigger_reads_and_to_speed_history() -> None:
    side = single(T0, mouse(10, 10))  # another camera with a single-animal model
    top = frame(T0, mouse(400, 400), mouse(100, 100))
    trigger = ForAnimal(Region(Circle(100, 100, 30), camera="top"), 2)
    assert trigger.update(Observations(T0, {"top": top, "side": side}))
    assert trigger.cameras_read() == ("top",) and trigger.camera == "top"
    speed = make_trigger("speed_above", {"threshold": "50", "keypoint": "nose", "animal": "2"})
    moving = [frame(T0 + f / FPS, mouse(100, 100), mouse(100 + 3 * f, 100)) for f in range(5)]
    assert run(speed, moving)[1:] == [True] * 4  # animal 2 moves at 90 px/s, animal 1 stands


def test_for_animal_takes_one_animal_triggers_only() -> None:
    with pytest.raises(ValueError, match=r"not 'contact'.*social triggers take animals"):
        ForAnimal(Contact(), 2)
    with pytest.raises(ValueError, match="not 'all'"):
        ForAnimal(make_trigger("all", {}, [Region(Circle(1, 1, 1))]), 2)
    with pytest.raises(ValueError, match="whole number >= 1"):
        ForAnimal(Region(Circle(1, 1, 1)), 0)


def test_an_animal_the_model_does_not_report_fails_clearly() -> None:
    region = make_trigger("region", {"shape": "circle 1 1 1", "animal": "2"})
    with pytest.raises(ValueError, match=r"trigger 'region' \(animal 2\).*reports 1 animal"):
        region.update(single(T0, mouse(1, 1)))
    with pytest.raises(ValueError, match=r"trigger 'contact' \(animals 1,3\).*reports 2 animal"):
        Contact(animals=(1, 3)).update(frame(T0, mouse(1, 1), mouse(2, 2)))
    with pytest.raises(ValueError, match="animal 2 asked for"):
        AnimalDistance(below_px=3).update(single(T0, mouse(1, 1)))
    # Before a start, given the model's animal count:
    triggers = {
        "zone": region,
        "both": make_trigger("all", {}, [AnimalDistance(below_px=3, animals=(1, 4))]),
        "plain": Region(Circle(1, 1, 1)),
    }
    problems = animal_problems(triggers, 1)
    assert len(problems) == 2
    assert "trigger 'zone' reads animal 2" in problems[0]
    assert "'both' reads animal 4," in problems[1] and "MAX_ANIMALS" in problems[1]
    assert animal_problems(triggers, 4) == []


# --------------------------------------------------------------------------------------------------
# factory, describe, config
# --------------------------------------------------------------------------------------------------


BAD = [
    ("distance", {}, ["give one of below_px", "or above_px", "not neither"]),
    ("distance", {"below_px": "4", "above_px": "9"}, ["not both"]),
    ("distance", {"below_px": "40", "release_px": "30"}, ["release_px = 30.0", ">= below_px"]),
    ("distance", {"above_px": "40", "release_px": "50"}, ["release_px = 50.0", "<= above_px"]),
    ("distance", {"below_px": "4", "animals": "1,1"}, ["'animals' = '1,1'", "two different"]),
    ("distance", {"below_px": "4", "animals": "0,2"}, ["'animals' = '0,2'", "from 1 to 16"]),
    ("distance", {"below_px": "4", "animals": "2"}, ["'animals' = '2'", "'A,B'"]),
    ("distance", {"below_px": "4", "keypoints": "nose"}, ["'keypoints' = 'nose'", "two keypoint"]),
    ("distance", {"below_px": "-4"}, ["'below_px' = '-4'", "a number >= 0 (px)"]),
    ("distance", {"below_px": "4", "animal": "2"}, ["no parameter 'animal'", "animals = A,B"]),
    ("distance", {"below_px": "4", "predicted": "true"}, ["no parameter 'predicted'"]),
    ("approach", {}, ["'approach' needs parameter 'speed'", "px/s"]),
    ("approach", {"speed": "0"}, ["'speed' = '0'", "> 0"]),
    ("approach", {"speed": "5", "window_s": "0"}, ["'window_s' = '0'", "> 0"]),
    ("following", {}, ["needs parameter 'distance_px'"]),
    ("following", {"distance_px": "9", "angle_deg": "200"}, ["'angle_deg' = '200'", "(0, 180]"]),
    ("following", {"distance_px": "9", "head": "two words"}, ["'head' = 'two words'"]),
    ("contact", {"radius_px": "-1"}, ["'radius_px' = '-1'", ">= 0"]),
    ("contact", {"keypoints_a": "nose,,ear"}, ["'keypoints_a' = 'nose,,ear'", "'A,B,...'"]),
    ("region", {"shape": "circle 1 2 3", "animal": "0"}, ["'animal' = '0'", "from 1 to 16"]),
    ("region", {"shape": "circle 1 2 3", "animal": "two"}, ["'animal' = 'two'", "whole number"]),
    (
        "region",
        {"shape": "circle 1 2 3", "animal": "2", "predicted": "true"},
        ["trigger 'region'", "animal 2 with predicted = true", "PREDICTED = false"],
    ),
    ("regoin", {}, ["unknown trigger kind 'regoin'", "approach", "contact", "following"]),
]


@pytest.mark.parametrize(
    ("kind", "params", "phrases"), BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)]
)
def test_bad_parameters_give_clear_messages(kind: str, params: dict, phrases: list[str]) -> None:
    with pytest.raises(ValueError) as caught:
        make_trigger(kind, params)
    for phrase in phrases:
        assert phrase in str(caught.value), (phrase, str(caught.value))


def test_animal_is_a_parameter_of_every_one_animal_kind_only() -> None:
    assert "animal" in parameters_of("region") and "animal" in parameters_of("after")
    assert "animal" in parameters_of("distance_below")
    for kind in ("distance", "approach", "following", "contact", "all", "debounce"):
        assert "animal" not in parameters_of(kind)
    with pytest.raises(ValueError, match="combinator reads no animal"):
        make_trigger("all", {"animal": "2"}, [Region(Circle(1, 1, 1))])


DESCRIBED = [
    ForAnimal(Region(Circle(10, 20, 5), "entered", "neck", camera="top"), 2),
    AnimalDistance(below_px=4),
    AnimalDistance(above_px=50, release_px=40.5, animals=(3, 1), keypoints=("nose", "tail_base")),
    Approach(80, window_s=0.3, within_px=120, camera="top", policy="hold", hold_s=0.1),
    Following(25, angle_deg=30, duration_s=2, min_speed=5, head="neck", tail="body_center"),
    Contact(12, keypoints_a=("nose",), keypoints_b=("tail_base", "neck"), min_likelihood=0.8),
    Contact(),
]


@pytest.mark.parametrize("trigger", DESCRIBED, ids=lambda t: t.kind)
def test_describe_round_trips_through_make_trigger(trigger: Trigger) -> None:
    described = trigger.describe()
    kind = described.pop("kind")
    rebuilt = make_trigger(kind, {k: str(v) for k, v in described.items()})
    assert type(rebuilt) is type(trigger)
    assert rebuilt.describe() == trigger.describe()
    assert isinstance(trigger.shapes(), list)


def test_reset_forgets_hysteresis_histories_and_timers() -> None:
    trigger = AnimalDistance(below_px=40, release_px=50)
    trigger.update(frame(T0, mouse(265, 200), mouse(300, 200, 180)))
    trigger.reset()
    assert trigger.state is False and trigger.last_distance is None
    wrapped = ForAnimal(Region(Circle(100, 100, 30)), 2)
    wrapped.update(frame(T0, mouse(400, 400), mouse(100, 100)))
    wrapped.reset()
    assert wrapped.state is False and wrapped.trigger.state is False


def two_mice_stream() -> list[Observation]:
    """Animal 1 runs at animal 2 (standing, facing it) at 150 px/s, touches it at 2 s, stops."""
    made = []
    for f in range(int(4 * FPS)):
        s = f / FPS
        x = 100 + 150 * min(s, 2.0)  # nose reaches 400 at 2 s
        made.append(frame(T0 + s, mouse(x, 240), mouse(405, 240, 180)))
    return made


def test_social_example_config_loads_and_pulses_at_the_touch() -> None:
    config = load_experiment_config(CONFIG_FOLDER / "social_example.ini")
    assert config.experiment.description
    kinds = {spec.kind for spec in config.triggers.values()}
    assert {"approach", "contact"} <= kinds
    runtime = ExperimentRuntime(config.build())
    runtime.start()
    stream = two_mice_stream()
    fired = {i: a for i, obs in enumerate(stream) if (a := runtime.update(obs))}
    # Nose to nose: 305 px at the start, closing at 150 px/s; contact (any two keypoints
    # <= 20 px apart: here the noses) once 405 - x <= 20.
    touch = next(f for f in range(len(stream)) if 405 - (100 + 150 * min(f / FPS, 2.0)) <= 20)
    assert list(fired) == [touch]
    (action,) = fired[touch]
    assert (action.device, action.command, action.channel) == ("stimulus_box", "pulse", 1)
    runtime.stop()


CONFIG = """
[Experiment]
DESCRIPTION = animal 2 in the zone
{extra}

[Trigger zone_2]
KIND = region
SHAPE = circle 100 100 30
ANIMAL = {animal}

[Trigger both]
KIND = all
OF = zone_2
{of_extra}

[Stimulation tone]
DEVICE = speaker
COMMAND = pulse
DURATION = 1

[Rule r]
WHEN = both
DO = tone
"""


def config_text(animal: str = "2", extra: str = "", of_extra: str = "") -> str:
    return CONFIG.format(animal=animal, extra=extra, of_extra=of_extra)


def test_config_animal_key_and_its_mistakes() -> None:
    runtime = ExperimentRuntime(parse_experiment_config(config_text(), Path("zone.ini")).build())
    runtime.start()
    assert runtime.update(frame(T0, mouse(400, 400), mouse(100, 100)))
    # The event log gives the position of the animal the trigger read (2), not animal 1's.
    (action,) = runtime.events.of_kind("action")
    assert (action.measured_x, action.measured_y) == (100.0, 100.0)
    with pytest.raises(ExperimentConfigError) as caught:
        parse_experiment_config(config_text("0", of_extra="ANIMAL = 2"), Path("zone.ini"))
    text = str(caught.value)
    assert "[Trigger zone_2] ANIMAL = '0' is not valid" in text and "from 1 to 16" in text
    assert "[Trigger both] ANIMAL: unknown key for KIND = all" in text
    # Forward prediction follows animal 1: an ANIMAL = 2 trigger reads measured positions.
    predicting = parse_experiment_config(
        config_text(extra="PREDICT = constant-velocity"), Path("zone.ini")
    )
    assert "predicted" not in predicting.build().triggers["zone_2"].describe()
