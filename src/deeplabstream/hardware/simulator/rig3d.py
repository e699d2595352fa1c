"""A simulated multi-view 3D rig: the arena's mouse in millimetres, seen by calibrated cameras.

docs/cameras.md, "The simulated 3D rig".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import numpy as np

from deeplabstream.core.pinhole import PinholeCamera, write_calibration
from deeplabstream.hardware.simulator.arena import (
    BODY_PLAN,
    KEYPOINT_NAMES,
    TAIL_THICKNESSES,
    ArenaParams,
    ArenaRenderer,
    BehaviourMotion,
    Pose,
    head_ellipse,
    keypoints_from_poses,
    make_motion,
    mouse_colors,
    tail_polyline,
)
from deeplabstream.hardware.simulator.board import board_poses, render_board

ARENA_SIZE_MM: tuple[float, float] = (400.0, 300.0)
"""Width (x) and depth (y) of the arena floor in millimetres."""

SIM_SIZE_PX: tuple[int, int] = (640, 480)
"""Width and height of the 2D simulation that moves the 3D mouse (its frame, in pixels)."""

MM_PER_PX = ARENA_SIZE_MM[0] / SIM_SIZE_PX[0]
"""Millimetres per pixel of the 2D simulation (0.625, the same along x and y)."""

WALKING_HEIGHTS_MM: dict[str, float] = {
    "nose": 12.0,
    "left_ear": 22.0,
    "right_ear": 22.0,
    "neck": 20.0,
    "body_center": 18.0,
    "tail_base": 12.0,
}
"""Height of each keypoint above the floor when the mouse walks.

Keypoints lie inside the drawn parts, on their axes (the body centre on the trunk's, 12 mm below
the back), not on the fur: a network finds a part's middle from its outline in any view, and the
outline of a solid body seen from above is that of its middle, not of its top.
"""

_HEIGHTS = np.array([WALKING_HEIGHTS_MM[name] for name in KEYPOINT_NAMES])
# Distances along the body from the tail base, in body lengths, when the head is straight; the
# nose's shrinks with the grooming retraction (see keypoints3d_from_poses).
_NECK_FROM_TAIL = BODY_PLAN.tail_base_behind + BODY_PLAN.neck_ahead
_ALONG_BODY = np.array(
    [
        _NECK_FROM_TAIL + BODY_PLAN.nose_ahead_of_neck,
        _NECK_FROM_TAIL + BODY_PLAN.ear_ahead_of_neck,
        _NECK_FROM_TAIL + BODY_PLAN.ear_ahead_of_neck,
        _NECK_FROM_TAIL,
        BODY_PLAN.tail_base_behind,
        0.0,
    ]
)
_TRUNK_CENTER_HEIGHT_MM = 17.0  # the trunk ellipsoid when walking: from 4 to 30 mm high
_TRUNK_HALF_HEIGHT = 0.22  # body lengths
_HEAD_HALF_HEIGHT = 0.09  # body lengths
_TAIL_HEIGHT_MM = 1.5  # the tail lies on the floor ...
_TAIL_LIFT_SECTION = 0.3  # ... after rising to the tail base over this fraction of its length
_HEAD_IN_FRONT_MM = 15.0  # see RigViewRenderer._farthest_first
_ROOM_LEVEL = 60  # grey level outside the arena's floor image
_SHIFT = 4  # cv2 fixed-point drawing, as in hardware.simulator.arena
_SCALE = 1 << _SHIFT


# --------------------------------------------------------------------------------------------------
# Coordinates and 3D keypoints
# --------------------------------------------------------------------------------------------------


def floor_from_pixels(points_px: np.ndarray) -> np.ndarray:
    """Map points of the 2D simulation (..., 2), pixels, to floor points (..., 2), millimetres."""
    points = np.asarray(points_px, dtype=np.float64)
    x = (points[..., 0] + 0.5) * MM_PER_PX
    y = (SIM_SIZE_PX[1] - 0.5 - points[..., 1]) * MM_PER_PX
    return np.stack([x, y], axis=-1)


def pixels_to_floor_matrix() -> np.ndarray:
    """Return the 3 x 3 affine map of homogeneous simulation pixels to floor millimetres (z = 0)."""
    s, height = MM_PER_PX, SIM_SIZE_PX[1]
    return np.array([[s, 0.0, 0.5 * s], [0.0, -s, (height - 0.5) * s], [0.0, 0.0, 1.0]])


def sim_params(
    seed: int = 0,
    framerate: float = 30.0,
    behaviours: tuple[str, ...] = (),
    color: bool = True,
    noise: float = 4.0,
    lighting_drift: float = 0.08,
) -> ArenaParams:
    """Return the 2D simulation (640 x 480 px, random walk) that moves the rig's 3D mouse."""
    return ArenaParams(
        width=SIM_SIZE_PX[0],
        height=SIM_SIZE_PX[1],
        framerate=framerate,
        seed=seed,
        color=color,
        noise=noise,
        lighting_drift=lighting_drift,
        behaviours=behaviours,
    )


