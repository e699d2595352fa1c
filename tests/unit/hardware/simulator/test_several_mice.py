"""Several mice in the simulated arena: scenarios, identities, occlusion, truth files, settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from deeplabstream.core.schema import Where, parse_section
from deeplabstream.hardware.cameras.synthetic import SyntheticCamera, SyntheticSettings
from deeplabstream.hardware.simulator.arena import (
    KEYPOINT_NAMES,
    ArenaParams,
    SimulatedArena,
    simulate_keypoints,
)
from deeplabstream.hardware.simulator.herd import (
    HerdParams,
    ScriptedHerdMotion,
    SimulatedHerd,
    animal_names,
    simulate_herd_truth,
)
from deeplabstream.hardware.simulator.truth import read_truth
from tests.support.files import write_settings
from tests.support.processes import only_session, run_cli

NOSE, NECK, BODY_CENTER, TAIL_BASE = 0, 3, 4, 5
WHERE = Where(Path("x.ini"), "Camera arena")
QUIET: dict[str, Any] = {
    "noise": 0.0,
    "lighting_drift": 0.0,
}  # frames without noise: pixel tests are exact


def herd(social: str, animals: int = 2, **arena: Any) -> HerdParams:
    return HerdParams(ArenaParams(**arena), animals=animals, social=social)  # type: ignore[arg-type]


def centre_distance(truth: np.ndarray, first: int = 0, second: int = 1) -> np.ndarray:
    """Distance between two animals' body centres per frame, in pixels."""
    return np.hypot(*(truth[:, first, BODY_CENTER, :2] - truth[:, second, BODY_CENTER, :2]).T)


def parse(items: dict[str, str]) -> tuple[SyntheticSettings | None, list[str]]:
    problems: list[str] = []
    return parse_section(SyntheticSettings, items, WHERE, problems), problems


# --- cross ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("animals", [2, 3])
def test_crossing_mice_overlap_in_passing_and_are_apart_before_and_after(animals: int) -> None:
    params = herd("cross", animals)
    length = params.arena.body_length_px
    truth = simulate_herd_truth(params, 150)  # 5 s: past the first crossing
    for second in range(1, animals):
        distance = centre_distance(truth, 0, second)
        crossing = int(np.argmin(distance))
        assert distance[crossing] < 0.1 * length  # bodies on top of each other
        assert 15 <= crossing <= 135
        assert distance[crossing - 15] > 0.7 * length  # half a second before
        assert distance[crossing + 15] > 0.7 * length  # and after
        assert distance[0] > 1.5 * length  # they start apart
    # Passing, the mouse drawn on top hides keypoints of the one below, never the reverse.
    hidden = truth[..., 2] == 0.0
    assert hidden[:, 0].any() and not hidden[:, -1].any()
    assert not hidden[:10].any()  # apart: everything visible


def test_rendered_frames_show_both_mice_where_the_truth_puts_them() -> None:
    params = herd("cross", **QUIET)
    arena = SimulatedHerd(params)
    floor = arena.renderer.floor.astype(int)
    frame = np.empty(arena.frame_shape, dtype=np.uint8)
    crossing = int(np.argmin(centre_distance(simulate_herd_truth(params, 150))))
    for index in range(crossing + 1):
        _, truth = arena.render_next(frame)
        if index not in (0, crossing - 20, crossing):
            continue
        for animal in range(2):
            for x, y, _ in truth[animal]:
                row, col = round(y), round(x)
                assert np.all(frame[row, col].astype(int) < floor[row, col] - 40), (index, animal)
    # Away from the crossing, the two dark blobs are apart: the floor shows between them.
    apart = simulate_herd_truth(params, 1)[0, :, BODY_CENTER, :2]
    middle_x, middle_y = np.rint(apart.mean(axis=0)).astype(int)
    first = SimulatedHerd(params)
    first.render_next(frame)
    assert np.all(np.abs(frame[middle_y, middle_x].astype(int) - floor[middle_y, middle_x]) < 10)


