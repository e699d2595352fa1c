"""From board detections to calibrated cameras in the floor frame, with their error figures."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from deeplabstream.core.errors import CalibrationError
from deeplabstream.core.pinhole import PinholeCamera
from deeplabstream.hardware.simulator.board import BOARD, FLOOR_ORIGIN, FLOOR_ROTATION, BoardSpec
from deeplabstream.spatial.calibration.detection import BoardDetection
from deeplabstream.spatial.calibration.extrinsics import (
    board_in_reference,
    board_poses_in_camera,
    chain_cameras,
)
from deeplabstream.spatial.calibration.geometry import (
    invert,
    mean_pose,
    pose_matrix,
    pose_parameters,
)
from deeplabstream.spatial.calibration.intrinsics import (
    FREE_COEFFICIENTS,
    Intrinsics,
    solve_intrinsics,
)
from deeplabstream.spatial.calibration.refine import (
    Observations,
    gather_observations,
    refine_poses,
    reprojection_errors,
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CameraFigures:
    """How well one camera is calibrated: errors after refinement, its lens fit's RMS."""

    detections: int
    frame_sets_used: int
    error_mean_px: float
    error_p95_px: float
    lens_rms_px: float


@dataclass(frozen=True)
class CalibrationResult:
    """Calibrated cameras (world = floor frame, mm) and the figures of the solution."""

    cameras: list[PinholeCamera]
    figures: dict[str, CameraFigures]
    error_mean_px: float
    error_p95_px: float
    frame_sets_used: int
    floor_sets: list[int]


def _quiet(message: str) -> None:
    """Drop a progress message."""


def solve_calibration(
    detections: Mapping[str, Sequence[BoardDetection | None]],
    sizes: Mapping[str, tuple[int, int]],
    floor_sets: Sequence[int],
    *,
    distortion_model: str = "k1k2p1p2",
    floor_origin: Sequence[float] = tuple(FLOOR_ORIGIN),
    spec: BoardSpec = BOARD,
    progress: Progress = _quiet,
) -> CalibrationResult:
    """Calibrate cameras from the board detected in synchronised frame sets.

    ``floor_sets``: the sets where the board lies flat at ``floor_origin`` (mm). Raises
    :class:`CalibrationError` (fewer than two cameras, too few shared views, no floor view...).
    """
    names = list(detections)
    if len(names) < 2:
        raise CalibrationError(f"3D calibration needs two cameras or more, got {names}")
    lengths = {len(per_set) for per_set in detections.values()}
    if len(lengths) != 1:
        raise ValueError(f"every camera needs one entry per frame set, got lengths {lengths}")
    lenses = _solve_lenses(detections, sizes, distortion_model, spec, progress)
    poses = {name: board_poses_in_camera(detections[name], lenses[name], spec) for name in names}
    reference = max(names, key=lambda name: sum(p is not None for p in poses[name]))
    placed = chain_cameras(poses, reference)
    progress(f"cameras linked through shared views; reference camera {reference!r}")
    order = [reference] + [name for name in names if name != reference]
    used_sets = _sets_to_refine(poses, floor_sets)
    first_boards = board_in_reference(poses, placed)
    observations = gather_observations([detections[name] for name in order], used_sets, spec)
    cameras, refined_lenses, boards = refine_poses(
        observations,
        [lenses[name] for name in order],
        [placed[name] for name in order],
        [first_boards[i] for i in used_sets],  # type: ignore[misc]
        FREE_COEFFICIENTS[distortion_model],
    )
    lenses = dict(zip(order, refined_lenses, strict=True))
    errors = reprojection_errors(observations, refined_lenses, cameras, boards)
    progress(
        f"joint refinement over {len(used_sets)} frame sets: mean error {errors.mean():.3f} px"
    )
    floor_boards = [boards[used_sets.index(i)] for i in floor_sets if i in used_sets]
    if not floor_boards:
        raise CalibrationError(
            "no camera found the board in the floor frames (frame sets "
            f"{_describe_sets(floor_sets)}): lay the board flat on the floor at the start of the "
            "recording (its first second), or name a frame where it lies there with --floor-frame"
        )
    world_to_reference = mean_pose(floor_boards) @ invert(
        pose_matrix(FLOOR_ROTATION, np.asarray(floor_origin, float))
    )
    figures = _figures(order, detections, observations, errors, lenses)
    calibrated = []
    for name, reference_to_camera in zip(order, cameras, strict=True):
        world_to_camera = pose_parameters(reference_to_camera @ world_to_reference)
        lens = lenses[name]
        calibrated.append(
            PinholeCamera(
                name,
                sizes[name],
                lens.matrix,
                lens.distortions,
                world_to_camera[:3],
                world_to_camera[3:],
            )
        )
    calibrated.sort(key=lambda camera: names.index(camera.name))
    return CalibrationResult(
        calibrated,
        {name: figures[name] for name in names},
        float(errors.mean()),
        float(np.percentile(errors, 95)),
        len(used_sets),
        [i for i in floor_sets if i in used_sets],
    )


