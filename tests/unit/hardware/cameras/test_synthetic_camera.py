"""The simulated arena camera: motion, keypoints, rendering, truth file, pacing and settings."""

from __future__ import annotations

import math
import time
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.core.schema import Where, parse_section
from deeplabstream.hardware.cameras import CameraError, camera_class
from deeplabstream.hardware.cameras.synthetic import (
    SyntheticCamera,
    SyntheticSettings,
    parse_waypoints,
)
from deeplabstream.hardware.simulator.arena import (
    BODY_PLAN,
    KEYPOINT_NAMES,
    MOUSE,
    ArenaParams,
    SimulatedArena,
    simulate_keypoints,
    simulate_poses,
)

NOSE, LEFT_EAR, RIGHT_EAR, NECK, BODY_CENTER, TAIL_BASE = range(6)
WHERE = Where(Path("x.ini"), "Camera arena")


def render(params: ArenaParams, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames and keypoints of the first ``n_frames`` frames."""
    arena = SimulatedArena(params)
    frames = np.empty((n_frames, *arena.frame_shape), dtype=np.uint8)
    keypoints = np.empty((n_frames, len(KEYPOINT_NAMES), 2))
    for index in range(n_frames):
        frame_index, keypoints[index] = arena.render_next(frames[index])
        assert frame_index == index
    return frames, keypoints


def speeds_in_body_lengths(params: ArenaParams, seconds: float) -> np.ndarray:
    """Body-centre speed per frame in body lengths per second."""
    centers = simulate_keypoints(params, round(seconds * params.framerate))[:, BODY_CENTER]
    steps = np.hypot(*np.diff(centers, axis=0).T)
    return steps * params.framerate / params.body_length_px


def still_periods(speeds: np.ndarray, framerate: float, threshold: float = 0.05) -> np.ndarray:
    """Durations in seconds of the stretches in which the speed stays below ``threshold``."""
    still = np.concatenate(([0], (speeds < threshold).astype(int), [0]))
    edges = np.diff(still)
    return (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)) / framerate


def make_camera(name: str = "arena", **keys: object) -> SyntheticCamera:
    keys.setdefault("pacing", "free")
    return SyntheticCamera(name, SyntheticSettings(**keys))  # type: ignore[arg-type]


def parse(items: dict[str, str]) -> tuple[SyntheticSettings | None, list[str]]:
    problems: list[str] = []
    return parse_section(SyntheticSettings, items, WHERE, problems), problems


# --- registry -------------------------------------------------------------------------------------


def test_registry_resolves_synthetic_source() -> None:
    assert camera_class("synthetic") is SyntheticCamera
    assert SyntheticCamera.settings_class is SyntheticSettings


# --- determinism ----------------------------------------------------------------------------------


def test_same_seed_gives_identical_frames_and_keypoints() -> None:
    params = ArenaParams(width=320, height=240, seed=7)
    frames_a, keypoints_a = render(params, 40)
    frames_b, keypoints_b = render(params, 40)
    np.testing.assert_array_equal(frames_a, frames_b)
    np.testing.assert_array_equal(keypoints_a, keypoints_b)
    np.testing.assert_array_equal(simulate_keypoints(params, 40), keypoints_a)


def test_different_seed_gives_different_frames_and_keypoints() -> None:
    frames_a, keypoints_a = render(ArenaParams(width=320, height=240, seed=1), 10)
    frames_b, keypoints_b = render(ArenaParams(width=320, height=240, seed=2), 10)
    assert not np.array_equal(frames_a, frames_b)
    assert np.abs(keypoints_a - keypoints_b).max() > 1.0


def test_noise_and_lighting_change_from_frame_to_frame() -> None:
    params = ArenaParams(width=160, height=120, motion="waypoints", waypoints=((0, 80.0, 60.0),))
    frames, _ = render(params, 2)
    assert not np.array_equal(frames[0], frames[1])  # animal still, pixels not


# --- random walk ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "seed"), [(640, 480, 0), (320, 320, 1), (1280, 200, 2), (48, 32, 3)]
)
def test_keypoints_stay_inside_the_frame(width: int, height: int, seed: int) -> None:
    params = ArenaParams(width=width, height=height, seed=seed)
    keypoints = simulate_keypoints(params, 3000)
    x_min, y_min, x_max, y_max = params.arena_rect()
    assert keypoints[..., 0].min() >= x_min and keypoints[..., 0].max() <= x_max
    assert keypoints[..., 1].min() >= y_min and keypoints[..., 1].max() <= y_max
    assert x_min > 0 and y_min > 0 and x_max < width - 1 and y_max < height - 1


def test_the_drawn_animal_never_touches_the_frame_edge() -> None:
    params = ArenaParams(width=200, height=160, seed=4, noise=0, lighting_drift=0)
    arena = SimulatedArena(params)
    floor = arena.renderer.floor
    frame = np.empty_like(floor)
    for _ in range(600):
        arena.render_next(frame)
        for edge in (np.s_[0], np.s_[-1], np.s_[:, 0], np.s_[:, -1]):
            np.testing.assert_array_equal(frame[edge], floor[edge])


def test_body_length_is_nose_to_tail_base() -> None:
    params = ArenaParams(width=640, height=480, seed=5)
    keypoints = simulate_keypoints(params, 600)
    lengths = np.hypot(*(keypoints[:, NOSE] - keypoints[:, TAIL_BASE]).T)
    assert params.body_length_px == pytest.approx(96.0)
    assert lengths.max() <= 96.0 + 1e-9  # a turned head shortens it a little
    assert np.median(lengths) > 0.97 * 96.0


def test_speed_statistics_do_not_depend_on_the_frame_rate() -> None:
    stats = {}
    for framerate in (30.0, 120.0):
        speeds = np.concatenate(
            [
                speeds_in_body_lengths(ArenaParams(framerate=framerate, seed=seed), 300.0)
                for seed in (0, 1)
            ]
        )
        moving = speeds[speeds > 0.2]
        stats[framerate] = (speeds.mean(), np.median(moving), np.mean(speeds < 0.05))
        # Mostly walking at 0.5-3 body lengths per second.
        assert 0.5 <= np.median(moving) <= 3.0
        assert np.mean((moving >= 0.5) & (moving <= 3.0)) > 0.75
        assert moving.max() < 7.0  # runs, but no teleporting
    (mean_30, median_30, still_30), (mean_120, median_120, still_120) = stats.values()
    assert mean_120 == pytest.approx(mean_30, rel=0.2)
    assert median_120 == pytest.approx(median_30, rel=0.2)
    assert still_120 == pytest.approx(still_30, abs=0.08)


def test_the_animal_pauses_every_several_seconds() -> None:
    params = ArenaParams(framerate=30.0, seed=3)
    pauses = still_periods(speeds_in_body_lengths(params, 120.0), params.framerate)
    real_pauses = pauses[pauses >= 0.4]
    assert len(real_pauses) >= 5
    assert real_pauses.max() <= MOUSE.freeze_duration[1] + 0.5


def test_turning_is_smooth() -> None:
    params = ArenaParams(framerate=60.0, seed=8)
    headings = simulate_poses(params, 3000)[:, 2]
    turn_rates = np.abs(np.angle(np.exp(1j * np.diff(headings)))) * params.framerate
    assert turn_rates.max() <= MOUSE.max_turn_rate + 1e-6
    assert np.median(turn_rates) < 2.0


# --- waypoints ------------------------------------------------------------------------------------


def test_waypoints_put_the_body_center_on_each_waypoint_at_its_frame() -> None:
    waypoints = ((10, 100.0, 240.0), (90, 320.0, 240.0), (150, 320.0, 400.0))
    params = ArenaParams(motion="waypoints", waypoints=waypoints)
    keypoints = simulate_keypoints(params, 200)
    for frame, x, y in waypoints:
        np.testing.assert_allclose(keypoints[frame, BODY_CENTER], (x, y))
    np.testing.assert_allclose(keypoints[:11, BODY_CENTER], [[100.0, 240.0]] * 11)  # held before
    np.testing.assert_allclose(keypoints[150:, BODY_CENTER], [[320.0, 400.0]] * 50)  # and after
    np.testing.assert_allclose(keypoints[50, BODY_CENTER], (210.0, 240.0))  # halfway


def test_waypoint_heading_follows_travel_and_is_held_when_standing() -> None:
    waypoints = ((5, 200.0, 200.0), (25, 400.0, 200.0), (40, 400.0, 200.0), (60, 400.0, 100.0))
    poses = simulate_poses(ArenaParams(motion="waypoints", waypoints=waypoints), 80)
    headings = poses[:, 2]
    np.testing.assert_allclose(headings[:26], 0.0)  # faces the next waypoint, then travels right
    np.testing.assert_allclose(headings[26:41], 0.0)  # stands still: keeps facing right
    np.testing.assert_allclose(headings[41:], -math.pi / 2)  # travels up (y decreases)


def test_nose_enters_a_region_at_the_expected_frame() -> None:
    speed = 4.0  # px per frame
    params = ArenaParams(motion="waypoints", waypoints=((0, 100.0, 240.0), (100, 500.0, 240.0)))
    region_left = 400.0  # the region is x >= 400, 200 <= y <= 280
    nose_ahead = BODY_PLAN.nose_ahead * params.body_length_px
    expected = math.ceil((region_left - 100.0 - nose_ahead) / speed)
    nose = simulate_keypoints(params, 120)[:, NOSE]
    inside = (nose[:, 0] >= region_left) & (nose[:, 1] >= 200.0) & (nose[:, 1] <= 280.0)
    assert int(np.argmax(inside)) == expected
    assert not inside[:expected].any() and inside[expected:].all()


def test_left_ear_is_on_the_animals_left_seen_from_above() -> None:
    # Walking up the image (towards smaller y), the animal's left is the image's left.
    params = ArenaParams(motion="waypoints", waypoints=((0, 320.0, 400.0), (50, 320.0, 100.0)))
    keypoints = simulate_keypoints(params, 20)
    assert (keypoints[:, LEFT_EAR, 0] < keypoints[:, NECK, 0]).all()
    assert (keypoints[:, RIGHT_EAR, 0] > keypoints[:, NECK, 0]).all()
    assert (keypoints[:, NOSE, 1] < keypoints[:, NECK, 1]).all()
    assert (keypoints[:, NECK, 1] < keypoints[:, BODY_CENTER, 1]).all()
    assert (keypoints[:, BODY_CENTER, 1] < keypoints[:, TAIL_BASE, 1]).all()


# --- rendering ------------------------------------------------------------------------------------


@pytest.mark.parametrize("color", [True, False])
def test_keypoints_are_drawn_darker_than_the_floor(color: bool) -> None:
    params = ArenaParams(seed=11, color=color)
    arena = SimulatedArena(params)
    floor = arena.renderer.floor.astype(int)
    frame = np.empty(arena.frame_shape, dtype=np.uint8)
    for index in range(150):
        _, keypoints = arena.render_next(frame)
        if index % 15:
            continue
        for x, y in keypoints:
            row, col = round(y), round(x)
            pixel = frame[row, col].astype(int)
            assert np.all(pixel < floor[row, col] - 40), (index, x, y, pixel, floor[row, col])
        # Far from the animal the frame is the floor (give or take noise and lighting).
        far = (round(keypoints[BODY_CENTER, 1]), round(keypoints[BODY_CENTER, 0]) + 200)
        if far[1] < params.width:
            assert np.all(np.abs(frame[far].astype(int) - floor[far]) < 40)


def test_renders_into_a_shared_memory_slot() -> None:
    params = ArenaParams(width=160, height=120, seed=2)
    expected, _ = render(params, 3)
    block = shared_memory.SharedMemory(create=True, size=expected[0].nbytes)
    try:
        slot = np.ndarray(expected[0].shape, dtype=np.uint8, buffer=block.buf)
        arena = SimulatedArena(params)
        for index in range(3):
            arena.render_next(slot)
            np.testing.assert_array_equal(slot, expected[index])
        del slot
    finally:
        block.close()
        block.unlink()


@pytest.mark.parametrize(
    ("pixel_format", "width", "height", "shape"),
    [
        ("bgr8", 640, 480, (480, 640, 3)),
        ("mono8", 640, 512, (512, 640)),
        ("mono8", 33, 47, (47, 33)),
    ],
)
def test_camera_frame_shape_and_dtype(
    pixel_format: str, width: int, height: int, shape: tuple[int, ...]
) -> None:
    camera = make_camera(width=width, height=height, pixel_format=pixel_format)
    geometry = camera.open()
    try:
        assert geometry.shape == shape
        assert camera.nominal_fps == 30.0
        out = np.zeros(geometry.shape, dtype=geometry.dtype)
        stamp = camera.grab(out)
        assert out.dtype == np.uint8 and out.shape == shape
        assert stamp is not None and stamp.frame_index == 0
        assert out.min() < 80 < out.max()  # a dark animal on a light floor
    finally:
        camera.close()


# --- camera ---------------------------------------------------------------------------------------


def test_free_pacing_stamps_count_frames_and_camera_time() -> None:
    camera = make_camera(framerate=40.0)
    out = np.empty(camera.open().shape, dtype=np.uint8)
    stamps = [camera.grab(out) for _ in range(5)]
    camera.close()
    assert [s.frame_index for s in stamps] == [0, 1, 2, 3, 4]
    assert [s.camera_timestamp for s in stamps] == [i / 40.0 for i in range(5)]
    host_times = [s.host_timestamp_ns for s in stamps]
    assert host_times == sorted(host_times)


def test_realtime_pacing_delivers_frames_at_the_frame_rate() -> None:
    camera = make_camera(width=160, height=120, framerate=50.0, pacing="realtime")
    out = np.empty(camera.open().shape, dtype=np.uint8)
    started = time.perf_counter()
    stamps = [camera.grab(out) for _ in range(10)]
    elapsed = time.perf_counter() - started
    due_ns = [camera.exposure_end_ns(s.frame_index) for s in stamps]
    camera.close()
    assert elapsed >= 0.18  # frame 9 is due 0.18 s after frame 0 was grabbed
    gaps_ns = np.diff([s.host_timestamp_ns for s in stamps])
    assert gaps_ns.min() > 0
    # Each frame goes out once it is due, never before: a busy machine makes a frame late (frame
    # 0 stamped late shortens the span from it), never early, so this holds on any machine.
    assert np.diff(due_ns).tolist() == [20_000_000] * 9
    early_ns = [due - s.host_timestamp_ns for s, due in zip(stamps, due_ns, strict=True)]
    assert max(early_ns) <= 1_000_000  # a sleep's wake-up may round by less than a millisecond


def test_truth_csv_has_one_deeplabcut_row_per_grabbed_frame(tmp_path: Path) -> None:
    names = ("tail_base", "nose", "left_ear")
    camera = make_camera(name="top", width=320, height=240, seed=9, keypoints=names)
    out = np.empty(camera.open().shape, dtype=np.uint8)
    camera.start_session(tmp_path)
    for _ in range(25):
        camera.grab(out)
    camera.finish_session()
    camera.close()
    camera.close()  # safe twice

    table = pd.read_csv(tmp_path / "top.truth.csv", header=[0, 1, 2], index_col=0)
    assert list(table.index) == list(range(25))
    assert set(table.columns.get_level_values(0)) == {"simulation"}
    assert list(table.columns.get_level_values(1)) == [n for n in names for _ in range(3)]
    assert list(table.columns.get_level_values(2)) == ["x", "y", "likelihood"] * 3
    truth = simulate_keypoints(camera.settings.arena_params(), 25)
    for name in names:
        part = table["simulation"][name]
        expected = truth[:, KEYPOINT_NAMES.index(name)]
        np.testing.assert_allclose(part["x"], expected[:, 0], atol=5e-4)
        np.testing.assert_allclose(part["y"], expected[:, 1], atol=5e-4)
        assert (part["likelihood"] == 1.0).all()


def test_truth_csv_is_flushed_by_finish_session(tmp_path: Path) -> None:
    camera = make_camera(name="cam", width=160, height=120)
    out = np.empty(camera.open().shape, dtype=np.uint8)
    camera.start_session(tmp_path)
    camera.grab(out)
    camera.finish_session()
    lines = (tmp_path / "cam.truth.csv").read_text().splitlines()
    camera.close()
    assert len(lines) == 4 and lines[3].startswith("0,")


def test_grab_before_open_is_a_camera_error() -> None:
    with pytest.raises(CameraError, match="open"):
        make_camera().grab(np.empty((480, 640, 3), dtype=np.uint8))


def test_describe() -> None:
    camera = make_camera(seed=3, motion="waypoints", waypoints=((0, 10.0, 10.0),))
    assert camera.describe() | {"body_length_px": None} == {
        "kind": "simulated arena",
        "seed": 3,
        "motion": "waypoints",
        "keypoints": list(KEYPOINT_NAMES),
        "body_length_px": None,
        "timestamp_marks": "exposure_end",
        "timestamp_clock": "host",
        "timestamp_origin_ns": None,  # known once the first frame was grabbed
        "exposure_ms": pytest.approx(1000 / camera.settings.framerate),
        "led": None,
    }


# --- settings -------------------------------------------------------------------------------------


def test_settings_defaults_and_parsed_values() -> None:
    settings, problems = parse({})
    assert problems == [] and settings == SyntheticSettings()
    assert settings.keypoints == KEYPOINT_NAMES and settings.pacing == "realtime"
    settings, problems = parse(
        {
            "WIDTH": "800",
            "FRAMERATE": "120",
            "PIXEL_FORMAT": "mono8",
            "KEYPOINTS": "nose, tail_base",
            "MOTION": "waypoints",
            "WAYPOINTS": "0: 100 240; 90: 320 240; 150: 320 400",
            "PACING": "free",
        }
    )
    assert problems == []
    assert settings is not None
    assert settings.width == 800 and settings.framerate == 120.0
    assert settings.keypoints == ("nose", "tail_base")
    assert settings.waypoints == ((0, 100.0, 240.0), (90, 320.0, 240.0), (150, 320.0, 400.0))
    assert settings.arena_params().color is False


def test_unknown_keypoint_is_reported_with_the_allowed_names() -> None:
    settings, problems = parse({"KEYPOINTS": "nose, tail_tip"})
    assert settings is None and len(problems) == 1
    assert "tail_tip" in problems[0] and "left_ear" in problems[0]
    assert "[Camera arena]" in problems[0]


def test_bad_waypoint_text_is_reported() -> None:
    settings, problems = parse({"MOTION": "waypoints", "WAYPOINTS": "0: 100 240; 90 320 240"})
    assert settings is None and len(problems) == 1
    assert "WAYPOINTS = '0: 100 240; 90 320 240'" in problems[0]
    assert "waypoint 2" in problems[0] and "FRAME: X Y" in problems[0]


def test_waypoints_are_required_for_waypoint_motion() -> None:
    settings, problems = parse({"MOTION": "waypoints"})
    assert settings is None and len(problems) == 1
    assert "MOTION = waypoints needs WAYPOINTS" in problems[0]


def test_out_of_range_framerate_is_reported() -> None:
    settings, problems = parse({"FRAMERATE": "5000"})
    assert settings is None
    assert problems == [
        "x.ini: [Camera arena] FRAMERATE = '5000': expected a number from 0.1 to 1000 Hz"
    ]


def test_waypoint_outside_the_frame_is_reported() -> None:
    _, problems = parse({"MOTION": "waypoints", "WAYPOINTS": "0: 100 240; 10: 700 240"})
    assert len(problems) == 1 and "outside the 640x480 frame" in problems[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("5: 1 2", ((5, 1.0, 2.0),)),
        (" 0:10.5,20 ; 3 : -1e1 7 ;", ((0, 10.5, 20.0), (3, -10.0, 7.0))),
    ],
)
def test_parse_waypoints_accepts(text: str, expected: tuple) -> None:
    assert parse_waypoints(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10 20 30", "no ':'"),
        ("a: 1 2", "not a whole number"),
        ("1.5: 1 2", "not a whole number"),
        ("-1: 1 2", "negative"),
        ("0: 1", "two numbers"),
        ("0: 1 2 3", "two numbers"),
        ("0: x 2", "must be numbers"),
        ("0: nan 2", "finite"),
        ("5: 1 2; 5: 3 4", "not after"),
    ],
)
def test_parse_waypoints_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_waypoints(text)