@pytest.mark.parametrize(("social", "animals"), [("cross", 2), ("cross", 3), ("touch", 3)])
def test_hidden_keypoints_are_under_a_mouse_drawn_later(social: str, animals: int) -> None:
    params = herd(social, animals, **QUIET)
    arena = SimulatedHerd(params)
    motion = ScriptedHerdMotion(params)
    renderer = arena.renderer
    floor = renderer.floor.astype(int)
    alone = np.empty(arena.frame_shape, dtype=np.uint8)
    hidden_seen = 0
    for index in range(0, 300, 3):
        poses = motion.poses_at(index)
        truth = arena.truth_at(index)
        # Where each mouse alone would be drawn on the empty floor.
        drawn = []
        for pose, marks in zip(poses, params.marks, strict=True):  # marked: sizes differ
            np.copyto(alone, renderer.floor)
            renderer.draw_animal(alone, pose, marks.scale)
            renderer.light_and_add_noise(alone, index)
            drawn.append(np.abs(alone.astype(int) - floor).max(axis=-1) > 30)
        for animal in range(animals):
            later = drawn[animal + 1 :]
            for x, y, visible in truth[animal]:
                row, col = round(y), round(x)
                if visible:
                    # No later mouse covers it (a pixel of antialiased edge aside).
                    near = [d[row - 1 : row + 2, col - 1 : col + 2].all() for d in later]
                    assert not any(near), (index, animal, x, y)
                else:
                    assert any(d[row, col] for d in later), (index, animal, x, y)
                    hidden_seen += 1
    assert hidden_seen > 5


# --- follow and touch -----------------------------------------------------------------------------


def test_followers_walk_the_leaders_path_a_second_later_without_touching() -> None:
    params = herd("follow", 3, framerate=30.0)
    length = params.arena.body_length_px
    truth = simulate_herd_truth(params, 600)
    centres = truth[:, :, BODY_CENTER, :2]
    # 1.5 body lengths at 1.5 body lengths/s: each follower is where the one ahead was 30
    # frames before.
    np.testing.assert_allclose(centres[30:, 1], centres[:-30, 0], atol=1e-6)
    np.testing.assert_allclose(centres[30:, 2], centres[:-30, 1], atol=1e-6)
    for behind in (1, 2):
        gap = np.hypot(*(truth[:, behind, NOSE, :2] - truth[:, behind - 1, TAIL_BASE, :2]).T)
        assert gap.min() > 0.05 * length and gap.max() < 1.5 * length
    assert (truth[..., 2] == 1.0).all()  # nobody on top of anybody


def test_touching_mice_meet_nose_to_nose_and_nose_to_tail() -> None:
    params = herd("touch")
    length = params.arena.body_length_px
    truth = simulate_herd_truth(params, 330)  # one loop of the script (10.3 s)
    noses = np.hypot(*(truth[:, 0, NOSE, :2] - truth[:, 1, NOSE, :2]).T)
    sniff = np.hypot(*(truth[:, 1, NOSE, :2] - truth[:, 0, TAIL_BASE, :2]).T)
    nose_to_nose, nose_to_tail = noses < 0.1 * length, sniff < 0.1 * length
    assert nose_to_nose.sum() >= 30 and nose_to_tail.sum() >= 30  # each held for a second
    assert np.flatnonzero(nose_to_nose).max() < np.flatnonzero(nose_to_tail).min()
    assert noses[0] > 2.0 * length  # they start apart
    np.testing.assert_allclose(  # and the script loops
        simulate_herd_truth(params, 310)[-1], truth[309], atol=1e-9
    )


# --- identity, determinism, the lone mouse ----------------------------------------------------


def test_truth_at_equals_the_truth_of_the_rendered_frame() -> None:
    for social in ("free", "cross"):
        params = herd(social, 3, width=160, height=120)
        arena = SimulatedHerd(params)
        frame = np.empty(arena.frame_shape, dtype=np.uint8)
        rendered = [arena.render_next(frame)[1] for _ in range(20)]
        lookup = SimulatedHerd(params)
        for index in (0, 5, 5, 19, 3):
            np.testing.assert_array_equal(lookup.truth_at(index), rendered[index])
        assert arena.animal_names == ("animal1", "animal2", "animal3")
        assert rendered[0].shape == (3, len(KEYPOINT_NAMES), 3)


