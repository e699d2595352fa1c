"""Labelled behaviours of the simulated mouse: walking, freezing, grooming, rearing.

Real simulations, renderers and camera sessions throughout (no mocks): the plain random walk is
unchanged when no behaviour is named, every named behaviour occurs in bouts of the documented
lengths, each looks like what its label says (in the poses and in the drawn frames), and the
synthetic camera writes a label per frame beside the truth file, equal to the offline simulation.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deeplabstream.core.schema import Where, parse_section
from deeplabstream.hardware.cameras.synthetic import SyntheticCamera, SyntheticSettings
from deeplabstream.hardware.simulator.arena import (
    BEHAVIOUR_NAMES,
    BOUTS,
    POSE_WIDTH,
    ArenaParams,
    ArenaRenderer,
    Pose,
    SimulatedArena,
    keypoints_from_poses,
    simulate_behaviours,
    simulate_keypoints,
    simulate_poses,
)
from deeplabstream.hardware.simulator.herd import HerdParams
from deeplabstream.hardware.simulator.truth import read_behaviours, read_truth
from tests.support.files import write_settings
from tests.support.processes import only_session, run_cli

NOSE, NECK, BODY_CENTER, TAIL_BASE = 0, 3, 4, 5
X, Y, HEADING, HEAD_TURN, TAIL_BEND, STRETCH, RETRACT = range(7)
WHERE = Where(Path("x.ini"), "Camera arena")
ALL = BEHAVIOUR_NAMES
THREE_MINUTES = 180 * 30
SEEDS = (1, 2, 3)

# Computed with the code before behaviours existed (320x240, 30 Hz): the pose of frame 599 and
# the pixel sums of rendered frames 0, 30 and 59, per seed.
BEFORE: dict[int, tuple[tuple[float, ...], tuple[int, int, int]]] = {
    0: (
        (158.1574762025426, 180.27529728839338, -2.434758015222577, 0.46392603703489593,
         -0.94930365489038),
        (37184182, 36958406, 36535207),
    ),
    1: (
        (60.59980663967878, 93.17282998332769, -1.1302844476841587, 0.39323920568788123,
         -0.9025532123121445),
        (37602687, 36991466, 36566236),
    ),
    7: (
        (117.70019167930343, 173.43288507231816, 2.7892564101229347, 0.187056634583045,
         -0.31199903515556243),
        (39195214, 38928616, 38509962),
    ),
}  # fmt: skip


def bouts(labels: np.ndarray) -> list[tuple[str, int, int]]:
    """``(behaviour, first frame, frames)`` of each run of equal labels."""
    runs, start = [], 0
    for label, group in itertools.groupby(labels.tolist()):
        count = len(list(group))
        runs.append((label, start, count))
        start += count
    return runs


def simulate(seed: int, n_frames: int = THREE_MINUTES, **arena: Any) -> tuple[Any, ...]:
    """Params, poses, labels and keypoints of a labelled simulation."""
    params = ArenaParams(seed=seed, behaviours=arena.pop("behaviours", ALL), **arena)
    poses, labels = simulate_behaviours(params, n_frames)
    return params, poses, labels, keypoints_from_poses(poses, params.body_length_px)


def parse(items: dict[str, str]) -> tuple[SyntheticSettings | None, list[str]]:
    problems: list[str] = []
    return parse_section(SyntheticSettings, items, WHERE, problems), problems


# --- unchanged without behaviours -------------------------------------------------------------


@pytest.mark.parametrize("seed", sorted(BEFORE))
def test_without_behaviours_every_seed_gives_exactly_the_poses_and_frames_of_before(
    seed: int,
) -> None:
    pose_before, sums_before = BEFORE[seed]
    params = ArenaParams(seed=seed, width=320, height=240)
    assert params.behaviours == ()
    poses = simulate_poses(params, 600)
    assert poses.shape == (600, POSE_WIDTH)
    assert tuple(poses[599, :5].tolist()) == pose_before  # bit for bit
    assert np.all(poses[:, STRETCH] == 1.0) and np.all(poses[:, RETRACT] == 0.0)
    arena = SimulatedArena(params)
    frame = np.empty(arena.frame_shape, np.uint8)
    sums = []
    for index in range(60):
        arena.render_next(frame)
        if index in (0, 30, 59):
            sums.append(int(frame.sum(dtype=np.int64)))
    assert tuple(sums) == sums_before
    assert arena.behaviour is None


def test_the_settings_without_behaviours_give_the_plain_walk() -> None:
    settings, problems = parse({"SEED": "7"})
    assert settings is not None, problems
    assert settings.behaviours == ()
    params = settings.arena_params()
    assert params.behaviours == ()
    np.testing.assert_array_equal(
        simulate_keypoints(params, 300), simulate_keypoints(ArenaParams(seed=7), 300)
    )


def test_the_plain_walk_ends_in_runs_and_in_freezes_that_stand_still() -> None:
    """MouseBehaviour: a walk ends in a run (3 to 6 BL/s) or a freeze (the animal stands still).

    Two minutes of the plain walk, simulated without rendering (a session's few seconds of
    frames may hold neither).
    """
    params = ArenaParams(seed=3)
    poses = simulate_poses(params, round(120 * params.framerate))
    speed = np.linalg.norm(np.diff(poses[:, [X, Y]], axis=0), axis=1)
    speed *= params.framerate / params.body_length_px  # body lengths per second
    still = [len(list(frames)) for is_still, frames in itertools.groupby(speed < 0.01) if is_still]
    assert max(still) >= params.framerate  # a freeze: a second without a step
    assert speed.max() > 4.5  # a run: walks are drawn at 3 BL/s at most


def test_keypoints_of_poses_of_the_old_width_equal_those_with_the_default_fields() -> None:
    poses = simulate_poses(ArenaParams(seed=4), 200)
    length = 96.0
    np.testing.assert_array_equal(
        keypoints_from_poses(poses[:, :5], length), keypoints_from_poses(poses, length)
    )


# --- bouts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_every_behaviour_occurs_in_three_minutes_in_bouts_of_the_documented_lengths(
    seed: int,
) -> None:
    params, _, labels, _ = simulate(seed)
    assert set(labels.tolist()) == set(ALL)
    runs = bouts(labels)
    half_frame = 0.5 / params.framerate
    for label, _, frames in runs[:-1]:  # the last bout is cut by the end of the simulation
        low, high = BOUTS.duration(label)
        assert low - half_frame <= frames / params.framerate <= high + half_frame, label
    # Consecutive bouts differ when several behaviours are named.
    assert all(a[0] != b[0] for a, b in itertools.pairwise(runs))
    freezes = [frames / params.framerate for label, _, frames in runs[:-1] if label == "freezing"]
    assert sum(seconds > 2.0 for seconds in freezes) >= 0.5 * len(freezes) > 0


def test_bouts_last_the_same_seconds_at_any_frame_rate() -> None:
    for framerate in (15.0, 60.0):
        _, _, labels, _ = simulate(5, int(120 * framerate), framerate=framerate)
        for label, _, frames in bouts(labels)[:-1]:
            low, high = BOUTS.duration(label)
            assert low - 0.5 / framerate <= frames / framerate <= high + 0.5 / framerate


@pytest.mark.parametrize(
    "named",
    [("walking", "freezing"), ("grooming", "rearing"), ("freezing",), ("rearing", "walking")],
)
def test_only_the_named_behaviours_occur(named: tuple[str, ...]) -> None:
    _, poses, labels, _ = simulate(2, 3600, behaviours=named)
    assert set(labels.tolist()) == set(named)
    if "walking" not in named:  # nothing moves the body then
        assert np.all(poses[:, :3] == poses[0, :3])


def test_the_order_behaviours_are_named_in_does_not_matter() -> None:
    _, first, first_labels, _ = simulate(3, 900, behaviours=("rearing", "walking", "grooming"))
    _, second, second_labels, _ = simulate(3, 900, behaviours=("walking", "grooming", "rearing"))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first_labels, second_labels)


# --- what each behaviour looks like -----------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_freezing_frames_have_no_motion_at_all(seed: int) -> None:
    _, poses, labels, _ = simulate(seed)
    freezing = np.flatnonzero(labels == "freezing")
    freezing = freezing[freezing > 0]
    assert freezing.size > 100
    # Every field of every freezing frame equals the frame before (the first included).
    np.testing.assert_array_equal(poses[freezing], poses[freezing - 1])


@pytest.mark.parametrize("seed", SEEDS)
def test_rearing_shortens_the_animal_seen_from_above_and_keeps_its_centre(seed: int) -> None:
    params, poses, labels, keypoints = simulate(seed)
    length = params.body_length_px
    nose_to_tail = np.hypot(*(keypoints[:, NOSE] - keypoints[:, TAIL_BASE]).T) / length
    rearing, walking = labels == "rearing", labels == "walking"
    assert np.median(nose_to_tail[rearing]) < 0.8 * np.median(nose_to_tail[walking])
    assert np.median(nose_to_tail[walking]) > 0.95
    for label, start, frames in bouts(labels)[1:-1]:  # whole bouts after a first frame
        if label != "rearing":
            continue
        bout = slice(start, start + frames)
        # Down to 55-70 % of the body length, smoothly, and back to full length at its end.
        assert 0.55 - 1e-9 <= poses[bout, STRETCH].min() <= 0.70 + 1e-9
        assert poses[start + frames - 1, STRETCH] == 1.0
        assert np.abs(np.diff(poses[bout, STRETCH])).max() < 0.2
        assert np.all(poses[bout, :3] == poses[start - 1, :3])  # centre and heading still
        assert np.all(poses[bout, TAIL_BEND] == poses[start - 1, TAIL_BEND])


@pytest.mark.parametrize("seed", SEEDS)
def test_grooming_moves_the_head_rhythmically_while_the_body_and_tail_stay(seed: int) -> None:
    params, poses, labels, keypoints = simulate(seed)
    rate = params.framerate
    grooming = np.flatnonzero(labels == "grooming")
    grooming = grooming[grooming > 0]
    centre_speed = np.hypot(*np.diff(keypoints[:, BODY_CENTER], axis=0).T) * rate
    assert centre_speed[grooming - 1].max() < 1e-9  # body centre still
    nose_speed = np.hypot(*np.diff(keypoints[:, NOSE], axis=0).T) * rate / params.body_length_px
    assert np.median(nose_speed[grooming - 1]) > 0.5  # BL/s: the head is busy
    for label, start, frames in bouts(labels)[1:-1]:
        if label != "grooming":
            continue
        bout = slice(start, start + frames)
        assert np.all(poses[bout, TAIL_BEND] == poses[start - 1, TAIL_BEND])  # tail still
        assert poses[bout, RETRACT].max() > 0.25  # the nose is drawn back ...
        assert poses[start + frames - 1, RETRACT] == 0.0  # ... and out again at the end
        # The head turns to and fro at 3-6 Hz: the strongest frequency of its turning.
        turn = poses[bout, HEAD_TURN] - poses[bout, HEAD_TURN].mean()
        spectrum = np.abs(np.fft.rfft(turn * np.hanning(turn.size)))
        frequencies = np.fft.rfftfreq(turn.size, 1.0 / rate)
        assert 2.5 <= frequencies[np.argmax(spectrum)] <= 6.5


def test_a_rendered_rearing_frame_shows_a_shorter_animal() -> None:
    params, poses, labels, _ = simulate(1, noise=0.0, lighting_drift=0.0)
    rearing = np.flatnonzero(labels == "rearing")
    index = int(rearing[np.argmin(poses[rearing, STRETCH])])
    reared = Pose(*poses[index].tolist())
    upright = reared._replace(stretch=1.0, head_turn=0.0)
    reared = reared._replace(head_turn=0.0)
    renderer = ArenaRenderer(params)
    frame = np.empty(renderer.frame_shape, np.uint8)

    def extent_along_heading(pose: Pose) -> tuple[float, int]:
        renderer.render(pose, index, frame)
        ys, xs = np.nonzero(frame.mean(axis=2) < 60)  # trunk and head (the tail is lighter)
        near = np.hypot(xs - pose.x, ys - pose.y) < params.body_length_px  # not the walls
        ys, xs = ys[near], xs[near]
        along = (xs - pose.x) * math.cos(pose.heading) + (ys - pose.y) * math.sin(pose.heading)
        return float(along.max() - along.min()), xs.size

    long_extent, long_pixels = extent_along_heading(upright)
    short_extent, short_pixels = extent_along_heading(reared)
    assert reared.stretch <= 0.7
    assert short_extent < 0.8 * long_extent
    assert abs(short_extent / long_extent - reared.stretch) < 0.1
    assert short_pixels < 0.8 * long_pixels


# --- settings ---------------------------------------------------------------------------------


def test_the_behaviours_key_is_parsed_and_checked() -> None:
    settings, problems = parse({"BEHAVIOURS": "rearing, walking"})
    assert settings is not None, problems
    assert settings.behaviours == ("rearing", "walking")
    assert settings.arena_params().enabled_behaviours == ("walking", "rearing")

    settings, problems = parse({"BEHAVIOURS": "walking, sniffing"})
    assert settings is None
    (problem,) = problems
    assert "BEHAVIOURS" in problem and "sniffing" in problem
    assert "walking, freezing, grooming, rearing" in problem

    for items, words in [
        ({"BEHAVIOURS": "walking, walking"}, "once"),
        ({"BEHAVIOURS": "grooming", "ANIMALS": "2"}, "ANIMALS"),
        ({"BEHAVIOURS": "grooming", "MOTION": "waypoints", "WAYPOINTS": "0: 100 100"}, "MOTION"),
    ]:
        settings, problems = parse({**items})
        assert settings is None
        assert "BEHAVIOURS" in problems[0] and words in problems[0], problems


def test_the_simulation_refuses_what_it_cannot_label() -> None:
    with pytest.raises(ValueError, match="valid: walking, freezing, grooming, rearing"):
        ArenaParams(behaviours=("jumping",))
    with pytest.raises(ValueError, match="several"):
        HerdParams(ArenaParams(behaviours=("walking",)), animals=2)
    with pytest.raises(ValueError, match="behaviours"):
        simulate_behaviours(ArenaParams(), 10)


# --- the camera's label file ------------------------------------------------------------------


def test_the_camera_writes_one_label_per_truth_row_equal_to_the_offline_simulation(
    tmp_path: Path,
) -> None:
    settings, problems = parse(
        {"WIDTH": "160", "HEIGHT": "120", "PACING": "free", "SEED": "9",
         "BEHAVIOURS": "walking, freezing, grooming, rearing", "NOISE": "0"}
    )  # fmt: skip
    assert settings is not None, problems
    camera = SyntheticCamera("arena", settings)
    geometry = camera.open()
    frame = np.empty(geometry.shape, np.uint8)
    camera.start_session(tmp_path)
    n_frames = 600
    for _ in range(n_frames):
        camera.grab(frame)
    camera.finish_session()
    assert camera.describe()["behaviours"] == list(settings.behaviours)
    camera.close()

    labels = read_behaviours(tmp_path / "arena.behaviour.csv")
    truth = read_truth(tmp_path / "arena.truth.csv")
    np.testing.assert_array_equal(labels.frames, truth.frames)
    np.testing.assert_array_equal(labels.frames, np.arange(n_frames))
    poses, expected = simulate_behaviours(settings.arena_params(), n_frames)
    np.testing.assert_array_equal(labels.labels, expected)
    assert len(set(expected.tolist())) >= 2
    keypoints = keypoints_from_poses(poses, settings.arena_params().body_length_px)
    np.testing.assert_allclose(truth.positions[:, 0], keypoints, atol=6e-4)
    lines = (tmp_path / "arena.behaviour.csv").read_text().splitlines()
    assert lines[0] == "frame,behaviour" and lines[1] == f"0,{expected[0]}"


def test_without_behaviours_the_camera_writes_no_label_file(tmp_path: Path) -> None:
    settings, problems = parse({"WIDTH": "64", "HEIGHT": "48"})
    assert settings is not None, problems
    camera = SyntheticCamera("arena", settings)
    frame = np.empty(camera.open().shape, np.uint8)
    camera.start_session(tmp_path)
    camera.grab(frame)
    assert "behaviours" not in camera.describe()
    camera.close()
    assert (tmp_path / "arena.truth.csv").exists()
    assert not (tmp_path / "arena.behaviour.csv").exists()


def test_the_label_reader_names_a_file_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "x.behaviour.csv"
    path.write_text("frame,label\n0,walking\n")
    with pytest.raises(ValueError, match="frame,behaviour"):
        read_behaviours(path)
    path.write_text("frame,behaviour\n0,walking\nx,rearing\n")
    with pytest.raises(ValueError, match="line 3"):
        read_behaviours(path)


def test_a_headless_session_writes_a_label_for_every_truth_row(tmp_path: Path) -> None:
    settings = write_settings(
        tmp_path,
        "[Camera top]\nSOURCE = synthetic\nWIDTH = 320\nHEIGHT = 240\nPACING = free\nSEED = 4\n"
        "BEHAVIOURS = walking, freezing, grooming, rearing\n",
    )
    output = tmp_path / "out"
    result = run_cli(
        "--headless", "--frames", "90", "--settings", str(settings), "--output-dir", str(output)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    session = only_session(output)
    truth = read_truth(session / "top.truth.csv")
    labels = read_behaviours(session / "top.behaviour.csv")
    assert len(truth.frames) >= 90
    np.testing.assert_array_equal(labels.frames, truth.frames)
    params = ArenaParams(width=320, height=240, seed=4, behaviours=ALL)
    _, expected = simulate_behaviours(params, int(labels.frames[-1]) + 1)
    np.testing.assert_array_equal(labels.labels, expected[labels.frames])
