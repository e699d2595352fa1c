"""A simulated three-camera rig filming the board: the ground truth the calibration must find."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from deeplabstream.core.frames import FrameGeometry
from deeplabstream.core.pinhole import PinholeCamera
from deeplabstream.hardware.simulator.board import board_poses, render_board
from deeplabstream.outputs.frames_table import FramesTable
from deeplabstream.outputs.video import VideoWriter

FPS = 30.0
FRAME_SIZE = (640, 480)
ARENA_CENTRE = (200.0, 150.0, 0.0)


def rig_cameras() -> list[PinholeCamera]:
    """One camera above the arena, two tilted 25 degrees from 550 mm on either side."""
    side = 550 * math.sin(math.radians(25))
    height = 550 * math.cos(math.radians(25))
    x, y, _ = ARENA_CENTRE
    return [
        PinholeCamera.looking_at("top", FRAME_SIZE, 600, (x, y, 650), ARENA_CENTRE),
        PinholeCamera.looking_at("left", FRAME_SIZE, 600, (x - side, y, height), ARENA_CENTRE),
        PinholeCamera.looking_at("right", FRAME_SIZE, 620, (x + side, y, height), ARENA_CENTRE),
    ]


def rendered_views(
    cameras: list[PinholeCamera], n_frames: int, seed: int = 3
) -> dict[str, list[np.ndarray]]:
    """Each camera's frames of the board moving through the arena (first second on the floor)."""
    rotations, translations = board_poses(seed, n_frames, FPS)
    views: dict[str, list[np.ndarray]] = {}
    for camera in cameras:
        width, height = camera.size
        views[camera.name] = [
            render_board(camera, rotations[i], translations[i], np.empty((height, width), np.uint8))
            for i in range(n_frames)
        ]
    return views


def write_session(
    folder: Path, views: dict[str, list[np.ndarray]], late_frames: dict[str, int]
) -> None:
    """Write the views as a recorded session: ``<camera>.mkv`` (lossless) and frames tables.

    Camera ``name`` starts ``late_frames[name]`` frames late (plus 3 ms): its first frame shows
    the board of frame ``late``, taken at host time ``100 + late / FPS + 0.003`` s. Camera
    timestamps count from 0 per camera, as the synthetic camera's do, so they disagree about
    the start and only the host clock pairs the frames.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, frames in views.items():
        height, width = frames[0].shape
        late = late_frames.get(name, 0)
        start_s = 100.0 + (late / FPS + 0.003 if late else 0.0)
        writer = VideoWriter(folder / f"{name}.mkv", FrameGeometry(height, width, 1), "ffv1", FPS)
        table = FramesTable(folder / f"{name}.frames.csv")
        try:
            for index, frame in enumerate(frames[late:]):
                camera_s = index / FPS
                writer.encode(writer.frame_from(frame), camera_s)
                table.append(index, camera_s, round((start_s + camera_s) * 1e9))
        finally:
            writer.close()
            table.close()