def test_same_seed_same_scene_other_seed_other_mirror_image() -> None:
    def first_frames(seed: int) -> np.ndarray:
        return simulate_herd_truth(herd("touch", seed=seed), 5)

    np.testing.assert_array_equal(first_frames(1), first_frames(1))
    seeds = [first_frames(seed)[0, 0, BODY_CENTER, 0] for seed in range(8)]
    assert len({round(x) for x in seeds}) == 2  # mirrored left-right by some seeds


def test_free_mice_walk_apart_and_mouse_one_walks_as_a_lone_mouse() -> None:
    params = herd("free", 3, seed=6)
    truth = simulate_herd_truth(params, 200)
    np.testing.assert_array_equal(truth[:, 0, :, :2], simulate_keypoints(params.arena, 200))
    assert centre_distance(truth, 1, 2).max() > 1.0  # different walks


def test_one_mouse_in_a_herd_renders_exactly_as_the_single_arena() -> None:
    params = ArenaParams(width=160, height=120, seed=3)
    single, several = SimulatedArena(params), SimulatedHerd(HerdParams(params, animals=1))
    frame_a = np.empty(single.frame_shape, dtype=np.uint8)
    frame_b = np.empty_like(frame_a)
    for _ in range(5):
        _, keypoints = single.render_next(frame_a)
        _, truth = several.render_next(frame_b)
        np.testing.assert_array_equal(frame_a, frame_b)
        np.testing.assert_array_equal(truth[0, :, :2], keypoints)
        assert (truth[..., 2] == 1.0).all()
    assert animal_names(1) == ("animal1",)


# --- the camera and its truth file ----------------------------------------------------------------


