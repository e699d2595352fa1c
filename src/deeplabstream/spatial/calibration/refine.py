"""Joint refinement: all camera poses, lenses and board poses at once (docs/3d.md, step 4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deeplabstream.hardware.simulator.board import BOARD, BoardSpec
from deeplabstream.spatial.calibration.detection import BoardDetection
from deeplabstream.spatial.calibration.geometry import (
    pose_matrix,
    pose_parameters,
    project_with_lens,
    rotation_matrices,
)
from deeplabstream.spatial.calibration.intrinsics import Intrinsics

_COST_TOLERANCE = 1e-6  # stop when a step lowers the cost by less than this fraction
_MAX_EVALUATIONS = 200
_HUBER_SCALE_PX = 2.0  # residuals beyond ~2 px count linearly: a wrong corner, not noise


@dataclass(frozen=True)
class Observations:
    """Every detected corner used, flattened: which camera, which frame set, where."""

    camera: np.ndarray
    frame_set: np.ndarray
    board_points: np.ndarray
    pixels: np.ndarray


def gather_observations(
    detections: Sequence[Sequence[BoardDetection | None]],
    frame_sets: Sequence[int],
    spec: BoardSpec = BOARD,
) -> Observations:
    """Flatten the detections of ``frame_sets`` (one sequence per camera, per frame set)."""
    cameras, sets, points, pixels = [], [], [], []
    for camera_index, per_set in enumerate(detections):
        for set_position, set_index in enumerate(frame_sets):
            detection = per_set[set_index]
            if detection is None:
                continue
            cameras.append(np.full(len(detection.ids), camera_index))
            sets.append(np.full(len(detection.ids), set_position))
            points.append(detection.board_points(spec))
            pixels.append(detection.pixels)
    return Observations(
        np.concatenate(cameras),
        np.concatenate(sets),
        np.concatenate(points),
        np.concatenate(pixels),
    )


def reprojection_errors(
    observations: Observations,
    intrinsics: Sequence[Intrinsics],
    cameras: Sequence[np.ndarray],
    boards: Sequence[np.ndarray],
) -> np.ndarray:
    """Return each observation's reprojection error (px) for given camera and board transforms."""
    camera_parameters = np.array([pose_parameters(c) for c in cameras])
    board_parameters = np.array([pose_parameters(b) for b in boards])
    lenses = (
        np.array([i.matrix for i in intrinsics]),
        np.array([i.distortions for i in intrinsics]),
    )
    residual = _residuals(observations, lenses, camera_parameters, board_parameters)
    return np.linalg.norm(residual.reshape(-1, 2), axis=1)


def _residuals(
    observations: Observations,
    lenses: tuple[np.ndarray, np.ndarray],
    camera_parameters: np.ndarray,
    board_parameters: np.ndarray,
) -> np.ndarray:
    """Flat (2n,) projections minus detections; ``lenses``: (C, 3, 3) matrices, (C, 5) k's."""
    board_rotations = rotation_matrices(board_parameters[:, :3])[observations.frame_set]
    in_reference = np.einsum("nij,nj->ni", board_rotations, observations.board_points)
    in_reference += board_parameters[observations.frame_set, 3:]
    camera_rotations = rotation_matrices(camera_parameters[:, :3])[observations.camera]
    in_camera = np.einsum("nij,nj->ni", camera_rotations, in_reference)
    in_camera += camera_parameters[observations.camera, 3:]
    matrices = lenses[0][observations.camera]
    distortions = lenses[1][observations.camera]
    projected = project_with_lens(in_camera, matrices, distortions)
    return (projected - observations.pixels).ravel()


