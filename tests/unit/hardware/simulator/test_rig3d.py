"""The simulated 3D rig: 3D truth, views, the synthetic camera's view keys, synchronised views."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.core.pinhole import PinholeCamera, read_calibration
from deeplabstream.hardware.cameras.synthetic import (
    FrameGrid,
    SyntheticCamera,
    SyntheticSettings,
    agree_on_epoch,
)
from deeplabstream.hardware.simulator.arena import (
    KEYPOINT_NAMES,
    Pose,
    SimulatedArena,
    simulate_behaviours,
)
from deeplabstream.hardware.simulator.rig3d import (
    DEFAULT_RIG,
    Ellipsoid,
    SimulatedRigView,
    floor_from_pixels,
    keypoints3d_from_poses,
    project_ellipsoid,
    sim_params,
)
from deeplabstream.hardware.simulator.truth import read_truth
from deeplabstream.offline.rig_calibration import settings_rig_cameras
from deeplabstream.settings import SettingsError, load_settings
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT
from tests.support.processes import only_session, run_cli

RIG_SETTINGS = PROJECT_ROOT / "docs" / "rig-3d.ini"
RIG_CALIBRATION = PROJECT_ROOT / "docs" / "rig-3d.toml"


def _view_settings(**changes: object) -> SyntheticSettings:
    keys: dict[str, object] = {
        "view_position": (-12.0, 150.0, 583.0),
        "focal_px": 820.0,
        "seed": 5,
        "pacing": "free",
        "behaviours": ("walking", "rearing"),
    }
    keys.update(changes)
    return SyntheticSettings(**keys)  # type: ignore[arg-type]


def _grab(camera: SyntheticCamera, frames: int) -> list[np.ndarray]:
    geometry = camera.open()
    shape = (geometry.height, geometry.width, 3)
    images = []
    for _ in range(frames):
        out = np.empty(shape, np.uint8)
        camera.grab(out)
        images.append(out)
    return images


# --------------------------------------------------------------------------------------------------
# The 3D mouse
# --------------------------------------------------------------------------------------------------


def test_floor_mapping_puts_pixel_edges_on_the_arena_edges() -> None:
    corners = floor_from_pixels(np.array([[-0.5, 479.5], [639.5, -0.5]]))
    np.testing.assert_allclose(corners, [[0.0, 0.0], [400.0, 300.0]])


def test_a_walking_mouse_has_its_walking_heights() -> None:
    keypoints = keypoints3d_from_poses(np.asarray(Pose(320.0, 240.0, 0.3)), 96.0)
    np.testing.assert_allclose(keypoints[:, 2], [12.0, 22.0, 22.0, 20.0, 18.0, 12.0])


def test_rearing_raises_the_nose_and_its_top_view_is_the_shortened_body() -> None:
    walking = keypoints3d_from_poses(np.asarray(Pose(320.0, 240.0, 0.0)), 96.0)
    rearing = keypoints3d_from_poses(np.asarray(Pose(320.0, 240.0, 0.0, stretch=0.55)), 96.0)
    nose, tail_base = 0, 5
    assert 40.0 < rearing[nose, 2] < 70.0
    assert rearing[tail_base, 2] == walking[tail_base, 2]  # it rears about its hind quarters
    top_view = np.linalg.norm(rearing[nose, :2] - rearing[tail_base, :2])
    assert top_view == pytest.approx(
        0.55 * np.linalg.norm(walking[nose, :2] - walking[tail_base, :2])
    )


def test_the_simulated_rearing_bouts_lift_the_nose() -> None:
    params = sim_params(seed=2, behaviours=("walking", "rearing"))
    poses, labels = simulate_behaviours(params, 900)
    nose_height = keypoints3d_from_poses(poses, params.body_length_px)[:, 0, 2]
    assert (labels == "rearing").any()
    assert nose_height[labels == "rearing"].max() > 45.0
    assert nose_height[labels == "walking"].max() == pytest.approx(12.0)


def test_a_sphere_straight_ahead_projects_to_its_exact_circle() -> None:
    camera = PinholeCamera.looking_at("c", (640, 480), 800.0, (0, 0, 500), (0, 0, 0), (0, 1, 0))
    outline = project_ellipsoid(camera, Ellipsoid(np.zeros(3), 20.0 * np.eye(3), (0.0,)))
    assert outline is not None
    center, (major, minor), _ = outline
    expected = 800.0 * 20.0 / math.sqrt(500.0**2 - 20.0**2)  # the tangent cone's radius
    np.testing.assert_allclose(center, (319.5, 239.5), atol=1e-9)
    assert major == pytest.approx(expected) and minor == pytest.approx(expected)


# --------------------------------------------------------------------------------------------------
# The synthetic camera's view keys
# --------------------------------------------------------------------------------------------------


def test_projections_of_the_3d_truth_are_the_2d_truth_files(tmp_path: Path) -> None:
    settings = _view_settings()
    camera = SyntheticCamera("left", settings)
    camera.open()
    camera.start_session(tmp_path)
    _grab(camera, 30)
    camera.close()
    truth = read_truth(tmp_path / "left.truth.csv")
    table = pd.read_csv(tmp_path / "left.truth3d.csv")
    assert list(table.columns) == ["frame"] + [f"{k}_{a}" for k in KEYPOINT_NAMES for a in "xyz"]
    np.testing.assert_array_equal(table["frame"], truth.frames)
    points = table.to_numpy()[:, 1:].reshape(-1, len(KEYPOINT_NAMES), 3)
    projected = settings.view_camera("left").project(points)
    # Both files hold 3 decimals: 0.0005 mm moves a point by about 0.001 px in this view.
    np.testing.assert_allclose(truth.positions[:, 0], projected, atol=0.01)


def test_the_views_of_one_seed_share_the_3d_truth(tmp_path: Path) -> None:
    truths = []
    for name, placement in zip(("a", "b"), DEFAULT_RIG[:2], strict=True):
        settings = _view_settings(view_position=placement.position, focal_px=placement.focal_px)
        camera = SyntheticCamera(name, settings)
        camera.open()
        camera.start_session(tmp_path)
        _grab(camera, 10)
        camera.close()
        truths.append(pd.read_csv(tmp_path / f"{name}.truth3d.csv").to_numpy())
    np.testing.assert_array_equal(truths[0], truths[1])


def test_without_the_new_keys_the_flat_arena_is_unchanged() -> None:
    settings = SyntheticSettings(seed=3, pacing="free")
    frames = _grab(SyntheticCamera("cam", settings), 5)
    arena = SimulatedArena(settings.arena_params())
    for frame in frames:
        expected = np.empty_like(frame)
        arena.render_next(expected)
        np.testing.assert_array_equal(frame, expected)


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"view_position": (200.0, 150.0, -5.0)}, "VIEW_POSITION", "not above the floor"),
        ({"view_target": (200.0, 150.0, 700.0)}, "VIEW_TARGET", "must look down"),
        ({"focal_px": 3000.0}, "FOCAL_PX", "walk out of the 640x480 view"),
        ({"animals": 2, "behaviours": ()}, "VIEW_POSITION", "ANIMALS = 1"),
    ],
)
def test_bad_view_keys_are_refused_naming_the_key(
    changes: dict[str, object], key: str, words: str
) -> None:
    with pytest.raises(ValueError, match=key) as refused:
        _view_settings(**changes)
    assert words in str(refused.value)


def test_a_malformed_view_position_names_file_section_and_key(tmp_path: Path) -> None:
    path = write_settings(tmp_path, "[Camera top]\nSOURCE = synthetic\nVIEW_POSITION = 200, 150\n")
    with pytest.raises(SettingsError, match=r"\[Camera top\] VIEW_POSITION = '200, 150'"):
        load_settings(path)


def test_the_board_scene_is_the_same_in_every_view_and_lies_flat_first(tmp_path: Path) -> None:
    import cv2

    from deeplabstream.hardware.simulator.board import floor_pose, opencv_board

    detector = cv2.aruco.CharucoDetector(opencv_board())
    tables = []
    for placement in DEFAULT_RIG:
        settings = _view_settings(
            view_position=placement.position, focal_px=placement.focal_px, scene="board"
        )
        camera = SyntheticCamera(placement.name, settings)
        camera.open()
        camera.start_session(tmp_path)
        first, *_ = _grab(camera, 40)
        camera.close()
        _, ids, _, _ = detector.detectBoard(first)
        assert ids is not None and len(ids) >= 20, placement.name  # of the board's 24 corners
        tables.append(pd.read_csv(tmp_path / f"{placement.name}.board.csv").to_numpy())
    assert not (tmp_path / "top.truth.csv").exists()
    for table in tables[1:]:
        np.testing.assert_array_equal(table, tables[0])
    rotation, origin = floor_pose()
    np.testing.assert_allclose(tables[0][:30, 1:4], np.tile(rotation, (30, 1)), atol=1e-6)
    np.testing.assert_allclose(tables[0][:30, 4:], np.tile(origin, (30, 1)), atol=1e-3)
    assert np.abs(tables[0][39, 4:] - origin).max() > 1.0  # then it moves


def test_the_board_scene_needs_a_3d_view() -> None:
    with pytest.raises(ValueError, match=r"SCENE = board .* set VIEW_POSITION"):
        SyntheticSettings(scene="board")


# --------------------------------------------------------------------------------------------------
# Synchronised views
# --------------------------------------------------------------------------------------------------


def test_the_frame_grid_is_exact_in_integer_nanoseconds() -> None:
    grid = FrameGrid(30.0, 14_819_000_000_000)
    assert grid.due_ns(0) == 14_819_000_000_000
    assert grid.due_ns(1) == 14_819_033_333_334  # rounded up to the next whole nanosecond
    assert grid.due_ns(30) == 14_820_000_000_000
    assert grid.frame_at_or_after(14_819_033_333_334) == 1
    assert grid.frame_at_or_after(14_819_033_333_335) == 2
    assert grid.frame_at_or_after(0) == 0


def test_cameras_of_a_session_agree_on_one_epoch(tmp_path: Path) -> None:
    first = agree_on_epoch(tmp_path, 5_300_000_000)
    second = agree_on_epoch(tmp_path, 9_900_000_000)
    assert first == second == 7_000_000_000
    assert [path.name for path in tmp_path.iterdir()] == ["sync-epoch.txt"]


@pytest.mark.slow
def test_a_headless_session_with_two_synchronised_views(tmp_path: Path) -> None:
    text = RIG_SETTINGS.read_text(encoding="utf-8")
    text = text[: text.index("[Camera front]")]  # two of the three views
    settings = write_settings(tmp_path, text)
    result = run_cli(
        "--settings", str(settings), "--headless", "--recording-enabled", "--frames", "60",
        "--output-dir", str(tmp_path / "out"), timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    session = only_session(tmp_path / "out")
    truths = [pd.read_csv(session / f"{name}.truth3d.csv") for name in ("top", "left")]
    common = np.intersect1d(truths[0]["frame"], truths[1]["frame"])
    # A camera that starts its session after the agreed epoch skips the frames it missed, so
    # on a loaded machine the two may share fewer than all 60 frame numbers.
    assert len(common) >= 30, (truths[0]["frame"].tolist(), truths[1]["frame"].tolist())
    rows = [t.set_index("frame").loc[common].to_numpy() for t in truths]
    np.testing.assert_array_equal(rows[0], rows[1])  # the same instant in both views
    frames = [pd.read_csv(session / f"{name}.frames.csv") for name in ("top", "left")]
    stamps = [f.set_index("frame_index").loc[common] for f in frames]
    np.testing.assert_array_equal(stamps[0]["camera_timestamp"], stamps[1]["camera_timestamp"])
    pairing_error_s = np.abs(stamps[0]["host_timestamp"] - stamps[1]["host_timestamp"])
    assert np.median(pairing_error_s) < 0.5 / 30  # host-time pairing finds the same frame


# --------------------------------------------------------------------------------------------------
# The default rig and the bundled network
# --------------------------------------------------------------------------------------------------


def test_the_shipped_rig_calibration_is_the_rigs_settings() -> None:
    from_settings = settings_rig_cameras(RIG_SETTINGS)  # read by the settings loader
    shipped = read_calibration(RIG_CALIBRATION)
    assert [camera.name for camera in from_settings] == list(shipped) == ["top", "left", "front"]
    for camera, placement in zip(from_settings, DEFAULT_RIG, strict=True):
        for attribute in ("matrix", "distortions", "rotation", "translation"):
            expected = getattr(camera, attribute)
            np.testing.assert_allclose(getattr(shipped[camera.name], attribute), expected)
            np.testing.assert_allclose(getattr(placement.camera(), attribute), expected)
    names = [camera.name for camera in load_settings(RIG_SETTINGS).cameras]
    assert names == ["top", "left", "front"]


@pytest.mark.slow
@pytest.mark.parametrize("placement", DEFAULT_RIG, ids=lambda placement: placement.name)
def test_the_bundled_network_finds_the_keypoints_in_each_default_view(placement: object) -> None:
    from deeplabstream.pose.loading import load_model
    from deeplabstream.pose.runtime.backends import open_backend
    from deeplabstream.pose.runtime.estimator import NetworkEstimator

    camera = placement.camera()  # type: ignore[attr-defined]
    params = sim_params(seed=5, behaviours=("walking", "freezing", "grooming", "rearing"))
    view = SimulatedRigView(params, camera)
    description = load_model(None, frame_size=(camera.size[1], camera.size[0]), max_animals=1)
    backend = open_backend(description, "onnxruntime", "cpu", 2)
    estimator = NetworkEstimator(description, backend, view.frame_shape, 1)
    frame = np.empty(view.frame_shape, np.uint8)
    errors = []
    for index in range(0, 300, 5):  # 60 frames, 10 s of behaviour
        view.skip_to(index)
        _, truth, _ = view.render_next(frame)
        found = estimator.estimate([frame])[0]
        errors.append(np.linalg.norm(found[:, :2] - truth, axis=1))
    assert np.median(errors) < 3.0
