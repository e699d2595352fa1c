"""Triggers against ground truth: scripted paths in the simulated arena, and real IBL outputs.

Every expected value here is computed independently of ``experiments`` with plain geometry on the
simulation's true keypoints (or a straightforward loop over the real data), then compared frame
by frame with what the triggers report when fed one observation at a time.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from deeplabstream.experiments.observation import (
    KeypointFilter,
    Observation,
    Observations,
    pair_nearest,
)
from deeplabstream.experiments.triggers import (
    TRIGGER_KINDS,
    After,
    All,
    AnyOf,
    Circle,
    Condition,
    Debounce,
    DistanceAbove,
    DistanceBelow,
    Ellipse,
    Every,
    Freezing,
    HeadDirection,
    MotionEnergyAbove,
    Not,
    Polygon,
    PupilDiameterBelow,
    Rectangle,
    Region,
    Rising,
    SpeedAbove,
    SpeedBelow,
    TargetSide,
    Trigger,
    bearing_deg,
    make_trigger,
    motion_energy,
    pupil_diameter,
)
from deeplabstream.hardware.simulator.arena import (
    KEYPOINT_NAMES,
    ArenaParams,
    SimulatedArena,
    simulate_keypoints,
)
from tests.support.paths import shared_data

FPS = 30.0
T0 = 1000.0  # camera clocks do not start at zero
NOSE, NECK, CENTER = (KEYPOINT_NAMES.index(n) for n in ("nose", "neck", "body_center"))


def waypoint_keypoints(waypoints: list[tuple[int, float, float]], n: int) -> np.ndarray:
    """True keypoints (n, 6, 2) of a scripted path."""
    return simulate_keypoints(ArenaParams(motion="waypoints", waypoints=tuple(waypoints)), n)


def make_observations(
    keypoints: np.ndarray,
    frames: np.ndarray | None = None,
    likelihood: np.ndarray | None = None,
    camera: str = "top",
    names: tuple[str, ...] = KEYPOINT_NAMES,
) -> list[Observation]:
    """One observation per analysed frame, stamped T0 + frame / FPS."""
    frames = np.arange(len(keypoints)) if frames is None else frames
    observations = []
    for frame in frames:
        rows = np.ones((keypoints.shape[1], 3))
        rows[:, :2] = keypoints[frame]
        if likelihood is not None:
            rows[:, 2] = likelihood[frame]
        observations.append(Observation(T0 + frame / FPS, camera, int(frame), rows, names))
    return observations


def run(trigger: Trigger, observations: list) -> np.ndarray:
    return np.array([trigger.update(obs) for obs in observations])


def frames_where(flags: np.ndarray) -> list[int]:
    return np.flatnonzero(flags).tolist()


def entries(inside: np.ndarray) -> np.ndarray:
    """True where inside follows outside (never on the first frame)."""
    return np.concatenate(([False], inside[1:] & ~inside[:-1]))


def dwelt(inside: np.ndarray, times: np.ndarray, dwell_s: float) -> np.ndarray:
    """Inside continuously since the run's first frame for at least dwell_s (plain loop)."""
    result, run_start = np.zeros(len(inside), bool), None
    for i, now in enumerate(inside):
        run_start = (run_start if run_start is not None else times[i]) if now else None
        result[i] = now and times[i] - run_start >= dwell_s
    return result


# A path that crosses the arena's middle several times.
CROSSING_PATH = [(0, 100, 240), (50, 540, 240), (100, 320, 90), (150, 320, 400), (200, 100, 100)]


# --------------------------------------------------------------------------------------------------
# Regions
# --------------------------------------------------------------------------------------------------


