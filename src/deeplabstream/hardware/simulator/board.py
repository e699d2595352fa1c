"""The ChArUco calibration board: its definition, a renderer, and a scripted way of moving it.

docs/3d.md, "Calibrating".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from deeplabstream.core.pinhole import PinholeCamera, matrix_to_rodrigues, rodrigues_to_matrix


@dataclass(frozen=True)
class BoardSpec:
    """A ChArUco board's geometry: squares along ``x`` and ``y``, sizes (mm), ArUco dictionary."""

    squares_x: int = 7
    squares_y: int = 5
    square_mm: float = 40.0
    marker_mm: float = 30.0
    dictionary: str = "DICT_4X4_50"

    @property
    def size_mm(self) -> tuple[float, float]:
        """(width along x, height along y) of the chessboard in mm."""
        return self.squares_x * self.square_mm, self.squares_y * self.square_mm

    def corner_points(self) -> np.ndarray:
        """Return the inner corners in the board's frame, (corner_count, 3) mm, in id order."""
        return np.asarray(opencv_board(self).getChessboardCorners(), dtype=np.float64)


BOARD = BoardSpec()
"""The board of this program: 7 x 5 squares of 40 mm, 30 mm markers, 4x4 dictionary.

At 280 x 200 mm it lies inside the arena; a 640 x 480 view with a focal length of ~600 px sees its
markers ~30 px wide from 600 mm, which the detector finds even when tilted by 40 degrees.
"""

FLOOR_ROTATION = np.array([math.pi, 0.0, 0.0])
"""Rodrigues board -> world of the board lying flat on the floor, face up (180 deg about x)."""

FLOOR_ORIGIN = np.array([60.0, 250.0, 0.0])
"""World position (mm) of the board's origin corner when it lies flat on the floor."""

_PIXELS_PER_MM = 4.0  # the board's texture: fine enough to stay sharp when a view magnifies it
_MARGIN_MM = 20.0  # white paper around the chessboard, so the outer markers keep their border
_FLOOR_GREY = 96  # the default background: a darker floor than the white paper


@cache
def opencv_board(spec: BoardSpec = BOARD) -> Any:
    """Return the ``cv2.aruco.CharucoBoard`` of ``spec`` (built once per spec)."""
    import cv2

    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, spec.dictionary))
    return cv2.aruco.CharucoBoard(
        (spec.squares_x, spec.squares_y), spec.square_mm, spec.marker_mm, dictionary
    )


@cache
def _board_texture(spec: BoardSpec) -> np.ndarray:
    """Return the printed sheet (chessboard and white margin), blurred against aliasing."""
    import cv2

    width_mm, height_mm = spec.size_mm
    margin_px = round(_MARGIN_MM * _PIXELS_PER_MM)
    size = (
        round(width_mm * _PIXELS_PER_MM) + 2 * margin_px,
        round(height_mm * _PIXELS_PER_MM) + 2 * margin_px,
    )
    image = opencv_board(spec).generateImage(size, marginSize=margin_px, borderBits=1)
    # Views shrink the texture ~4x; a blur of ~one view pixel stops the warp from aliasing,
    # and being symmetric it does not move the corners.
    return cv2.GaussianBlur(image, (0, 0), sigmaX=0.6 * _PIXELS_PER_MM)


@cache
def _paper(spec: BoardSpec) -> np.ndarray:
    """Return ones the size of the board's texture: warped, they give the sheet's coverage."""
    return np.ones(_board_texture(spec).shape, np.float32)


def _texture_to_board() -> np.ndarray:
    """3 x 3 map from texture pixels (centres at whole numbers) to board millimetres (x, y, 1)."""
    scale = 1.0 / _PIXELS_PER_MM
    offset = 0.5 * scale - _MARGIN_MM  # pixel i covers [i, i + 1) / scale: its centre is i + 0.5
    return np.array([[scale, 0.0, offset], [0.0, scale, offset], [0.0, 0.0, 1.0]])


def board_homography(
    camera: PinholeCamera, rotation: np.ndarray, translation: np.ndarray
) -> np.ndarray:
    """Return the 3 x 3 homography from board mm (x, y, 1) to the camera's undistorted pixels."""
    board_to_world = rodrigues_to_matrix(rotation)
    to_camera = camera.rotation_matrix @ board_to_world
    origin = camera.rotation_matrix @ np.asarray(translation, float) + camera.translation
    return camera.matrix @ np.column_stack([to_camera[:, 0], to_camera[:, 1], origin])


def render_board(
    camera: PinholeCamera,
    rotation: np.ndarray,
    translation: np.ndarray,
    out: np.ndarray,
    background: np.ndarray | None = None,
    spec: BoardSpec = BOARD,
) -> np.ndarray:
    """Draw the board at a 3D pose into ``out`` as ``camera`` sees it; return ``out``."""
    import cv2

    width, height = camera.size
    if out.shape[:2] != (height, width):
        raise ValueError(
            f"render_board: camera {camera.name!r} is {width} x {height}, "
            f"but out is {out.shape[1]} x {out.shape[0]}"
        )
    texture = _board_texture(spec)
    homography = board_homography(camera, rotation, translation) @ _texture_to_board()
    facing = camera.rotation_matrix @ rodrigues_to_matrix(rotation)[:, 2]
    behind = (camera.rotation_matrix @ np.asarray(translation, float) + camera.translation)[2] <= 0
    if background is None:
        floor = np.full(out.shape, _FLOOR_GREY, np.uint8)
    else:
        floor = np.asarray(background, dtype=np.uint8).reshape(out.shape)
    if behind or facing[2] <= 0:  # the board's back (blank) or behind the camera: not drawn
        out[...] = floor
        return out
    sheet = cv2.warpPerspective(texture, homography, (width, height), flags=cv2.INTER_LINEAR)
    cover = cv2.warpPerspective(_paper(spec), homography, (width, height), flags=cv2.INTER_LINEAR)
    if np.any(camera.distortions):
        sheet, cover = _distort(camera, sheet), _distort(camera, cover)
    if out.ndim == 3:
        sheet = cv2.cvtColor(sheet, cv2.COLOR_GRAY2BGR)
    # cover is the sheet's share of each pixel (fractional at its edges): blend it over the floor
    out[...] = cv2.blendLinear(sheet, floor, cover, 1.0 - cover)
    return out