def test_truth_file_of_a_headless_run_is_deeplabcut_multi_animal(tmp_path: Path) -> None:
    settings = write_settings(
        tmp_path,
        "[Camera top]\nSOURCE = synthetic\nWIDTH = 320\nHEIGHT = 240\nPACING = free\n"
        "ANIMALS = 2\nSOCIAL = cross\nKEYPOINTS = nose, body_center, tail_base\n",
    )
    output = tmp_path / "out"
    result = run_cli(
        "--headless", "--frames", "40", "--settings", str(settings), "--output-dir", str(output)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    path = only_session(output) / "top.truth.csv"
    table = pd.read_csv(path, header=[0, 1, 2, 3], index_col=0)
    assert list(table.index) == list(range(40))
    assert list(table.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
    assert set(table.columns.get_level_values("scorer")) == {"simulation"}
    assert list(table.columns.get_level_values("individuals")) == ["animal1"] * 9 + ["animal2"] * 9
    parts = ["nose", "body_center", "tail_base"]
    assert (
        list(table.columns.get_level_values("bodyparts")) == [p for p in parts for _ in "xyz"] * 2
    )
    assert list(table.columns.get_level_values("coords")) == ["x", "y", "likelihood"] * 6
    likelihoods = table.xs("likelihood", axis=1, level="coords").to_numpy()
    assert set(np.unique(likelihoods)) <= {0.0, 1.0}

    truth = read_truth(path)
    assert truth.animals == ("animal1", "animal2") and truth.keypoints == tuple(parts)
    assert truth.positions.shape == (40, 2, 3, 2)
    params = HerdParams(ArenaParams(width=320, height=240), animals=2, social="cross")
    expected = simulate_herd_truth(params, 40)[:, :, [NOSE, BODY_CENTER, TAIL_BASE]]
    np.testing.assert_allclose(truth.positions, expected[..., :2], atol=5e-4)
    np.testing.assert_array_equal(truth.visible, expected[..., 2] == 1.0)
    np.testing.assert_array_equal(truth.frames, np.arange(40))


def test_the_camera_writes_a_multi_animal_truth_and_describes_the_mice(tmp_path: Path) -> None:
    camera = SyntheticCamera(
        "arena", SyntheticSettings(width=160, height=120, animals=3, social="touch", pacing="free")
    )
    out = np.empty(camera.open().shape, dtype=np.uint8)
    camera.start_session(tmp_path)
    for _ in range(10):
        camera.grab(out)
    camera.finish_session()
    described = camera.describe()
    camera.close()
    assert described["animals"] == ["animal1", "animal2", "animal3"]
    assert described["social"] == "touch"
    lines = (tmp_path / "arena.truth.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[:4]] == [
        "scorer",
        "individuals",
        "bodyparts",
        "coords",
    ]
    assert len(lines) == 14
    truth = read_truth(tmp_path / "arena.truth.csv")
    assert truth.positions.shape == (10, 3, len(KEYPOINT_NAMES), 2)


def test_the_single_mouse_truth_reads_as_one_animal(tmp_path: Path) -> None:
    camera = SyntheticCamera("one", SyntheticSettings(width=160, height=120, pacing="free"))
    out = np.empty(camera.open().shape, dtype=np.uint8)
    camera.start_session(tmp_path)
    for _ in range(4):
        camera.grab(out)
    camera.close()
    assert (tmp_path / "one.truth.csv").read_text().splitlines()[1].startswith("bodyparts,")
    truth = read_truth(tmp_path / "one.truth.csv")
    assert truth.animals == ("animal1",) and truth.keypoints == KEYPOINT_NAMES
    expected = simulate_keypoints(camera.settings.arena_params(), 4)
    np.testing.assert_allclose(truth.positions[:, 0], expected, atol=5e-4)
    assert truth.visible.all()


def test_read_truth_names_the_file_and_the_bad_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("scorer,a,a,a\nbodypart,nose,nose,nose\ncoords,x,y,likelihood\n0,1,2,1\n")
    with pytest.raises(ValueError, match=r"bad\.csv.*scorer, \[individuals,\] bodyparts, coords"):
        read_truth(path)


# --- settings -------------------------------------------------------------------------------------


def test_animals_and_social_are_read_from_the_section() -> None:
    settings, problems = parse({"ANIMALS": "3", "SOCIAL": "Follow"})
    assert problems == [] and settings is not None
    assert settings.herd_params() == HerdParams(ArenaParams(), animals=3, social="follow")
    default, _ = parse({})
    assert default is not None and default.animals == 1 and default.social == "free"


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (
            {"ANIMALS": "4"},
            "x.ini: [Camera arena] ANIMALS = '4': expected a whole number from 1 to 3",
        ),
        ({"ANIMALS": "0"}, "[Camera arena] ANIMALS = '0': expected a whole number from 1 to 3"),
        (
            {"ANIMALS": "2", "SOCIAL": "dance"},
            "[Camera arena] SOCIAL = 'dance': expected one of free, cross, follow, touch",
        ),
        ({"SOCIAL": "cross"}, "[Camera arena]: SOCIAL = cross needs ANIMALS = 2 or 3"),
        (
            {"ANIMALS": "2", "MOTION": "waypoints", "WAYPOINTS": "0: 100 100"},
            "[Camera arena]: MOTION = waypoints moves one mouse, but ANIMALS = 2",
        ),
    ],
)
def test_invalid_settings_name_the_section_and_key(items: dict[str, str], expected: str) -> None:
    settings, problems = parse(items)
    assert settings is None and len(problems) == 1
    assert expected in problems[0]


def test_herd_params_refuse_what_the_simulation_cannot_do() -> None:
    with pytest.raises(ValueError, match="animals must be 1 to 3"):
        HerdParams(ArenaParams(), animals=4)
    with pytest.raises(ValueError, match="'touch' scenario needs 2 or 3 animals"):
        HerdParams(ArenaParams(), animals=1, social="touch")
    with pytest.raises(ValueError, match="body lengths from the centre"):
        HerdParams(ArenaParams(body_length=200.0), animals=2, social="cross")