def _inside_truth(shape: object, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Plain geometry, written independently of experiments.triggers.geometry."""
    if isinstance(shape, Circle):
        return np.hypot(xs - 320, ys - 240) <= 60
    if isinstance(shape, Rectangle):
        return (xs >= 250) & (xs <= 420) & (ys >= 180) & (ys <= 300)
    if isinstance(shape, Ellipse):
        a = math.radians(30)
        u = (xs - 330) * math.cos(a) + (ys - 250) * math.sin(a)
        v = -(xs - 330) * math.sin(a) + (ys - 250) * math.cos(a)
        return (u / 90) ** 2 + (v / 40) ** 2 <= 1
    contour = np.array([[200, 150], [450, 170], [380, 330], [300, 260], [230, 320]], np.float32)
    return np.array(
        [cv2.pointPolygonTest(contour, (x, y), False) >= 0 for x, y in zip(xs, ys, strict=True)]
    )


SHAPES = [
    Circle(320, 240, 60),
    Rectangle(250, 180, 420, 300),
    Ellipse(330, 250, 90, 40, 30),
    Polygon(((200, 150), (450, 170), (380, 330), (300, 260), (230, 320))),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: type(s).__name__)
def test_region_modes_match_plain_geometry(shape) -> None:
    keypoints = waypoint_keypoints(CROSSING_PATH, 200)
    observations = make_observations(keypoints)
    inside = _inside_truth(shape, keypoints[:, NOSE, 0], keypoints[:, NOSE, 1])
    assert entries(inside).sum() >= 2, "the path must cross into the region more than once"
    for mode, expected in [
        ("inside", inside),
        ("outside", ~inside),
        ("entered", entries(inside)),
        ("left", entries(~inside)),
    ]:
        got = run(Region(shape, mode=mode), observations)
        assert frames_where(got) == frames_where(expected), mode


# Visits of 58, 16 and 8 frames to the circle (320, 240, 60).
DWELL_PATH = [
    (0, 100, 240), (40, 300, 240), (80, 330, 250), (100, 540, 240),
    (140, 330, 200), (160, 100, 100), (180, 300, 260), (190, 100, 260),
]  # fmt: skip


def test_region_dwell_fires_exactly_after_the_dwell_time() -> None:
    keypoints = waypoint_keypoints(DWELL_PATH, 200)
    observations = make_observations(keypoints)
    times = np.array([obs.time_s for obs in observations])
    inside = np.hypot(keypoints[:, NOSE, 0] - 320, keypoints[:, NOSE, 1] - 240) <= 60
    for dwell in (0.45, 0.7):  # between frames, so the expectation does not hinge on rounding
        expected = dwelt(inside, times - T0, dwell)
        assert 1 <= entries(expected).sum() < entries(inside).sum()  # some visits are too short
        got = run(Region(Circle(320, 240, 60), min_dwell_s=dwell), observations)
        assert frames_where(got) == frames_where(expected)
        # entered with a dwell: once per visit, on the frame the dwell is reached
        got_entered = run(Region(Circle(320, 240, 60), "entered", min_dwell_s=dwell), observations)
        assert frames_where(got_entered) == frames_where(entries(expected))


def test_hysteresis_stops_flicker_at_the_edge() -> None:
    # The nose comes in across x = 400, then zigzags 390..410 along that edge, then leaves.
    path = [(0, 470, 40), (20, 397, 80)]
    path += [(20 + 10 * k, 397 if k % 2 == 0 else 403, 80 + 40 * k) for k in range(1, 7)]
    path += [(130, 520, 330)]
    keypoints = waypoint_keypoints(path, 140)
    nose_x = keypoints[:, NOSE, 0]
    assert (keypoints[:, NOSE, 1] > 40).all() and (keypoints[:, NOSE, 1] < 440).all()
    observations = make_observations(keypoints)
    rect = Rectangle(200, 40, 400, 440)

    plain = run(Region(rect, "entered"), observations)
    assert plain.sum() >= 4  # without hysteresis the edge flickers

    margin = 15.0
    # Expected with plain arithmetic: in once x <= 400, out only once x > 400 + margin.
    expected_inside, state = [], False
    for x in nose_x:
        state = x <= 400 + margin if state else x <= 400
        expected_inside.append(state)
    expected_inside = np.array(expected_inside)
    got = run(Region(rect, "inside", margin_px=margin), observations)
    assert frames_where(got) == frames_where(expected_inside)
    entered = run(Region(rect, "entered", margin_px=margin), observations)
    left = run(Region(rect, "left", margin_px=margin), observations)
    first_in = int(np.argmax(nose_x <= 400))
    first_far_out = first_in + int(np.argmax(nose_x[first_in:] > 400 + margin))
    assert frames_where(entered) == [first_in]
    assert frames_where(left) == [first_far_out]


def test_ellipse_and_polygon_distance_outside_are_exact() -> None:
    rng = np.random.default_rng(1)
    ellipse = Ellipse(330, 250, 90, 40, 30)
    polygon = SHAPES[3]
    angles = np.linspace(0, 2 * np.pi, 200_000, endpoint=False)
    a = math.radians(30)
    u, v = 90 * np.cos(angles), 40 * np.sin(angles)
    boundary_x = 330 + u * math.cos(a) - v * math.sin(a)
    boundary_y = 250 + u * math.sin(a) + v * math.cos(a)
    for x, y in rng.uniform([150, 100], [500, 400], size=(200, 2)):
        if not ellipse.contains(x, y):
            dense = np.hypot(boundary_x - x, boundary_y - y).min()
            assert ellipse.distance_outside(x, y) == pytest.approx(dense, abs=2e-3)
        if not polygon.contains(x, y):
            contour = np.array(polygon.points, np.float32)
            assert polygon.distance_outside(x, y) == pytest.approx(
                -cv2.pointPolygonTest(contour, (float(x), float(y)), True), abs=1e-3
            )


# --------------------------------------------------------------------------------------------------
# Head direction
# --------------------------------------------------------------------------------------------------


def random_walk(frames: int = 600) -> np.ndarray:
    """A seeded random walk: the head turns relative to the body, so neck->nose is not the path."""
    return simulate_keypoints(ArenaParams(seed=2), frames)


def test_head_direction_matches_the_true_angle() -> None:
    keypoints = random_walk()
    observations = make_observations(keypoints)
    target = (400.0, 200.0)
    head = keypoints[:, NOSE] - keypoints[:, NECK]
    to_target = np.array(target) - keypoints[:, NECK]
    cosine = (head * to_target).sum(1) / np.linalg.norm(head, axis=1)
    angle = np.degrees(np.arccos(np.clip(cosine / np.linalg.norm(to_target, axis=1), -1, 1)))
    for half_width in (20.0, 45.0):
        expected = angle <= half_width
        assert 20 < expected.sum() < len(expected) / 2
        got = run(HeadDirection(target, angle_deg=half_width), observations)
        assert frames_where(got) == frames_where(expected)
    # a region's centre is its target
    got = run(HeadDirection(Circle(400, 200, 30), angle_deg=20), observations)
    assert frames_where(got) == frames_where(angle <= 20)


def test_egocentric_side_follows_the_animals_own_left() -> None:
    keypoints = random_walk()
    observations = make_observations(keypoints)
    target = (400.0, 200.0)
    head = keypoints[:, NOSE] - keypoints[:, NECK]
    to_target = np.array(target) - keypoints[:, NECK]
    # Image y points down: seen from above, a target whose cross product is negative is on the
    # animal's left (facing +x, its left is -y, the top of the image).
    cross = head[:, 0] * to_target[:, 1] - head[:, 1] * to_target[:, 0]
    left, right = cross < 0, cross > 0
    assert left.sum() > 100 and right.sum() > 100
    assert frames_where(run(TargetSide(target, "left"), observations)) == frames_where(left)
    assert frames_where(run(TargetSide(target, "right"), observations)) == frames_where(right)
    # The arena's own left ear is on the animal's left in every frame of a random walk.
    walk = simulate_keypoints(ArenaParams(seed=3), 300)
    for frame in walk:
        neck, nose = frame[NECK], frame[NOSE]
        assert bearing_deg(neck, nose, frame[KEYPOINT_NAMES.index("left_ear")]) < 0
        assert bearing_deg(neck, nose, frame[KEYPOINT_NAMES.index("right_ear")]) > 0
    # Facing right (+x), a target above (-y) is on the left, below is on the right.
    assert bearing_deg((0, 0), (1, 0), (1, -1)) == pytest.approx(-45)
    assert bearing_deg((0, 0), (1, 0), (1, 1)) == pytest.approx(45)


# --------------------------------------------------------------------------------------------------
# Speed and freezing: a path that stops for 2 s, at 30 fps and with frames dropped at random
# --------------------------------------------------------------------------------------------------

STOP_PATH = [(0, 100, 240), (60, 340, 240), (120, 340, 240), (180, 540, 240)]
VERTICES = [0, 60, 120, 180]  # frames where the true path bends: kept in every frame subset
WINDOW = 0.25


def _true_position(t: np.ndarray) -> np.ndarray:
    """The body centre on the scripted path at any time (seconds since T0), linear in between."""
    frames = [f / FPS for f, _, _ in STOP_PATH]
    xs = np.interp(t, frames, [x for _, x, _ in STOP_PATH])
    ys = np.interp(t, frames, [y for _, _, y in STOP_PATH])
    return np.stack([xs, ys], 1)


def _true_speed(t: np.ndarray) -> np.ndarray:
    """Displacement over the last WINDOW seconds / WINDOW (since the start while shorter)."""
    start = np.maximum(t - WINDOW, 0.0)
    span = np.where(t - WINDOW >= 0, WINDOW, t)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.linalg.norm(_true_position(t) - _true_position(start), axis=1) / span


def _frame_subsets() -> dict[str, np.ndarray]:
    """Every frame at 30 fps, and an irregular subset: 45 % of the frames dropped at random.

    The irregular subset keeps the frames where the true path bends (VERTICES): between two
    analysed frames any estimator can only assume a straight line, so a corner no frame showed
    is unknowable. Every other frame may be dropped, leaving gaps of one to several frames.
    """
    rng = np.random.default_rng(7)
    kept = np.sort(rng.choice(np.arange(200), size=110, replace=False))
    return {"30fps": np.arange(200), "irregular": np.union1d(kept, VERTICES)}


@pytest.mark.parametrize("subset", ["30fps", "irregular"])
def test_speed_window_is_in_seconds(subset: str) -> None:
    keypoints = waypoint_keypoints(STOP_PATH, 200)
    frames = _frame_subsets()[subset]
    observations = make_observations(keypoints, frames)
    truth = _true_speed(frames / FPS)
    truth[0] = np.nan  # one observation: no speed yet
    for threshold in (30.0, 65.0, 110.0):
        assert np.nanmin(np.abs(truth - threshold)) > 1.0  # no frame sits on the threshold
        above = run(SpeedAbove(threshold, window_s=WINDOW), observations)
        below = run(SpeedBelow(threshold, window_s=WINDOW), observations)
        assert frames_where(above) == frames_where(truth > threshold)
        assert frames_where(below) == frames_where(truth < threshold)
    in_mm = SpeedAbove(1.0, window_s=WINDOW, mm_per_px=0.5)
    for index, obs in enumerate(observations):
        in_mm.update(obs)
        if index > 0:
            assert in_mm.last_speed == pytest.approx(0.5 * truth[index], abs=1e-6)


def test_freezing_fires_when_the_stop_has_lasted_the_duration_at_any_frame_rate() -> None:
    keypoints = waypoint_keypoints(STOP_PATH, 200)
    centre = keypoints[:, CENTER]
    # Ground truth from positions alone: when did the animal arrive where it is now?
    arrived = np.zeros(200)
    for i in range(200):
        same = i > 0 and np.array_equal(centre[i], centre[i - 1])
        arrived[i] = arrived[i - 1] if same else i / FPS
    results = {}
    for subset, frames in _frame_subsets().items():
        observations = make_observations(keypoints, frames)
        for duration in (0.5, 1.0, 1.5):
            expected = frames / FPS - arrived[frames] >= duration
            assert expected.any()
            got = run(Freezing(5.0, duration, window_s=WINDOW), observations)
            assert frames[got].tolist() == frames[expected].tolist(), (subset, duration)
            results[subset, duration] = set(frames[got].tolist())
    # The irregular run fires on exactly the kept frames where the 30 fps run fires.
    kept = set(_frame_subsets()["irregular"].tolist())
    for duration in (0.5, 1.0, 1.5):
        assert results["irregular", duration] == results["30fps", duration] & kept
    assert min(results["30fps", 1.0]) == 90 and max(results["30fps", 1.0]) == 120


def test_freezing_with_a_frame_counted_window_would_fail() -> None:
    """The same trigger fed timestamps that ignore dropped frames gets it wrong: times matter."""
    keypoints = waypoint_keypoints(STOP_PATH, 200)
    frames = _frame_subsets()["irregular"]
    wrong = [
        Observation(T0 + k / FPS, "top", int(f), obs.keypoints, KEYPOINT_NAMES)
        for k, (f, obs) in enumerate(zip(frames, make_observations(keypoints, frames), strict=True))
    ]
    got = run(Freezing(5.0, 1.0, window_s=WINDOW), wrong)
    assert set(frames[got].tolist()) != set(range(90, 121)) & set(frames.tolist())


# --------------------------------------------------------------------------------------------------
# Distance: two body parts, two animals in one camera, the same part in two cameras
# --------------------------------------------------------------------------------------------------


def test_distance_between_two_animals_and_two_cameras() -> None:
    a = waypoint_keypoints([(0, 100, 100), (120, 540, 380)], 120)
    b = waypoint_keypoints([(0, 540, 100), (120, 100, 380)], 120)
    truth = np.hypot(*(a[:, NOSE] - b[:, NOSE]).T)
    expected_below = truth < 80
    assert 0 < expected_below.sum() < 120

    names = tuple(f"a_{n}" for n in KEYPOINT_NAMES) + tuple(f"b_{n}" for n in KEYPOINT_NAMES)
    both = make_observations(np.concatenate([a, b], axis=1), names=names)
    assert frames_where(run(DistanceBelow("a_nose", "b_nose", 80), both)) == frames_where(
        expected_below
    )
    in_mm = DistanceAbove("a_nose", "b_nose", 40, mm_per_px=0.5)
    assert frames_where(run(in_mm, both)) == frames_where(truth > 80)

    cam1, cam2 = make_observations(a, camera="cam1"), make_observations(b, camera="cam2")
    streams = {"cam1": cam1, "cam2": cam2}
    paired = [pair_nearest(streams, obs.time_s) for obs in cam1]
    two_cameras = DistanceBelow("nose", "nose", 80, camera_a="cam1", camera_b="cam2")
    assert frames_where(run(two_cameras, paired)) == frames_where(expected_below)
    # A single camera's observation brings no news to a two-camera trigger.
    assert two_cameras.update(cam1[0]) == two_cameras.state

    # Two body parts of one animal: nose to tail base is one body length on a straight path.
    body = DistanceBelow("nose", "tail_base", ArenaParams().body_length_px + 0.01)
    assert run(body, make_observations(a)).all()


# --------------------------------------------------------------------------------------------------
# Time, combinators, likelihood policies
# --------------------------------------------------------------------------------------------------


def test_time_triggers_count_frame_time_from_the_first_observation() -> None:
    rng = np.random.default_rng(3)
    frames = np.sort(rng.choice(np.arange(300), 200, replace=False))
    frames[0] = 0
    observations = make_observations(np.zeros((300, 6, 2)), frames)
    elapsed = frames / FPS
    assert frames_where(run(After(2.0), observations)) == frames_where(elapsed >= 2.0)
    every = run(Every(period_s=1.0, duration_s=0.25), observations)
    assert frames_where(every) == frames_where(frames % 30 < 7.5)
    phased = run(Every(period_s=2.0, duration_s=0.5, phase_s=0.55), observations)
    assert frames_where(phased) == frames_where((frames >= 17) & ((frames - 16.5) % 60 < 15))
    # The host clock plays no part: a later replay of the same frames gives the same events.
    replay = [
        Observation(o.time_s + 5000, o.camera, o.frame_index, o.keypoints, o.names)
        for o in observations
    ]
    assert frames_where(run(After(2.0), replay)) == frames_where(elapsed >= 2.0)


def _sequence_trigger(values: list[bool]) -> Condition:
    return Condition(lambda obs: values[obs.frame_index], name="sequence")


def _ticks(n: int) -> list[Observation]:
    # 8 Hz: times are exact binary fractions
    return [Observation(i / 8, "top", i, np.zeros((1, 3)), ("x",)) for i in range(n)]


def test_combinators_and_debounce() -> None:
    f, t = False, True
    seq = [f, f, t, t, f, t, t, t, t, f, f, t, f, f, f]
    other = [t, f, t, f, t, f, t, f, t, f, t, f, t, f, t]
    obs = _ticks(len(seq))
    debounced = run(Debounce(_sequence_trigger(seq), on_s=0.25, off_s=0.125), obs)
    assert frames_where(debounced) == [7, 8, 9]
    assert frames_where(run(Rising(_sequence_trigger(seq)), obs)) == [2, 5, 11]
    assert frames_where(run(Not(_sequence_trigger(seq)), obs)) == frames_where(~np.array(seq))
    both = run(All(_sequence_trigger(seq), _sequence_trigger(other)), obs)
    either = run(AnyOf(_sequence_trigger(seq), _sequence_trigger(other)), obs)
    assert frames_where(both) == frames_where(np.array(seq) & np.array(other))
    assert frames_where(either) == frames_where(np.array(seq) | np.array(other))
    assert make_trigger("and", {}, [_sequence_trigger(seq)]).update(obs[2]) is True


def test_combinators_update_every_child_every_time() -> None:
    keypoints = waypoint_keypoints(CROSSING_PATH, 200)
    observations = make_observations(keypoints)
    alone = run(Region(Circle(320, 240, 60), "entered"), observations)
    inner = Region(Circle(320, 240, 60), "entered")
    edge = Rising(Region(Circle(320, 240, 60), "inside"))
    never, always = Condition(lambda o: False), Condition(lambda o: True)
    for combined in (All(never, inner, edge), AnyOf(always, inner, edge)):
        combined.reset()
        history = []
        for obs in observations:
            combined.update(obs)
            history.append((inner.state, edge.state))
        assert frames_where(np.array([h[0] for h in history])) == frames_where(alone)
        assert frames_where(np.array([h[1] for h in history])) == frames_where(alone)


def test_likelihood_policies_missing_and_hold() -> None:
    keypoints = waypoint_keypoints([(0, 320, 200), (100, 330, 260)], 100)  # nose stays inside
    likelihood = np.ones((100, 6))
    likelihood[40:45, NOSE] = 0.1  # a 5-frame dropout (0.17 s)
    likelihood[80:100, NOSE] = 0.1  # a long one
    observations = make_observations(keypoints, likelihood=likelihood)
    circle = Circle(325, 270, 80)
    assert all(circle.contains(*k[NOSE]) for k in keypoints)

    missing = run(Region(circle, hold_s=0), observations)  # every frame decides alone
    assert frames_where(~missing) == [*range(40, 45), *range(80, 100)]
    # By default (HOLD_S = 0.5) the state holds while (frame - 79) / 30 <= 0.5: to frame 94.
    bridged = run(Region(circle), observations)
    assert frames_where(~bridged) == list(range(95, 100))
    hold = run(Region(circle, policy="hold", hold_s=0.25), observations)
    # held while (frame - 79) / 30 <= 0.25: frames 80..86
    assert frames_where(~hold) == list(range(87, 100))
    # A dropout breaks "continuously inside" under "missing"; "hold" bridges it.
    dwell_missing = run(Region(circle, min_dwell_s=0.19, hold_s=0), observations)
    assert frames_where(dwell_missing[40:80]) == list(range(45 + 6 - 40, 40))
    dwell_hold = run(Region(circle, min_dwell_s=0.19, policy="hold", hold_s=0.25), observations)
    assert dwell_hold[6:87].all() and not dwell_hold[87:].any()
    dwell_bridged = run(Region(circle, min_dwell_s=0.19), observations)
    assert dwell_bridged[6:95].all() and not dwell_bridged[95:].any()
    # A reappearance inside after a dropout is not an entry, bridged or not.
    assert not run(Region(circle, "entered"), observations).any()
    assert not run(Region(circle, "entered", hold_s=0), observations).any()

    keypoint_filter = KeypointFilter(0.5, "hold", 0.11)
    points = [keypoint_filter.point(obs, "nose") for obs in observations[38:46]]
    assert points[:2] == [tuple(keypoints[f, NOSE]) for f in (38, 39)]
    assert points[2:5] == [tuple(keypoints[39, NOSE])] * 3  # 1/30, 2/30, 3/30 s <= 0.11 s
    assert points[5] is None and points[6] is None
    assert points[7] == tuple(keypoints[45, NOSE])
    assert observations[40].point("nose", 0.5) is None
    assert observations[40].point("nose") == tuple(keypoints[40, NOSE])


# --------------------------------------------------------------------------------------------------
# Image features
# --------------------------------------------------------------------------------------------------


def test_motion_energy_in_a_roi() -> None:
    # The animal stands, crosses the ROI in 20 frames, and stands again.
    params = ArenaParams(
        width=160, height=120, color=False, motion="waypoints", noise=1.0, lighting_drift=0.0,
        waypoints=((0, 30, 60), (20, 30, 60), (40, 130, 60), (70, 130, 60)),
    )  # fmt: skip
    arena = SimulatedArena(params)
    frames = []
    for _ in range(70):
        frame = np.empty(arena.frame_shape, np.uint8)
        arena.render_next(frame)
        frames.append(frame)
    roi = (60, 30, 100, 90)
    expected = [None] + [
        float(np.mean(np.abs(frames[i][30:91, 60:101].astype(int) - frames[i - 1][30:91, 60:101])))
        for i in range(1, 70)
    ]
    for i in range(1, 70):
        assert motion_energy(frames[i - 1], frames[i], roi) == pytest.approx(expected[i], abs=1e-9)
    still, moving = max(expected[1:20]), max(expected[25:45])
    assert moving > 3 * still
    threshold = 2 * still
    observations = [
        Observation(T0 + i / FPS, "top", i, np.zeros((1, 3)), ("x",), frame)
        for i, frame in enumerate(frames)
    ]
    got = run(MotionEnergyAbove(roi, threshold), observations)
    assert frames_where(got) == [i for i in range(1, 70) if expected[i] > threshold]
    assert got.sum() >= 10 and set(frames_where(got)) <= set(range(21, 41))  # while it moves
    no_frame = Observation(T0 + 3, "top", 90, np.zeros((1, 3)), ("x",))
    assert MotionEnergyAbove(roi, 0).update(no_frame) is False


# --------------------------------------------------------------------------------------------------
# Real data: IBL pupil and paws
# --------------------------------------------------------------------------------------------------


def _read_lp_csv(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """Keypoint names and (frames, K, 3) from a Lightning Pose / DLC-style CSV."""
    table = pd.read_csv(path, header=[0, 1, 2], index_col=0)
    names = tuple(dict.fromkeys(table.columns.get_level_values(1)))
    values = table.to_numpy(np.float64).reshape(len(table), len(names), 3)
    return names, values


def _ibl_pupil_loop(top, right, bottom, left, min_likelihood: float = 0.9) -> float:
    """IBL's rule, spelled out for one frame: drop points below 0.9, median of 6 estimates."""
    seen = {
        name: (p[0], p[1]) if p[2] >= min_likelihood else None
        for name, p in (("t", top), ("r", right), ("b", bottom), ("l", left))
    }
    estimates = []
    for first, second, factor in [
        ("t", "b", 1.0), ("l", "r", 1.0),
        ("t", "l", 2**0.5), ("t", "r", 2**0.5), ("b", "l", 2**0.5), ("b", "r", 2**0.5),
    ]:  # fmt: skip
        if seen[first] is not None and seen[second] is not None:
            (x1, y1), (x2, y2) = seen[first], seen[second]
            estimates.append(factor * ((x1 - x2) ** 2 + (y1 - y2) ** 2) ** 0.5)
    return statistics.median(estimates) if estimates else math.nan


def test_pupil_diameter_on_ibl_data_matches_ibls_rule() -> None:
    folder = shared_data("ibl-pupil")
    names, values = _read_lp_csv(next(folder.glob("*.rng=2.csv")))  # seed 2 has drops < 0.9
    order = [
        names.index(n) for n in ("pupil_top_r", "pupil_right_r", "pupil_bottom_r", "pupil_left_r")
    ]
    points = values[:, order]
    assert (points[..., 2] < 0.9).any()
    # Exercise the rule harder: more low-likelihood points, including frames with none left.
    rng = np.random.default_rng(0)
    damaged = points.copy()
    damaged[..., 2][rng.random(damaged.shape[:2]) < 0.3] = 0.5
    damaged[:5, :, 2] = 0.1
    for data in (points, damaged):
        loop = np.array([_ibl_pupil_loop(*frame) for frame in data])
        vectorised = pupil_diameter(data)
        np.testing.assert_allclose(vectorised, loop, rtol=1e-12, equal_nan=True)
        one = [pupil_diameter(frame) for frame in data[:50]]
        np.testing.assert_allclose(one, loop[:50], rtol=1e-12, equal_nan=True)
    loop = np.array([_ibl_pupil_loop(*frame) for frame in damaged])
    assert np.isnan(loop[:5]).all() and loop.shape[0] - np.isnan(loop).sum() > 5
    assert 10 < np.nanmedian(loop) < 40  # pixels of a ~100 px eye crop

    threshold = float(np.nanmedian(loop))
    full = values.copy()
    full[:, order] = damaged
    observations = [Observation(i / 60, "left", i, frame, names) for i, frame in enumerate(full)]
    got = run(PupilDiameterBelow(threshold, hold_s=0), observations)  # IBL's rule, frame by frame
    assert frames_where(got) == frames_where(np.nan_to_num(loop, nan=np.inf) < threshold)
    # By default a frame without an estimate keeps the state for 0.5 s after the last estimate.
    expected, state, last_known = [], False, None
    for index, diameter in enumerate(loop):
        t = index / 60
        if np.isnan(diameter):
            state = state if last_known is not None and t - last_known <= 0.5 else False
        else:
            state, last_known = bool(diameter < threshold), t
        expected.append(state)
    assert run(PupilDiameterBelow(threshold), observations).tolist() == expected
    assert expected != (np.nan_to_num(loop, nan=np.inf) < threshold).tolist()  # a loss bridged


def test_ibl_paws_two_cameras_paired_by_timestamp() -> None:
    folder = shared_data("ibl-paw")
    streams, data, times = {}, {}, {}
    for side in ("left", "right"):
        names, values = _read_lp_csv(next(folder.glob(f"*.{side}.rng=0.csv")))
        stamps = np.load(next(folder.glob(f"*.timestamps.{side}.npy")))
        assert len(stamps) == len(values)
        data[side], times[side] = values, stamps
        streams[side] = [
            Observation(float(t), side, i, frame, names)
            for i, (t, frame) in enumerate(zip(stamps, values, strict=True))
        ]
    assert len(times["left"]) < len(times["right"])  # ~60 Hz and ~150 Hz

    # Pair at every right frame (the faster camera drives); the left pick is the nearest frame.
    paired = [pair_nearest(streams, obs.time_s) for obs in streams["right"]]
    left_times = times["left"]
    after = np.clip(np.searchsorted(left_times, times["right"]), 1, len(left_times) - 1)
    nearer_before = times["right"] - left_times[after - 1] <= left_times[after] - times["right"]
    nearest_left = np.where(nearer_before, after - 1, after)
    picked = np.array([p["left"].frame_index for p in paired])
    np.testing.assert_array_equal(picked, nearest_left)
    errors = np.array([p.errors_s["left"] for p in paired])
    assert all(p.errors_s["right"] == 0 for p in paired)
    inside_span = (times["right"] > left_times[0]) & (times["right"] < left_times[-1])
    bracket = left_times[after] - left_times[after - 1]
    assert (np.abs(errors[inside_span]) <= bracket[inside_span] / 2 + 1e-12).all()
    slower_interval = np.median(np.diff(left_times))
    assert np.mean(np.abs(errors[inside_span]) <= slower_interval / 2 + 1e-9) > 0.99

    # Triggers on the paired stream: left camera's right paw in a circle, right camera's paws close.
    names = streams["left"][0].names
    paw_r, paw_l = names.index("paw_r"), names.index("paw_l")
    left_paw = data["left"][nearest_left, paw_r]
    centre, radius = (66.0, 68.0), 6.0
    inside = (np.hypot(left_paw[:, 0] - centre[0], left_paw[:, 1] - centre[1]) <= radius) & (
        left_paw[:, 2] >= 0.5
    )
    entered = run(Region(Circle(*centre, radius), "entered", "paw_r", camera="left"), paired)
    expected_entered = np.concatenate(([False], inside[1:] & ~inside[:-1]))
    assert expected_entered.sum() >= 3
    assert frames_where(entered) == frames_where(expected_entered)

    right = data["right"]
    gap = np.hypot(*(right[:, paw_l, :2] - right[:, paw_r, :2]).T)
    seen = (right[:, paw_l, 2] >= 0.5) & (right[:, paw_r, 2] >= 0.5)
    assert not seen.all()  # the right camera loses the right paw at times
    threshold = float(np.median(gap))
    close = DistanceBelow("paw_l", "paw_r", threshold, camera="right")
    expected_close = seen & (gap < threshold)
    assert frames_where(run(close, paired)) == frames_where(expected_close)

    both = All(
        Region(Circle(*centre, radius), "inside", "paw_r", camera="left"),
        DistanceBelow("paw_l", "paw_r", threshold, camera="right"),
    )
    assert frames_where(run(both, paired)) == frames_where(inside & expected_close)


# --------------------------------------------------------------------------------------------------
# Observations, describe/shapes, and the factory
# --------------------------------------------------------------------------------------------------


def test_observation_checks_and_pairing_edges() -> None:
    with pytest.raises(ValueError, match="2 names"):
        Observation(0.0, "top", 0, np.zeros((3, 3)), ("a", "b"))
    obs = Observation(0.0, "top", 0, np.zeros((1, 3)), ("nose",))
    with pytest.raises(KeyError, match="keypoints are nose"):
        obs.point("tail")
    paired = pair_nearest({"a": [obs], "b": []}, 0.5, max_error_s=1.0)
    assert list(paired) == ["a"] and paired.max_error_s == 0.5
    assert list(pair_nearest({"a": [obs]}, 3.0, max_error_s=1.0)) == []
    two = Observations(0.0, {"a": obs, "b": obs})
    with pytest.raises(ValueError, match="give it camera="):
        Region(Circle(0, 0, 1)).update(two)


DESCRIBED = [
    Region(
        Ellipse(10, 20, 5, 3, 15), "left", "neck", 0.5, 2, camera="top", policy="hold", hold_s=0.1
    ),
    Region(Polygon(((10, 10), (100, 10), (100, 100))), "entered"),
    HeadDirection((320, 240), 25.5),
    HeadDirection(Rectangle(0, 0, 10, 10), 10, origin="left_ear", tip="nose"),
    TargetSide((1, 2), "right", max_angle_deg=90),
    SpeedAbove(10, mm_per_px=0.2),
    SpeedBelow(3, "nose", window_s=0.5, min_likelihood=0.8),
    Freezing(2, 1.5),
    DistanceBelow("nose", "nose", 30, camera_a="a", camera_b="b"),
    DistanceAbove("nose", "tail_base", 10, camera="top", mm_per_px=0.1),
    After(3),
    Every(10, 2, phase_s=1),
    MotionEnergyAbove((1, 2, 30, 40), 4.5),
    PupilDiameterBelow(20, min_likelihood=0.95),
]


@pytest.mark.parametrize("trigger", DESCRIBED, ids=lambda t: t.kind)
def test_describe_round_trips_through_make_trigger(trigger: Trigger) -> None:
    described = trigger.describe()
    kind = described.pop("kind")
    rebuilt = make_trigger(kind, {k: str(v) for k, v in described.items()})
    assert type(rebuilt) is type(trigger)
    assert rebuilt.describe() == trigger.describe()
    assert isinstance(trigger.shapes(), list)


def test_make_trigger_builds_from_strings_and_combinators() -> None:
    region = make_trigger("region", {"shape": "circle 320 240 50", "mode": "entered"})
    assert isinstance(region, Region) and region.shape == Circle(320, 240, 50)
    polygon = make_trigger("Region", {"shape": "polygon 10,10 100,10 100,100"})
    assert polygon.shapes() == [Polygon(((10, 10), (100, 10), (100, 100)))]
    debounce = make_trigger("debounce", {"on_s": "0.5"}, [region])
    assert isinstance(debounce, Debounce) and debounce.on_s == 0.5
    assert debounce.describe()["children"] == [region.describe()]
    assert set(TRIGGER_KINDS) >= {"region", "freezing", "pupil_below", "all", "or", "rising"}


BAD = [
    ("regoin", {}, ["unknown trigger kind 'regoin'", "known: after, all,", "region"]),
    ("region", {}, ["'region' needs parameter 'shape'", "circle CX CY R"]),
    (
        "region",
        {"shape": "circle 1 2"},
        ["'shape' = 'circle 1 2'", "circle CX CY R", "polygon X,Y"],
    ),
    ("region", {"shape": "polygon 1,1 2,2"}, ["'shape' = 'polygon 1,1 2,2'", "at least 3 points"]),
    ("region", {"shape": "circle 1 2 -3"}, ["'circle 1 2 -3'", "radius must be > 0"]),
    ("region", {"shape": "hexagon 1 2 3"}, ["'hexagon 1 2 3'", "rect X_MIN Y_MIN X_MAX Y_MAX"]),
    ("region", {"shape": "rect 5 5 1 1"}, ["'rect 5 5 1 1'", "X_MIN < X_MAX"]),
    (
        "region",
        {"shape": "circle 1 2 3", "mode": "in"},
        ["'mode' = 'in'", "inside, outside, entered, left"],
    ),
    ("region", {"shape": "circle 1 2 3", "radius": "3"}, ["no parameter 'radius'", "shape, mode"]),
    ("region", {"shape": "circle 1 2 3", "min_dwell_s": "-1"}, ["'min_dwell_s' = '-1'", ">= 0"]),
    ("region", {"shape": "circle 1 2 3", "policy": "keep"}, ["'policy' = 'keep'", "missing, hold"]),
    ("region", {"shape": "circle 1 2 3", "hold_s": "-0.2"}, ["hold_s", "'-0.2'", ">= 0"]),
    (
        "region",
        {"shape": "circle 1 2 3", "min_likelihood": "1.5"},
        ["'min_likelihood' = '1.5'", "[0, 1]"],
    ),
    ("speed_above", {"threshold": "fast"}, ["'threshold' = 'fast'", "a number >= 0"]),
    ("speed_above", {"threshold": "nan"}, ["'threshold' = 'nan'", "a number"]),
    ("freezing", {"threshold": "5"}, ["needs parameter 'duration_s'"]),
    (
        "freezing",
        {"threshold": "5", "duration_s": "1", "window_s": "0"},
        ["'window_s' = '0'", "> 0"],
    ),
    ("head_direction", {"target": "here"}, ["'target' = 'here'", "'X,Y'"]),
    ("head_direction", {"target": "1,2", "angle_deg": "200"}, ["'angle_deg' = '200'", "(0, 180]"]),
    ("target_side", {"target": "1,2", "side": "up"}, ["'side' = 'up'", "left, right"]),
    ("distance_below", {"a": "nose", "threshold": "3"}, ["needs parameter 'b'"]),
    (
        "distance_below",
        {"a": "nose", "b": "nose", "threshold": "3", "camera_a": "x"},
        ["camera_a and camera_b"],
    ),
    ("every", {"period_s": "1", "duration_s": "2"}, ["duration_s", "period_s"]),
    (
        "motion_energy_above",
        {"roi": "circle 1 2 3", "threshold": "1"},
        ["'roi' = 'circle 1 2 3'", "rectangle"],
    ),
    (
        "pupil_below",
        {"threshold": "1", "keypoints": "a,b"},
        ["'keypoints' = 'a,b'", "TOP,RIGHT,BOTTOM,LEFT"],
    ),
    (
        "region",
        {"shape": "circle 1 2 3", "keypoint": "two words"},
        ["'keypoint' = 'two words'", "without spaces"],
    ),
]


@pytest.mark.parametrize(
    ("kind", "params", "phrases"), BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)]
)
def test_bad_parameters_give_clear_messages(kind: str, params: dict, phrases: list[str]) -> None:
    with pytest.raises(ValueError) as caught:
        make_trigger(kind, params)
    for phrase in phrases:
        assert phrase in str(caught.value), (phrase, str(caught.value))


def test_combinator_factory_errors() -> None:
    region = Region(Circle(1, 1, 1))
    with pytest.raises(ValueError, match="'not' combines exactly 1 child"):
        make_trigger("not", {}, [region, region])
    with pytest.raises(ValueError, match="'all' combines at least 1 child"):
        make_trigger("all", {})
    with pytest.raises(ValueError, match="'region' takes no child triggers"):
        make_trigger("region", {"shape": "circle 1 2 3"}, [region])
    with pytest.raises(ValueError, match="'debounce': parameter 'on_s' = 'soon'"):
        make_trigger("debounce", {"on_s": "soon"}, [region])
