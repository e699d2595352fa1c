"""Intrinsics of one camera from its board detections (OpenCV's ``calibrateCamera``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deeplabstream.core.errors import CalibrationError
from deeplabstream.hardware.simulator.board import BOARD, BoardSpec
from deeplabstream.spatial.calibration.detection import BoardDetection

DISTORTION_MODELS = ("none", "k1", "k1k2", "k1k2p1p2", "full")
"""Which of ``k1 k2 p1 p2 k3`` are solved; the others stay zero. ``full`` solves all five."""

FREE_COEFFICIENTS = {
    "none": (),
    "k1": (0,),
    "k1k2": (0, 1),
    "k1k2p1p2": (0, 1, 2, 3),
    "full": (0, 1, 2, 3, 4),
}
"""Per distortion model: the indices into ``k1 k2 p1 p2 k3`` that it solves."""

MIN_INTRINSIC_VIEWS = 4
MAX_INTRINSIC_VIEWS = 60  # calibrateCamera's time grows with views; 60 spread ones suffice


@dataclass(frozen=True)
class Intrinsics:
    """A camera's lens: camera matrix, distortion and the RMS reprojection error of the fit."""

    matrix: np.ndarray
    distortions: np.ndarray
    rms_px: float
    views_used: int


def _distortion_flags(model: str) -> int:
    """Return calibrateCamera's flags that keep the coefficients outside ``model`` at zero."""
    import cv2

    no_tangential = cv2.CALIB_ZERO_TANGENT_DIST
    fixed = {
        "none": cv2.CALIB_FIX_K1 | cv2.CALIB_FIX_K2 | cv2.CALIB_FIX_K3 | no_tangential,
        "k1": cv2.CALIB_FIX_K2 | cv2.CALIB_FIX_K3 | no_tangential,
        "k1k2": cv2.CALIB_FIX_K3 | no_tangential,
        "k1k2p1p2": cv2.CALIB_FIX_K3,
        "full": 0,
    }
    if model not in fixed:
        raise ValueError(f"distortion model {model!r}: expected one of {', '.join(fixed)}")
    return fixed[model]


def spread_views(count: int, wanted: int) -> list[int]:
    """``wanted`` indices spread evenly over ``range(count)`` (all of them if fewer)."""
    if count <= wanted:
        return list(range(count))
    return sorted({round(i) for i in np.linspace(0, count - 1, wanted)})


def solve_intrinsics(
    camera: str,
    detections: Sequence[BoardDetection],
    size: tuple[int, int],
    distortion_model: str = "k1k2p1p2",
    spec: BoardSpec = BOARD,
) -> Intrinsics:
    """Solve one camera's matrix and distortion from the board seen in several frames.

    Raises :class:`CalibrationError` when fewer than :data:`MIN_INTRINSIC_VIEWS` frames show it.
    """
    import cv2

    flags = _distortion_flags(distortion_model)
    if len(detections) < MIN_INTRINSIC_VIEWS:
        raise CalibrationError(
            f"camera {camera!r}: the board was found in {len(detections)} frames, "
            f"at least {MIN_INTRINSIC_VIEWS} are needed to solve its lens; check that the "
            "board is in focus, lit evenly and fills a good part of this camera's view"
        )
    chosen = [detections[i] for i in spread_views(len(detections), MAX_INTRINSIC_VIEWS)]
    object_points = [d.board_points(spec).astype(np.float32) for d in chosen]
    image_points = [d.pixels.astype(np.float32).reshape(-1, 1, 2) for d in chosen]
    rms, matrix, distortions, _, _ = cv2.calibrateCamera(
        object_points, image_points, size, None, None, flags=flags
    )
    coefficients = np.zeros(5)
    given = np.asarray(distortions, dtype=np.float64).ravel()[:5]
    coefficients[: len(given)] = given
    return Intrinsics(np.asarray(matrix, dtype=np.float64), coefficients, float(rms), len(chosen))