def _distort(camera: PinholeCamera, ideal: np.ndarray) -> np.ndarray:
    """Resample an ideal (undistorted) image as the camera's lens bends it."""
    import cv2

    map_x, map_y = _ideal_positions(camera)
    return cv2.remap(ideal, map_x, map_y, cv2.INTER_LINEAR)


_IDEAL_POSITIONS: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}  # per lens: a camera's maps


def _ideal_positions(camera: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel of the camera's (distorted) frame, where it lies in the ideal image."""
    import cv2

    key = camera.matrix.tobytes() + camera.distortions.tobytes() + repr(camera.size).encode()
    if key not in _IDEAL_POSITIONS:
        width, height = camera.size
        grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1)
        pixels = grid.reshape(-1, 1, 2).astype(np.float64)
        # undistortPoints inverts the lens model (iteratively): distorted -> ideal pixel
        ideal = cv2.undistortPoints(
            pixels, camera.matrix, camera.distortions, P=camera.matrix,
            criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-6),
        ).reshape(height, width, 2)  # fmt: skip
        if len(_IDEAL_POSITIONS) >= 8:  # a few rigs' worth; do not grow without bound
            _IDEAL_POSITIONS.clear()
        _IDEAL_POSITIONS[key] = (
            ideal[..., 0].astype(np.float32),
            ideal[..., 1].astype(np.float32),
        )
    return _IDEAL_POSITIONS[key]


def floor_pose() -> tuple[np.ndarray, np.ndarray]:
    """Return the board lying flat on the floor: (Rodrigues board -> world, origin in world mm)."""
    return FLOOR_ROTATION.copy(), FLOOR_ORIGIN.copy()


def board_poses(
    seed: int, n_frames: int, fps: float, spec: BoardSpec = BOARD
) -> tuple[np.ndarray, np.ndarray]:
    """Scripted board poses (Rodrigues board -> world, origin in mm): flat for a second, then moved.

    Frame ``i``'s pose does not depend on ``n_frames``, so a caller may extend it as it goes.
    """
    if fps <= 0:
        raise ValueError(f"board_poses: fps must be positive, got {fps}")
    rng = np.random.default_rng(seed)
    flat_rotation, flat_origin = floor_pose()
    half_size = np.array([spec.size_mm[0] / 2, spec.size_mm[1] / 2, 0.0])
    flat_matrix = rodrigues_to_matrix(flat_rotation)
    flat_centre = flat_matrix @ half_size + flat_origin
    first_second = min(n_frames, max(1, round(fps)))
    move_frames, hold_frames = max(1, round(fps)), max(1, round(fps / 2))
    centres, tilts = [flat_centre], [np.zeros(3)]
    while len(centres) * move_frames < n_frames + move_frames:
        tilt_axis = rng.uniform(-math.pi, math.pi)
        tilt_angle = math.radians(rng.uniform(0, 40))
        turn = math.radians(rng.uniform(-30, 30))
        centres.append(
            np.array([rng.uniform(120, 280), rng.uniform(100, 200), rng.uniform(80, 200)])
        )
        tilts.append(
            np.array([math.cos(tilt_axis) * tilt_angle, math.sin(tilt_axis) * tilt_angle, turn])
        )
    rotations = np.empty((n_frames, 3))
    translations = np.empty((n_frames, 3))
    schedule = _schedule(len(centres), move_frames, hold_frames)
    for frame in range(n_frames):
        if frame < first_second:
            centre, tilt = centres[0], tilts[0]
        else:
            start, fraction = schedule[min(frame - first_second, len(schedule) - 1)]
            ease = 0.5 - 0.5 * math.cos(math.pi * fraction)  # smooth start and stop
            centre = centres[start] + ease * (centres[start + 1] - centres[start])
            tilt = tilts[start] + ease * (tilts[start + 1] - tilts[start])
        matrix = _tilted(tilt) @ flat_matrix
        rotations[frame] = matrix_to_rodrigues(matrix)
        translations[frame] = centre - matrix @ half_size
    return rotations, translations


def _tilted(tilt: np.ndarray) -> np.ndarray:
    """World rotation: turn ``tilt[2]`` about z, then tilt by the horizontal vector tilt[:2]."""
    turn = rodrigues_to_matrix(np.array([0.0, 0.0, tilt[2]]))
    return rodrigues_to_matrix(np.array([tilt[0], tilt[1], 0.0])) @ turn


def _schedule(waypoints: int, move_frames: int, hold_frames: int) -> list[tuple[int, float]]:
    """Per frame after the first second: (the waypoint moved from, fraction of the move done)."""
    steps: list[tuple[int, float]] = []
    for start in range(waypoints - 1):
        steps += [(start, (step + 1) / move_frames) for step in range(move_frames)]
        if start % 3 == 2:
            steps += [(start, 1.0)] * hold_frames
    return steps