@dataclass(frozen=True)
class _Layout:
    """Where each unknown sits in the flat vector: camera poses, then lenses, then boards."""

    cameras: int
    sets: int
    free_coefficients: tuple[int, ...]

    @property
    def lens_size(self) -> int:
        """Unknowns per lens: fx, fy, cx, cy and the free distortion coefficients."""
        return 4 + len(self.free_coefficients)

    @property
    def lenses_start(self) -> int:
        """Index of the first lens unknown (the reference camera's pose is not an unknown)."""
        return 6 * (self.cameras - 1)

    @property
    def boards_start(self) -> int:
        """Index of the first board-pose unknown."""
        return self.lenses_start + self.lens_size * self.cameras

    def pack(
        self,
        cameras: Sequence[np.ndarray],
        lenses: Sequence[Intrinsics],
        boards: Sequence[np.ndarray],
    ) -> np.ndarray:
        """Return the flat vector of transforms and lenses."""
        lens_rows = [
            np.concatenate(
                [
                    [lens.matrix[0, 0], lens.matrix[1, 1], lens.matrix[0, 2], lens.matrix[1, 2]],
                    lens.distortions[list(self.free_coefficients)],
                ]
            )
            for lens in lenses
        ]
        return np.concatenate(
            [pose_parameters(c) for c in cameras[1:]]
            + lens_rows
            + [pose_parameters(b) for b in boards]
        )

    def unpack(
        self, unknowns: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray]:
        """Return camera pose parameters (C, 6), lenses ((C, 3, 3), (C, 5)), boards (S, 6)."""
        cameras = np.vstack([np.zeros(6), unknowns[: self.lenses_start].reshape(-1, 6)])
        rows = unknowns[self.lenses_start : self.boards_start].reshape(self.cameras, self.lens_size)
        matrices = np.zeros((self.cameras, 3, 3))
        matrices[:, 0, 0], matrices[:, 1, 1] = rows[:, 0], rows[:, 1]
        matrices[:, 0, 2], matrices[:, 1, 2], matrices[:, 2, 2] = rows[:, 2], rows[:, 3], 1.0
        distortions = np.zeros((self.cameras, 5))
        distortions[:, list(self.free_coefficients)] = rows[:, 4:]
        boards = unknowns[self.boards_start :].reshape(-1, 6)
        return cameras, (matrices, distortions), boards

    def sparsity(self, observations: Observations) -> Any:
        """Which unknowns each residual depends on: its camera's pose and lens, its board's pose."""
        from scipy.sparse import lil_matrix

        pattern = lil_matrix(
            (2 * len(observations.camera), self.boards_start + 6 * self.sets), dtype=np.int8
        )
        for observation, (camera, frame_set) in enumerate(
            zip(observations.camera, observations.frame_set, strict=True)
        ):
            rows = slice(2 * observation, 2 * observation + 2)
            if camera > 0:  # camera 0 is the fixed reference
                pattern[rows, 6 * (camera - 1) : 6 * camera] = 1
            lens = self.lenses_start + self.lens_size * camera
            pattern[rows, lens : lens + self.lens_size] = 1
            board = self.boards_start + 6 * frame_set
            pattern[rows, board : board + 6] = 1
        return pattern


def refine_poses(
    observations: Observations,
    intrinsics: Sequence[Intrinsics],
    cameras: Sequence[np.ndarray],
    boards: Sequence[np.ndarray],
    free_coefficients: Sequence[int] = (0, 1, 2, 3),
) -> tuple[list[np.ndarray], list[Intrinsics], list[np.ndarray]]:
    """Refine camera poses, lenses and board poses together; camera 0 stays the reference.

    ``free_coefficients`` index ``k1 k2 p1 p2 k3`` (the others stay zero). Returns the refined
    cameras, lenses and boards in the same order.
    """
    from scipy.optimize import least_squares

    layout = _Layout(len(cameras), len(boards), tuple(free_coefficients))

    def residuals(unknowns: np.ndarray) -> np.ndarray:
        camera_parameters, lenses, board_parameters = layout.unpack(unknowns)
        return _residuals(observations, lenses, camera_parameters, board_parameters)

    solution = least_squares(
        residuals,
        layout.pack(cameras, intrinsics, boards),
        jac_sparsity=layout.sparsity(observations),
        x_scale="jac",
        loss="huber",
        f_scale=_HUBER_SCALE_PX,
        method="trf",
        # The cost levels off within ~20 steps; a tighter tolerance then crawls for hundreds of
        # steps (lens and pose unknowns trade off slowly) without moving the cameras.
        ftol=_COST_TOLERANCE,
        max_nfev=_MAX_EVALUATIONS,
    )
    camera_parameters, (matrices, distortions), board_parameters = layout.unpack(solution.x)
    refined_cameras = [pose_matrix(p[:3], p[3:]) for p in camera_parameters]
    refined_lenses = [
        Intrinsics(matrix, coefficients, lens.rms_px, lens.views_used)
        for matrix, coefficients, lens in zip(matrices, distortions, intrinsics, strict=True)
    ]
    refined_boards = [pose_matrix(p[:3], p[3:]) for p in board_parameters]
    return refined_cameras, refined_lenses, refined_boards
