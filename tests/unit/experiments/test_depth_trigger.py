"""Depth for experiments: ``Observation.depth_m`` and the ``height`` trigger.

Unit tests feed the trigger observations whose depth is a known function of frame and pixel and
compare, frame by frame, with the height computed here by plain arithmetic. The worker's binding
of an observation to its frame's depth is tested on a real companion ring. The end-to-end test
runs the whole pipeline on the SDK's software RealSense
(tests/unit/hardware/cameras/test_realsense.py): injected colour and depth frames -> capture
process -> depth companion ring -> pose worker (the bundled model) -> an experiment config with
``height`` triggers -> ``events.csv``, whose every
trigger state is checked against the depth injected under the keypoint the model reported.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.core.frames import FrameGeometry
from deeplabstream.experiments.config.parse import ExperimentConfigError, parse_experiment_config
from deeplabstream.experiments.observation import DepthLookup, Observation
from deeplabstream.experiments.triggers import Height, make_trigger
from deeplabstream.hardware.simulator.arena import ArenaParams, ArenaRenderer, WaypointMotion
from deeplabstream.live.processes.analysis.depth import DepthSource, FrameDepth, depth_source
from deeplabstream.live.processes.analysis.experiment_slot import open_experiment_run
from deeplabstream.live.processes.capture.companion import CompanionReader
from deeplabstream.transport.ring import FrameRing, RingSpec, new_ring_name

NAMES = ("nose", "tail_base")
FLOOR_M = 0.80


def observation(
    frame: int,
    nose: tuple[float, float],
    depth_of: DepthLookup | None = None,
    likelihood: float = 1.0,
    camera: str = "top",
) -> Observation:
    keypoints = np.array([[nose[0], nose[1], likelihood], [10.0, 10.0, 1.0]])
    return Observation(frame / 30, camera, frame, keypoints, NAMES, depth=depth_of)


# -- the trigger on known depth ----------------------------------------------------------------

PLATFORM = (100, 200, 60, 120)  # x_min, x_max, y_min, y_max: a 4 cm platform


def scene_depth_m(frame: int, x: float, y: float) -> float | None:
    """Depth under (x, y) at ``frame``: floor, a platform, a rearing nose; a hole at x >= 300."""
    if x >= 300:
        return None  # nothing measured there
    depth = FLOOR_M
    if PLATFORM[0] <= x < PLATFORM[1] and PLATFORM[2] <= y < PLATFORM[3]:
        depth -= 0.04
    if 40 <= frame < 60:  # the mouse rears: the nose rises 0 -> 9.5 cm and back
        depth -= 0.095 * (1 - abs(frame - 50) / 10)
    return depth


def scene_lookup(frame: int, radius_px: int = 2):
    def lookup(x: float, y: float, radius: int) -> float | None:
        assert radius == radius_px  # the trigger's RADIUS_PX reaches the lookup
        return scene_depth_m(frame, x, y)

    return lookup


def nose_path(frame: int) -> tuple[float, float]:
    """Across the platform and off it, then into the hole, then back."""
    if frame < 80:
        return (20.0 + 3.0 * frame, 90.0)
    return (320.0 - 2.0 * (frame - 80), 90.0)


@pytest.mark.parametrize(
    ("params", "holds"),
    [
        ({"above_m": 0.05}, lambda h: h >= 0.05),
        ({"below_m": 0.03}, lambda h: h < 0.03),
        ({"above_m": 0.03, "below_m": 0.07}, lambda h: 0.03 <= h < 0.07),
    ],
    ids=["above", "below", "band"],
)
def test_height_is_floor_minus_the_depth_under_the_keypoint_frame_by_frame(params, holds) -> None:
    trigger = Height(FLOOR_M, keypoint="nose", radius_px=3, **params)
    states, expected, heights = [], [], []
    for frame in range(140):
        x, y = nose_path(frame)
        states.append(trigger.update(observation(frame, (x, y), scene_lookup(frame, 3))))
        depth = scene_depth_m(frame, x, y)
        truth = None if depth is None else FLOOR_M - depth
        expected.append(truth is not None and holds(truth))
        heights.append((trigger.last_height_m, truth))
    assert states == expected
    assert True in states and False in states  # the path makes both happen
    for measured, truth in heights:
        assert measured == pytest.approx(truth) if truth is not None else measured is None


def test_missing_keypoints_and_holes_make_the_height_unknown_and_hold_reads_the_current_frame() -> (
    None
):
    # HOLD_S = 0: every frame decides alone, a nose not seen is at once an unknown height.
    above = Height(FLOOR_M, above_m=0.03, keypoint="nose", min_likelihood=0.5, hold_s=0.0)
    on_platform = (150.0, 90.0)
    assert above.update(observation(0, on_platform, scene_lookup(0)))
    assert above.last_height_m == pytest.approx(0.04)
    assert not above.update(observation(1, on_platform, scene_lookup(1), likelihood=0.2))
    assert above.last_height_m is None
    assert not above.update(observation(2, (310.0, 90.0), scene_lookup(2)))  # a hole
    assert above.last_height_m is None

    # By default (HOLD_S = 0.5) a frame without the nose keeps the state: no decision on it.
    bridged = Height(FLOOR_M, above_m=0.03, keypoint="nose", min_likelihood=0.5)
    assert bridged.update(observation(0, on_platform, scene_lookup(0)))
    assert bridged.update(observation(1, on_platform, scene_lookup(1), likelihood=0.2))
    assert bridged.holding
    assert not bridged.update(observation(20, on_platform, scene_lookup(20), likelihood=0.2))
    assert not bridged.holding  # 20 frames later (over 0.5 s): decided, unknown height

    # Hold: the nose, unseen, is held on the platform; its height is read in the current frame.
    held = Height(FLOOR_M, above_m=0.1, keypoint="nose", policy="hold", hold_s=1.0)
    assert not held.update(observation(40, on_platform, scene_lookup(40)))  # 4 cm: not 10
    assert held.update(observation(50, (0.0, 0.0), scene_lookup(50), likelihood=0.0))
    assert held.last_height_m == pytest.approx(0.04 + 0.095)
    held.reset()
    assert held.last_height_m is None and held.state is False


def test_a_camera_without_depth_is_a_clear_error_not_a_silent_false(tmp_path: Path) -> None:
    plain = observation(0, (150.0, 90.0))
    assert plain.depth is None and plain.depth_m(150, 90) is None  # as before: no depth
    with pytest.raises(ValueError, match=r"camera 'top' delivers no depth.*RealSense") as caught:
        Height(FLOOR_M, above_m=0.03).update(plain)
    assert "ALIGN_DEPTH = true" in str(caught.value)
    # Running: the experiment stops with that message (tracking goes on), naming the camera.
    config = tmp_path / "rearing.ini"
    config.write_text("[Trigger rearing]\nKIND = height\nFLOOR_M = 0.8\nABOVE_M = 0.05\n")
    run = open_experiment_run(str(config), {}, tmp_path)
    run.on_poses([plain], 0)
    assert run.error is not None
    assert "camera 'top' delivers no depth image" in run.error
    assert "needs a RealSense camera (SOURCE = realsense) with DEPTH = true" in run.error
    run.stop()


def test_describe_round_trips_and_bad_parameters_are_named() -> None:
    for trigger in (
        Height(0.8, above_m=0.05),
        Height(1.2, below_m=0.02, keypoint="tail_base", radius_px=0, camera="top"),
        Height(0.5, above_m=0.01, below_m=0.03, policy="hold", hold_s=0.2),
    ):
        described = trigger.describe()
        rebuilt = make_trigger(described.pop("kind"), {k: str(v) for k, v in described.items()})
        assert isinstance(rebuilt, Height) and rebuilt.describe() == trigger.describe()
    bad = [
        ({"above_m": "0.05"}, "needs parameter 'floor_m'"),
        ({"floor_m": "0.8"}, "give above_m"),
        ({"floor_m": "800", "above_m": "50", "radius_px": "2.5"}, "whole number from 0 to 20"),
        ({"floor_m": "0.8", "above_m": "0.9"}, "above_m = 0.9 m is not below the floor's"),
        ({"floor_m": "0.8", "above_m": "0.05", "below_m": "0.02"}, "must be less than below_m"),
        ({"floor_m": "-1", "above_m": "0.05"}, "'floor_m' = '-1' is not valid"),
    ]
    for params, phrase in bad:
        with pytest.raises(ValueError, match="trigger 'height'") as caught:
            make_trigger("height", params)
        assert phrase in str(caught.value), (params, str(caught.value))


def test_config_files_take_height_triggers_with_the_experiments_likelihood_policy() -> None:
    config = parse_experiment_config(
        "[Experiment]\nMIN_LIKELIHOOD = 0.8\nPOLICY = hold\nHOLD = 0.3\n"
        "[Trigger rearing]\nKIND = height\nKEYPOINT = nose\nFLOOR_M = 0.75\nABOVE_M = 0.05\n"
        "RADIUS_PX = 4\nCAMERA = top\n"
        "[Stimulation tone]\nDEVICE = box\nCOMMAND = pulse\nDURATION = 0.1\n"
        "[Rule go]\nWHEN = rearing\nDO = tone\n"
    )
    trigger = config.build().triggers["rearing"]
    assert trigger.describe() == {
        "kind": "height",
        "camera": "top",
        "floor_m": 0.75,
        "above_m": 0.05,
        "keypoint": "nose",
        "radius_px": 4,
        "min_likelihood": 0.8,
        "policy": "hold",
        "hold_s": 0.3,
    }
    with pytest.raises(ExperimentConfigError) as caught:
        parse_experiment_config(
            "[Trigger a]\nKIND = height\nABOVE_M = 0.05\n"
            "[Trigger b]\nKIND = height\nFLOOR_M = 0.5\nABOVE_M = 0.7\n"
            "[Trigger c]\nKIND = height\nFLOOR_M = 0.5\nABOVE = 0.1\n",
            "lab.ini",
        )
    text = str(caught.value)
    assert "lab.ini: [Trigger a] FLOOR_M: missing; expected a number > 0 (m" in text
    assert "[Trigger b]: trigger 'height': above_m = 0.7 m is not below the floor's" in text
    assert "[Trigger c] ABOVE: unknown key for KIND = height" in text
    assert "FLOOR_M, ABOVE_M, BELOW_M, KEYPOINT, RADIUS_PX" in text


# -- the worker's binding: an observation reads its own frame's depth --------------------------


def test_frame_depth_reads_the_depth_of_its_own_frame_from_the_companion_ring() -> None:
    geometry = FrameGeometry(48, 64, 1, "uint16")
    ring = FrameRing.create(RingSpec(new_ring_name("test_depth"), geometry, 4))
    reader = CompanionReader(ring.spec)
    try:
        for seq in range(6):  # frame seq: 1000 + seq mm everywhere, a 10 x 10 box 100 mm nearer
            image = ring.begin_write(seq)
            image[...] = 1000 + seq
            image[10:20, 30:40] = 900 + seq
            image[12, 33] = 0  # a pixel without a measurement
            image[30:35, 5:10] = 0  # a patch without any
            ring.end_write(seq)
        depth_of = {seq: FrameDepth(reader, seq, 0.001) for seq in (1, 4, 5)}
        assert depth_of[5](34, 14, 2) == pytest.approx(0.905)  # the box, frame 5
        assert depth_of[4](34, 14, 2) == pytest.approx(0.904)  # the box, frame 4
        assert depth_of[4](50, 40, 0) == pytest.approx(1.004)  # the floor
        assert depth_of[5](33, 12, 0) is None  # that pixel has no measurement...
        assert depth_of[5](33, 12, 1) == pytest.approx(0.905)  # ...its neighbours have
        assert depth_of[5](7, 32, 2) is None  # nothing measured around (7, 32)
        assert depth_of[5](-10, 5, 2) is None and depth_of[5](float("nan"), 5, 2) is None
        assert depth_of[1](34, 14, 2) is None  # 4 slots hold frames 2-5: frame 1 is gone
        obs = observation(5, (34.0, 14.0), depth_of[5])
        assert obs.depth_m(34, 14) == pytest.approx(0.905)
        assert Height(1.0, above_m=0.09).update(obs)  # 1.0 - 0.905 = 0.095 m
    finally:
        reader.close()
        ring.close()
        ring.unlink()


def _description(aligned_to: str | None, main: str = "color", size=(240, 320)) -> dict:
    return {
        "main_stream": main,
        "companions": {
            "depth": {
                "ring": "dls_x_depth",
                "slots": 60,
                "width": size[1],
                "height": size[0],
                "channels": 1,
                "dtype": "uint16",
                "kind": "depth",
                "depth_units_m": 0.001,
                "aligned_to": aligned_to,
            }
        },
    }


def test_depth_source_only_for_depth_aligned_to_the_analysed_image(caplog) -> None:
    source = depth_source("top", _description("color"), (240, 320))
    assert isinstance(source, DepthSource) and source.units_m == 0.001
    assert source.ring.name == "dls_x_depth" and source.ring.geometry.shape == (240, 320)
    assert depth_source("top", _description(None, "infrared"), (240, 320)) is not None
    assert depth_source("cam", {"model": "a webcam"}, (240, 320)) is None
    with caplog.at_level(logging.WARNING, logger="deeplabstream.live.processes.analysis.depth"):
        assert depth_source("top", _description(None), (240, 320)) is None
        assert depth_source("side", _description("color", size=(480, 640)), (240, 320)) is None
    assert "camera top: experiments get no depth from it: it is not aligned" in caplog.text
    assert "ALIGN_DEPTH = true" in caplog.text
    assert "camera side: experiments get no depth from it: its size 640x480" in caplog.text


# -- end to end: software RealSense -> capture -> pose worker -> height triggers -> events.csv --

WIDTH, HEIGHT = 320, 240
TILE_PX = 20  # the injected depth is constant over 20 x 20 px tiles
MARGIN_PX = 3  # the 5 x 5 window, and the align block's one-pixel seams at tile edges
E2E_FLOOR_M = 1.0
E2E_TRIGGERS = {  # name: (keypoint, ABOVE_M, BELOW_M); tile depths are 900..919 mm
    "nose_high": ("nose", 0.0905, None),  # depth <= 909 mm
    "centre_low": ("body_center", None, 0.0855),  # depth >= 915 mm
    "tail_band": ("tail_base", 0.0845, 0.0955),  # 905..915 mm
}


ANALYSED = 60  # frames to analyse
LAP_FRAMES = 120  # the mouse runs a lap of the arena every 4 s


def arena_params(width: int, height: int) -> ArenaParams:
    """The simulated mouse running laps (what the bundled pose model was made for)."""
    corners = ((0, 90, 70), (30, 230, 70), (60, 230, 170), (90, 90, 170), (LAP_FRAMES, 90, 70))
    return ArenaParams(width=width, height=height, motion="waypoints", waypoints=corners)


def tile_depth(number: int, width: int, height: int) -> np.ndarray:
    """Frame ``number``'s depth (mm): a platform ~9 cm high whose 20-px tiles differ by
    millimetres from each other and from frame to frame (so a wrong pixel or frame shows)."""
    y, x = np.mgrid[0:height, 0:width]
    tiles = (x // TILE_PX) * 7 + (y // TILE_PX) * 13 + number * 31
    return (900 + tiles % 20).astype(np.uint16)


try:  # the software RealSense rig; without pyrealsense2 only the end-to-end test is skipped
    from tests.unit.hardware.cameras import test_realsense as rs_tests
except pytest.skip.Exception:
    rs_tests = None
else:

    class TileRig(rs_tests.SoftwareRig):
        """The software RealSense filming the simulated mouse, with :func:`tile_depth` as depth."""

        def __init__(self, *args, **keys) -> None:
            super().__init__(*args, **keys)
            self.arena = arena_params(self.width, self.height)
            self._motion = WaypointMotion(self.arena)
            self._renderer = ArenaRenderer(self.arena)

        def colour_frame(self, number: int) -> np.ndarray:
            image = np.empty((self.height, self.width, 3), np.uint8)
            self._renderer.render(self._motion.pose_at(number % LAP_FRAMES), number, image)
            return image

        def depth_frame(self, number: int) -> np.ndarray:
            return tile_depth(number, self.width, self.height)

    class TileRealSense(rs_tests.SoftwareRealSense):
        """Made in the capture process through the lab's ``cameras/`` module (below)."""

        rig_class = TileRig


