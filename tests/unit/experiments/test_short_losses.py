"""Issue 38: rules that hold through short losses of a keypoint (synthetic observations).

A keypoint below the likelihood threshold is *not seen*: neither inside nor outside. A trigger
that reads keypoints keeps its state for ``HOLD_S`` seconds of frame time (default 0.5) after its
keypoints were last seen, and only then decides; entries and exits need the keypoint seen. One
test per kind that reads keypoints, and the time is the frames' own, never a frame count. The
same on a real model's clip: ``test_short_losses_real.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from deeplabstream.experiments.config.parse import parse_experiment_config
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.observation import DEFAULT_HOLD_S, Observation, Observations
from deeplabstream.experiments.triggers import (
    Circle,
    DistanceBelow,
    Freezing,
    HeadDirection,
    Region,
    SpeedAbove,
    Trigger,
    make_trigger,
)
from deeplabstream.experiments.triggers.factory import TRIGGER_KINDS, parameter_specs
from deeplabstream.experiments.triggers.kinds import trigger_kind
from deeplabstream.spatial.triangulation.points import Points3D

NAMES = ("nose", "neck", "body_center", "tail_base")
ZONE = Circle(100, 100, 30)
INSIDE, OUTSIDE = (100.0, 100.0), (300.0, 300.0)
SEEN, NOT_SEEN = 0.9, 0.2


def pose(
    t: float, nose: tuple[float, float], likelihood: float = SEEN, camera: str = "top"
) -> Observation:
    """The nose at ``nose`` with ``likelihood``; the other keypoints seen, 20 px behind it."""
    rows = [[nose[0], nose[1], likelihood]]
    rows += [[nose[0] - 20.0 * (i + 1), nose[1], SEEN] for i in range(len(NAMES) - 1)]
    return Observation(t, camera, round(t * 1000), np.array(rows), NAMES)


def states(trigger: Trigger, stream: Sequence[Observation | Observations]) -> list[bool]:
    return [trigger.update(obs) for obs in stream]


def frames(fps: float, plan: Sequence[tuple[int, tuple[float, float], float]]) -> list[Observation]:
    """``plan``: (how many frames, where, likelihood) runs at ``fps``, one after the other."""
    made: list[Observation] = []
    for count, where, likelihood in plan:
        for _ in range(count):
            made.append(pose(len(made) / fps, where, likelihood))
    return made


# --------------------------------------------------------------------------------------------------
# regions
# --------------------------------------------------------------------------------------------------


def test_a_blink_inside_keeps_inside_and_a_long_loss_is_decided_after_the_hold() -> None:
    # 30 fps: inside, 2 frames not seen (67 ms), inside, 30 frames not seen (1 s).
    stream = frames(30, [(10, INSIDE, SEEN), (2, INSIDE, NOT_SEEN), (10, INSIDE, SEEN),
                         (30, INSIDE, NOT_SEEN)])  # fmt: skip
    got = states(Region(ZONE), stream)
    last_seen = 21  # frame 21 (t = 0.7 s) is the last seen one
    decided = [i for i in range(22, 52) if stream[i].time_s - stream[last_seen].time_s > 0.5]
    assert got[:22] == [True] * 22  # the blink is bridged
    assert all(got[22 : decided[0]]) and not any(got[decided[0] :])
    assert decided[0] == 37  # 16 frames = 0.533 s after the last sighting: the first beyond 0.5
    # HOLD_S = 0: every frame alone (the behaviour before holds existed)
    alone = states(Region(ZONE, hold_s=0), stream)
    assert alone[10:12] == [False, False] and alone[12] and not any(alone[22:])


def test_a_blink_inside_is_no_new_entry_for_an_on_entry_rule() -> None:
    # The window's "on entry": MODE = inside with a rule on its rising edge; and MODE = entered.
    plan = [(5, OUTSIDE, SEEN), (10, INSIDE, SEEN), (1, INSIDE, NOT_SEEN), (10, INSIDE, SEEN)]
    stream = frames(30, [*plan, (2, INSIDE, NOT_SEEN), (10, INSIDE, SEEN)])

    def rising(got: list[bool]) -> int:
        return sum(1 for before, now in zip([False, *got], got, strict=False) if now and not before)

    assert rising(states(Region(ZONE), stream)) == 1  # one real entry
    assert rising(states(Region(ZONE, hold_s=0), stream)) == 3  # one per blink, as before
    assert sum(states(Region(ZONE, "entered"), stream)) == 1


def test_an_entry_or_exit_across_a_short_loss_is_seen_on_both_sides() -> None:
    # Seen outside, lost for 0.2 s, seen inside: an entry, on the frame it is seen inside.
    entering = frames(30, [(5, OUTSIDE, SEEN), (6, INSIDE, NOT_SEEN), (5, INSIDE, SEEN)])
    got = states(Region(ZONE, "entered"), entering)
    assert [i for i, fired in enumerate(got) if fired] == [11]
    inside = states(Region(ZONE), entering)
    assert not any(inside[:11]) and all(inside[11:])  # not inside before it is seen there
    # Seen inside, lost, seen outside: an exit on the frame it is seen outside.
    leaving = frames(30, [(5, INSIDE, SEEN), (6, OUTSIDE, NOT_SEEN), (5, OUTSIDE, SEEN)])
    got = states(Region(ZONE, "left"), leaving)
    assert [i for i, fired in enumerate(got) if fired] == [11]
    still_inside = states(Region(ZONE), leaving)
    assert all(still_inside[:11]) and not any(still_inside[11:])
    # Not seen for longer than the hold: the side is forgotten; seen inside again is no entry.
    gone = frames(30, [(5, OUTSIDE, SEEN), (30, INSIDE, NOT_SEEN), (5, INSIDE, SEEN)])
    assert not any(states(Region(ZONE, "entered"), gone))


def test_the_hold_is_seconds_of_frame_time_not_frames() -> None:
    # The same 10 frames not seen: 40 ms at 250 fps (bridged), 1 s at 10 fps (decided).
    plan = [(20, INSIDE, SEEN), (10, INSIDE, NOT_SEEN), (5, INSIDE, SEEN)]
    fast, slow = frames(250, plan), frames(10, plan)
    assert all(states(Region(ZONE), fast))
    got = states(Region(ZONE), slow)
    assert got[:25] == [True] * 25 and not any(got[25:30])  # 0.5 s = 5 frames at 10 fps
    # Frames skipped: irregular frame times; only the times count.
    times = [0.0, 0.1, 0.2, 0.6, 0.65, 0.75, 1.4, 1.45]
    seen = [True, True, False, False, True, False, False, True]
    stream = [pose(t, INSIDE, SEEN if s else NOT_SEEN) for t, s in zip(times, seen, strict=True)]
    # 0.6 - 0.1 = 0.5: still bridged; 1.4 - 0.65 = 0.75: decided.
    assert states(Region(ZONE), stream) == [True, True, True, True, True, True, False, True]


def test_a_new_replay_forgets_the_last_sighting() -> None:
    region = Region(ZONE)
    assert region.update(pose(5.0, INSIDE))
    # Time went backwards (a second replay of a file): nothing to bridge from.
    assert not region.update(pose(0.0, INSIDE, NOT_SEEN))
    region.reset()
    assert region.loss_hold is not None and region.loss_hold.last_seen_s is None


# --------------------------------------------------------------------------------------------------
# the other kinds that read keypoints
# --------------------------------------------------------------------------------------------------


def test_head_direction_keeps_its_state_through_a_blink_of_the_tip() -> None:
    target = (200.0, 100.0)  # straight ahead of a nose at (100, 100) with its neck behind it
    stream = frames(30, [(5, INSIDE, SEEN), (3, INSIDE, NOT_SEEN), (20, INSIDE, NOT_SEEN)])
    got = states(HeadDirection(target), stream)
    decided = next(i for i, obs in enumerate(stream) if obs.time_s - stream[4].time_s > 0.5)
    assert decided == 20  # the last sighting is frame 4; 0.5 s later, frame 19, still bridged
    assert all(got[:decided]) and not any(got[decided:])
    assert states(HeadDirection(target, hold_s=0), stream)[5:8] == [False] * 3


def test_speed_keeps_its_state_and_its_history_through_a_blink() -> None:
    # The nose runs right at 300 px/s; for 2 frames it is not seen.
    stream = [pose(f / 30, (10.0 + 10.0 * f, 100.0), NOT_SEEN if f in (10, 11) else SEEN)
              for f in range(20)]  # fmt: skip
    fast = SpeedAbove(200, keypoint="nose", window_s=0.2)
    got = states(fast, stream)
    assert got[10:12] == [True, True] and all(got[6:])  # kept, and measured across the gap
    assert fast.last_speed == pytest.approx(300.0)
    alone = states(SpeedAbove(200, keypoint="nose", window_s=0.2, hold_s=0), stream)
    assert not any(alone[10:13])  # lost, then a new history: unknown for one frame


def test_a_blink_does_not_end_a_freeze() -> None:
    stream = frames(30, [(40, INSIDE, SEEN), (2, INSIDE, NOT_SEEN), (20, INSIDE, SEEN)])
    frozen = Freezing(threshold=5, duration_s=1.0, keypoint="nose")
    got = states(frozen, stream)
    first = got.index(True)
    assert all(got[first:])  # frozen through the blink
    assert frozen.frozen_since == pytest.approx(0.0)
    alone = states(Freezing(threshold=5, duration_s=1.0, keypoint="nose", hold_s=0), stream)
    assert alone[40] is False and not any(alone[40 : 42 + 30])  # the freeze starts over


def test_a_distance_between_two_cameras_holds_through_a_blink_of_one() -> None:
    close = DistanceBelow("nose", "nose", 10, camera_a="left", camera_b="right")

    def pair(t: float, likelihood: float) -> Observations:
        left = pose(t, INSIDE, likelihood, camera="left")
        return Observations(t, {"left": left, "right": pose(t, (105.0, 100.0), camera="right")})

    assert close.update(pair(0.0, SEEN))
    assert close.update(pair(0.1, NOT_SEEN)) and close.holding
    assert not close.update(pair(0.7, NOT_SEEN))  # 0.7 s after the last sighting


def test_a_3d_trigger_holds_through_a_set_without_its_keypoint() -> None:
    high = make_trigger("height_above", {"threshold_mm": "30"})

    def update(t: float, nose_z: float | None) -> Observations:
        xyz = np.full((1, 3), np.nan) if nose_z is None else np.array([[0.0, 0.0, nose_z]])
        points = Points3D(("nose",), xyz, np.zeros(1), np.full(1, 2), t, 0.0)
        return Observations(t, {}, points)

    assert states(high, [update(0.0, 40.0), update(0.2, None), update(0.45, None)]) == [True] * 3
    assert not high.update(update(0.51, None))


# --------------------------------------------------------------------------------------------------
# the setting: every kind that reads keypoints has HOLD_S, and the experiment's HOLD reaches it
# --------------------------------------------------------------------------------------------------

#: Kinds that read no keypoint (images, clocks, combinators) or decide on a classifier's
#: probability (its features were trained with missing keypoints as they come: see
#: docs/experiments.md, "Short losses").
NO_HOLD = {"after", "every", "light", "motion_energy_above", "motion_energy_below", "classifier"}


def test_every_kind_that_reads_keypoints_has_hold_s_with_the_default() -> None:
    with_hold = {kind for kind in TRIGGER_KINDS if "hold_s" in parameter_specs(kind)}
    combinators = {kind for kind in TRIGGER_KINDS if trigger_kind(kind).combines}
    assert with_hold == set(TRIGGER_KINDS) - NO_HOLD - combinators
    assert DEFAULT_HOLD_S == 0.5
    for kind, params in (
        ("region", {"shape": "circle 1 2 3"}),
        ("speed_above", {"threshold": "5"}),
        ("distance", {"below_px": "5"}),
        ("inside_sphere3d", {"center": "0, 0, 0", "radius_mm": "5"}),
        ("pupil_above", {"threshold": "5"}),
    ):
        built = make_trigger(kind, params)
        assert built.describe()["hold_s"] == DEFAULT_HOLD_S, kind
        again = make_trigger(kind, {**params, "hold_s": "0.25"})
        rebuilt = make_trigger(
            kind, {k: str(v) for k, v in again.describe().items() if k != "kind"}
        )
        assert rebuilt.describe()["hold_s"] == 0.25, kind


def test_the_experiments_hold_reaches_every_trigger_that_sets_none() -> None:
    text = """