def body_pitch(stretch: np.ndarray | float) -> np.ndarray:
    """Angle (radians) by which the body axis is raised when its top view is ``stretch`` long."""
    return np.arccos(np.clip(np.asarray(stretch, dtype=np.float64), 0.0, 1.0))


def keypoints3d_from_poses(poses: np.ndarray, body_length_px: float) -> np.ndarray:
    """Compute the 3D keypoints (..., 6, 3) in mm, world frame, of 2D simulation poses (..., F)."""
    poses = np.asarray(poses, dtype=np.float64)
    floor = floor_from_pixels(keypoints_from_poses(poses, body_length_px))
    width = poses.shape[-1]
    stretch = poses[..., 5] if width > 5 else np.ones(poses.shape[:-1])
    retract = poses[..., 6] if width > 6 else np.zeros(poses.shape[:-1])
    along = np.broadcast_to(_ALONG_BODY, (*poses.shape[:-1], len(KEYPOINT_NAMES))).copy()
    along[..., 0] -= BODY_PLAN.nose_ahead_of_neck * retract
    length_mm = body_length_px * MM_PER_PX
    rise = np.sin(body_pitch(stretch))[..., None] * along * length_mm
    heights = _HEIGHTS + rise
    return np.concatenate([floor, heights[..., None]], axis=-1)


# --------------------------------------------------------------------------------------------------
# Projection of ellipsoids
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ellipsoid:
    """A solid ellipsoid: its centre (3,) and its three semi-axes as the columns of ``axes``."""

    center: np.ndarray
    axes: np.ndarray
    color: tuple[float, ...]


def project_ellipsoid(
    camera: PinholeCamera, ellipsoid: Ellipsoid
) -> tuple[tuple[float, float], tuple[float, float], float] | None:
    """Return an ellipsoid's outline: centre, semi-axes (px), angle (deg); None: behind."""
    frame = np.eye(4)
    frame[:3, :3], frame[:3, 3] = ellipsoid.axes, ellipsoid.center
    dual_quadric = frame @ np.diag([1.0, 1.0, 1.0, -1.0]) @ frame.T
    dual_conic = camera.projection @ dual_quadric @ camera.projection.T
    if dual_conic[2, 2] >= 0:  # the camera centre is inside or the ellipsoid straddles it
        return None
    normalised = dual_conic / -dual_conic[2, 2]
    center = -normalised[:2, 2]
    shape = normalised[:2, :2] + np.outer(center, center)
    eigenvalues, eigenvectors = np.linalg.eigh(shape)
    if eigenvalues[0] <= 0:
        return None
    semi_axes = np.sqrt(eigenvalues)
    angle = math.degrees(math.atan2(eigenvectors[1, 1], eigenvectors[0, 1]))
    return (float(center[0]), float(center[1])), (float(semi_axes[1]), float(semi_axes[0])), angle


def _horizontal_side(direction: np.ndarray) -> np.ndarray:
    """Return the unit horizontal vector to the left of a direction seen from above (z up)."""
    side = np.array([-direction[1], direction[0], 0.0])
    norm = np.linalg.norm(side)
    return side / norm if norm > 1e-12 else np.array([0.0, 1.0, 0.0])