def _solve_lenses(
    detections: Mapping[str, Sequence[BoardDetection | None]],
    sizes: Mapping[str, tuple[int, int]],
    distortion_model: str,
    spec: BoardSpec,
    progress: Progress,
) -> dict[str, Intrinsics]:
    """Solve every camera's lens, saying so as each is done."""
    lenses = {}
    for name, per_set in detections.items():
        found = [d for d in per_set if d is not None]
        if not found:
            raise CalibrationError(
                f"camera {name!r}: the board was not found in any of its {len(per_set)} frames; "
                "check that this camera sees the board, that it is in focus and evenly lit, "
                f"and that the board is a {spec.squares_x} x {spec.squares_y} ChArUco board "
                f"with {spec.square_mm:g} mm squares, {spec.marker_mm:g} mm markers and "
                f"{spec.dictionary} markers"
            )
        lenses[name] = solve_intrinsics(name, found, sizes[name], distortion_model, spec)
        progress(
            f"camera {name!r}: board in {len(found)} of {len(per_set)} frames; lens fit "
            f"{lenses[name].rms_px:.3f} px RMS over {lenses[name].views_used} frames"
        )
    return lenses


def _sets_to_refine(
    poses: Mapping[str, list[np.ndarray | None]], floor_sets: Sequence[int]
) -> list[int]:
    """Frame sets seen by two cameras or more (they link cameras), and floor sets seen at all."""
    count = len(next(iter(poses.values())))
    floor = set(floor_sets)
    used = []
    for index in range(count):
        seen = sum(per_set[index] is not None for per_set in poses.values())
        if seen >= 2 or (seen == 1 and index in floor):
            used.append(index)
    return used


def _figures(
    order: Sequence[str],
    detections: Mapping[str, Sequence[BoardDetection | None]],
    observations: Observations,
    errors: np.ndarray,
    lenses: Mapping[str, Intrinsics],
) -> dict[str, CameraFigures]:
    """Per camera: detections, frame sets used and its share of the reprojection errors."""
    camera_of, set_of = observations.camera, observations.frame_set
    figures = {}
    for index, name in enumerate(order):
        mine = errors[camera_of == index]
        figures[name] = CameraFigures(
            detections=sum(d is not None for d in detections[name]),
            frame_sets_used=len(np.unique(set_of[camera_of == index])),
            error_mean_px=float(mine.mean()) if len(mine) else float("nan"),
            error_p95_px=float(np.percentile(mine, 95)) if len(mine) else float("nan"),
            lens_rms_px=lenses[name].rms_px,
        )
    return figures


def _describe_sets(sets: Sequence[int]) -> str:
    """``0..29`` for a run of frame sets, else the list."""
    if not sets:
        return "(none)"
    if list(sets) == list(range(sets[0], sets[-1] + 1)) and len(sets) > 2:
        return f"{sets[0]}..{sets[-1]}"
    return ", ".join(map(str, sets))