[Experiment]
HOLD = 0.2

[Trigger zone]
KIND = region
SHAPE = circle 100 100 30

[Trigger high]
KIND = height_above
THRESHOLD_MM = 30

[Trigger own]
KIND = region
SHAPE = circle 100 100 30
HOLD_S = 0
"""
    experiment = parse_experiment_config(text, "holds.ini").build()
    holds = {name: experiment.triggers[name].describe()["hold_s"] for name in experiment.triggers}
    assert holds == {"zone": 0.2, "high": 0.2, "own": 0.0}


# --------------------------------------------------------------------------------------------------
# events.csv: the likelihood of the keypoint a rule read
# --------------------------------------------------------------------------------------------------


def test_events_carry_the_likelihood_of_the_keypoint_the_trigger_read() -> None:
    text = """
[Trigger zone]
KIND = region
SHAPE = circle 100 100 30
HOLD_S = 0

[Stimulation flash]
DEVICE = box
COMMAND = pulse
CHANNEL = 0
DURATION = 0.1

[Rule go]
WHEN = zone
EDGE = rising
DO = flash
"""
    runtime = ExperimentRuntime(parse_experiment_config(text, "zone.ini").build())
    runtime.start()
    for obs in frames(30, [(3, OUTSIDE, SEEN), (3, INSIDE, 0.7), (1, INSIDE, 0.3)]):
        runtime.update(obs)
    changes = runtime.events.of_kind("trigger")
    assert [(e.detail, e.keypoint, e.likelihood) for e in changes] == [
        ("true", "nose", pytest.approx(0.7)),
        ("false", "nose", pytest.approx(0.3)),  # inside, but not seen: the likelihood says why
    ]
    assert changes[1].measured_x == 100.0  # the coordinates alone looked inside
    action = runtime.events.of_kind("action")[0]
    assert action.likelihood == pytest.approx(0.7)
    header, *rows = runtime.events.to_csv_text().splitlines()
    row = dict(zip(header.split(","), rows[2].split(","), strict=True))
    assert row["kind"] == "action" and row["likelihood"] == "0.700000"