def _frame_along(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return unit vectors: ``direction``, the horizontal side, and the 'up' completing them."""
    forward = direction / np.linalg.norm(direction)
    side = _horizontal_side(forward)
    up = np.cross(forward, side)
    return forward, side, up if up[2] >= 0 else -up


# --------------------------------------------------------------------------------------------------
# Rendering a view
# --------------------------------------------------------------------------------------------------


class RigViewRenderer:
    """Draws one calibrated camera's view of the 3D mouse on the arena floor.

    Floor, body and colours come from ``params``; ``view_salt`` makes each view's noise differ.
    """

    def __init__(self, params: ArenaParams, camera: PinholeCamera, view_salt: int = 0) -> None:
        import cv2

        self._cv2: ModuleType = cv2
        self.camera = camera
        self._params = params
        self._length_px = params.body_length_px
        self._length_mm = params.body_length_px * MM_PER_PX
        self._colors = mouse_colors(params.color)
        width, height = camera.size
        # The view's own lighting drift and noise: a renderer of the view's size (its floor and
        # body length are unused; a tiny body fits any frame).
        view_params = replace(
            params, width=width, height=height, seed=params.seed + view_salt, body_length=1.0
        )
        self._finisher = ArenaRenderer(view_params)
        floor = ArenaRenderer(params).floor
        homography = self.floor_homography()
        border = (_ROOM_LEVEL,) * (3 if params.color else 1)
        self.floor = np.ascontiguousarray(
            cv2.warpPerspective(
                floor,
                homography,
                (width, height),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=border,
            )
        )

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one frame: (H, W, 3) for colour, (H, W) for mono."""
        return self.floor.shape

    def floor_homography(self) -> np.ndarray:
        """Return the homography (3 x 3) of the plane z = 0: 2D simulation pixels to view pixels."""
        camera = self.camera
        rotation = camera.rotation_matrix
        plane = np.column_stack([rotation[:, 0], rotation[:, 1], camera.translation])
        homography = camera.matrix @ plane @ pixels_to_floor_matrix()
        return homography / homography[2, 2]

    def render(self, pose: Pose, frame_index: int, out: np.ndarray) -> None:
        """Draw frame ``frame_index`` with the mouse at ``pose`` (2D simulation) into ``out``."""
        np.copyto(out, self.floor)
        self._draw_tail(out, pose)
        for ellipsoid in self._farthest_first(self.ellipsoids(pose)):
            self._draw(out, ellipsoid)
        self._finisher.light_and_add_noise(out, frame_index)

    def light(self, out: np.ndarray, frame_index: int) -> None:
        """Apply frame ``frame_index``'s lighting drift and pixel noise to ``out``, in place."""
        self._finisher.light_and_add_noise(out, frame_index)

    def ellipsoids(self, pose: Pose) -> list[Ellipsoid]:
        """Return the solid parts at ``pose``: trunk, spine highlight, head and both ears."""
        poses = np.asarray(pose, dtype=np.float64)
        keypoints = keypoints3d_from_poses(poses, self._length_px)
        nose, left_ear, right_ear, neck, _, tail_base = keypoints
        length, colors, plan = self._length_mm, self._colors, BODY_PLAN
        pitch = float(body_pitch(pose.stretch))
        heading = np.array([math.cos(pose.heading), -math.sin(pose.heading), 0.0])  # y flips
        axis = math.cos(pitch) * heading + np.array([0.0, 0.0, math.sin(pitch)])
        forward, side, up = _frame_along(axis)
        trunk_along = plan.tail_base_behind + plan.body_ellipse_center
        trunk_center = tail_base + trunk_along * length * forward
        trunk_center[2] += _TRUNK_CENTER_HEIGHT_MM - WALKING_HEIGHTS_MM["tail_base"]
        half_height = _TRUNK_HALF_HEIGHT * length
        trunk_axes = np.column_stack(
            [
                plan.body_half_length * length * forward,
                plan.body_half_width * length * side,
                half_height * up,
            ]
        )
        spine_axes = np.column_stack(
            [0.6 * trunk_axes[:, 0], 0.35 * trunk_axes[:, 1], 0.5 * trunk_axes[:, 2]]
        )
        spine_center = trunk_center + 0.5 * half_height * up
        parts = [
            Ellipsoid(trunk_center, trunk_axes, colors.body),
            Ellipsoid(spine_center, spine_axes, colors.back),
            self._head(pose, nose, neck, colors.head),
        ]
        radius = plan.ear_radius * length
        parts += [Ellipsoid(ear, radius * np.eye(3), colors.ear) for ear in (left_ear, right_ear)]
        return parts

    def _head(
        self, pose: Pose, nose: np.ndarray, neck: np.ndarray, color: tuple[float, ...]
    ) -> Ellipsoid:
        """Return the head: seen from above where the 2D renderer has it, pitched with the body."""
        center_ahead, half_length = head_ellipse(pose)
        stretch = max(pose.stretch, 1e-6)
        nose_ahead = BODY_PLAN.nose_ahead_of_neck * (1.0 - pose.head_retract) * stretch
        # The centre on the neck-nose line where its top view is the 2D head's centre.
        center = neck + center_ahead / max(nose_ahead, 1e-6) * (nose - neck)
        angle, pitch = pose.heading + pose.head_turn, float(body_pitch(pose.stretch))
        direction = np.array([math.cos(angle), -math.sin(angle), 0.0])  # image y is down
        forward, side, up = _frame_along(
            math.cos(pitch) * direction + np.array([0.0, 0.0, math.sin(pitch)])
        )
        length = self._length_mm
        axes = np.column_stack(
            [
                half_length / stretch * length * forward,
                BODY_PLAN.head_half_width * length * side,
                _HEAD_HALF_HEIGHT * length * up,
            ]
        )
        return Ellipsoid(center, axes, color)

    def _farthest_first(self, parts: Iterable[Ellipsoid]) -> list[Ellipsoid]:
        """Sort parts far to near: the trunk with its spine highlight, the head with its ears."""
        # Ears just before the head, the head after the trunk unless _HEAD_IN_FRONT_MM farther:
        # the 2D renderer's order, which the bundled network learned.
        parts = list(parts)
        eye = self.camera.center
        trunk, spine, head, *ears = parts
        trunk_distance = float(np.linalg.norm(trunk.center - eye))
        head_distance = float(np.linalg.norm(head.center - eye)) - _HEAD_IN_FRONT_MM
        if head_distance <= trunk_distance:
            return [trunk, spine, *ears, head]
        return [*ears, head, trunk, spine]

    def _draw(self, image: np.ndarray, ellipsoid: Ellipsoid) -> None:
        outline = project_ellipsoid(self.camera, ellipsoid)
        if outline is None:
            return
        (cx, cy), (major, minor), angle = outline
        limit = 4 * max(image.shape[:2])  # cv2's fixed-point ellipses overflow far outside
        if not (abs(cx) < limit and abs(cy) < limit and major < limit):
            return
        cv2 = self._cv2
        center = (round(cx * _SCALE), round(cy * _SCALE))
        axes = (max(1, round(major * _SCALE)), max(1, round(minor * _SCALE)))
        cv2.ellipse(image, center, axes, angle, 0, 360, ellipsoid.color, -1, cv2.LINE_AA, _SHIFT)

    def _draw_tail(self, image: np.ndarray, pose: Pose) -> None:
        """Draw the tail: rising from the floor to the tail base, thickness by distance."""
        cv2, camera = self._cv2, self.camera
        polyline = tail_polyline(pose, self._length_px, self._params.arena_rect())
        floor = floor_from_pixels(polyline)
        fractions = np.linspace(0.0, 1.0, len(floor))
        base_height = float(keypoints3d_from_poses(np.asarray(pose), self._length_px)[5, 2])
        lift = np.clip(1.0 - fractions / _TAIL_LIFT_SECTION, 0.0, 1.0)
        heights = _TAIL_HEIGHT_MM + (base_height - _TAIL_HEIGHT_MM) * lift
        points = np.column_stack([floor, heights])
        pixels = camera.project(points)
        if not np.all(np.isfinite(pixels)):
            return
        depth = float(camera.to_camera(points[0])[2])
        px_per_mm = camera.matrix[0, 0] / max(depth, 1e-6)
        fixed = np.rint(pixels * _SCALE).astype(np.int32)
        per_section = (len(fixed) - 1) // len(TAIL_THICKNESSES)
        for section, thickness in enumerate(TAIL_THICKNESSES):
            part = fixed[section * per_section : (section + 1) * per_section + 1]
            width = max(1, round(thickness * self._length_mm * px_per_mm))
            cv2.polylines(image, [part], False, self._colors.tail, width, cv2.LINE_AA, _SHIFT)


# --------------------------------------------------------------------------------------------------
# The default rig
# --------------------------------------------------------------------------------------------------

RIG_TARGET_MM: tuple[float, float, float] = (200.0, 150.0, 0.0)
"""Where the default cameras look: the middle of the floor."""


@dataclass(frozen=True)
class ViewPlacement:
    """Where one camera of a rig is: position and target (mm, world frame), focal length (px)."""

    name: str
    position: tuple[float, float, float]
    target: tuple[float, float, float]
    focal_px: float
    size: tuple[int, int] = (640, 480)

    def camera(self) -> PinholeCamera:
        """Return the calibrated camera of this placement (image 'up' is the world's +y, or +x)."""
        return view_camera(self.name, self.size, self.focal_px, self.position, self.target)


DEFAULT_RIG: tuple[ViewPlacement, ...] = (
    ViewPlacement("top", (200.0, 150.0, 620.0), RIG_TARGET_MM, 950.0),
    ViewPlacement("left", (-12.0, 150.0, 583.0), RIG_TARGET_MM, 820.0),
    ViewPlacement("front", (200.0, -62.0, 583.0), RIG_TARGET_MM, 820.0),
)
"""The three cameras of ``docs/rig-3d.ini``: overhead, and 20 degrees from vertical from the left
(-x) and the front (-y) side, 620 mm from the floor's middle. 25 degrees doubled the bundled
network's error on the far ear and the nose (it was trained on top views only)."""


def view_camera(
    name: str,
    size: tuple[int, int],
    focal_px: float,
    position: Sequence[float],
    target: Sequence[float],
) -> PinholeCamera:
    """Return a camera at ``position`` looking at ``target``, the world's +y up (along y: +x up)."""
    try:
        return PinholeCamera.looking_at(name, size, focal_px, position, target, up=(0.0, 1.0, 0.0))
    except ValueError:
        return PinholeCamera.looking_at(name, size, focal_px, position, target, up=(1.0, 0.0, 0.0))


def default_rig_cameras() -> list[PinholeCamera]:
    """Return the true calibration of the default rig's three cameras."""
    return [placement.camera() for placement in DEFAULT_RIG]


def write_rig_calibration(path: Path, cameras: Sequence[PinholeCamera]) -> None:
    """Write the true calibration of a simulated rig (Anipose's ``calibration.toml``)."""
    metadata = {
        "source": "deeplabstream.hardware.simulator.rig3d (true calibration of a simulated rig)",
        "units": "mm",
    }
    write_calibration(path, cameras, metadata)


# --------------------------------------------------------------------------------------------------
# Frame by frame
# --------------------------------------------------------------------------------------------------


class SimulatedRigView:
    """One view of the 3D rig: renders a frame and returns its 2D and 3D truth."""

    def __init__(self, params: ArenaParams, camera: PinholeCamera, view_salt: int = 0) -> None:
        self.params = params
        self.camera = camera
        self.renderer = RigViewRenderer(params, camera, view_salt)
        self._motion = make_motion(params)
        self._pose: Pose | None = None
        self.next_frame_index = 0
        self.behaviour: str | None = None
        """The behaviour label of the last rendered frame; None without ``params.behaviours``."""

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one frame: (H, W, 3) for colour, (H, W) for mono."""
        return self.renderer.frame_shape

    def skip_to(self, frame_index: int) -> None:
        """Advance so the next rendered frame is ``frame_index``; ValueError for an earlier one."""
        if frame_index < self.next_frame_index:
            raise ValueError(
                f"cannot go back to frame {frame_index}: the next frame is {self.next_frame_index}"
            )
        while self.next_frame_index < frame_index:
            self._step()
            self.next_frame_index += 1

    def _step(self) -> Pose:
        pose = self._motion.step()
        if isinstance(self._motion, BehaviourMotion):
            self.behaviour = self._motion.behaviour
        return pose

    def render_next(self, out: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """Render the next frame into ``out``; return index, 2D truth (6, 2) px, 3D (6, 3) mm."""
        index = self.next_frame_index
        pose = self._step()
        self.renderer.render(pose, index, out)
        self.next_frame_index = index + 1
        truth3d = keypoints3d_from_poses(np.asarray(pose), self.params.body_length_px)
        return index, self.camera.project(truth3d), truth3d


def floor_corners_mm(params: ArenaParams) -> np.ndarray:
    """Return the corners (4, 3) of the floor inside the walls, in millimetres at z = 0."""
    x_min, y_min, x_max, y_max = params.arena_rect()
    corners = np.array([[x_min, y_min], [x_max, y_min], [x_max, y_max], [x_min, y_max]])
    return np.column_stack([floor_from_pixels(corners), np.zeros(4)])


def floor_outside_view(camera: PinholeCamera, params: ArenaParams) -> list[str]:
    """Describe each corner of the floor that ``camera`` does not see (empty: all in view)."""
    width, height = camera.size
    corners = floor_corners_mm(params)
    problems = []
    for corner, pixel in zip(corners, camera.project(corners), strict=True):
        x, y, _ = corner
        if not np.all(np.isfinite(pixel)):
            problems.append(f"floor corner ({x:.0f}, {y:.0f}) mm is behind the camera")
        elif not (0 <= pixel[0] <= width - 1 and 0 <= pixel[1] <= height - 1):
            problems.append(
                f"floor corner ({x:.0f}, {y:.0f}) mm is at pixel ({pixel[0]:.0f}, {pixel[1]:.0f})"
            )
    return problems


class SimulatedBoardView:
    """One view of the 3D rig with the ChArUco board moving over the floor instead of a mouse."""

    _FIRST_BATCH = 256  # poses computed at a time (the script is recomputed from its start)

    def __init__(self, params: ArenaParams, camera: PinholeCamera, view_salt: int = 0) -> None:
        self.params = params
        self.camera = camera
        self.renderer = RigViewRenderer(params, camera, view_salt)
        self.next_frame_index = 0
        self._rotations = np.empty((0, 3))
        self._translations = np.empty((0, 3))

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one frame: (H, W, 3) for colour, (H, W) for mono."""
        return self.renderer.frame_shape

    def skip_to(self, frame_index: int) -> None:
        """Make ``frame_index`` the next frame rendered (the board's poses need no stepping)."""
        if frame_index < self.next_frame_index:
            raise ValueError(
                f"cannot go back to frame {frame_index}: the next frame is {self.next_frame_index}"
            )
        self.next_frame_index = frame_index

    def pose(self, frame_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the board's pose at a frame: Rodrigues board -> world and its origin in mm."""
        if frame_index >= len(self._rotations):
            count = max(self._FIRST_BATCH, 2 * (frame_index + 1))
            self._rotations, self._translations = board_poses(
                self.params.seed, count, self.params.framerate
            )
        return self._rotations[frame_index], self._translations[frame_index]

    def render_next(self, out: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """Render the next frame into ``out``; return its index and the board's pose."""
        index = self.next_frame_index
        rotation, translation = self.pose(index)
        render_board(self.camera, rotation, translation, out, background=self.renderer.floor)
        self.renderer.light(out, index)
        self.next_frame_index = index + 1
        return index, rotation, translation