def _expected_state(x: float, y: float, number: int, units_m: float, above, below) -> bool | None:
    """The trigger's state from the injected depth under (x, y); None where ambiguous."""
    if not (np.isfinite(x) and np.isfinite(y)):
        return False  # no keypoint: no height
    column, row = round(x), round(y)
    left, right, top, bottom = (
        column - MARGIN_PX,
        column + MARGIN_PX,
        row - MARGIN_PX,
        row + MARGIN_PX,
    )
    if left < 0 or top < 0 or right >= WIDTH or bottom >= HEIGHT:
        return None
    if left // TILE_PX != right // TILE_PX or top // TILE_PX != bottom // TILE_PX:
        return None  # the window may straddle two tiles
    depth_mm = int(tile_depth(number, WIDTH, HEIGHT)[row, column])
    height = E2E_FLOOR_M - depth_mm * units_m
    return (above is None or height >= above) and (below is None or height < below)


def test_height_triggers_read_the_injected_depth_under_the_pose_models_keypoints(
    tmp_path: Path, no_leftovers
) -> None:
    if rs_tests is None:
        pytest.skip("pyrealsense2 is not installed (pip install pyrealsense2; libusb-1.0-0)")
    from deeplabstream.live.session.live import LiveSession
    from deeplabstream.settings import load_settings
    from tests.support.files import write_settings
    from tests.support.lab_folders import lab_plugin

    sections = "".join(
        f"[Trigger {name}]\nKIND = height\nKEYPOINT = {keypoint}\nFLOOR_M = {E2E_FLOOR_M}\n"
        + (f"ABOVE_M = {above}\n" if above is not None else "")
        + (f"BELOW_M = {below}\n" if below is not None else "")
        for name, (keypoint, above, below) in E2E_TRIGGERS.items()
    )
    experiment = tmp_path / "heights.ini"
    experiment.write_text(
        "[Experiment]\nDESCRIPTION = heights\nMIN_LIKELIHOOD = 0\n" + sections, encoding="utf-8"
    )
    settings_path = write_settings(
        tmp_path,
        f"[Camera top]\nSOURCE = realsense\nWIDTH = {WIDTH}\nHEIGHT = {HEIGHT}\nFRAMERATE = 30\n"
        f"[Streaming]\nCAMERA_LOST_AFTER = 3\n[Experiment]\nNAME = {experiment}\n",
    )
    settings = load_settings(settings_path)
    camera = settings.cameras[0]
    options = rs_tests.SoftwareRealSenseSettings(**dataclasses.asdict(camera.options))
    # The camera as a lab's module beside the settings file (a name, never a file path).
    source = lab_plugin(tmp_path, "cameras", TileRealSense)
    settings = dataclasses.replace(
        settings, cameras=(dataclasses.replace(camera, source=source, options=options),)
    )
    stream = LiveSession(settings, output_dir=tmp_path / "out")
    try:
        stream.open()
        stream.start()
        stream.pose.start_analysis(experiment=True)
        # About 2 s of frames at full rate; the deadline only bounds a machine that cannot keep up.
        deadline = time.monotonic() + 30.0
        while stream.camera_stats()["top"]["analysed"] < ANALYSED and time.monotonic() < deadline:
            stream.service(0.1)
    finally:
        stream.stop("test over")
    session = stream.session_dir
    assert session is not None
    info = json.loads((session / "session.json").read_text())
    assert info["errors"] == []
    depth_info = info["cameras"]["top"]["device"]["companions"]["depth"]
    assert depth_info["aligned_to"] == "color"
    units_m = depth_info["depth_units_m"]
    assert units_m == pytest.approx(0.001)

    pose = pd.read_csv(session / "top.pose.csv", header=[0, 1, 2], index_col=0).dropna(how="all")
    events = pd.read_csv(session / "events.csv")
    triggers = events[events["kind"] == "trigger"]
    assert set(triggers["frame_index"]) <= set(pose.index)  # decided on analysed frames only
    compared = 0
    for name, (keypoint, above, below) in E2E_TRIGGERS.items():
        seen = set()
        changes = triggers[triggers["name"] == name]
        became = changes["detail"].astype(str).str.lower() == "true"
        change_at = dict(zip(changes["frame_index"], became, strict=True))
        xs = pose.xs((keypoint, "x"), level=(1, 2), axis=1).iloc[:, 0]
        ys = pose.xs((keypoint, "y"), level=(1, 2), axis=1).iloc[:, 0]
        state = False  # every trigger starts false; events.csv logs each change
        for number, x, y in zip(pose.index, xs, ys, strict=True):
            state = change_at.get(number, state)
            expected = _expected_state(x, y, int(number), units_m, above, below)
            if expected is None:
                continue
            assert state == expected, (name, int(number), x, y)
            compared += 1
            seen.add(expected)
        assert seen == {True, False}, name  # the tiles' depths change every frame
    # Frames were analysed, and many keypoints lay well inside a tile: a real comparison.
    assert len(pose) >= ANALYSED
    assert compared >= len(pose)  # of 3 per frame (about 2 per frame in practice)
